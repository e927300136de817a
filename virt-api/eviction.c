/* eviction: the pods/eviction webhook (eviction.h): the pure verdict, and the review around it. */
#include "eviction.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "admission.h"
#include "api.h"
#include "json.h"
#include "macro.h"

#define LAUNCHER_APP "virt-launcher"
#define HOTPLUG_APP "hotplug-disk"
#define HOTPLUG_LABEL_VMI "kvlite.io/hotplug-vmi" /* virt-controller's label on attachment Pods */

const char *const eviction_strategies[] = {"None", "LiveMigrate", "LiveMigrateIfPossible", "External", NULL};

static const char *label(const cJSON *obj, const char *key)
{
        return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(kube_obj(obj, "metadata.labels"), key));
}

static bool pod_completed(const cJSON *pod)
{
        const char *phase = kube_str(pod, "status.phase") ?: "";
        return !strcmp(phase, "Succeeded") || !strcmp(phase, "Failed");
}

/* KubeVirt's IsMigratable: the LiveMigratable condition the controller keeps says True. */
static bool vmi_migratable(const cJSON *vmi)
{
        const cJSON *c;
        cJSON_ArrayForEach(c, kube_obj(vmi, "status.conditions"))
        {
                if (!strcmp(kube_str(c, "type") ?: "", "LiveMigratable"))
                        return !strcmp(kube_str(c, "status") ?: "", "True");
        }
        return false;
}

eviction_verdict eviction_decide(const cJSON *pod, const cJSON *vmi, const char *cluster_strategy, char *msg,
                                 size_t size)
{
        const char *app = label(pod, "kubevirt.io") ?: "";
        const char *ns = kube_str(pod, "metadata.namespace") ?: "";
        *msg = 0;
        if (!strcmp(app, HOTPLUG_APP)) {
                if (!vmi)
                        return EVICTION_ALLOW;
                snprintf(msg, size,
                         "cannot evict hotplug pod: %s associated with running vmi: %s in namespace %s",
                         kube_str(pod, "metadata.name") ?: "", kube_str(vmi, "metadata.name") ?: "", ns);
                return EVICTION_DENY;
        }
        if (strcmp(app, LAUNCHER_APP) || pod_completed(pod) || !vmi)
                return EVICTION_ALLOW;
        const char *strategy = kube_str(vmi, "spec.evictionStrategy") ?: cluster_strategy;
        const char *name = kube_str(vmi, "metadata.name") ?: "";
        bool migratable = vmi_migratable(vmi);
        if (!strategy || !strcmp(strategy, "None") ||
            (!strcmp(strategy, "LiveMigrateIfPossible") && !migratable))
                return EVICTION_ALLOW;
        if (!strcmp(strategy, "LiveMigrate") && !migratable) {
                snprintf(msg, size,
                         "VMI %s is configured with an eviction strategy but is not live-migratable", name);
                return EVICTION_DENY;
        }
        if (kube_str(vmi, "status.evacuationNodeName")) {
                snprintf(msg, size, "Evacuation in progress: Eviction triggered evacuation of VMI \"%s/%s\"",
                         ns, name);
                return EVICTION_DENY;
        }
        if (strcmp(kube_str(vmi, "status.nodeName") ?: "", kube_str(pod, "spec.nodeName") ?: "")) {
                snprintf(msg, size, "Eviction request for target Pod");
                return EVICTION_DENY;
        }
        /* the message descheduler and kubectl users look for */
        snprintf(msg, size, "Eviction triggered evacuation of VMI \"%s/%s\"", ns, name);
        return EVICTION_MARK;
}

/* The VMI a Pod serves, by name (NULL: not one of ours). */
static const char *vmi_name_of(const cJSON *pod)
{
        const char *app = label(pod, "kubevirt.io") ?: "";
        if (!strcmp(app, HOTPLUG_APP))
                return label(pod, HOTPLUG_LABEL_VMI);
        if (!strcmp(app, LAUNCHER_APP))
                return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
                    kube_obj(pod, "metadata.annotations"), "kubevirt.io/domain"));
        return NULL;
}

static bool dry_run(const cJSON *req)
{
        const cJSON *d;
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(req, "dryRun")))
                return true;
        cJSON_ArrayForEach(
            d, kube_obj(req, "object.deleteOptions.dryRun")) if (cJSON_IsString(d) &&
                                                                 !strcmp(d->valuestring, "All")) return true;
        return false;
}

/* The verdict with the API's Pod and VMI; a VMI that cannot be read refuses the eviction (msg says why), as
 * in KubeVirt. A MARK has marked the VMI (or refuses when the mark failed). */
static eviction_verdict review_verdict(kube_client *api, const char *cluster_strategy, const cJSON *req,
                                       char *msg, size_t size)
{
        const char *ns = kube_str(req, "namespace"), *name = kube_str(req, "name");
        _cleanup_json_ cJSON *pod = NULL, *vmi = NULL;
        kv_error err = {0};
        if (!ns || !name || kube_get(api, &kube_pod, ns, name, &pod, &err) < 0)
                return EVICTION_ALLOW; /* the API server answers for a Pod that is not there */
        const char *vmi_name = vmi_name_of(pod);
        if (vmi_name && kube_get(api, &kube_vmi, ns, vmi_name, &vmi, &err) < 0 &&
            err.code != KUBE_ENOTFOUND) {
                snprintf(msg, size, "kubevirt failed getting the vmi: %s", err.msg);
                return EVICTION_DENY;
        }
        eviction_verdict v = eviction_decide(pod, vmi, cluster_strategy, msg, size);
        if (v != EVICTION_MARK || dry_run(req))
                return v;
        _cleanup_json_ cJSON *patch = cJSON_CreateObject();
        cJSON_AddStringToObject(cJSON_AddObjectToObject(patch, "status"), "evacuationNodeName",
                                kube_str(pod, "spec.nodeName"));
        if (kube_merge_patch(api, &kube_vmi, ns, vmi_name, patch, false, NULL, &err) < 0) {
                snprintf(msg, size, "kubevirt failed marking the vmi for eviction: %s", err.msg);
                return EVICTION_DENY;
        }
        return v;
}

int eviction_review(kube_client *api, const char *cluster_strategy, const char *review_json, size_t len,
                    char **response_json, kv_error *err)
{
        _cleanup_json_ cJSON *root = cJSON_ParseWithLength(review_json, len);
        const cJSON *req = kube_obj(root, "request");
        const char *uid = kube_str(req, "uid");
        if (!uid)
                return kv_error_set(err, EINVAL,
                                    "request.uid: is required (the body is not an AdmissionReview)");
        char msg[KV_ERR_MSG_MAX];
        eviction_verdict v = review_verdict(api, cluster_strategy, req, msg, sizeof(msg));
        return admission_answer(uid, v == EVICTION_ALLOW, 429, msg, response_json, err);
}
