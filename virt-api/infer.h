/* infer: KubeVirt's inferFromVolume. A VM whose spec.instancetype or spec.preference names a volume instead
 * of an object gets the name and kind from labels on what lies under that volume, as KubeVirt's mutating
 * webhook does (user guide, "inferFromVolume"): instancetype.kubevirt.io/default-instancetype,
 * -default-instancetype-kind (default virtualmachineclusterinstancetype), -default-preference,
 * -default-preference-kind (default virtualmachineclusterpreference) looked up on: a persistentVolumeClaim
 * volume's claim; a dataVolume volume's dataVolumeTemplates entry (its source.pvc claim, or its sourceRef
 * DataSource and then that DataSource's pvc claim), else the DataVolume itself (its labels, then its spec the
 * same way), else a claim of the DataVolume's name (a DataVolume garbage-collected after its import). */
#pragma once

#include <cjson/cJSON.h>

#include "admission.h"
#include "error.h"

/* JSONPatch operations into ops: spec.<matcher> replaced by {name, kind}, or removed when the lookup failed
 * in a way inferFromVolumeFailurePolicy Ignore passes over (no such label, a volume type without labels). 0;
 * or -EINVAL with err = "spec.<matcher>.inferFromVolume…: why" (Reject, the default, or a failure Ignore does
 * not cover: no such volume, an object not found); -ENOMEM. lookup may be NULL: nothing is found. */
int infer_vm_matchers(const cJSON *vm, const admission_lookup *lookup, cJSON *ops, kv_error *err);
