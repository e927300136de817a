/* kvlite-annotations: annotation names more than one product reads or writes (one definition each). */
#pragma once

/* On a launcher Pod: the launcher's status JSON (phase, conditions, guestOSInfo, guestAgentInfo, …), written
 * by virt-launcher-reporter; read by the controller (the VMI's status) and virt-api (guest agent info). */
#define KVLITE_ANN_LAUNCHER_STATUS "kvlite.io/launcher-status"
