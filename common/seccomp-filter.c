/* seccomp-filter: one table of rules in, one loaded filter out (see seccomp-filter.h). */
#include "seccomp-filter.h"

#include <errno.h>

#include "macro.h"

#if defined(__SANITIZE_ADDRESS__)
#define KV_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(undefined_behavior_sanitizer)
#define KV_SANITIZED 1
#endif
#endif

#ifdef KV_SANITIZED
/* ASan/LSan at exit stop the world with a ptrace'ing clone, read /proc and may run the symbolizer. */
static const seccomp_rule sanitizer_extra[] = {
    SECCOMP_ALLOW(clone),
    SECCOMP_ALLOW(clone3),
    SECCOMP_ALLOW(ptrace),
    SECCOMP_ALLOW(prctl),
    SECCOMP_ALLOW(sigaltstack),
    SECCOMP_ALLOW(mprotect),
    SECCOMP_ALLOW(set_robust_list),
    SECCOMP_ALLOW(rseq),
    SECCOMP_ALLOW(sched_getaffinity),
    SECCOMP_ALLOW(readlink),
    SECCOMP_ALLOW(readlinkat),
    SECCOMP_ALLOW(open),
    SECCOMP_ALLOW(openat),
    SECCOMP_ALLOW(pipe2),
    SECCOMP_ALLOW(dup2),
    SECCOMP_ALLOW(execve),
    SECCOMP_ALLOW(prlimit64),
    SECCOMP_ALLOW(getrlimit),
    SECCOMP_ALLOW(setrlimit),
    SECCOMP_ALLOW(access),
    SECCOMP_ALLOW(faccessat),
    SECCOMP_ALLOW(arch_prctl),
    SECCOMP_ALLOW(ioctl),
    SECCOMP_ALLOW(fork),
    SECCOMP_ALLOW(vfork),
    SECCOMP_ALLOW(pread64),
    SECCOMP_ALLOW(socket),
    SECCOMP_ALLOW(stat),
    SECCOMP_ALLOW(lstat),
    SECCOMP_ALLOW(getrusage),
    SECCOMP_ALLOW(getdents),
    SECCOMP_ALLOW(getdents64),
    SECCOMP_ALLOW(sched_getparam),
    SECCOMP_ALLOW(sched_setaffinity),
    SECCOMP_ALLOW(getpriority),
    SECCOMP_ALLOW(wait4),
    SECCOMP_ALLOW(waitid),
    SECCOMP_ALLOW(munmap),
    SECCOMP_ALLOW(mmap),
    SECCOMP_ALLOW(exit),
    SECCOMP_ALLOW(close),
    SECCOMP_ALLOW(fstat),
    SECCOMP_ALLOW(newfstatat),
    SECCOMP_ALLOW(read),
    SECCOMP_ALLOW(write),
    SECCOMP_ALLOW(getpid),
    SECCOMP_ALLOW(gettid),
    SECCOMP_ALLOW(futex),
    SECCOMP_ALLOW(sched_yield),
    SECCOMP_ALLOW(rt_sigprocmask),
    SECCOMP_ALLOW(rt_sigaction),
    SECCOMP_ALLOW(madvise),
    SECCOMP_ALLOW(exit_group),
    SECCOMP_ALLOW(kill),
    SECCOMP_ALLOW(tgkill),
    SECCOMP_ALLOW(getppid),
    SECCOMP_ALLOW(nanosleep),
};
#endif

static int add_rules(scmp_filter_ctx ctx, const seccomp_rule *rules, size_t n, kv_error *err)
{
        for (size_t i = 0; i < n; i++) {
                const seccomp_rule *rule = &rules[i];
                const struct scmp_arg_cmp args[2] = {rule->arg, rule->arg2};
                int r = seccomp_rule_add_array(ctx, rule->action, rule->nr,
                                               rule->has_arg ? 1 + rule->has_arg2 : 0, args);
                if (r < 0 && r != -EEXIST)
                        return kv_error_errno(err, -r, "seccomp rule for syscall %d", rule->nr);
        }
        return 0;
}

int seccomp_filter_load(uint32_t default_action, const seccomp_rule *rules, size_t n, kv_error *err)
{
        scmp_filter_ctx ctx = seccomp_init(default_action);
        if (!ctx)
                return kv_error_set(err, ENOMEM, "seccomp_init");
        int r = add_rules(ctx, rules, n, err);
#ifdef KV_SANITIZED
        /* allowances, needless under a default-allow filter (where libseccomp refuses them: EACCES) */
        if (r >= 0 && default_action != SCMP_ACT_ALLOW)
                r = add_rules(ctx, sanitizer_extra, ARRAY_SIZE(sanitizer_extra), err);
#endif
        if (r >= 0) {
                r = seccomp_load(ctx);
                if (r < 0)
                        kv_error_errno(err, -r, "seccomp_load");
        }
        seccomp_release(ctx);
        return r;
}
