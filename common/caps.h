/* Capabilities: giving up all of them, the step virt-launcher and virt-launcher-reporter take once set up. */
#pragma once
#include "error.h"

/* Empties the effective, permitted, inheritable, ambient and bounding sets: from then on the process only
 * talks over its own sockets, signals its own children and writes files it owns. */
int caps_drop_all(kv_error *err);
