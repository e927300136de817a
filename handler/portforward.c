/* virt-handler's port-forward connections (portforward.h). The launcher's process is found by SO_PEERCRED on
 * its control socket (what KubeVirt's isolation detector does with its command socket), so the pid needs the
 * host's PID namespace (hostPID in crds/34-virt-handler.yaml). The session's thread enters the Pod's network
 * namespace just long enough to create the socket; the socket stays there, the thread comes back. */
#include "portforward.h"
#include "console.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "unixsock.h"

#define CONNECT_TIMEOUT_MS 8000 /* within virt-api's 10 s wait for the answer */

/* The pid of the process that listens on the launcher's control socket. */
static int launcher_pid(const char *pods_dir, const char *uid, pid_t *pid, kv_error *err)
{
        char path[4096];
        int r = console_socket_path(pods_dir, uid, "control.sock", path, sizeof(path));
        if (r == -EINVAL)
                return kv_error_set(err, EINVAL, "bad pod uid");
        if (r < 0)
                return kv_error_set(err, ENOENT, "no launcher control socket for pod %s on this node", uid);
        _cleanup_close_ int fd = unix_connect(path, err);
        struct ucred cred = {0};
        socklen_t len = sizeof(cred);
        if (fd < 0)
                return fd;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
                return kv_error_errno(err, errno, "SO_PEERCRED of %s", path);
        if (cred.pid <= 0) /* the launcher is in a PID namespace this process does not see */
                return kv_error_set(err, ESRCH,
                                    "the launcher's process is not visible (virt-handler needs "
                                    "hostPID)");
        *pid = cred.pid;
        return 0;
}

/* A socket of type created in the network namespace nsfd, bound to device when one is named. */
static int socket_in(int nsfd, int type, const char *device, kv_error *err)
{
        _cleanup_close_ int own = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        if (own < 0)
                return kv_error_errno(err, errno, "open /proc/thread-self/ns/net");
        if (setns(nsfd, CLONE_NEWNET) < 0)
                return kv_error_errno(err, errno, "enter the launcher's network namespace");
        int fd = socket(AF_INET, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), saved = errno;
        if (fd >= 0 && device[0] && setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, device, strlen(device)) < 0) {
                saved = errno;
                close(fd);
                fd = -1;
        }
        if (setns(own, CLONE_NEWNET) < 0) { /* this thread only serves this session: it ends with it */
                log_error("portforward: cannot return to virt-handler's network namespace: %s",
                          strerror(errno));
                if (fd >= 0)
                        close(fd);
                return kv_error_errno(err, EIO, "return to virt-handler's network namespace");
        }
        if (fd < 0)
                return kv_error_errno(err, saved, "socket%s%s", device[0] ? " on " : "", device);
        return fd;
}

/* connect() within CONNECT_TIMEOUT_MS; the socket is blocking again afterwards. */
static int connect_timed(int fd, const struct sockaddr_in *sa)
{
        if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0 && errno != EINPROGRESS)
                return -errno;
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int r, soerr = 0;
        socklen_t len = sizeof(soerr);
        while ((r = poll(&p, 1, CONNECT_TIMEOUT_MS)) < 0 && errno == EINTR)
                ;
        if (r == 0)
                return -ETIMEDOUT;
        if (r < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
                return -errno;
        if (soerr)
                return -soerr;
        return fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0 ? -errno : 0;
}

int portforward_dial(const char *pods_dir, const pf_request *rq, kv_error *err)
{
        pid_t pid = 0;
        char ns[64];
        int r = launcher_pid(pods_dir, rq->pod_uid, &pid, err);
        if (r < 0)
                return r;
        snprintf(ns, sizeof(ns), "/proc/%d/ns/net", (int)pid);
        _cleanup_close_ int nsfd = open(ns, O_RDONLY | O_CLOEXEC);
        if (nsfd < 0)
                return kv_error_errno(err, errno, "open %s", ns);
        bool udp = !strcmp(rq->protocol, "udp");
        _cleanup_close_ int fd = socket_in(nsfd, udp ? SOCK_DGRAM : SOCK_STREAM, rq->device, err);
        if (fd < 0)
                return fd;
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)rq->port)};
        inet_pton(AF_INET, rq->address, &sa.sin_addr); /* pf_request_parse checked it */
        if ((r = connect_timed(fd, &sa)) < 0)
                return kv_error_errno(err, -r, "dial %s %s:%u: connect", rq->protocol, rq->address, rq->port);
        return TAKE_FD(fd);
}
