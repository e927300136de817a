/* vminstancetype: the instancetype and preference a VM starts with, kept as KubeVirt keeps them: the first
 * time a VM is seen its instancetype/preference object is copied into an apps/v1 ControllerRevision
 * "<vm>-<object>-<object uid>-<generation>" owned by the VM, and spec.instancetype.revisionName
 * (spec.preference.revisionName) names it; every later start reads the revision, so editing the object
 * changes nothing until the user clears revisionName. */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "client.h"
#include "error.h"

/* The VM copy whose spec.template is the expanded one (api/instancetype.h), or a plain copy when the VM
 * names neither; revisions are created and recorded on the VM as needed. -EINVAL: a conflict or a missing
 * object (err says which, with its path); other negative errno: API failures worth a retry. */
int vm_expand_template(kube_client *api, const cJSON *vm, cJSON **expanded, kv_error *err);

/* The VM names an instancetype or preference whose revision is not kept yet (KubeVirt captures it on the
 * first sync, running or not). */
bool vm_needs_revision(const cJSON *vm);
