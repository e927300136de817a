/* eviction: KubeVirt's virt-launcher-eviction-interceptor, virt-api's validating webhook on pods/eviction
 * CREATE (docs/virt-api.md, "Evictions and node drains"). A launcher Pod's eviction follows its VMI's
 * evictionStrategy: None lets the Pod go; LiveMigrate, LiveMigrateIfPossible (when the VMI can migrate) and
 * External mark the VMI for evacuation (status.evacuationNodeName) and refuse with 429, so that `kubectl
 * drain` retries until virt-controller has migrated the guest away and the source Pod has completed. */
#pragma once

#include <cjson/cJSON.h>
#include <stddef.h>

#include "client.h"
#include "error.h"

#define EVICTION_VALIDATE_PATH "/launcher-eviction-validate" /* KubeVirt's path */

/* KubeVirt's evictionStrategy values; index 0 is None. */
extern const char *const eviction_strategies[];

typedef enum {
        EVICTION_ALLOW, /* the Pod may go */
        EVICTION_DENY,  /* refused (429) with msg */
        EVICTION_MARK,  /* mark the VMI for evacuation from the Pod's node, then refuse (429) with msg */
} eviction_verdict;

/* Pure: the verdict on evicting pod. vmi: the VMI the Pod runs (launcher Pods: its kubevirt.io/domain
 * annotation; hot-plug attachment Pods: their kvlite.io/hotplug-vmi label), NULL when there is none.
 * cluster_strategy: the cluster-wide evictionStrategy for VMIs that name none (NULL = None). */
eviction_verdict eviction_decide(const cJSON *pod, const cJSON *vmi, const char *cluster_strategy, char *msg,
                                 size_t size);

/* The webhook: reads the Pod and its VMI with api, marks the VMI when the verdict says so (not for a dry
 * run) and answers the AdmissionReview. -EINVAL when the body is not an AdmissionReview (answer 400). */
int eviction_review(kube_client *api, const char *cluster_strategy, const char *review_json, size_t len,
                    char **response_json, kv_error *err);
