/* The annotations of a VM rename (controller/vmrename.h has the same names): the old VM's fence, naming the
 * VM it becomes; the new VM's record of the old one's name and uid until the controller has finished the move
 * (its disks and snapshots follow it). */
#pragma once

#define RENAME_TO_ANNOTATION "kvlite.io/rename-to"
#define RENAMED_FROM_ANNOTATION "kvlite.io/renamed-from"
#define RENAMED_FROM_UID_ANNOTATION "kvlite.io/renamed-from-uid"
