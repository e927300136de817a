/* replicas: what the replica set and pool reconcilers share (replicas.h). */
#include "replicas.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "statusfields.h"

/* "k=v,k in (a,b),k notin (a),k,!k": spec.selector as a label selector string; NULL when it is not valid. */
char *label_selector_string(const cJSON *sel)
{
        char *out = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&out, &len);
        const cJSON *kv, *e, *v;
        bool ok = f && cJSON_IsObject(sel), first = true;
        cJSON_ArrayForEach(kv, cJSON_GetObjectItemCaseSensitive(sel, "matchLabels"))
        {
                ok = ok && cJSON_IsString(kv);
                if (ok)
                        fprintf(f, "%s%s=%s", first ? "" : ",", kv->string, kv->valuestring), first = false;
        }
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(sel, "matchExpressions"))
        {
                const char *key = kube_str(e, "key"), *op = kube_str(e, "operator") ?: "";
                bool set = !strcmp(op, "In") || !strcmp(op, "NotIn");
                ok = ok && key && (set || !strcmp(op, "Exists") || !strcmp(op, "DoesNotExist"));
                if (!ok)
                        break;
                fprintf(f, "%s%s%s", first ? "" : ",", !strcmp(op, "DoesNotExist") ? "!" : "", key);
                first = false;
                if (!set)
                        continue;
                fprintf(f, " %s (", !strcmp(op, "In") ? "in" : "notin");
                bool v1 = true;
                cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(e, "values"))
                {
                        fprintf(f, "%s%s", v1 ? "" : ",", cJSON_GetStringValue(v) ?: "");
                        v1 = false;
                }
                fputc(')', f);
        }
        if (f)
                fclose(f);
        if (!ok || first) { /* an empty selector would select every VMI: KubeVirt refuses it too */
                free(out);
                return NULL;
        }
        return out;
}

bool condition_ready(const cJSON *obj)
{
        const cJSON *c;
        cJSON_ArrayForEach(c, kube_obj(obj, "status.conditions"))
        {
                if (!strcmp(kube_str(c, "type") ?: "", "Ready"))
                        return !strcmp(kube_str(c, "status") ?: "", "True");
        }
        return false;
}

int replicas_write_status(kube_client *api, const kube_resource *res, const cJSON *obj,
                          const replicas_status *s, kv_error *err)
{
        cJSON *f = cJSON_CreateObject(), *conds = cJSON_AddArrayToObject(f, "conditions");
        cJSON_AddNumberToObject(f, "replicas", s->replicas);
        cJSON_AddNumberToObject(f, "readyReplicas", s->ready);
        cJSON_AddStringToObject(f, "labelSelector", s->selector ? s->selector : "");
        if (s->paused)
                cJSON_AddItemToArray(
                    conds, status_condition("ReplicaPaused", true, "Paused", "Controller got paused"));
        if (s->failure && s->failure[0])
                cJSON_AddItemToArray(conds,
                                     status_condition("ReplicaFailure", true, "FailedCreate", s->failure));
        return status_fields_write(api, res, obj, f, NULL, err);
}

cJSON *replicas_from_template(const cJSON *tmpl, const kube_resource *res, const cJSON *owner,
                              const kube_resource *owner_res)
{
        cJSON *obj = cJSON_CreateObject(), *md = cJSON_AddObjectToObject(obj, "metadata");
        cJSON_AddStringToObject(obj, "apiVersion", res->api_version);
        cJSON_AddStringToObject(obj, "kind", res->kind);
        const cJSON *labels = kube_obj(tmpl, "metadata.labels"),
                    *ann = kube_obj(tmpl, "metadata.annotations");
        if (labels)
                cJSON_AddItemToObject(md, "labels", cJSON_Duplicate(labels, 1));
        if (ann)
                cJSON_AddItemToObject(md, "annotations", cJSON_Duplicate(ann, 1));
        cJSON_AddItemToArray(cJSON_AddArrayToObject(md, "ownerReferences"),
                             kube_controller_ref_of(owner, owner_res->api_version, owner_res->kind));
        const cJSON *spec = cJSON_GetObjectItemCaseSensitive(tmpl, "spec");
        cJSON_AddItemToObject(obj, "spec", spec ? cJSON_Duplicate(spec, 1) : cJSON_CreateObject());
        return obj;
}
