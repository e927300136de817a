/* Persistent tap creation. */
#include "tap.h"
#include "macro.h"

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <string.h>
#include <sys/ioctl.h>

int tap_create(const char *name, uid_t owner, gid_t group, unsigned queues, kv_error *err)
{
        _cleanup_close_ int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
        if (fd < 0)
                return kv_error_errno(err, errno, "open /dev/net/tun");
        struct ifreq ifr = {0};
        /* Per-file flags such as IFF_VNET_HDR are QEMU's choice when it attaches; only the type matters here.
         */
        ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (queues > 1 ? IFF_MULTI_QUEUE : 0);
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
        if (ioctl(fd, TUNSETIFF, &ifr) < 0)
                return kv_error_errno(err, errno, "create tap %s", name);
        if (ioctl(fd, TUNSETOWNER, (unsigned long)owner) < 0 ||
            ioctl(fd, TUNSETGROUP, (unsigned long)group) < 0)
                return kv_error_errno(err, errno, "tap %s: set owner %u:%u", name, (unsigned)owner,
                                      (unsigned)group);
        if (ioctl(fd, TUNSETPERSIST, 1UL) < 0)
                return kv_error_errno(err, errno, "tap %s: make persistent", name);
        return 0;
}
