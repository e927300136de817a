/* fuzz-control's stand-ins for the live-operation commands (launcher/liveops/liveops-control.c): those run
 * blocking QMP sequences that the single-threaded fake QEMU cannot answer in time, so here each row of
 * LIVEOPS_CTL_HANDLERS only answers an error; the table and protocol around them are still fuzzed. */
#include "liveops-control.h"

#define STUB(fn)                                                                                             \
        int fn(ctl_request *req)                                                                             \
        {                                                                                                    \
                ctl_reply_error(req, "live operations are not part of the fuzz build");                      \
                return 0;                                                                                    \
        }

STUB(liveops_ctl_apply)
STUB(liveops_ctl_hotplug_attach)
STUB(liveops_ctl_hotplug_disk)
STUB(liveops_ctl_hotplug_nic)
STUB(liveops_ctl_migrate)
STUB(liveops_ctl_migrate_cancel)
STUB(liveops_ctl_migrate_status)
STUB(liveops_ctl_migration_target)
STUB(liveops_ctl_migration_target_finish)
STUB(liveops_ctl_set_cpus)
STUB(liveops_ctl_set_memory)
STUB(liveops_ctl_snapshot_delete)
STUB(liveops_ctl_snapshot_list)
STUB(liveops_ctl_snapshot_load)
STUB(liveops_ctl_snapshot_save)
STUB(liveops_ctl_unplug_disk)
STUB(liveops_ctl_unplug_nic)
