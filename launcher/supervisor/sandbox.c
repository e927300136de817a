/* The launcher's own sandbox, applied in two steps: no_new_privs before QEMU is spawned (QEMU
 * inherits it), capabilities and seccomp once QEMU runs (the spawn needs fork/execve). */
#include "sandbox.h"

#include <errno.h>
#include <linux/capability.h>
#include <seccomp.h>
#include <stdbool.h>
#include <sys/capability.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <termios.h>

#include "macro.h"

int sandbox_no_new_privs(kv_error *err)
{
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return kv_error_errno(err, errno, "prctl(PR_SET_NO_NEW_PRIVS)");
        return 0;
}

int sandbox_drop_capabilities(kv_error *err)
{
        /* The bounding set needs CAP_SETPCAP, so it goes first; without it (unprivileged runs) there is
         * nothing to drop there anyway. */
        if (CAP_IS_SUPPORTED(CAP_SETPCAP) && prctl(PR_CAPBSET_READ, CAP_SETPCAP) == 1) {
                for (cap_value_t c = 0; c <= CAP_LAST_CAP; c++)
                        if (prctl(PR_CAPBSET_READ, c) == 1 && cap_drop_bound(c) < 0 && errno != EINVAL)
                                return kv_error_errno(err, errno, "drop capability %d from the bounding set",
                                                      c);
        }
        if (CAP_AMBIENT_SUPPORTED() && cap_reset_ambient() < 0)
                return kv_error_errno(err, errno, "reset ambient capabilities");
        cap_t empty = cap_init();
        if (!empty)
                return kv_error_errno(err, errno, "cap_init");
        int r = cap_set_proc(empty);
        int saved = errno;
        cap_free(empty);
        if (r < 0)
                return kv_error_errno(err, saved, "cap_set_proc");
        return 0;
}

/* What the epoll loop, libqmp, the control socket, the status file and exit cleanup use; libkvnet's
 * DHCP server needs recvfrom/sendto on its bound socket, and stopping passt kill/wait4. */
static const int allowed[] = {
    SCMP_SYS(read),
    SCMP_SYS(write),
    SCMP_SYS(readv),
    SCMP_SYS(writev),
    SCMP_SYS(close),
    SCMP_SYS(epoll_wait),
    SCMP_SYS(epoll_pwait),
    SCMP_SYS(epoll_ctl),
    SCMP_SYS(poll),
    SCMP_SYS(ppoll),
    SCMP_SYS(accept4),
    SCMP_SYS(recvfrom),
    SCMP_SYS(recvmsg),
    SCMP_SYS(sendto),
    SCMP_SYS(sendmsg),
    SCMP_SYS(getsockopt),
    SCMP_SYS(setsockopt),
    SCMP_SYS(connect),
    SCMP_SYS(shutdown),
    SCMP_SYS(fcntl),
    SCMP_SYS(fstat),
    SCMP_SYS(newfstatat),
    SCMP_SYS(statx),
    SCMP_SYS(lseek),
    SCMP_SYS(openat),
    SCMP_SYS(rename),
    SCMP_SYS(renameat),
    SCMP_SYS(renameat2),
    SCMP_SYS(unlink),
    SCMP_SYS(unlinkat),
    SCMP_SYS(rmdir),
    SCMP_SYS(getdents64),
    SCMP_SYS(fsync),
    SCMP_SYS(brk),
    SCMP_SYS(mmap),
    SCMP_SYS(munmap),
    SCMP_SYS(mremap),
    SCMP_SYS(madvise),
    SCMP_SYS(clock_gettime),
    SCMP_SYS(clock_nanosleep),
    SCMP_SYS(gettimeofday),
    SCMP_SYS(nanosleep),
    SCMP_SYS(timerfd_settime),
    SCMP_SYS(timerfd_gettime),
    SCMP_SYS(wait4),
    SCMP_SYS(waitid),
    SCMP_SYS(kill),
    SCMP_SYS(tgkill),
    SCMP_SYS(rt_sigprocmask),
    SCMP_SYS(rt_sigaction),
    SCMP_SYS(rt_sigreturn),
    SCMP_SYS(restart_syscall),
    SCMP_SYS(getpid),
    SCMP_SYS(getppid),
    SCMP_SYS(gettid),
    SCMP_SYS(getuid),
    SCMP_SYS(geteuid),
    SCMP_SYS(getgid),
    SCMP_SYS(getegid),
    SCMP_SYS(exit),
    SCMP_SYS(exit_group),
    SCMP_SYS(futex),
    SCMP_SYS(sched_yield),
    SCMP_SYS(getrandom),
    SCMP_SYS(uname),
    SCMP_SYS(dup),
    SCMP_SYS(dup3),
    /* A VMI `apply` checks the PVCs it hot-plugs (launcher/liveops/liveops-apply.c). */
    SCMP_SYS(access),
    SCMP_SYS(faccessat),
    SCMP_SYS(faccessat2),
};

#if defined(__SANITIZE_ADDRESS__)
#define KV_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(undefined_behavior_sanitizer)
#define KV_SANITIZED 1
#endif
#endif

#ifdef KV_SANITIZED
/* ASan/LSan at exit stop the world with a ptrace'ing clone, read /proc and may run the symbolizer. */
static const int sanitizer_extra[] = {
    SCMP_SYS(clone),
    SCMP_SYS(clone3),
    SCMP_SYS(ptrace),
    SCMP_SYS(prctl),
    SCMP_SYS(sigaltstack),
    SCMP_SYS(mprotect),
    SCMP_SYS(set_robust_list),
    SCMP_SYS(rseq),
    SCMP_SYS(sched_getaffinity),
    SCMP_SYS(readlink),
    SCMP_SYS(readlinkat),
    SCMP_SYS(open),
    SCMP_SYS(pipe2),
    SCMP_SYS(dup2),
    SCMP_SYS(execve),
    SCMP_SYS(prlimit64),
    SCMP_SYS(getrlimit),
    SCMP_SYS(setrlimit),
    SCMP_SYS(access),
    SCMP_SYS(faccessat),
    SCMP_SYS(arch_prctl),
    SCMP_SYS(ioctl),
    SCMP_SYS(fork),
    SCMP_SYS(vfork),
    SCMP_SYS(pread64),
    SCMP_SYS(socket),
    SCMP_SYS(stat),
    SCMP_SYS(lstat),
    SCMP_SYS(getrusage),
    SCMP_SYS(getdents),
    SCMP_SYS(sched_getparam),
    SCMP_SYS(sched_setaffinity),
    SCMP_SYS(getpriority),
    SCMP_SYS(wait4),
    SCMP_SYS(waitid),
    SCMP_SYS(munmap),
    SCMP_SYS(mmap),
    SCMP_SYS(exit),
};
#endif

static int add_rules(scmp_filter_ctx ctx, const int *nrs, size_t n, kv_error *err)
{
        for (size_t i = 0; i < n; i++) {
                int r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nrs[i], 0);
                if (r < 0 && r != -EEXIST)
                        return kv_error_errno(err, -r, "seccomp rule for syscall %d", nrs[i]);
        }
        return 0;
}

/* Allow syscall nr only when argument arg equals value. */
static int add_rule_arg_eq(scmp_filter_ctx ctx, int nr, unsigned arg, scmp_datum_t value, kv_error *err)
{
        struct scmp_arg_cmp cmp = {.arg = arg, .op = SCMP_CMP_EQ, .datum_a = value, .datum_b = 0};
        int r = seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, nr, 1, &cmp);
        if (r < 0 && r != -EEXIST)
                return kv_error_errno(err, -r, "seccomp rule for syscall %d", nr);
        return 0;
}

static int add_narrow_rules(scmp_filter_ctx ctx, kv_error *err)
{
        /* New sockets only to reconnect to QEMU's serial chardev; ioctl only for isatty(). */
        int r = add_rule_arg_eq(ctx, SCMP_SYS(socket), 0, AF_UNIX, err);
        return r < 0 ? r : add_rule_arg_eq(ctx, SCMP_SYS(ioctl), 1, TCGETS, err);
}

int sandbox_seccomp(kv_error *err)
{
        scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
        if (!ctx)
                return kv_error_set(err, ENOMEM, "seccomp_init");
        int r = add_rules(ctx, allowed, ARRAY_SIZE(allowed), err);
#ifdef KV_SANITIZED
        if (r >= 0)
                r = add_rules(ctx, sanitizer_extra, ARRAY_SIZE(sanitizer_extra), err);
#endif
        if (r >= 0)
                r = add_narrow_rules(ctx, err);
        if (r >= 0) {
                r = seccomp_load(ctx);
                if (r < 0)
                        kv_error_errno(err, -r, "seccomp_load");
        }
        seccomp_release(ctx);
        return r;
}
