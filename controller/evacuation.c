/* evacuation: migrations for VMIs marked for evacuation (evacuation.h). */
#include "evacuation.h"
#include "api.h"
#include "controller.h"
#include "log.h"
#include "vmimigration.h"
#include "vmistatus.h"

#include <stdio.h>
#include <string.h>

#define BACKOFF_FIRST_S 5
#define BACKOFF_MAX_S 300

static bool vmim_final(const cJSON *m)
{
        const char *p = kube_str(m, "status.phase") ?: "";
        return !strcmp(p, "Succeeded") || !strcmp(p, "Failed");
}

/* The seconds to wait after the newest of n failed evacuations: 5 s, doubling, at most 5 min. */
static long backoff_s(int failed)
{
        long s = BACKOFF_FIRST_S;
        for (int i = 1; i < failed && s < BACKOFF_MAX_S; i++)
                s *= 2;
        return s < BACKOFF_MAX_S ? s : BACKOFF_MAX_S;
}

cJSON *evacuation_migration(const cJSON *vmi, const cJSON *vmims, time_t now, int *retry_ms)
{
        const char *node = kube_str(vmi, "status.evacuationNodeName");
        *retry_ms = 0;
        if (!node || !*node || strcmp(vmi_phase(vmi), "Running") ||
            strcmp(kube_str(vmi, "status.nodeName") ?: "", node) ||
            migration_in_flight(kube_obj(vmi, "status.migrationState")))
                return NULL;
        const cJSON *m;
        const char *newest_failed = NULL;
        int failed = 0;
        cJSON_ArrayForEach(m, vmims)
        {
                if (!vmim_final(m))
                        return NULL; /* one migration at a time */
                const char *evac = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
                    kube_obj(m, "metadata.annotations"), EVACUATION_ANNOTATION));
                const char *created = kube_str(m, "metadata.creationTimestamp") ?: "";
                if (evac && !strcmp(kube_str(m, "status.phase") ?: "", "Failed")) {
                        failed++;
                        if (!newest_failed || strcmp(created, newest_failed) > 0)
                                newest_failed = created;
                }
        }
        if (newest_failed) { /* RFC 3339 UTC to the second: the strings order as the times do */
                long wait = backoff_s(failed);
                char due[40];
                rfc3339_at(now - wait, due, sizeof(due));
                if (strcmp(newest_failed, due) > 0) {
                        *retry_ms = 1000;
                        return NULL;
                }
        }
        cJSON *out = cJSON_CreateObject(), *md = cJSON_AddObjectToObject(out, "metadata");
        cJSON_AddStringToObject(out, "apiVersion", "kubevirt.io/v1");
        cJSON_AddStringToObject(out, "kind", "VirtualMachineInstanceMigration");
        cJSON_AddStringToObject(md, "generateName", EVACUATION_GENERATE_NAME);
        cJSON_AddStringToObject(md, "namespace", kube_str(vmi, "metadata.namespace") ?: "");
        cJSON_AddStringToObject(cJSON_AddObjectToObject(md, "labels"), EVACUATION_LABEL_VMI,
                                kube_str(vmi, "metadata.name") ?: "");
        cJSON_AddStringToObject(cJSON_AddObjectToObject(md, "annotations"), EVACUATION_ANNOTATION, node);
        cJSON_AddStringToObject(cJSON_AddObjectToObject(out, "spec"), "vmiName",
                                kube_str(vmi, "metadata.name") ?: "");
        return out;
}

int reconcile_evacuation(controller *c, kube_client *api, const cJSON *vmi, kv_error *err)
{
        char key[600];
        const char *ns = kube_str(vmi, "metadata.namespace") ?: "";
        snprintf(key, sizeof(key), "%s/%s", ns, kube_str(vmi, "metadata.name") ?: "");
        if (!expectations_satisfied(c->vmim_exp, key))
                return 0; /* ours is on its way through the informer */
        _cleanup_json_ cJSON *vmims = kube_store_by_index(&c->vmims.store, key);
        int retry = 0;
        _cleanup_json_ cJSON *m = evacuation_migration(vmi, vmims, time(NULL), &retry);
        if (!m)
                return retry;
        expectations_expect_create(c->vmim_exp, key);
        cJSON *created = NULL;
        int r = kube_create(api, &kube_vmim, ns, m, &created, err);
        if (r < 0) {
                expectations_observed(c->vmim_exp, key);
                return r;
        }
        log_info("VMI %s: evacuating node %s with migration %s", key,
                 kube_str(vmi, "status.evacuationNodeName"), kube_str(created, "metadata.name") ?: "");
        cJSON_Delete(created);
        return 0;
}
