/* The fixed ports of a cluster live migration (docs/cluster-live-ops.md): the controller passes them to a
 * target Pod's launcher, the source's reporter dials them at the target Pod's IP, and the masquerade NAT
 * keeps them for the launcher instead of forwarding them to the guest. */
#pragma once

#define KV_MIGRATION_PORT 49152     /* the migration stream (--incoming tcp:0.0.0.0:49152) */
#define KV_MIGRATION_NBD_PORT 49153 /* the target's NBD export of local disks (--incoming-nbd) */
