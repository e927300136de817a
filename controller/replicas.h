/* replicas: what the VirtualMachineInstanceReplicaSet and VirtualMachinePool reconcilers share. */
#pragma once
#include <cjson/cJSON.h>
#include <stdbool.h>

#include "api.h"
#include "datavolume.h" /* owned_by_controller */

/* spec.selector (matchLabels, matchExpressions In/NotIn/Exists/DoesNotExist) as a label selector string,
 * malloc'd; NULL when it is malformed or empty (an empty one would select everything: refused). */
char *label_selector_string(const cJSON *selector);
/* An object of kind res from tmpl ({metadata: {labels, annotations}, spec}): those, a copy of the spec, and
 * owner (of kind owner_res) as its controller owner reference; the caller names it. */
cJSON *replicas_from_template(const cJSON *tmpl, const kube_resource *res, const cJSON *owner,
                              const kube_resource *owner_res);
/* Whether obj's Ready condition is True (a VMI's or a VM's). */
bool condition_ready(const cJSON *obj);

/* The status both write: replicas, readyReplicas, labelSelector, and the conditions ReplicaPaused (when
 * paused) and ReplicaFailure (reason FailedCreate, message failure, when failure is not empty). */
typedef struct replicas_status {
        int replicas, ready;
        const char *selector;
        bool paused;
        const char *failure;
} replicas_status;
int replicas_write_status(kube_client *api, const kube_resource *res, const cJSON *obj,
                          const replicas_status *s, kv_error *err);
