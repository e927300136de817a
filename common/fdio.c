/* fd helpers (see fdio.h). */
#include "fdio.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

int fd_set_nonblock(int fd)
{
        int flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
                return -errno;
        return 0;
}

int fd_write_all(int fd, const char *buf, size_t len)
{
        while (len > 0) {
                ssize_t w = write(fd, buf, len);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w < 0)
                        return -errno;
                if (w == 0)
                        return -EIO;
                buf += w;
                len -= (size_t)w;
        }
        return 0;
}
