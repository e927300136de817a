/* virtiofsd: fork/exec of QEMU's virtiofsd per filesystem (argv from launcher/core), waiting for its
 * vhost-user socket; the error for a daemon that cannot run names the filesystem's JSON path. */
#include "virtiofsd.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "helperd.h"
#include "log.h"
#include "macro.h"
#include "seccomp-filter.h"
#include "strv.h"
#include "virtiofs.h"

#define SOCKET_WAIT_MS 5000

/* The call names its file through a directory fd, not AT_FDCWD (negative: at or above 2^31 however the
 * int is widened), and its flags hold bits. */
#define ANY_DIR(name, bits) SECCOMP_ERRNO_LT_MASKED(name, EROFS, 0, 0x80000000u, 2, (bits), (bits))

/* QEMU 7.2's C virtiofsd has no read-only mode: a read-only share (a containerPath, a configMap, a secret,
 * a read-only claim) gets a seccomp filter that fails every call the daemon makes to change the tree for the
 * guest with EROFS. The guest's requests always name a file through a directory fd (the daemon chroots into
 * the share), never relative to the working directory: the daemon's own pid file under /run/virtiofsd
 * (openat AT_FDCWD) and socket stay writable. */
/* clang-format off */
static const seccomp_rule read_only_rules[] = {
    ANY_DIR(openat, O_WRONLY),
    ANY_DIR(openat, O_RDWR),
    ANY_DIR(openat, O_CREAT),
    ANY_DIR(openat, O_TRUNC),
    SECCOMP_ERRNO(openat2, ENOSYS), /* callers fall back to openat */
    SECCOMP_ERRNO(mkdirat, EROFS),
    SECCOMP_ERRNO(mknodat, EROFS),
    SECCOMP_ERRNO(symlinkat, EROFS),
    SECCOMP_ERRNO(linkat, EROFS),
    SECCOMP_ERRNO(unlinkat, EROFS),
    SECCOMP_ERRNO(renameat, EROFS),
    SECCOMP_ERRNO(renameat2, EROFS),
    SECCOMP_ERRNO(fchmod, EROFS),
    SECCOMP_ERRNO(fchmodat, EROFS),
    SECCOMP_ERRNO(fchown, EROFS),
    SECCOMP_ERRNO(fchownat, EROFS),
    SECCOMP_ERRNO(utimensat, EROFS),
    SECCOMP_ERRNO(truncate, EROFS),
    SECCOMP_ERRNO(fallocate, EROFS),
    SECCOMP_ERRNO(setxattr, EROFS),
    SECCOMP_ERRNO(lsetxattr, EROFS),
    SECCOMP_ERRNO(fsetxattr, EROFS),
    SECCOMP_ERRNO(removexattr, EROFS),
    SECCOMP_ERRNO(lremovexattr, EROFS),
    SECCOMP_ERRNO(fremovexattr, EROFS),
};
/* clang-format on */

static void exec_child(char *const *argv, int log_fd, pid_t parent, bool read_only)
{
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
                _exit(127);
        int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (null < 0 || dup2(null, 0) < 0 || dup2(log_fd, 1) < 0 || dup2(log_fd, 2) < 0)
                _exit(127);
        close_range(3, ~0U, 0);
        kv_error err = {0};
        /* the launcher set no_new_privs before (sandbox_no_new_privs): the filter needs no privilege */
        if (read_only &&
            seccomp_filter_load(SCMP_ACT_ALLOW, read_only_rules, ARRAY_SIZE(read_only_rules), &err) < 0) {
                dprintf(2, "read-only filter: %s\n", err.msg);
                _exit(126);
        }
        execv(argv[0], argv);
        _exit(127);
}

/* The last line the daemon logged, for the error message. */
static void last_line(const char *log, char *buf, size_t size)
{
        _cleanup_close_ int fd = open(log, O_RDONLY | O_CLOEXEC);
        char tail[512];
        ssize_t n = fd >= 0 ? pread(fd, tail, sizeof(tail) - 1, 0) : -1;
        snprintf(buf, size, "no output");
        if (n <= 0)
                return;
        struct stat st;
        if (fstat(fd, &st) == 0 && st.st_size > (off_t)sizeof(tail) - 1)
                n = pread(fd, tail, sizeof(tail) - 1, st.st_size - (off_t)sizeof(tail) + 1);
        if (n <= 0)
                return;
        tail[n] = '\0';
        while (n > 0 && (tail[n - 1] == '\n' || tail[n - 1] == '\r'))
                tail[--n] = '\0';
        const char *nl = strrchr(tail, '\n');
        snprintf(buf, size, "%s", nl ? nl + 1 : tail);
}

/* Waits until the socket exists; -1 with *status set when the daemon exited first, -2 on timeout. */
static int wait_socket(pid_t pid, const char *sock, int *status)
{
        for (int ms = 0; ms < SOCKET_WAIT_MS; ms += 10) {
                struct stat st;
                if (stat(sock, &st) == 0 && S_ISSOCK(st.st_mode))
                        return 0;
                if (waitpid(pid, status, WNOHANG) == pid)
                        return -1;
                nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
        }
        return -2;
}

static int start_one(const vmi *v, size_t i, const char *run_dir, const char *binary, pid_t *out,
                     kv_error *err)
{
        const vmi_filesystem *fs = &v->filesystems[i];
        _cleanup_(strv_free) strv argv = {0};
        _cleanup_free_ char *sock = virtiofs_socket_path(run_dir, fs), *log = NULL;
        char why[256];
        if (!sock || asprintf(&log, "%s/virtiofsd-%s.log", run_dir, fs->name) < 0)
                return kv_error_set(err, ENOMEM, "out of memory");
        if (access(binary, X_OK) < 0)
                return kv_error_set(
                    err, EINVAL,
                    "spec.domain.devices.filesystems[%zu]: virtiofs needs virtiofsd (%s, from "
                    "qemu-system-common), which this host lacks: %s",
                    i, binary, strerror(errno));
        int r = virtiofsd_argv(binary, v, fs, run_dir, &argv, err);
        if (r < 0)
                return r;
        unlink(sock);
        _cleanup_close_ int log_fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (log_fd < 0)
                return kv_error_errno(err, errno, "create %s", log);
        pid_t parent = getpid(), pid = fork();
        if (pid < 0)
                return kv_error_errno(err, errno, "fork virtiofsd");
        if (pid == 0)
                exec_child(strv_argv(&argv), log_fd, parent, v->volumes[fs->volume].prep.read_only);
        *out = pid;
        int status = 0;
        r = wait_socket(pid, sock, &status);
        if (r == 0) {
                log_info("virtiofsd for filesystem %s: pid %d, socket %s", fs->name, (int)pid, sock);
                return 0;
        }
        last_line(log, why, sizeof(why));
        if (r == -2)
                return kv_error_set(err, EINVAL,
                                    "spec.domain.devices.filesystems[%zu]: virtiofsd made no socket in %d s "
                                    "(%s)",
                                    i, SOCKET_WAIT_MS / 1000, why);
        *out = 0;
        return kv_error_set(err, EINVAL,
                            "spec.domain.devices.filesystems[%zu]: virtiofsd cannot run on this host (exit "
                            "status %d): %s",
                            i, WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), why);
}

int virtiofsd_start_all(const vmi *v, const char *run_dir, const char *binary, virtiofsd_set *set,
                        kv_error *err)
{
        if (!v->n_filesystems)
                return 0;
        set->pids = calloc(v->n_filesystems, sizeof(pid_t));
        if (!set->pids)
                return kv_error_set(err, ENOMEM, "out of memory");
        for (size_t i = 0; i < v->n_filesystems; i++) {
                int r = start_one(v, i, run_dir, binary ? binary : VIRTIOFSD_DEFAULT, &set->pids[i], err);
                set->n = i + 1;
                if (r < 0)
                        return r;
        }
        return 0;
}

void virtiofsd_stop_all(virtiofsd_set *set)
{
        for (size_t i = 0; i < set->n; i++)
                helperd_stop_pid(&set->pids[i]);
        free(set->pids);
        set->pids = NULL, set->n = 0;
}
