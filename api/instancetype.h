/* instancetype: KubeVirt's instancetype.kubevirt.io/v1beta1 expansion. A VirtualMachine that names an
 * instancetype and/or a preference becomes the VMI KubeVirt's VM controller would create: the instancetype
 * sets cpu/memory (and the fields it carries), a VM field that it would overwrite is a conflict refused with
 * its JSON path and KubeVirt's message, and the preference fills only what the VM leaves unset. Pure:
 * cJSON in, cJSON out; finding the objects (API, ControllerRevision, files) is the caller's. */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "error.h"

typedef enum { IT_INSTANCETYPE, IT_PREFERENCE } it_which;

/* The object a VM's spec.instancetype / spec.preference matcher refers to. kind is KubeVirt's Kind
 * ("VirtualMachineClusterInstancetype" when the matcher gives none), plural its resource. */
typedef struct it_ref {
        const char *kind, *plural;
        bool cluster;
        const char *name;          /* borrowed from the VM */
        const char *revision_name; /* spec.<matcher>.revisionName, NULL = none yet */
} it_ref;

/* Reads spec.instancetype (or spec.preference) of vm. Returns 1 with *ref filled, 0 when the VM names none,
 * -EINVAL (path in err) for a malformed matcher or unknown kind. */
int it_ref_get(const cJSON *vm, it_which which, it_ref *ref, kv_error *err);

/* The VMI (apiVersion, kind, metadata name/namespace/labels/annotations, spec) for vm's template with the
 * instancetype spec and preference spec applied (either may be NULL). Conflicts: -EINVAL, err =
 * "spec.template.spec.domain.cpu.sockets: VM field(s) spec.template.spec.domain.cpu.sockets conflicts with
 * selected instance type"; unmet preference requirements likewise with KubeVirt's words. */
int it_expand_vm(const cJSON *vm, const cJSON *it_spec, const cJSON *pref_spec, cJSON **vmi_out,
                 kv_error *err);

/* Local mode: the VMI a set of manifests stands for. docs: an array of objects (a multi-document file);
 * the first VirtualMachine runs (its instancetype/preference found among docs, then in bundle, an array
 * of objects such as crds/common-instancetypes/instancetypes.yaml; bundle may be NULL), otherwise the first
 * VirtualMachineInstance (or a document without kind) is returned as is. *vmi_out is a new object. */
int it_vmi_from_docs(const cJSON *docs, const cJSON *bundle, cJSON **vmi_out, kv_error *err);

/* The object named by ref among objs (array), namespace ns for namespaced kinds; NULL when absent. */
const cJSON *it_find(const cJSON *objs, const it_ref *ref, const char *ns);
