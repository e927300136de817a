/* Unix socket helpers for the run directory. */
#include "unixsock.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "macro.h"

static int fill_addr(struct sockaddr_un *sa, const char *path, kv_error *err)
{
        *sa = (struct sockaddr_un){.sun_family = AF_UNIX};
        if (strlen(path) >= sizeof(sa->sun_path))
                return kv_error_set(err, ENAMETOOLONG, "socket path `%s` is longer than %zu bytes", path,
                                    sizeof(sa->sun_path) - 1);
        strcpy(sa->sun_path, path);
        return 0;
}

/* A new CLOEXEC stream socket and the address for path; returns the fd or <0. */
static int socket_for(const char *path, struct sockaddr_un *sa, kv_error *err)
{
        int r = fill_addr(sa, path, err);
        if (r < 0)
                return r;
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        return fd < 0 ? kv_error_errno(err, errno, "socket") : fd;
}

int unix_listen(const char *path, unsigned mode, kv_error *err)
{
        struct sockaddr_un sa;
        _cleanup_close_ int fd = socket_for(path, &sa, err);
        if (fd < 0)
                return fd;
        if (unlink(path) < 0 && errno != ENOENT)
                return kv_error_errno(err, errno, "unlink stale `%s`", path);
        /* bind() creates the node with ~umask: tighten the umask so it never exists with a wider mode. */
        mode_t old = umask(0777 & ~mode);
        int r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
        int saved = errno;
        umask(old);
        if (r < 0)
                return kv_error_errno(err, saved, "bind `%s`", path);
        if (chmod(path, mode) < 0)
                return kv_error_errno(err, errno, "chmod `%s`", path);
        if (listen(fd, 16) < 0)
                return kv_error_errno(err, errno, "listen `%s`", path);
        return TAKE_FD(fd);
}

int unix_connect(const char *path, kv_error *err)
{
        struct sockaddr_un sa;
        _cleanup_close_ int fd = socket_for(path, &sa, err);
        if (fd < 0)
                return fd;
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return kv_error_errno(err, errno, "connect `%s`", path);
        return TAKE_FD(fd);
}

bool unix_peer_allowed(int fd)
{
        struct ucred cred;
        socklen_t len = sizeof(cred);
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
                return false;
        return cred.uid == 0 || cred.uid == getuid();
}
