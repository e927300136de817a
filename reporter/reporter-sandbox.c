/* reporter-sandbox: what virt-launcher-reporter may do once set up, found with strace over every flow of
 * tests/injection/security_reporter.py (KV_REPORTER_STRACE=FILE reruns that): libkubelite (mbedTLS) to
 * the API server (TCP, re-reading the token file on each request; the CA is read before the filter), glibc's
 * resolver when the API host is a name (in-process, no thread), the stdin seqpacket, the launcher's control
 * socket, malloc, logging. */
#include "reporter-sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "macro.h"
#include "seccomp-filter.h"

/* Flags that would create, truncate or write a file: the reporter only reads (CA, token, /etc files). */
#define OPEN_WRITE_FLAGS (O_ACCMODE | O_CREAT | O_TRUNC | O_APPEND | O_TMPFILE)

static const seccomp_rule rules[] = {
    /* I/O on the descriptors it has or makes: stdin, stderr, TCP to the API, the control socket */
    SECCOMP_ALLOW(read),
    SECCOMP_ALLOW(write),
    SECCOMP_ALLOW(readv),
    SECCOMP_ALLOW(writev),
    SECCOMP_ALLOW(recvfrom),
    SECCOMP_ALLOW(recvmsg),
    SECCOMP_ALLOW(sendto),
    SECCOMP_ALLOW(sendmsg),
    SECCOMP_ALLOW(sendmmsg), /* DNS queries of the resolver */
    SECCOMP_ALLOW(close),
    SECCOMP_ALLOW(shutdown),
    SECCOMP_ALLOW(fcntl),
    SECCOMP_ALLOW(lseek),
    SECCOMP_ALLOW(poll),
    SECCOMP_ALLOW(ppoll),
    /* new sockets: only outgoing ones (no bind, listen, accept), of three families */
    SECCOMP_ALLOW_EQ(socket, 0, AF_UNIX),
    SECCOMP_ALLOW_EQ(socket, 0, AF_INET),
    SECCOMP_ALLOW_EQ(socket, 0, AF_INET6),
    SECCOMP_ALLOW(connect),
    SECCOMP_ALLOW(getsockopt),
    SECCOMP_ALLOW(setsockopt),
    SECCOMP_ALLOW(getsockname),
    SECCOMP_ALLOW(getpeername),
    /* files: read-only opens (the service account's ca.crt and token, /etc/hosts, resolv.conf...) */
    SECCOMP_ALLOW_MASKED(openat, 2, OPEN_WRITE_FLAGS, 0),
    SECCOMP_ALLOW(fstat),
    SECCOMP_ALLOW(newfstatat),
    SECCOMP_ALLOW(statx),
    /* memory: never executable (no new code after setup) */
    SECCOMP_ALLOW(brk),
    SECCOMP_ALLOW_MASKED(mmap, 2, PROT_EXEC, 0),
    SECCOMP_ALLOW_MASKED(mprotect, 2, PROT_EXEC, 0),
    SECCOMP_ALLOW(munmap),
    SECCOMP_ALLOW(mremap),
    SECCOMP_ALLOW(madvise),
    /* time, randomness (mbedTLS reseeds its generator), identity */
    SECCOMP_ALLOW(clock_gettime),
    SECCOMP_ALLOW(gettimeofday),
    SECCOMP_ALLOW(nanosleep),
    SECCOMP_ALLOW(clock_nanosleep),
    SECCOMP_ALLOW(getrandom),
    SECCOMP_ALLOW(getpid),
    SECCOMP_ALLOW(gettid),
    SECCOMP_ALLOW(uname),
    /* no threads (libcurl's resolver thread is gone with it): glibc's locks only */
    SECCOMP_ALLOW(futex),
    /* signals: masks (abort), the SIGSYS report below, dying by a signal */
    SECCOMP_ALLOW(rt_sigprocmask),
    SECCOMP_ALLOW(rt_sigaction),
    SECCOMP_ALLOW(rt_sigreturn),
    SECCOMP_ALLOW(restart_syscall),
    SECCOMP_ALLOW(tgkill),
    SECCOMP_ALLOW(exit_group),
};

/* Names by number, filled before the filter is loaded: the SIGSYS handler may not allocate. */
#define SYSCALL_NAMES 512
static char syscall_names[SYSCALL_NAMES][32];

static void name_syscalls(void)
{
        for (int nr = 0; nr < SYSCALL_NAMES; nr++) {
                char *name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
                snprintf(syscall_names[nr], sizeof(syscall_names[nr]), "%s", name ? name : "?");
                free(name);
        }
}

static size_t append(char *buf, size_t len, size_t cap, const char *s)
{
        while (*s && len + 1 < cap)
                buf[len++] = *s++;
        buf[len] = '\0';
        return len;
}

/* Async-signal-safe: formats by hand, one write(2), then dies by SIGSYS (SA_RESETHAND restored the
 * default action, a core-dumping kill), so the launcher and kubectl logs both show why. */
static void on_sigsys(int sig, siginfo_t *info, void *ucontext)
{
        (void)ucontext;
        int nr = info->si_syscall;
        char num[12], line[256];
        size_t n = sizeof(num) - 1;
        num[n] = '\0';
        unsigned v = nr < 0 ? 0 : (unsigned)nr;
        do
                num[--n] = (char)('0' + v % 10);
        while ((v /= 10) && n > 0);
        size_t len =
            append(line, 0, sizeof(line),
                   "{\"level\":\"error\",\"component\":\"virt-launcher-reporter\",\"msg\":\"seccomp: "
                   "forbidden system call ");
        len = append(line, len, sizeof(line), nr >= 0 && nr < SYSCALL_NAMES ? syscall_names[nr] : "?");
        len = append(line, len, sizeof(line), " (");
        len = append(line, len, sizeof(line), num + n);
        len = append(line, len, sizeof(line), "), killing the reporter\"}\n");
        ssize_t w = write(STDERR_FILENO, line, len);
        (void)w;
        syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), sig);
}

int reporter_sandbox_apply(kv_error *err)
{
        name_syscalls();
        struct sigaction sa = {.sa_sigaction = on_sigsys, .sa_flags = SA_SIGINFO | SA_RESETHAND | SA_NODEFER};
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGSYS, &sa, NULL) < 0)
                return kv_error_errno(err, errno, "sigaction(SIGSYS)");
        return seccomp_filter_load(SCMP_ACT_TRAP, rules, ARRAY_SIZE(rules), err);
}
