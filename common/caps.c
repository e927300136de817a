/* caps_drop_all (caps.h) with libcap. */
#include "caps.h"

#include <errno.h>
#include <linux/capability.h>
#include <sys/capability.h>
#include <sys/prctl.h>

int caps_drop_all(kv_error *err)
{
        /* The bounding set needs CAP_SETPCAP, so it goes first; without it (unprivileged runs) there is
         * nothing to drop there anyway. */
        if (CAP_IS_SUPPORTED(CAP_SETPCAP) && prctl(PR_CAPBSET_READ, CAP_SETPCAP) == 1) {
                for (cap_value_t c = 0; c <= CAP_LAST_CAP; c++)
                        if (prctl(PR_CAPBSET_READ, c) == 1 && cap_drop_bound(c) < 0 && errno != EINVAL)
                                return kv_error_errno(err, errno, "drop capability %d from the bounding set",
                                                      c);
        }
        if (CAP_AMBIENT_SUPPORTED() && cap_reset_ambient() < 0)
                return kv_error_errno(err, errno, "reset ambient capabilities");
        cap_t empty = cap_init();
        if (!empty)
                return kv_error_errno(err, errno, "cap_init");
        int r = cap_set_proc(empty);
        int saved = errno;
        cap_free(empty);
        if (r < 0)
                return kv_error_errno(err, saved, "cap_set_proc");
        return 0;
}
