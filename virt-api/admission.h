/* admission: virt-api's validating and mutating admission webhooks (AdmissionReview v1). Pure: a review's
 * JSON in, the answering review's JSON out. VMIs and VM templates go through libkvapi's vmi_from_json(), the
 * validator virt-launcher runs, so `kubectl apply` refuses at once what the launcher would refuse later. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "error.h"

/* The webhook paths virt-api serves (KubeVirt's names) and the one the test server's fixtures use. */
#define ADMISSION_VALIDATE_PATH "/validate"
#define ADMISSION_MUTATE_PATH "/mutate"

/* How the webhooks read the objects a VM names: the claim, DataVolume or DataSource under a volume
 * (inferFromVolume, infer.h), its instancetype and preference (or their ControllerRevisions). get sets *obj
 * (the caller frees it) and returns 0, or -ENOENT with err naming what is missing ("persistentvolumeclaims
 * \"x\" not found"), or another negative errno. resource: a plural ("persistentvolumeclaims",
 * "datavolumes", "datasources", "controllerrevisions", the four instancetype kinds); ns NULL for a
 * cluster-scoped one. */
typedef struct admission_lookup {
        int (*get)(void *ctx, const char *resource, const char *ns, const char *name, cJSON **obj,
                   kv_error *err);
        void *ctx;
} admission_lookup;

/* Answer an AdmissionReview v1 request with `allowed` and, when denied, KubeVirt's status: reason Invalid,
 * code 422, message "<field>: <why>" and details.causes[{type FieldValueInvalid, field, message}].
 * Kinds: VirtualMachineInstance, VirtualMachine (its template as the VMI it would create, with the
 * instancetype and preference it names applied when lookup can read them, conflicts refused; when it cannot,
 * the template is left to the controller),
 * VirtualMachineInstanceMigration, VirtualMachineSnapshot, VirtualMachineRestore, MigrationPolicy; any
 * other kind and DELETE are allowed. -EINVAL when the body is not an AdmissionReview with request.uid
 * (the server answers 400); *response_json is malloc'd. */
int admission_validate(const char *review_json, size_t len, const admission_lookup *lookup,
                       char **response_json, kv_error *err);

/* Answer with KubeVirt's defaults as a JSONPatch (base64 in `patch`, patchType JSONPatch), or with no
 * patch when nothing is missing: the observed-API-version annotations, spec.domain.machine.type "q35",
 * a disk for every volume without one (SetDefaultVolumeDisk), `disk: {}` for a disk with no target and the
 * bus (virtio for disk, sata for cdrom). VMIs on CREATE, VMs (their template) on CREATE and UPDATE; a VM's
 * inferFromVolume matchers resolved through lookup (NULL: nothing is found), or the request refused as
 * KubeVirt refuses it (status 422 naming the field). */
int admission_mutate(const char *review_json, size_t len, const admission_lookup *lookup,
                     char **response_json, kv_error *err);

/* An AdmissionReview answer for request uid: allowed, or refused with status {code, message} (the API
 * server answers the request with that code and "admission webhook … denied the request: <message>"). */
int admission_answer(const char *uid, bool allowed, int code, const char *message, char **response_json,
                     kv_error *err);
