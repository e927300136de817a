/* fork+execve of QEMU with fd placement and an exec-error pipe (the child writes errno to it if
 * execve fails; a successful exec closes it through O_CLOEXEC). */
#include "qemu-process.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "macro.h"

extern char **environ;

#define MAX_PASSED_FDS 16

static void child_fail(int errfd, int code)
{
        ssize_t w = write(errfd, &code, sizeof(code));
        (void)w;
        _exit(127);
}

/* QEMU needs no capability: its sockets, tap and disks are opened for it or owned by its uid. A root
 * execve() would grant the whole bounding set, so empty that (needs CAP_SETPCAP, which an unprivileged
 * launcher does not have and then does not need), the ambient set, and our own sets. Raw syscalls only:
 * this runs between fork and execve. */
static int child_drop_capabilities(void)
{
        for (int cap = 0; cap < 64; cap++)
                if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL && errno != EPERM)
                        return -errno;
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
                return -errno;
        struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
        struct __user_cap_data_struct data[2];
        memset(data, 0, sizeof(data));
        if (syscall(SYS_capset, &hdr, data) < 0)
                return -errno;
        return 0;
}

/* Runs in the child between fork and execve: only async-signal-safe calls. */
static void child_exec(const qemu_spawn_req *req, pid_t parent, int errfd)
{
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL); /* the launcher blocks signals for its signalfd */
        for (int s = 1; s < NSIG; s++)
                signal(s, SIG_DFL);
        /* Own session: a terminal's Ctrl-C or a signal to the launcher's process group must reach the
         * launcher only, which then stops QEMU gracefully. */
        if (setsid() < 0)
                child_fail(errfd, errno);
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
                child_fail(errfd, errno);
        if (getppid() != parent) /* the launcher died before prctl took effect */
                _exit(127);

        /* Move every fd (the error pipe too) above the target range first, so placing one never
         * clobbers another. */
        int base = 3 + req->nfds;
        int moved = fcntl(errfd, F_DUPFD_CLOEXEC, base);
        if (moved < 0)
                child_fail(errfd, errno);
        errfd = moved;
        int high[MAX_PASSED_FDS];
        for (int i = 0; i < req->nfds; i++) {
                high[i] = fcntl(req->fds[i], F_DUPFD_CLOEXEC, base);
                if (high[i] < 0)
                        child_fail(errfd, errno);
        }
        for (int i = 0; i < req->nfds; i++)
                if (dup2(high[i], 3 + i) < 0)
                        child_fail(errfd, errno);
        int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (devnull < 0 || dup2(devnull, STDIN_FILENO) < 0)
                child_fail(errfd, errno);
        if (req->stderr_fd >= 0 && dup2(req->stderr_fd, STDERR_FILENO) < 0)
                child_fail(errfd, errno);
        int r = child_drop_capabilities();
        if (r < 0)
                child_fail(errfd, -r);
        execve(req->path, req->argv, environ);
        child_fail(errfd, errno);
}

int qemu_spawn(const qemu_spawn_req *req, pid_t *pid, kv_error *err)
{
        if (req->nfds > MAX_PASSED_FDS)
                return kv_error_set(err, EINVAL, "too many fds for QEMU (%d)", req->nfds);
        int errpipe[2];
        if (pipe2(errpipe, O_CLOEXEC) < 0)
                return kv_error_errno(err, errno, "pipe");
        pid_t parent = getpid();
        pid_t child = fork();
        if (child < 0) {
                int saved = errno;
                close(errpipe[0]);
                close(errpipe[1]);
                return kv_error_errno(err, saved, "fork");
        }
        if (child == 0) {
                close(errpipe[0]);
                child_exec(req, parent, errpipe[1]);
        }
        close(errpipe[1]);
        int code = 0;
        ssize_t n;
        do
                n = read(errpipe[0], &code, sizeof(code));
        while (n < 0 && errno == EINTR);
        close(errpipe[0]);
        if (n == sizeof(code)) {
                waitpid(child, NULL, 0);
                return kv_error_errno(err, code, "execute `%s`", req->path);
        }
        *pid = child;
        return 0;
}

void wait_status_describe(int wstatus, char *buf, size_t size)
{
        if (WIFEXITED(wstatus))
                snprintf(buf, size, "exited with status %d", WEXITSTATUS(wstatus));
        else if (WIFSIGNALED(wstatus))
                snprintf(buf, size, "killed by signal %d (SIG%s)", WTERMSIG(wstatus),
                         sigabbrev_np(WTERMSIG(wstatus)) ? sigabbrev_np(WTERMSIG(wstatus)) : "?");
        else
                snprintf(buf, size, "stopped with wait status 0x%x", wstatus);
}
