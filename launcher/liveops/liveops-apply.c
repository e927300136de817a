/* liveops-apply: the launcher's VMI reload. A changed spec (control command `apply`, from an edited file
 * locally or an API update in a cluster) is diffed against the running one (vmi_diff); only the volumes
 * the diff adds are prepared, each operation runs over QMP, and status.volumeStatus follows. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "liveops-control.h"
#include "log.h"
#include "macro.h"
#include "vmi-diff.h"
#include "volumes.h"

#define APPLY_OP_TIMEOUT_MS 10000

static int load_new(const cJSON *arg, vmi **out, kv_error *err)
{
        if (cJSON_IsString(arg))
                return vmi_load_json_string(arg->valuestring, out, err);
        if (cJSON_IsObject(arg))
                return vmi_from_json(arg, out, err);
        return kv_error_set(err, EINVAL, "apply: args.vmi (the VMI as JSON/YAML text or object) is required");
}

static vmi_volume *find_volume(vmi *v, const char *name)
{
        for (size_t i = 0; i < v->n_volumes; i++)
                if (!strcmp(v->volumes[i].name, name))
                        return &v->volumes[i];
        return NULL;
}

/* Volumes kept from the running spec take over its prepared files (preparing them again would recreate
 * overlays QEMU has open); the ones the plan adds are prepared, alone, through a shallow view of the
 * new spec (file names depend on the volume's name only). */
static int prepare_added(vmi *old, vmi *nv, const liveop_plan *plan, const launcher_paths *paths,
                         kv_error *err)
{
        for (size_t i = 0; i < nv->n_volumes; i++) {
                vmi_volume *o = find_volume(old, nv->volumes[i].name);
                if (o) {
                        nv->volumes[i].prep = o->prep;
                        o->prep = (volume_prep){0};
                }
        }
        _cleanup_free_ vmi_volume *view = calloc(plan->n ? plan->n : 1, sizeof(*view));
        _cleanup_free_ size_t *from = calloc(plan->n ? plan->n : 1, sizeof(*from));
        if (!view || !from)
                return kv_error_set(err, ENOMEM, "out of memory");
        size_t k = 0;
        for (size_t i = 0; i < plan->n; i++)
                if (plan->ops[i].kind == LIVEOP_DISK_ADD) {
                        size_t vi = nv->disks[plan->ops[i].index].volume;
                        if (nv->volumes[vi].prep.path)
                                continue; /* a kept volume under a new disk name */
                        from[k] = vi;
                        view[k++] = nv->volumes[vi];
                }
        vmi tmp = *nv;
        tmp.volumes = view;
        tmp.n_volumes = k;
        int r = k ? volumes_prepare(&tmp, paths, err) : 0;
        for (size_t j = 0; j < k; j++) /* the files made so far belong to the new spec either way */
                nv->volumes[from[j]].prep = view[j].prep;
        return r;
}

static void set_volume_status(status *st, const vmi *v, const liveop *op, const char *phase,
                              const char *message)
{
        if (!st->volume_status)
                st->volume_status = cJSON_CreateArray();
        const char *name =
            op->kind == LIVEOP_DISK_ADD ? v->volumes[v->disks[op->index].volume].name : op->name;
        volume_status_set(st->volume_status, name, phase, phase && !strcmp(phase, "Failed") ? "Failed" : NULL,
                          message, true);
}

/* Runs the plan in order; stops at the first failure (the VM keeps running, the entry says why). */
static int run_plan(const liveops_host *h, const vmi *old, const vmi *nv, const liveop_plan *plan,
                    kv_error *err)
{
        for (size_t i = 0; i < plan->n; i++) {
                const liveop *op = &plan->ops[i];
                bool disk = op->kind == LIVEOP_DISK_ADD || op->kind == LIVEOP_DISK_REMOVE;
                int r = liveop_apply(h->qmp(h->ctx), nv, op, APPLY_OP_TIMEOUT_MS, err);
                h->qmp_rearm(h->ctx);
                if (r < 0) {
                        kv_error_wrap(err, "%s %s", liveop_kind_name(op->kind), op->name);
                        if (disk)
                                set_volume_status(h->st, nv, op, "Failed", err->msg);
                        return r;
                }
                log_info("apply: %s %s done", liveop_kind_name(op->kind), op->name);
                if (op->kind == LIVEOP_DISK_ADD)
                        set_volume_status(h->st, nv, op, "Ready", "Successfully attach hotplugged volume");
                else if (op->kind == LIVEOP_DISK_REMOVE) {
                        liveop removed = *op; /* the entry is the volume's, found through the old spec */
                        removed.kind = LIVEOP_DISK_ADD;
                        set_volume_status(h->st, old, &removed, NULL, NULL);
                }
        }
        return 0;
}

int liveops_ctl_apply(ctl_request *req)
{
        liveops *lo = liveops_of(req);
        const liveops_host *h = liveops_host_of(lo);
        kv_error err = {0};
        if (liveops_vm_usable(lo, PHASE_RUNNING, &err) < 0 || !h->vmi) {
                ctl_reply_error(req, "apply: %s", err.code ? err.msg : "no running spec");
                return 0;
        }
        vmi *nv = NULL, *old = *h->vmi;
        liveop_plan plan = {0};
        int r = load_new(cJSON_GetObjectItem(req->args, "vmi"), &nv, &err);
        if (r >= 0)
                r = vmi_diff(old, nv, &plan, &err);
        if (r >= 0)
                r = prepare_added(old, nv, &plan, h->paths, &err);
        if (r >= 0)
                r = run_plan(h, old, nv, &plan, &err);
        cJSON *result = r >= 0 ? liveop_plan_to_json(&plan) : NULL;
        liveop_plan_free(&plan);
        if (nv && r >= 0) {
                *h->vmi = nv; /* the spec the VM now runs */
                vmi_free(old);
        } else
                vmi_free(nv);
        h->publish(h->ctx);
        if (r < 0) {
                log_warning("apply: %s", err.msg);
                ctl_reply_error(req, "%s", err.msg);
        } else
                ctl_reply_ok(req, result);
        return 0;
}
