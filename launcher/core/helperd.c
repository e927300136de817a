/* helperd: swtpm and qemu-pr-helper beside QEMU (helperd.h). Paths never pass through the helpers' own
 * option syntax (a run dir may hold commas): swtpm gets its state directory in $TPM_PATH and its control
 * socket as a listening fd; qemu-pr-helper takes its socket path as one argv element. */
#include "helperd.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <scsi/sg.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "jfield.h"
#include "macro.h"
#include "qemu-argv.h"
#include "volumes.h"

#define START_TIMEOUT_MS 5000
#define SWTPM_FD 3

static bool is_executable(const char *path)
{
        struct stat st;
        return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/* The program's absolute path on $PATH into buf; false when it is not installed. */
static bool find_program(const char *name, char *buf, size_t size)
{
        const char *path = getenv("PATH");
        _cleanup_free_ char *copy = strdup(path && *path ? path : "/usr/local/bin:/usr/bin:/bin");
        char *save = NULL;
        for (char *dir = copy ? strtok_r(copy, ":", &save) : NULL; dir; dir = strtok_r(NULL, ":", &save))
                if ((size_t)snprintf(buf, size, "%s/%s", dir, name) < size && is_executable(buf))
                        return true;
        return false;
}

static int need_program(const char *name, const char *package, const char *field, kv_error *err)
{
        char buf[4096];
        if (find_program(name, buf, sizeof(buf)))
                return 0;
        return kv_error_set(err, EINVAL, "%s: needs %s (Debian package %s), which this host lacks", field,
                            name, package);
}

/* persistent: KubeVirt keeps the TPM in the VM's backend-storage claim, persistent-state-for-<name>; here
 * that claim is a directory under the PVC root. Otherwise the state lives and dies with the run dir. */
static int prepare_tpm(vmi *v, const launcher_paths *p, kv_error *err)
{
        JF_TRY(need_program("swtpm", "swtpm", "spec.domain.devices.tpm", err));
        free(v->tpm_state_dir);
        v->tpm_state_dir = NULL;
        if (v->tpm_persistent) {
                if (!(v->tpm_state_dir = volumes_backend_dir(p, v, "tpm", err)))
                        return -err->code;
        } else if (asprintf(&v->tpm_state_dir, "%s/tpm", p->run_dir) < 0) {
                v->tpm_state_dir = NULL;
                return kv_error_set(err, ENOMEM, "out of memory");
        } else if (mkdir(v->tpm_state_dir, 0700) < 0 && errno != EEXIST) {
                return kv_error_errno(err, errno, "mkdir %s", v->tpm_state_dir);
        }
        if (!v->tpm_persistent) { /* a run dir given again must not hand the guest an old TPM */
                char state[4200];
                snprintf(state, sizeof(state), "%s/tpm2-00.permall", v->tpm_state_dir);
                if (unlink(state) < 0 && errno != ENOENT)
                        return kv_error_errno(err, errno, "remove %s", state);
        }
        return 0;
}

/* A block-mode claim: a block device, and whether it takes SCSI commands (SG_IO): a SCSI disk does, a
 * loop, dm or rbd device does not, and QEMU's scsi-block would refuse it. */
static void probe_block_device(volume_prep *vp)
{
        struct stat st;
        vp->block_device = vp->path && stat(vp->path, &st) == 0 && S_ISBLK(st.st_mode);
        vp->scsi_generic = false;
        if (!vp->block_device)
                return;
        _cleanup_close_ int fd = open(vp->path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        int version = 0;
        vp->scsi_generic = fd >= 0 && ioctl(fd, SG_GET_VERSION_NUM, &version) == 0 && version >= 30000;
}

int helperd_prepare(vmi *v, const launcher_paths *p, kv_error *err)
{
        for (size_t i = 0; i < v->n_volumes; i++)
                probe_block_device(&v->volumes[i].prep);
        for (size_t i = 0; i < v->n_disks; i++) {
                if (!v->disks[i].reservation)
                        continue;
                char field[96];
                snprintf(field, sizeof(field), "spec.domain.devices.disks[%zu].lun.reservation", i);
                /* refused before qemu-pr-helper is started for it */
                JF_TRY(qemu_check_reservation(v, i, err));
                JF_TRY(need_program("qemu-pr-helper", "qemu-system-common", field, err));
                break;
        }
        return v->tpm ? prepare_tpm(v, p, err) : 0;
}

static int listen_unix(const char *path, kv_error *err)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        if (strlen(path) >= sizeof(sa.sun_path))
                return kv_error_set(err, ENAMETOOLONG, "socket path %s is too long", path);
        strcpy(sa.sun_path, path);
        unlink(path);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4) < 0) {
                int saved = errno;
                if (fd >= 0)
                        close(fd);
                return kv_error_errno(err, saved, "listen on %s", path);
        }
        return fd;
}

/* fork+exec with the launcher's death as the child's (PDEATHSIG); `fd` (if >= 0) becomes SWTPM_FD. Between
 * fork and exec only async-signal-safe calls: argv and envp are built before. A close-on-exec pipe tells
 * whether the exec happened: EOF, or the child's errno. */
static int spawn(const char *path, char *const argv[], char *const envp[], int fd, pid_t *pid, kv_error *err)
{
        int status_pipe[2];
        if (pipe2(status_pipe, O_CLOEXEC) < 0)
                return kv_error_errno(err, errno, "pipe");
        pid_t parent = getpid();
        pid_t child = fork();
        if (child < 0) {
                int saved = errno;
                close(status_pipe[0]), close(status_pipe[1]);
                return kv_error_errno(err, saved, "fork %s", path);
        }
        if (child == 0) {
                close(status_pipe[0]);
                int e = 0;
                sigset_t none;
                sigemptyset(&none);
                sigprocmask(SIG_SETMASK, &none, NULL);
                int null = open("/dev/null", O_RDONLY);
                if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent || null < 0 ||
                    dup2(null, STDIN_FILENO) < 0 ||
                    (fd >= 0 && (fd == SWTPM_FD ? fcntl(fd, F_SETFD, 0) : dup2(fd, SWTPM_FD)) < 0))
                        e = errno ? errno : EPERM;
                else
                        execve(path, argv, envp), e = errno;
                (void)!write(status_pipe[1], &e, sizeof(e));
                _exit(127);
        }
        close(status_pipe[1]);
        int child_errno = 0;
        ssize_t n;
        while ((n = read(status_pipe[0], &child_errno, sizeof(child_errno))) < 0 && errno == EINTR)
                ;
        close(status_pipe[0]);
        if (n > 0) {
                waitpid(child, NULL, 0);
                return kv_error_errno(err, child_errno, "exec %s", path);
        }
        *pid = child;
        return 0;
}

/* Wait until path accepts connections; fails early when the helper exits. */
static int wait_listening(const char *what, const char *path, pid_t *pid, kv_error *err)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
        for (int waited = 0; waited < START_TIMEOUT_MS; waited += 10) {
                int status;
                if (waitpid(*pid, &status, WNOHANG) == *pid) {
                        *pid = 0;
                        return kv_error_set(err, EIO, "%s exited (status %d) before listening on %s", what,
                                            WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status),
                                            path);
                }
                _cleanup_close_ int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (c >= 0 && connect(c, (struct sockaddr *)&sa, sizeof(sa)) == 0)
                        return 0;
                nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
        }
        return kv_error_set(err, ETIMEDOUT, "%s did not listen on %s within %d ms", what, path,
                            START_TIMEOUT_MS);
}

/* swtpm socket --tpm2: the control channel on an inherited listening socket; QEMU's -tpmdev emulator
 * connects to it and opens the data channel over it. --terminate: it exits when its client goes away. */
static int start_swtpm(const vmi *v, const char *run_dir, pid_t *pid, kv_error *err)
{
        char prog[4096], sock[4096], ctrl[64];
        _cleanup_free_ char *env_path = NULL;
        if (!find_program("swtpm", prog, sizeof(prog)))
                return kv_error_set(err, ENOENT, "spec.domain.devices.tpm: swtpm is not installed");
        snprintf(sock, sizeof(sock), "%s/%s", run_dir, QEMU_TPM_SOCKET);
        if (asprintf(&env_path, "TPM_PATH=%s", v->tpm_state_dir) < 0)
                return kv_error_set(err, ENOMEM, "out of memory");
        _cleanup_close_ int fd = listen_unix(sock, err);
        if (fd < 0)
                return fd;
        snprintf(ctrl, sizeof(ctrl), "type=unixio,fd=%d", SWTPM_FD);
        char *argv[] = {"swtpm", "socket", "--tpm2", "--ctrl", ctrl, "--terminate", NULL};
        char *envp[] = {env_path, NULL};
        /* Already listening (our socket): no probe, a connection that closes would end swtpm (--terminate).
         */
        return spawn(prog, argv, envp, fd, pid, err);
}

static int start_pr_helper(const char *run_dir, pid_t *pid, kv_error *err)
{
        char prog[4096], sock[4096];
        if (!find_program("qemu-pr-helper", prog, sizeof(prog)))
                return kv_error_set(err, ENOENT, "lun.reservation: qemu-pr-helper is not installed");
        snprintf(sock, sizeof(sock), "%s/%s", run_dir, QEMU_PR_HELPER_SOCKET);
        unlink(sock);
        char *argv[] = {"qemu-pr-helper", "-k", sock, NULL};
        char *envp[] = {NULL};
        JF_TRY(spawn(prog, argv, envp, -1, pid, err));
        return wait_listening("qemu-pr-helper", sock, pid, err);
}

int helperd_start(const vmi *v, const char *run_dir, helperd_set *set, kv_error *err)
{
        bool reservation = false;
        for (size_t i = 0; i < v->n_disks; i++)
                reservation |= v->disks[i].reservation;
        int r = v->tpm ? start_swtpm(v, run_dir, &set->swtpm, err) : 0;
        if (r >= 0 && reservation)
                r = start_pr_helper(run_dir, &set->pr_helper, err);
        if (r < 0)
                helperd_stop(set);
        return r;
}

void helperd_stop_pid(pid_t *pid)
{
        if (*pid <= 0)
                return;
        /* The supervisor's SIGCHLD handler may have reaped it already: only signal a child still ours. */
        if (waitpid(*pid, NULL, WNOHANG) == 0) {
                kill(*pid, SIGTERM);
                for (int ms = 0; ms < 2000 && waitpid(*pid, NULL, WNOHANG) == 0; ms += 10)
                        nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
                if (kill(*pid, 0) == 0) { /* not gone after 2 s (busy starting up): SIGKILL */
                        kill(*pid, SIGKILL);
                        waitpid(*pid, NULL, 0);
                }
        }
        *pid = 0;
}

void helperd_stop(helperd_set *set)
{
        helperd_stop_pid(&set->swtpm);
        helperd_stop_pid(&set->pr_helper);
}
