/* The launcher's own sandbox, applied in two steps: no_new_privs before QEMU is spawned (QEMU
 * inherits it), capabilities and seccomp once QEMU runs (the spawn needs fork/execve). */
#include "sandbox.h"

#include <errno.h>
#include <linux/capability.h>
#include <stdbool.h>
#include <sys/capability.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <termios.h>

#include "macro.h"
#include "seccomp-filter.h"

int sandbox_no_new_privs(kv_error *err)
{
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return kv_error_errno(err, errno, "prctl(PR_SET_NO_NEW_PRIVS)");
        return 0;
}

/* What the epoll loop, libqmp, the control socket, the status file and exit cleanup use; libkvnet's
 * DHCP server needs recvfrom/sendto on its bound socket, and stopping passt kill/wait4. */
static const seccomp_rule rules[] = {
    SECCOMP_ALLOW(read),
    SECCOMP_ALLOW(write),
    SECCOMP_ALLOW(pwrite64), /* the downwardMetrics disk's header, rewritten in place (metrics.c) */
    SECCOMP_ALLOW(readv),
    SECCOMP_ALLOW(writev),
    SECCOMP_ALLOW(close),
    SECCOMP_ALLOW(epoll_wait),
    SECCOMP_ALLOW(epoll_pwait),
    SECCOMP_ALLOW(epoll_ctl),
    SECCOMP_ALLOW(poll),
    SECCOMP_ALLOW(ppoll),
    SECCOMP_ALLOW(accept4),
    SECCOMP_ALLOW(recvfrom),
    SECCOMP_ALLOW(recvmsg),
    SECCOMP_ALLOW(sendto),
    SECCOMP_ALLOW(sendmsg),
    SECCOMP_ALLOW(getsockopt),
    SECCOMP_ALLOW(setsockopt),
    SECCOMP_ALLOW(connect),
    SECCOMP_ALLOW(shutdown),
    SECCOMP_ALLOW(fcntl),
    SECCOMP_ALLOW(fstat),
    SECCOMP_ALLOW(newfstatat),
    SECCOMP_ALLOW(statx),
    SECCOMP_ALLOW(lseek),
    SECCOMP_ALLOW(openat),
    SECCOMP_ALLOW(rename),
    SECCOMP_ALLOW(renameat),
    SECCOMP_ALLOW(renameat2),
    SECCOMP_ALLOW(unlink),
    SECCOMP_ALLOW(unlinkat),
    SECCOMP_ALLOW(rmdir),
    SECCOMP_ALLOW(getdents64),
    SECCOMP_ALLOW(fsync),
    SECCOMP_ALLOW(brk),
    SECCOMP_ALLOW(mmap),
    SECCOMP_ALLOW(munmap),
    SECCOMP_ALLOW(mremap),
    SECCOMP_ALLOW(madvise),
    SECCOMP_ALLOW(clock_gettime),
    SECCOMP_ALLOW(clock_nanosleep),
    SECCOMP_ALLOW(gettimeofday),
    SECCOMP_ALLOW(nanosleep),
    SECCOMP_ALLOW(wait4),
    SECCOMP_ALLOW(waitid),
    SECCOMP_ALLOW(kill),
    SECCOMP_ALLOW(tgkill),
    SECCOMP_ALLOW(rt_sigprocmask),
    SECCOMP_ALLOW(rt_sigaction),
    SECCOMP_ALLOW(rt_sigreturn),
    SECCOMP_ALLOW(restart_syscall),
    SECCOMP_ALLOW(getpid),
    SECCOMP_ALLOW(getppid),
    SECCOMP_ALLOW(gettid),
    SECCOMP_ALLOW(getuid),
    SECCOMP_ALLOW(geteuid),
    SECCOMP_ALLOW(getgid),
    SECCOMP_ALLOW(getegid),
    SECCOMP_ALLOW(exit),
    SECCOMP_ALLOW(exit_group),
    SECCOMP_ALLOW(futex),
    SECCOMP_ALLOW(sched_yield),
    SECCOMP_ALLOW(getrandom),
    SECCOMP_ALLOW(uname),
    SECCOMP_ALLOW(dup),
    SECCOMP_ALLOW(dup3),
    /* A VMI `apply` checks the PVCs it hot-plugs (launcher/liveops/liveops-apply.c), and reads the block
     * sizes of a disk's volume for blockSize.matchVolume (launcher/core/volumes.c). */
    SECCOMP_ALLOW(access),
    SECCOMP_ALLOW(faccessat),
    SECCOMP_ALLOW(faccessat2),
    SECCOMP_ALLOW(statfs),
    SECCOMP_ALLOW(fstatfs),
    SECCOMP_ALLOW_EQ(ioctl, 1, BLKSSZGET),
    SECCOMP_ALLOW_EQ(ioctl, 1, BLKPBSZGET),
    /* New sockets only to reconnect to QEMU's serial chardev; ioctl only for isatty(). */
    SECCOMP_ALLOW_EQ(socket, 0, AF_UNIX),
    SECCOMP_ALLOW_EQ(ioctl, 1, TCGETS),
    /* Last, only with allow_inet: tcpSocket and httpGet probes connect to the guest from the Pod's
     * network namespace (probes.c). */
    SECCOMP_ALLOW_EQ(socket, 0, AF_INET),
    SECCOMP_ALLOW_EQ(socket, 0, AF_INET6),
};

int sandbox_seccomp(bool allow_inet, kv_error *err)
{
        return seccomp_filter_load(SCMP_ACT_ERRNO(EPERM), rules, ARRAY_SIZE(rules) - (allow_inet ? 0 : 2),
                                   err);
}
