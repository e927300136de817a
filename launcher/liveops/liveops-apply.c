/* liveops-apply: the launcher's VMI reload. A changed spec (control command `apply`, from an edited file
 * locally or an API update in a cluster) is diffed against the running one (vmi_diff); only the volumes
 * the diff adds are prepared, each operation runs over QMP, and status.volumeStatus follows. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>

#include "liveops-control.h"
#include "hotplug.h"
#include "json.h"
#include "log.h"
#include "macro.h"
#include "qmp-helpers.h"
#include "vmi-diff.h"
#include "volumes.h"

#define APPLY_OP_TIMEOUT_MS 10000
#define ATTACH_TIMEOUT_MS 5000

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
/* A claim virt-handler handed over (hotplug-attach): QEMU opens it from its fd set. */
static int prepare_attached(liveops *lo, vmi_volume *vol, kv_error *err)
{
        int fdset = vol->kind == VOL_PVC ? liveops_attached_fdset(lo, vol->name) : -1;
        if (fdset < 0)
                return 0;
        char *path = NULL;
        if (asprintf(&path, "/dev/fdset/%d", fdset) < 0)
                return kv_error_set(err, ENOMEM, "out of memory");
        vol->prep = (volume_prep){.path = path, .format = IMG_RAW, .read_only = vol->claim_readonly};
        return 1;
}

static int prepare_added(liveops *lo, vmi *old, vmi *nv, const liveop_plan *plan, const launcher_paths *paths,
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
                        int r = prepare_attached(lo, &nv->volumes[vi], err);
                        if (r < 0)
                                return r;
                        if (r > 0)
                                continue;
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

/* A refused apply: the volumes kept from the running spec take their prepared files back (prepare_added
 * moved them to the new spec, which is freed). */
static void give_back_kept(vmi *old, vmi *nv)
{
        for (size_t i = 0; nv && i < nv->n_volumes; i++) {
                vmi_volume *o = find_volume(old, nv->volumes[i].name);
                if (o && !o->prep.path && nv->volumes[i].prep.path) {
                        o->prep = nv->volumes[i].prep;
                        nv->volumes[i].prep = (volume_prep){0};
                }
        }
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
        int scsi_step; /* the SCSI controller's removal after the last SCSI disk went */
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
        } else {
                give_back_kept(a->old, a->nv);
                vmi_free(a->nv);
        }
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

static void on_fd_removed(qmp *q, const cJSON *ret, const kv_error *err, void *userdata)
{
        if (err)
                log_warning("remove-fd: %s", err->msg);
}

/* An unplugged claim's fd set goes (QEMU closed its own copies with the node). */
static void release_attached(liveops *lo, const char *volume)
{
        int fdset = liveops_attached_fdset(lo, volume);
        const liveops_host *h = liveops_host_of(lo);
        qmp *q = h->qmp(h->ctx);
        if (fdset < 0)
                return;
        liveops_attached_set(lo, volume, -1, -1);
        kv_error err = {0};
        if (q && qmp_send(q, "remove-fd", jnum(cJSON_CreateObject(), "fdset-id", fdset), -1,
                          ATTACH_TIMEOUT_MS, on_fd_removed, NULL, &err) > 0)
                h->qmp_rearm(h->ctx);
}

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
                release_attached(a->lo, a->old->volumes[a->old->disks[op->index].volume].name);
        }
        a->i++;
        apply_next(a);
}

static bool has_scsi_disk(const vmi *v)
{
        for (size_t i = 0; i < v->n_disks; i++)
                if (v->disks[i].bus == BUS_SCSI)
                        return true;
        return false;
}

/* The virtio-scsi controller a hot-plug added goes with the last SCSI disk: a migration target, started
 * from the spec, has none then, and QEMU refuses a stream with devices the target lacks. */
static int scsi_drop_step(void *ctx, const cJSON *ret, const kv_error *qerr, lo_next *n, kv_error *err)
{
        apply_run *a = ctx;
        switch (a->scsi_step++) {
        case 0:
                *n = (lo_next){.command = "qom-list",
                               .args = jstr(cJSON_CreateObject(), "path", "/machine/peripheral")};
                return LO_SEQ_NEXT;
        case 1:
                if (!lo_device_in(ret, "scsi0"))
                        return LO_SEQ_DONE;
                *n = (lo_next){.command = "device_del",
                               .args = jstr(cJSON_CreateObject(), "id", "scsi0"),
                               .may_fail = true,
                               .event = "DEVICE_DELETED",
                               .key = "device",
                               .value = "scsi0",
                               .wait_ms = APPLY_OP_TIMEOUT_MS};
                return LO_SEQ_NEXT;
        default:
                if (qerr)
                        log_warning("apply: removing the unused SCSI controller: %s", qerr->msg);
                return LO_SEQ_DONE;
        }
}

static void scsi_drop_done(lo_seq *s, int r, const kv_error *e, void *data)
{
        if (r < 0)
                log_warning("apply: removing the unused SCSI controller: %s", e->msg);
        apply_finish(data, NULL);
}

static bool removed_scsi_disk(const apply_run *a)
{
        for (size_t i = 0; i < a->plan.n; i++)
                if (a->plan.ops[i].kind == LIVEOP_DISK_REMOVE &&
                    a->old->disks[a->plan.ops[i].index].bus == BUS_SCSI)
                        return true;
        return false;
}

static void apply_next(apply_run *a)
{
        if (a->i >= a->plan.n && removed_scsi_disk(a) && !has_scsi_disk(a->nv) && a->scsi_step == 0) {
                lo_seq_host sh = liveops_seq_host(a->lo);
                lo_seq_start(&a->seq, &sh, scsi_drop_step, a, scsi_drop_done, a);
                return;
        }
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
                r = prepare_added(lo, a->old, a->nv, &a->plan, h->paths, &err);
        liveops_set_busy(lo, "apply", apply_cancel, a);
        if (r < 0)
                apply_finish(a, &err);
        else
                apply_next(a);
        return 0;
}

/* ---- hotplug-attach: virt-handler's fd of a claim the launcher Pod did not mount ---------------------- */

typedef struct attach_req {
        liveops *lo;
        ctl_request *req;
        char volume[128];
        int dirfd; /* the image's directory, -1 = none */
} attach_req;

static void attach_req_free(attach_req *a)
{
        if (a->dirfd >= 0)
                close(a->dirfd);
        free(a);
}

static void on_fd_added(qmp *q, const cJSON *ret, const kv_error *err, void *userdata)
{
        attach_req *a = userdata;
        const liveops_host *h = liveops_host_of(a->lo);
        const cJSON *id = cJSON_GetObjectItem(ret, "fdset-id");
        if (err || !cJSON_IsNumber(id)) {
                ctl_reply_error(a->req, "hotplug-attach %s: add-fd: %s", a->volume,
                                err ? err->msg : "no fdset-id in the reply");
                attach_req_free(a);
                return;
        }
        bool dir = a->dirfd >= 0;
        if (liveops_attached_set(a->lo, a->volume, id->valueint, TAKE_FD(a->dirfd)) < 0) {
                ctl_reply_error(a->req, "hotplug-attach %s: too many attached volumes", a->volume);
                attach_req_free(a);
                return;
        }
        log_info("hotplug-attach: volume %s in fd set %d%s", a->volume, id->valueint,
                 dir ? ", its directory kept for backups" : "");
        if (!h->st->volume_status)
                h->st->volume_status = cJSON_CreateArray();
        volume_status_set(h->st->volume_status, a->volume, "AttachedToNode", "SuccessfulMount",
                          "Volume attached to the node by virt-handler", true);
        h->publish(h->ctx);
        ctl_reply_ok(a->req, jnum(cJSON_CreateObject(), "fdset", id->valueint));
        liveops_target_attached(a->lo);
        attach_req_free(a);
}

int liveops_ctl_hotplug_attach(ctl_request *req)
{
        liveops *lo = liveops_of(req);
        const liveops_host *h = liveops_host_of(lo);
        _cleanup_close_ int fd = ctl_take_fd(req, 0), dirfd = ctl_take_fd(req, 1);
        const char *volume = cJSON_GetStringValue(cJSON_GetObjectItem(req->args, "volume"));
        qmp *q = h->qmp(h->ctx);
        kv_error err = {0};
        if (!volume || !*volume || strlen(volume) >= sizeof(((attach_req *)0)->volume)) {
                ctl_reply_error(req, "hotplug-attach: args.volume (a volume name) is required");
                return 0;
        }
        if (fd < 0) {
                ctl_reply_error(
                    req, "hotplug-attach %s: no file descriptor came with the request (SCM_RIGHTS)", volume);
                return 0;
        }
        int fdset = liveops_attached_fdset(lo, volume);
        if (fdset >= 0) { /* virt-handler saw the attachment Pod again (its restart, a relist) */
                ctl_reply_ok(req, jbool(jnum(cJSON_CreateObject(), "fdset", fdset), "already", true));
                return 0;
        }
        if (!q) {
                ctl_reply_error(req, "hotplug-attach %s: the VM's QMP connection is gone", volume);
                return 0;
        }
        attach_req *a = calloc(1, sizeof(*a));
        if (!a) {
                ctl_reply_error(req, "out of memory");
                return 0;
        }
        *a = (attach_req){.lo = lo, .req = req, .dirfd = TAKE_FD(dirfd)};
        snprintf(a->volume, sizeof(a->volume), "%s", volume);
        /* libqmp sends its own duplicate of fd; QEMU keeps it in a new fd set */
        if (qmp_send(q, "add-fd", cJSON_CreateObject(), fd, ATTACH_TIMEOUT_MS, on_fd_added, a, &err) < 0) {
                ctl_reply_error(req, "hotplug-attach %s: %s", volume, err.msg);
                attach_req_free(a);
                return 0;
        }
        h->qmp_rearm(h->ctx);
        return 0;
}

/* ---- a migration target's deferred claims: plugged from their fd sets as the source plugged them (the
 * same node names, device ids and ports, in the spec's order), before the stream is taken ------------- */

typedef struct plug_run {
        liveops *lo;
        size_t disk; /* the disk being plugged */
        hp_op op;
        lo_seq seq;
        void (*done)(liveops *lo, int r, const kv_error *err);
} plug_run;

const char *liveops_deferred_volume(liveops *lo, bool unattached)
{
        const vmi *v = *liveops_host_of(lo)->vmi;
        for (size_t i = 0; v && i < v->n_volumes; i++)
                if (v->volumes[i].deferred &&
                    (!unattached || liveops_attached_fdset(lo, v->volumes[i].name) < 0))
                        return v->volumes[i].name;
        return NULL;
}

static void plug_end(plug_run *p, int r, const kv_error *err)
{
        liveops_set_busy(p->lo, NULL, NULL, NULL);
        liveops_host_of(p->lo)->publish(liveops_host_of(p->lo)->ctx);
        p->done(p->lo, r, err);
        free(p);
}

static void plug_next(plug_run *p);

static void plug_done(lo_seq *s, int r, const kv_error *e, void *data)
{
        plug_run *p = data;
        const liveops_host *h = liveops_host_of(p->lo);
        vmi *v = *h->vmi;
        liveop op = {.kind = LIVEOP_DISK_ADD, .index = p->disk};
        hp_op_free(&p->op);
        if (r < 0) {
                set_volume_status(h->st, v, &op, "Failed", e->msg);
                plug_end(p, r, e);
                return;
        }
        v->volumes[v->disks[p->disk].volume].deferred = false;
        set_volume_status(h->st, v, &op, "Ready", "Successfully attach hotplugged volume");
        log_info("migration target: hot-plugged disk %s plugged", v->disks[p->disk].name);
        p->disk++;
        plug_next(p);
}

static void plug_next(plug_run *p)
{
        vmi *v = *liveops_host_of(p->lo)->vmi;
        while (p->disk < v->n_disks && !vmi_disk_deferred(v, p->disk))
                p->disk++;
        if (p->disk >= v->n_disks) {
                plug_end(p, 0, NULL);
                return;
        }
        liveop op = {.kind = LIVEOP_DISK_ADD, .index = p->disk};
        snprintf(op.name, sizeof(op.name), "%s", v->disks[p->disk].name);
        kv_error err = {0};
        int r = prepare_attached(p->lo, &v->volumes[v->disks[p->disk].volume], &err);
        if (r == 0)
                r = kv_error_set(&err, ENOENT, "volume %s has no fd set", op.name);
        if (r > 0)
                r = liveop_hp_op(v, &op, APPLY_OP_TIMEOUT_MS, &p->op, &err);
        if (r < 0) {
                plug_done(&p->seq, r, &err, p);
                return;
        }
        lo_seq_host sh = liveops_seq_host(p->lo);
        lo_seq_start(&p->seq, &sh, hp_step, &p->op, plug_done, p);
}

static void plug_cancel(void *data)
{
        plug_run *p = data;
        lo_seq_abort(&p->seq);
        hp_op_free(&p->op);
        kv_error err = {0};
        kv_error_set(&err, ECANCELED, "the launcher ended");
        plug_end(p, -ECANCELED, &err);
}

void liveops_plug_deferred(liveops *lo, void (*done)(liveops *lo, int r, const kv_error *err))
{
        plug_run *p = calloc(1, sizeof(*p));
        if (!p) {
                kv_error err = {0};
                kv_error_set(&err, ENOMEM, "out of memory");
                done(lo, -ENOMEM, &err);
                return;
        }
        *p = (plug_run){.lo = lo, .done = done};
        liveops_set_busy(lo, "the hot-plug of the migration's claims", plug_cancel, p);
        plug_next(p);
}
