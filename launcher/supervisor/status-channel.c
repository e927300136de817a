/* The launcher's end of the status reporter (docs/launcher-supervisor.md "Reporting into the cluster"):
 * fork+exec of virt-launcher-reporter with a SOCK_SEQPACKET pair on its stdin, one status per message.
 * The launcher itself never opens a network socket nor maps libcurl; it only writes to this socket. */
#include "status-channel.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "macro.h"

/* How long the launcher waits at exit for the reporter to deliver the final status. */
#define REPORT_FINISH_MS 5000

static struct {
        int fd;
        pid_t pid;
        char *pending; /* the latest document the socket could not take yet */
        size_t pending_len;
} rep = {.fd = -1};

static bool env_set(const char *name)
{
        const char *v = getenv(name);
        return v && *v;
}

bool status_channel_wanted(void)
{
        return env_set("POD_NAME") && env_set("POD_NAMESPACE") && env_set("KUBERNETES_SERVICE_HOST") &&
               env_set("KUBERNETES_SERVICE_PORT");
}

/* <dir of /proc/self/exe>/virt-launcher-reporter: installed side by side, found without PATH. */
static int helper_path(char *buf, size_t size, kv_error *err)
{
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n < 0)
                return kv_error_errno(err, errno, "readlink /proc/self/exe");
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash)
                *slash = '\0';
        if ((size_t)snprintf(buf, size, "%s/%s", self, REPORTER_BINARY) >= size)
                return kv_error_set(err, ENAMETOOLONG, "reporter path");
        if (access(buf, X_OK) < 0)
                return kv_error_errno(err, errno, "%s", buf);
        return 0;
}

/* Between fork and execve: only async-signal-safe calls (argv is built before the fork). */
static _Noreturn void exec_child(const char *path, char *const *argv, int fd, pid_t parent)
{
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent ||
            prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                _exit(127);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        /* A Ctrl-C or the kubelet's SIGTERM is for the launcher, which stops the guest and then still has
         * a final status to report; the reporter ends with its input or its parent. */
        struct sigaction ign = {.sa_handler = SIG_IGN};
        sigaction(SIGINT, &ign, NULL);
        sigaction(SIGTERM, &ign, NULL);
        sigaction(SIGHUP, &ign, NULL);
        /* dup2 clears close-on-exec; an fd that already is stdin needs it cleared by hand */
        if (fd == STDIN_FILENO ? fcntl(fd, F_SETFD, 0) < 0 : dup2(fd, STDIN_FILENO) < 0)
                _exit(127);
        execv(path, argv);
        _exit(127);
}

int status_channel_start(const char *vmi_name, const char *control_socket, kv_error *err)
{
        if (!status_channel_wanted() || rep.fd >= 0)
                return 0;
        char path[PATH_MAX];
        int sv[2];
        int r = helper_path(path, sizeof(path), err);
        if (r < 0)
                return r;
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                return kv_error_errno(err, errno, "socketpair");
        pid_t parent = getpid();
        char pidarg[32];
        snprintf(pidarg, sizeof(pidarg), "%d", (int)parent);
        char *argv[] = {REPORTER_BINARY, "--parent", pidarg, NULL, NULL, NULL, NULL, NULL};
        if (vmi_name && control_socket) {
                argv[3] = "--vmi";
                argv[4] = (char *)vmi_name;
                argv[5] = "--control-socket";
                argv[6] = (char *)control_socket;
        }
        pid_t pid = fork();
        if (pid < 0) {
                int saved = errno;
                close(sv[0]), close(sv[1]);
                return kv_error_errno(err, saved, "fork");
        }
        if (pid == 0)
                exec_child(path, argv, sv[1], parent);
        close(sv[1]);
        rep.fd = sv[0];
        rep.pid = pid;
        atexit(status_channel_finish);
        log_info("status reporter started (pid %d)", (int)pid);
        return 0;
}

static void drop_channel(const char *why)
{
        log_warning("status reporter: %s; the Pod annotation is no longer updated", why);
        close(rep.fd);
        rep.fd = -1;
}

/* 0 sent (or nothing to send), -EAGAIN the socket is full, other <0 the reporter is gone. */
static int try_send(void)
{
        if (!rep.pending)
                return 0;
        if (send(rep.fd, rep.pending, rep.pending_len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
                return -errno;
        free(rep.pending);
        rep.pending = NULL;
        return 0;
}

void status_channel_publish(const char *text, size_t len)
{
        if (rep.fd < 0)
                return;
        char *copy = malloc(len);
        if (!copy)
                return;
        memcpy(copy, text, len);
        free(rep.pending); /* only the latest status matters */
        rep.pending = copy;
        rep.pending_len = len;
        int r = try_send();
        if (r < 0 && r != -EAGAIN && r != -EINTR)
                drop_channel(strerror(-r));
}

/* Waits for `events` on the channel until the deadline; returns poll's revents, 0 on timeout. */
static short wait_channel(short events, int64_t deadline)
{
        for (;;) {
                int64_t left = deadline - kv_now_ms();
                if (left <= 0)
                        return 0;
                struct pollfd p = {.fd = rep.fd, .events = events};
                int n = poll(&p, 1, (int)left);
                if (n > 0)
                        return p.revents;
                if (n < 0 && errno != EINTR)
                        return POLLERR;
        }
}

void status_channel_finish(void)
{
        if (rep.fd < 0)
                return;
        int64_t deadline = kv_now_ms() + REPORT_FINISH_MS;
        while (rep.pending && (wait_channel(POLLOUT, deadline) & POLLOUT) && try_send() == -EAGAIN)
                ;
        free(rep.pending);
        rep.pending = NULL;
        shutdown(rep.fd, SHUT_WR);
        /* The reporter never writes: readable means its end closed, i.e. it exited. */
        if (!wait_channel(POLLIN, deadline))
                log_warning("status reporter: no exit within %d ms; the last status may not be on the Pod",
                            REPORT_FINISH_MS);
        close(rep.fd);
        rep.fd = -1;
        waitpid(rep.pid, NULL, WNOHANG); /* usually reaped already by the supervisor's SIGCHLD handler */
}
