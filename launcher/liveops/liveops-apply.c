/* liveops-apply: the launcher's VMI reload. A changed spec (control command `apply`, from an edited file
 * locally or an API update in a cluster) is diffed against the running one (vmi_diff); only the volumes
 * the diff adds are prepared, each operation runs over QMP, and status.volumeStatus follows. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "liveops-control.h"
#include "hotplug.h"
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

/* One `apply` in flight: the plan's operations run in order on the loop, each as hotplug.c's steps; the
 * first failure stops it (the VM keeps running, the volume's entry says why). */
typedef struct apply_run {
        liveops *lo;
        ctl_request *req;
        vmi *old, *nv;
        liveop_plan plan;
        size_t i;
        hp_op op;
        lo_seq seq;
} apply_run;

/* The end: the new spec becomes the running one when every operation succeeded. */
static void apply_finish(apply_run *a, const kv_error *err)
{
        const liveops_host *h = liveops_host_of(a->lo);
        cJSON *result = err ? NULL : liveop_plan_to_json(&a->plan);
        liveop_plan_free(&a->plan);
        if (!err) {
                *h->vmi = a->nv; /* the spec the VM now runs */
                vmi_free(a->old);
        } else
                vmi_free(a->nv);
        liveops_set_busy(a->lo, NULL, NULL, NULL);
        h->publish(h->ctx);
        ctl_request *req = TAKE_PTR(a->req);
        if (err) {
                log_warning("apply: %s", err->msg);
                ctl_reply_error(req, "%s", err->msg);
        } else
                ctl_reply_ok(req, result);
        free(a);
}

static void apply_next(apply_run *a);

static void apply_op_done(lo_seq *s, int r, const kv_error *e, void *data)
{
        apply_run *a = data;
        const liveops_host *h = liveops_host_of(a->lo);
        const liveop *op = &a->plan.ops[a->i];
        bool disk = op->kind == LIVEOP_DISK_ADD || op->kind == LIVEOP_DISK_REMOVE;
        hp_op_free(&a->op);
        if (r < 0) {
                kv_error err = *e;
                kv_error_wrap(&err, "%s %s", liveop_kind_name(op->kind), op->name);
                if (disk)
                        set_volume_status(h->st, a->nv, op, "Failed", err.msg);
                apply_finish(a, &err);
                return;
        }
        log_info("apply: %s %s done", liveop_kind_name(op->kind), op->name);
        if (op->kind == LIVEOP_DISK_ADD)
                set_volume_status(h->st, a->nv, op, "Ready", "Successfully attach hotplugged volume");
        else if (op->kind == LIVEOP_DISK_REMOVE) {
                liveop removed = *op; /* the entry is the volume's, found through the old spec */
                removed.kind = LIVEOP_DISK_ADD;
                set_volume_status(h->st, a->old, &removed, NULL, NULL);
        }
        a->i++;
        apply_next(a);
}

static void apply_next(apply_run *a)
{
        if (a->i >= a->plan.n) {
                apply_finish(a, NULL);
                return;
        }
        kv_error err = {0};
        if (liveop_hp_op(a->nv, &a->plan.ops[a->i], APPLY_OP_TIMEOUT_MS, &a->op, &err) < 0) {
                apply_op_done(&a->seq, -err.code, &err, a);
                return;
        }
        lo_seq_host sh = liveops_seq_host(a->lo);
        lo_seq_start(&a->seq, &sh, hp_step, &a->op, apply_op_done, a);
}

/* The launcher ends with the apply in flight. */
static void apply_cancel(void *data)
{
        apply_run *a = data;
        lo_seq_abort(&a->seq);
        hp_op_free(&a->op);
        kv_error err = {0};
        kv_error_set(&err, ECANCELED, "the launcher ended");
        apply_finish(a, &err);
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
        apply_run *a = calloc(1, sizeof(*a));
        if (!a) {
                ctl_reply_error(req, "out of memory");
                return 0;
        }
        *a = (apply_run){.lo = lo, .req = req, .old = *h->vmi};
        int r = load_new(cJSON_GetObjectItem(req->args, "vmi"), &a->nv, &err);
        if (r >= 0)
                r = vmi_diff(a->old, a->nv, &a->plan, &err);
        if (r >= 0)
                r = prepare_added(a->old, a->nv, &a->plan, h->paths, &err);
        liveops_set_busy(lo, "apply", apply_cancel, a);
        if (r < 0)
                apply_finish(a, &err);
        else
                apply_next(a);
        return 0;
}
