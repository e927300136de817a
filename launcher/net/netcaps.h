/* The network capabilities the launcher holds only while wiring (netcaps: not kvmcheck's KVM caps). */
#pragma once

#include "error.h"

/* Drops CAP_NET_ADMIN and CAP_NET_RAW from every set (effective, permitted, inheritable, ambient, and the
 * bounding set when CAP_SETPCAP allows), so neither the launcher nor the QEMU it execs can get them back. */
int caps_drop_net_admin(kv_error *err);
