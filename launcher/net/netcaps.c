/* Capability drop with libcap: CAP_NET_ADMIN and CAP_NET_RAW out of every set. */
#include "netcaps.h"

#include <errno.h>
#include <sys/capability.h>
#include <sys/prctl.h>

static void cap_freep(cap_t *c)
{
        if (*c)
                cap_free(*c);
}

int caps_drop_net_admin(kv_error *err)
{
        static const cap_value_t drop[] = {CAP_NET_ADMIN, CAP_NET_RAW};
        static const char *const names[] = {"CAP_NET_ADMIN", "CAP_NET_RAW"};
        const int n = (int)(sizeof(drop) / sizeof(drop[0]));
        __attribute__((cleanup(cap_freep))) cap_t caps = cap_get_proc();
        if (!caps)
                return kv_error_errno(err, errno, "capabilities: read");
        cap_flag_value_t setpcap = CAP_CLEAR;
        cap_get_flag(caps, CAP_SETPCAP, CAP_EFFECTIVE, &setpcap);
        /* Bounding set first: without it an exec'd program running as uid 0 regains the capabilities. */
        for (int i = 0; i < n && setpcap == CAP_SET; i++)
                if (prctl(PR_CAPBSET_DROP, drop[i], 0, 0, 0) < 0 && errno != EINVAL)
                        return kv_error_errno(err, errno, "capabilities: drop %s from the bounding set",
                                              names[i]);
        for (int i = 0; i < n; i++)
                prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_LOWER, drop[i], 0, 0);
        if (cap_set_flag(caps, CAP_EFFECTIVE, n, drop, CAP_CLEAR) < 0 ||
            cap_set_flag(caps, CAP_PERMITTED, n, drop, CAP_CLEAR) < 0 ||
            cap_set_flag(caps, CAP_INHERITABLE, n, drop, CAP_CLEAR) < 0 || cap_set_proc(caps) < 0)
                return kv_error_errno(err, errno, "capabilities: drop CAP_NET_ADMIN, CAP_NET_RAW");
        return 0;
}
