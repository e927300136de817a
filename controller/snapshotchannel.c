/* The snapshot requests on the VMI and the launcher's results; see snapshotchannel.h. */
#include "snapshotchannel.h"
#include "controller.h"
#include "log.h"
#include "vmimigration.h"
#include "vmistatus.h"

#include <string.h>

int snapshot_vm_observe(controller *c, const char *ns, const char *name, snapshot_vm *vm, kv_error *err)
{
        memset(vm, 0, sizeof(*vm));
        char key[600];
        snprintf(key, sizeof(key), "%s/%s", ns, name);
        vm->vmi = kube_store_get(&c->vmis.store, key);
        if (!vm->vmi)
                return 0;
        _cleanup_json_ cJSON *pods = kube_store_by_index(&c->pods.store, kube_str(vm->vmi, "metadata.uid"));
        if (!pods)
                return kv_error_errno(err, ENOMEM, "Pods of VMI %s", key);
        vmi_migration_view view;
        vmi_migration_observe(vm->vmi, pods, "", &view);
        vm->launcher_status = view.active ? pod_launcher_status(view.active) : NULL;
        vmi_migration_view_free(&view);
        vm->running =
            !strcmp(vmi_phase(vm->vmi), "Running") && !kube_obj(vm->vmi, "metadata.deletionTimestamp");
        return 0;
}

void snapshot_vm_free(snapshot_vm *vm)
{
        cJSON_Delete(vm->vmi);
        cJSON_Delete(vm->launcher_status);
        memset(vm, 0, sizeof(*vm));
}

bool snapshot_vm_refuses(const snapshot_vm *vm, const char *name, const char *id, const char *what,
                         const char *why, char *buf, size_t size)
{
        if (vm->running)
                return false;
        if (snapshot_request_present(vm->vmi, id))
                snprintf(buf, size, "VirtualMachine %s stopped before the %s completed", name, what);
        else
                snprintf(buf, size, "VirtualMachine %s is not running: %s", name, why);
        return true;
}

static bool str_is(const cJSON *obj, const char *key, const char *want)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
        return cJSON_IsString(v) && want && !strcmp(v->valuestring, want);
}

bool content_has_claims(const cJSON *content)
{
        return str_is(kube_obj(content, "metadata.annotations"), CONTENT_ANN_BACKUPS, "claims");
}

const char *content_annotation(const cJSON *content, const char *key)
{
        return cJSON_GetStringValue(
            cJSON_GetObjectItemCaseSensitive(kube_obj(content, "metadata.annotations"), key));
}

bool content_from_launcher(const cJSON *content)
{
        return content_has_claims(content) &&
               str_is(kube_obj(content, "metadata.annotations"), CONTENT_ANN_SOURCE, "launcher");
}

const cJSON *snapshot_vm_result(const snapshot_vm *vm, const char *id, const char *op)
{
        const cJSON *o, *found = NULL;
        cJSON_ArrayForEach(o, kube_obj(vm->launcher_status, "snapshotOperations"))
        {
                if (str_is(o, "id", id) && str_is(o, "op", op))
                        found = o; /* newest last */
        }
        return found;
}

const cJSON *snapshot_vm_snapshot(const snapshot_vm *vm, const char *tag)
{
        const cJSON *s;
        cJSON_ArrayForEach(s, kube_obj(vm->launcher_status, "snapshots"))
        {
                if (str_is(s, "tag", tag))
                        return s;
        }
        return NULL;
}

/* The VMI's requests, parsed (an empty array when there are none or they do not parse). */
static cJSON *requests_of(const cJSON *vmi)
{
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(kube_obj(vmi, "metadata.annotations"),
                                                          SNAPSHOT_REQUESTS_ANNOTATION);
        cJSON *r = cJSON_IsString(a) ? cJSON_Parse(a->valuestring) : NULL;
        if (cJSON_IsArray(r))
                return r;
        cJSON_Delete(r);
        return cJSON_CreateArray();
}

static int index_of(const cJSON *reqs, const char *id)
{
        int i = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, reqs)
        {
                if (str_is(e, "id", id))
                        return i;
                i++;
        }
        return -1;
}

bool snapshot_request_present(const cJSON *vmi, const char *id)
{
        _cleanup_json_ cJSON *reqs = requests_of(vmi);
        return index_of(reqs, id) >= 0;
}

typedef struct request_args {
        const char *id, *op, *tag;
} request_args;

static int write_requests(cJSON *vmi, cJSON *reqs)
{
        cJSON *md = cJSON_GetObjectItemCaseSensitive(vmi, "metadata");
        cJSON *ann = cJSON_GetObjectItemCaseSensitive(md, "annotations");
        if (!cJSON_IsObject(ann)) {
                cJSON_DeleteItemFromObjectCaseSensitive(md, "annotations");
                ann = cJSON_AddObjectToObject(md, "annotations");
        }
        cJSON_DeleteItemFromObjectCaseSensitive(ann, SNAPSHOT_REQUESTS_ANNOTATION);
        if (cJSON_GetArraySize(reqs) == 0)
                return 1;
        _cleanup_free_ char *s = cJSON_PrintUnformatted(reqs);
        if (!s || !cJSON_AddStringToObject(ann, SNAPSHOT_REQUESTS_ANNOTATION, s))
                return -ENOMEM;
        return 1;
}

static int mutate_requests(cJSON *vmi, void *ud)
{
        const request_args *a = ud;
        _cleanup_json_ cJSON *reqs = requests_of(vmi);
        int i = index_of(reqs, a->id);
        if ((i >= 0) == (a->op != NULL))
                return 0;
        if (a->op) {
                cJSON *e = cJSON_CreateObject();
                cJSON_AddStringToObject(e, "id", a->id);
                cJSON_AddStringToObject(e, "op", a->op);
                cJSON_AddStringToObject(e, "tag", a->tag);
                cJSON_AddItemToArray(reqs, e);
        } else
                cJSON_DeleteItemFromArray(reqs, i);
        return write_requests(vmi, reqs);
}

int snapshot_request_set(kube_client *api, const cJSON *vmi, const char *id, const char *op, const char *tag,
                         kv_error *err)
{
        if (!vmi || snapshot_request_present(vmi, id) == (op != NULL))
                return 0;
        const char *ns = kube_str(vmi, "metadata.namespace"), *name = kube_str(vmi, "metadata.name");
        request_args a = {id, op, tag};
        /* fresh from the API (obj_hint NULL): the cached VMI is pruned and a PUT must not lose what was cut
         */
        int r = kube_update_retry(api, &kube_vmi, ns, name, NULL, false, mutate_requests, &a, NULL, err);
        if (r == -KUBE_ENOTFOUND)
                return 0;
        if (r >= 0)
                log_info("VMI %s/%s: snapshot request %s %s", ns, name, id, op ? op : "removed");
        return r;
}
