/* VM status derived from its VMI; see vmprintable.h. */
#include "vmprintable.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "json.h"
#include "macro.h"
#include "vmimigration.h"
#include "vmistatus.h"

static const cJSON *condition_of(const cJSON *obj, const char *type)
{
        const cJSON *c;
        cJSON_ArrayForEach(
            c, kube_obj(obj, "status.conditions")) if (!strcmp(kube_str(c, "type") ?: "", type)) return c;
        return NULL;
}

static bool condition_is(const cJSON *obj, const char *type, const char *status, const char *reason)
{
        const cJSON *c = condition_of(obj, type);
        return c && !strcmp(kube_str(c, "status") ?: "", status) &&
               (!reason || !strcmp(kube_str(c, "reason") ?: "", reason));
}

/* A VMI that exists and is not final, in one of KubeVirt's named states. */
static const char *live_vmi_status(const cJSON *vmi, const vm_print_in *in)
{
        if (kube_obj(vmi, "metadata.deletionTimestamp") || in->stop_expected)
                return "Stopping";
        if (migration_in_flight(kube_obj(vmi, "status.migrationState")))
                return "Migrating";
        if (!strcmp(vmi_phase(vmi), "Running"))
                return condition_is(vmi, "Paused", "True", NULL) ? "Paused" : "Running";
        if (condition_is(vmi, "PodScheduled", "False", "Unschedulable"))
                return "ErrorUnschedulable";
        if (condition_is(vmi, "Synchronized", "False", "ErrImagePull"))
                return "ErrImagePull";
        if (condition_is(vmi, "Synchronized", "False", "ImagePullBackOff"))
                return "ImagePullBackOff";
        return "Starting";
}

const char *vm_printable_status(const cJSON *vm, const cJSON *vmi, const vm_print_in *in)
{
        if (kube_obj(vm, "metadata.deletionTimestamp"))
                return "Terminating";
        if (vmi && !vmi_phase_is_final(vmi_phase(vmi)))
                return live_vmi_status(vmi, in);
        if (!vmi && in->dv_wait)
                return in->dv_wait;
        if (in->crash_loop)
                return "CrashLoopBackOff";
        return !vmi && in->start_expected ? "Starting" : "Stopped";
}

/* ---- the template hash ---- */

#define FNV_OFFSET 14695981039346656037ull
#define FNV_PRIME 1099511628211ull

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
        const unsigned char *b = p;
        for (size_t i = 0; i < n; i++)
                h = (h ^ b[i]) * FNV_PRIME;
        return h;
}

static uint64_t fnv_str(uint64_t h, const char *s)
{
        return fnv(h, s, strlen(s) + 1); /* with its NUL: "ab","c" differs from "a","bc" */
}

static int by_key(const void *a, const void *b)
{
        return strcmp((*(const cJSON *const *)a)->string, (*(const cJSON *const *)b)->string);
}

static uint64_t hash_json(uint64_t h, const cJSON *j)
{
        char tag = (char)(j->type & 0xff);
        h = fnv(h, &tag, 1);
        if (cJSON_IsString(j))
                return fnv_str(h, j->valuestring);
        if (cJSON_IsNumber(j))
                return fnv(h, &j->valuedouble, sizeof(j->valuedouble));
        if (cJSON_IsArray(j)) {
                const cJSON *c;
                cJSON_ArrayForEach(c, j) h = hash_json(h, c);
                return fnv(h, "]", 1);
        }
        if (!cJSON_IsObject(j))
                return h; /* true, false, null: the tag says it all */
        size_t n = (size_t)cJSON_GetArraySize(j), i = 0;
        _cleanup_free_ const cJSON **kids = calloc(n ? n : 1, sizeof(*kids));
        if (!kids)
                abort(); /* as cJSON's own allocations in this process: nothing sensible to fall back on */
        const cJSON *c;
        cJSON_ArrayForEach(c, j) kids[i++] = c;
        qsort(kids, n, sizeof(*kids), by_key);
        for (i = 0; i < n; i++)
                h = hash_json(fnv_str(h, kids[i]->string), kids[i]);
        return fnv(h, "}", 1);
}

/* A volume `addvolume` plugs in live: any of its sources says hotpluggable: true. */
static bool hotpluggable(const cJSON *vol)
{
        const cJSON *src;
        cJSON_ArrayForEach(
            src, vol) if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(src, "hotpluggable"))) return true;
        return false;
}

static void drop_named(cJSON *list, const char *name)
{
        cJSON *e = list ? list->child : NULL;
        while (e) {
                cJSON *next = e->next;
                if (!strcmp(kube_str(e, "name") ?: "", name))
                        cJSON_Delete(cJSON_DetachItemViaPointer(list, e));
                e = next;
        }
}

uint64_t vm_template_hash(const cJSON *vm)
{
        const cJSON *spec = kube_obj(vm, "spec.template.spec");
        _cleanup_json_ cJSON *copy = spec ? cJSON_Duplicate(spec, 1) : cJSON_CreateObject();
        cJSON *vols = cJSON_GetObjectItemCaseSensitive(copy, "volumes");
        cJSON *disks = kube_obj(copy, "domain.devices.disks");
        cJSON *v = vols ? vols->child : NULL;
        while (v) {
                cJSON *next = v->next;
                if (hotpluggable(v)) {
                        _cleanup_free_ char *name = strdup(kube_str(v, "name") ?: "");
                        cJSON_Delete(cJSON_DetachItemViaPointer(vols, v));
                        if (name)
                                drop_named(disks, name);
                }
                v = next;
        }
        return hash_json(FNV_OFFSET, copy);
}

void vm_template_hash_str(const cJSON *vm, char out[VM_TEMPLATE_HASH_LEN])
{
        snprintf(out, VM_TEMPLATE_HASH_LEN, "%016llx", (unsigned long long)vm_template_hash(vm));
}

bool vm_restart_required(const cJSON *vm, const cJSON *vmi)
{
        const char *rec = cJSON_GetStringValue(
            cJSON_GetObjectItemCaseSensitive(kube_obj(vmi, "metadata.annotations"), VM_ANN_TEMPLATE_HASH));
        if (!vmi || !rec || vmi_phase_is_final(vmi_phase(vmi)) || kube_obj(vmi, "metadata.deletionTimestamp"))
                return false;
        char now[VM_TEMPLATE_HASH_LEN];
        vm_template_hash_str(vm, now);
        return strcmp(rec, now) != 0;
}

void vm_copy_vmi_conditions(cJSON *conds, const cJSON *vmi)
{
        const cJSON *c;
        cJSON_ArrayForEach(c, kube_obj(vmi, "status.conditions"))
        {
                const char *type = kube_str(c, "type") ?: "";
                if (*type && strcmp(type, "Ready") && strcmp(type, "Failure"))
                        cJSON_AddItemToArray(conds, cJSON_Duplicate(c, 1));
        }
}
