/* reconcile-ds: CDI's DataSource status, as its datasource-controller writes it. status.source mirrors
 * spec.source; the Ready condition says whether the DataSource can be consumed: a pvc source whose
 * DataVolume of the same name Succeeded, or (without such a DataVolume) whose claim exists, is Ready
 * ("DataSource is ready to be consumed"); a DataVolume still importing makes it False with its phase as the
 * reason; a missing claim, False "PVC not found" (NotFound); no source, False "No source PVC set"
 * (NoSource). kvlite has no VolumeSnapshots: a snapshot source is NotFound. DataVolume events wake the
 * DataSources naming them; claims have no watch here, so a DataSource is looked at again every
 * DS_RECHECK_MS. docs/datavolumes.md */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "controller.h"
#include "json.h"
#include "macro.h"
#include "statusfields.h"

#define DS_RECHECK_MS 10000
#define DS_READY_MSG "DataSource is ready to be consumed"

typedef struct ds_ready {
        bool ready;
        char reason[64], message[160];
} ds_ready;

static void set(ds_ready *s, bool ready, const char *reason, const char *message)
{
        s->ready = ready;
        snprintf(s->reason, sizeof(s->reason), "%s", reason);
        snprintf(s->message, sizeof(s->message), "%s", message);
}

/* A pvc source: its DataVolume's phase, else whether the claim exists. */
static int pvc_source(controller *c, kube_client *api, const char *ns, const char *name, ds_ready *s,
                      kv_error *err)
{
        char key[600];
        snprintf(key, sizeof(key), "%s/%s", ns, name);
        _cleanup_json_ cJSON *dv =
            optional_state(c, OPT_CDI) == OPT_RUNNING ? kube_store_get(&c->dvs.store, key) : NULL;
        if (dv) {
                const char *phase = kube_str(dv, "status.phase") ?: "";
                char msg[96];
                snprintf(msg, sizeof(msg), "Import DataVolume phase %s", phase);
                if (!strcmp(phase, "Succeeded"))
                        set(s, true, "Ready", DS_READY_MSG);
                else
                        set(s, false, phase, msg);
                return 0;
        }
        _cleanup_json_ cJSON *pvc = NULL;
        int r = kube_get(api, &kube_pvc, ns, name, &pvc, err);
        if (r == -KUBE_ENOTFOUND) {
                set(s, false, "NotFound", "PVC not found");
                return 0;
        }
        if (r < 0)
                return r;
        set(s, true, "Ready", DS_READY_MSG);
        return 0;
}

int reconcile_ds(controller *c, kube_client *api, const char *key, kv_error *err)
{
        if (optional_state(c, OPT_DATASOURCE) != OPT_RUNNING)
                return optional_state(c, OPT_DATASOURCE) == OPT_STARTING ? 200 : 0;
        _cleanup_json_ cJSON *ds = kube_store_get(&c->datasources.store, key);
        if (!ds || kube_obj(ds, "metadata.deletionTimestamp"))
                return 0;
        const cJSON *source = kube_obj(ds, "spec.source");
        const cJSON *pvc = cJSON_GetObjectItemCaseSensitive(source, "pvc");
        ds_ready s;
        if (cJSON_IsObject(pvc) && kube_str(pvc, "name")) {
                int r = pvc_source(c, api, kube_str(pvc, "namespace") ?: kube_str(ds, "metadata.namespace"),
                                   kube_str(pvc, "name"), &s, err);
                if (r < 0)
                        return r;
        } else if (cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(source, "snapshot"))) {
                set(&s, false, "NotFound", "Snapshot not found");
        } else {
                set(&s, false, "NoSource", "No source PVC set");
        }
        cJSON *fields = cJSON_CreateObject(), *conds = cJSON_AddArrayToObject(fields, "conditions");
        cJSON_AddItemToObject(fields, "source",
                              source ? cJSON_Duplicate(source, true) : cJSON_CreateObject());
        cJSON_AddItemToArray(conds, status_condition("Ready", s.ready, s.reason, s.message));
        int r = status_fields_write(api, &kube_datasource, ds, fields, NULL, err);
        return r < 0 ? r : DS_RECHECK_MS;
}

char *datasource_claim_key(const cJSON *ds)
{
        const cJSON *pvc = kube_obj(ds, "spec.source.pvc");
        const char *name = kube_str(pvc, "name"),
                   *ns = kube_str(pvc, "namespace") ?: kube_str(ds, "metadata.namespace");
        char *key = NULL;
        if (!name || !ns || asprintf(&key, "%s/%s", ns, name) < 0)
                return NULL;
        return key;
}
