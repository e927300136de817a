/* admission: virt-api's validating and mutating admission webhooks (AdmissionReview v1). Pure: a review's
 * JSON in, the answering review's JSON out. VMIs and VM templates go through libkvapi's vmi_from_json(), the
 * validator virt-launcher runs, so `kubectl apply` refuses at once what the launcher would refuse later. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

/* The webhook paths virt-api serves (KubeVirt's names) and the one the test server's fixtures use. */
#define ADMISSION_VALIDATE_PATH "/validate"
#define ADMISSION_MUTATE_PATH "/mutate"

/* Answer an AdmissionReview v1 request with `allowed` and, when denied, KubeVirt's status: reason Invalid,
 * code 422, message "<field>: <why>" and details.causes[{type FieldValueInvalid, field, message}].
 * Kinds: VirtualMachineInstance, VirtualMachine (its template as the VMI it would create),
 * VirtualMachineInstanceMigration, VirtualMachineSnapshot, VirtualMachineRestore, MigrationPolicy; any
 * other kind and DELETE are allowed. -EINVAL when the body is not an AdmissionReview with request.uid
 * (the server answers 400); *response_json is malloc'd. */
int admission_validate(const char *review_json, size_t len, char **response_json, kv_error *err);

/* Answer with KubeVirt's defaults as a JSONPatch (base64 in `patch`, patchType JSONPatch), or with no
 * patch when nothing is missing: the observed-API-version annotations, spec.domain.machine.type "q35",
 * a disk for every volume without one (SetDefaultVolumeDisk), `disk: {}` for a disk with no target and the
 * bus (virtio for disk, sata for cdrom). VMIs on CREATE, VMs (their template) on CREATE and UPDATE. */
int admission_mutate(const char *review_json, size_t len, char **response_json, kv_error *err);

/* An AdmissionReview answer for request uid: allowed, or refused with status {code, message} (the API
 * server answers the request with that code and "admission webhook … denied the request: <message>"). */
int admission_answer(const char *uid, bool allowed, int code, const char *message, char **response_json,
                     kv_error *err);
