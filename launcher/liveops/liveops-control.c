/* liveops-control: control-socket handlers over libkvliveops, run on the launcher's loop. Hot-plug,
 * unplug, set-cpus, set-memory, a migration's start, polls and cancel, and a target's prepare and release
 * steps are libkvliveops' step functions run with lo_seq_start (qmp-seq.h): one QMP command in flight per
 * operation, the next sent from the reply callback, pauses on loop timers, so nothing here waits on a
 * socket. Snapshot operations are state machines driven by QMP replies, JOB_STATUS_CHANGE events and loop
 * timers (query-block → snapshot-* job → query-jobs until concluded → job-dismiss → query-block for the
 * status); they may carry an id whose outcome and the snapshots the disks hold go into the status
 * (docs/cluster-snapshots.md). A migration is polled every MIGRATION_TICK_MS from a loop timer. A target
 * finishes by itself on QEMU's MIGRATION completed event, its release steps retried from another timer.
 * Only snapshot-list (one query QEMU answers at once) and a target's start-up preparation run blocking. */
#include "liveops-control.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "liveops-command.h"
#include "hotplug.h"
#include "log.h"
#include "migration.h"
#include "qmp-helpers.h"
#include "qmp-seq.h"
#include "snapshot.h"
#include "tcp-drain.h"
#include "volumes.h"

#define MIGRATION_TICK_MS 200
#define MIGRATION_DRAIN_TICK_MS 20
#define MIGRATION_DRAIN_MAX_MS 10000
#define QMP_QUERY_TIMEOUT_MS 10000
/* A backup job copies whole disks: its deadline, and the guest agent's for a freeze or thaw. */
#define BACKUP_TIMEOUT_MS (30 * 60 * 1000)
#define AGENT_FREEZE_TIMEOUT_MS 10000
/* query-jobs this often while a snapshot job runs: its JOB_STATUS_CHANGE events are only a hint. */
#define SNAPSHOT_POLL_MS 1000
/* Target: how often the NBD exports are retried while the source's mirrors still hold them, and how
 * long before they are dropped anyway (the source normally lets go within one of its ticks). */
#define TARGET_RELEASE_TICK_MS 50
#define TARGET_RELEASE_TIMEOUT_MS 10000
/* Target: how long virt-handler may take to attach the hot-plugged claims (their attachment Pods start on
 * this node once this Pod runs) before the migration fails. */
#define TARGET_ATTACH_TIMEOUT_MS (120 * 1000)

typedef struct snap_op snap_op;
typedef struct hp_run hp_run;

/* A hot-plug, unplug, set-cpus or set-memory in flight (hotplug.c's steps). */
struct hp_run {
        liveops *lo;
        ctl_request *req;
        const char *verb;
        hp_op op;
        lo_seq seq;
};

struct liveops {
        liveops_host h;
        struct {
                migration_state st;
                bool have, active;
                bool target_prepared;  /* this launcher is a target and migrate-incoming was sent */
                bool target_releasing; /* incoming migration completed: waiting for the source's mirrors */
                bool target_done;      /* the guest runs here */
                int64_t release_deadline;
                loop_timer tick;         /* source: the next poll; target: the next release step */
                migration_poll_seq poll; /* source: the poll in flight (as `seq`) */
                bool was_postcopy;
                lo_seq cancel_seq; /* migrate-cancel in flight, answered to cancel_req */
                migration_cancel_seq cancel;
                ctl_request *cancel_req;
                /* target: migration-target's steps (as `seq`, answered to start_req), the release steps */
                migration_prepare_seq prepare;
                migration_config target_config;
                bool waiting_attach;        /* target: deferred volumes are not all attached yet */
                loop_timer attach_deadline; /* ... until then */
                migration_release_seq release;
                ctl_request *finish_req; /* a migration-target-finish waiting for the guest to run here */
                /* Source: the start (capabilities, disk mirrors until READY, `migrate`) running as `seq`,
                 * answered to start_req; after a failure `seq` stops the mirrors, then start_err goes out. */
                lo_seq seq;
                migration_start_seq start;
                migration_stop_seq stop;
                ctl_request *start_req;
                bool starting;
                kv_error start_err;
                loop_timer finish_deadline;
                int64_t drain_deadline; /* source, completed: quit by then even if bytes are unacknowledged */
        } mig;
        snap_op *snap; /* the snapshot operation in flight, or NULL */
        hp_run *op;    /* the hot-plug, unplug, set-cpus or set-memory in flight, or NULL */
        struct {       /* an `apply` in flight (liveops-apply.c) */
                const char *what;
                void (*cancel)(void *data);
                void *data;
        } busy;
        struct { /* hotplug-attach: volumes whose image QEMU holds in an fd set */
                char name[128];
                int fdset;
                int dirfd; /* the image's directory (backups are made there), -1 = none */
        } attached[32];
};

int liveops_attached_fdset(liveops *lo, const char *name)
{
        for (size_t i = 0; i < ARRAY_SIZE(lo->attached); i++)
                if (lo->attached[i].name[0] && !strcmp(lo->attached[i].name, name))
                        return lo->attached[i].fdset;
        return -1;
}

int liveops_attached_dir(liveops *lo, int fdset)
{
        for (size_t i = 0; i < ARRAY_SIZE(lo->attached); i++)
                if (lo->attached[i].name[0] && lo->attached[i].fdset == fdset)
                        return lo->attached[i].dirfd;
        return -1;
}

static void attached_forget(liveops *lo, size_t i)
{
        lo->attached[i].name[0] = '\0';
        if (lo->attached[i].dirfd >= 0)
                close(TAKE_FD(lo->attached[i].dirfd));
}

int liveops_attached_set(liveops *lo, const char *name, int fdset, int dirfd)
{
        for (size_t i = 0; i < ARRAY_SIZE(lo->attached); i++)
                if (lo->attached[i].name[0] && !strcmp(lo->attached[i].name, name))
                        attached_forget(lo, i);
        for (size_t i = 0; fdset >= 0 && i < ARRAY_SIZE(lo->attached); i++)
                if (!lo->attached[i].name[0]) {
                        snprintf(lo->attached[i].name, sizeof(lo->attached[i].name), "%s", name);
                        lo->attached[i].fdset = fdset;
                        lo->attached[i].dirfd = dirfd;
                        return 0;
                }
        if (dirfd >= 0)
                close(dirfd);
        return fdset < 0 ? 0 : -ENOSPC;
}

int liveops_new(const liveops_host *host, liveops **out)
{
        liveops *lo = calloc(1, sizeof(*lo));
        if (!lo)
                return -ENOMEM;
        lo->h = *host;
        *out = lo;
        return 0;
}

const liveops_host *liveops_host_of(liveops *lo)
{
        return &lo->h;
}

static qmp *lo_qmp(liveops *lo)
{
        return lo->h.qmp(lo->h.ctx);
}

static void rearm(liveops *lo);

static qmp *seq_qmp(void *ctx)
{
        return lo_qmp(ctx);
}

static void seq_rearm(void *ctx)
{
        rearm(ctx);
}

/* The loop's side of a QMP sequence run for this liveops (qmp-seq.h). */
static lo_seq_host seq_host(liveops *lo)
{
        return (lo_seq_host){.loop = lo->h.loop, .qmp = seq_qmp, .rearm = seq_rearm, .ctx = lo};
}

lo_seq_host liveops_seq_host(liveops *lo)
{
        return seq_host(lo);
}

void liveops_set_busy(liveops *lo, const char *what, void (*cancel)(void *data), void *data)
{
        lo->busy.what = what;
        lo->busy.cancel = what ? cancel : NULL;
        lo->busy.data = what ? data : NULL;
}

static void publish(liveops *lo)
{
        lo->h.publish(lo->h.ctx);
}

static void rearm(liveops *lo)
{
        lo->h.qmp_rearm(lo->h.ctx);
}

/* Copies the migration state into the status file (and so the Pod annotation): on start, on a mode
 * change and at the end, not on every tick. */
static void publish_state(liveops *lo)
{
        status_set_json(&lo->h.st->migration_state, migration_state_to_json(&lo->mig.st));
        publish(lo);
}

int liveops_vm_usable(liveops *lo, enum phase phase, kv_error *err)
{
        bool stopping = lo->h.stopping(lo->h.ctx);
        if (lo->snap)
                return kv_error_set(err, EBUSY, "a snapshot operation is running");
        if (lo->op)
                return kv_error_set(err, EBUSY, "%s is running", lo->op->verb);
        if (lo->busy.what)
                return kv_error_set(err, EBUSY, "%s is running", lo->busy.what);
        if (lo->mig.starting)
                return kv_error_set(err, EBUSY, "a migration is starting");
        int r = status_require_phase(lo->h.st, phase, stopping, err);
        if (r == 0 && !lo_qmp(lo))
                return kv_error_set(err, EBUSY, "the VM's QMP connection is gone");
        return r;
}

liveops *liveops_of(ctl_request *req)
{
        return req->s->liveops;
}

static bool vm_ready(ctl_request *req)
{
        kv_error err = {0};
        if (liveops_vm_usable(liveops_of(req), PHASE_RUNNING, &err) == 0)
                return true;
        ctl_reply_error(req, "%s", err.msg);
        return false;
}

/* snapshot-list: one query-block, answered from its reply callback (libqmp calls it on a reply, a timeout or
 * QEMU's disconnect), so the loop never waits for QEMU here either. */
static void on_snapshot_list(qmp *q, const cJSON *ret, const kv_error *err, void *userdata)
{
        ctl_request *req = userdata;
        if (err) {
                ctl_reply_error(req, "snapshot-list: %s", err->msg);
                return;
        }
        cJSON *result = cJSON_CreateObject();
        cJSON_AddItemToObject(result, "snapshots", snapshot_list_from(ret));
        ctl_reply_ok(req, result);
}

int liveops_ctl_snapshot_list(ctl_request *req)
{
        if (!vm_ready(req))
                return 0;
        liveops *lo = liveops_of(req);
        kv_error err = {0};
        if (qmp_send(lo_qmp(lo), "query-block", NULL, -1, 10000, on_snapshot_list, req, &err) < 0) {
                ctl_reply_error(req, "snapshot-list: %s", err.msg);
                return 0;
        }
        rearm(lo);
        return 0;
}

/* ---- hot-plug, unplug, set-cpus, set-memory: hotplug.c's step functions run on the loop ----------- */

static void hp_run_free(hp_run *o)
{
        lo_seq_abort(&o->seq);
        hp_op_free(&o->op);
        if (o->lo->op == o)
                o->lo->op = NULL;
        free(o);
}

static void hp_run_done(lo_seq *s, int r, const kv_error *err, void *data)
{
        hp_run *o = data;
        ctl_request *req = TAKE_PTR(o->req);
        if (r < 0) {
                log_warning("%s failed: %s", o->verb, err->msg);
                ctl_reply_error(req, "%s", err->msg);
        } else {
                log_info("%s done", o->verb);
                ctl_reply_ok(req, NULL);
        }
        hp_run_free(o);
}

/* The operation runs on the loop; the client is answered when it ended (the guest's part included). */
static int hp_start(ctl_request *req, ctl_verb v)
{
        if (!vm_ready(req))
                return 0;
        liveops *lo = liveops_of(req);
        hp_run *o = calloc(1, sizeof(*o));
        if (!o) {
                ctl_reply_error(req, "out of memory");
                return 0;
        }
        *o = (hp_run){.lo = lo, .req = req, .verb = ctl_verb_name(v)};
        kv_error err = {0};
        if (liveops_hp_op(o->verb, req->args, &o->op, &err) < 0) {
                ctl_reply_error(req, "%s", err.msg);
                hp_op_free(&o->op);
                free(o);
                return 0;
        }
        lo->op = o;
        lo_seq_host sh = seq_host(lo);
        lo_seq_start(&o->seq, &sh, hp_step, &o->op, hp_run_done, o);
        return 0;
}

#define HP_HANDLER(fn, verb)                                                                                 \
        int fn(ctl_request *req)                                                                             \
        {                                                                                                    \
                return hp_start(req, verb);                                                                  \
        }

HP_HANDLER(liveops_ctl_hotplug_disk, CTL_VERB_HOTPLUG_DISK)
HP_HANDLER(liveops_ctl_hotplug_nic, CTL_VERB_HOTPLUG_NIC)
HP_HANDLER(liveops_ctl_unplug_disk, CTL_VERB_UNPLUG_DISK)
HP_HANDLER(liveops_ctl_unplug_nic, CTL_VERB_UNPLUG_NIC)
HP_HANDLER(liveops_ctl_set_cpus, CTL_VERB_SET_CPUS)
HP_HANDLER(liveops_ctl_set_memory, CTL_VERB_SET_MEMORY)

/* ---- snapshots with an id (docs/cluster-snapshots.md) ------------------------------------------ */

#define SNAPSHOT_ID_MAX 128
/* The status document goes to the reporter in one 64 KiB message: the newest this many are listed. */
#define SNAPSHOTS_LISTED_MAX 128
#define SNAPSHOT_MESSAGE_MAX 512

/* snapshot-list's {name, date (s), vmStateSize, disks} as the status' {tag, creationTime, vmStateSize}. */
static cJSON *snapshots_for_status(const cJSON *list)
{
        cJSON *out = cJSON_CreateArray();
        int skip = cJSON_GetArraySize(list) - SNAPSHOTS_LISTED_MAX;
        const cJSON *e;
        cJSON_ArrayForEach(e, list)
        {
                if (skip-- > 0)
                        continue;
                const cJSON *date = cJSON_GetObjectItem(e, "date"),
                            *size = cJSON_GetObjectItem(e, "vmStateSize");
                char when[40] = "";
                if (cJSON_IsNumber(date) && date->valuedouble >= 0 && date->valuedouble < 1e12)
                        rfc3339_at((time_t)date->valuedouble, when, sizeof(when));
                cJSON *o = cJSON_CreateObject();
                cJSON_AddStringToObject(o, "tag", cJSON_GetStringValue(cJSON_GetObjectItem(e, "name")));
                cJSON_AddStringToObject(o, "creationTime", when);
                cJSON_AddNumberToObject(o, "vmStateSize", cJSON_IsNumber(size) ? size->valuedouble : 0);
                cJSON_AddItemToArray(out, o);
        }
        return out;
}

static const cJSON *recorded_operation(const status *st, const char *id)
{
        const cJSON *e;
        cJSON_ArrayForEach(e, st->snapshot_operations)
        {
                if (!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(e, "id")), id))
                        return e;
        }
        return NULL;
}

static cJSON *record_operation(status *st, const char *id, const char *op, const char *tag,
                               const kv_error *err)
{
        char now[40];
        rfc3339_now(now, sizeof(now));
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "id", id);
        cJSON_AddStringToObject(e, "op", op);
        cJSON_AddStringToObject(e, "tag", tag);
        cJSON_AddStringToObject(e, "phase", err ? "Failed" : "Succeeded");
        if (err)
                cJSON_AddStringToObject(e, "message", err->msg);
        cJSON_AddStringToObject(e, "completionTime", now);
        status_append_bounded(&st->snapshot_operations, e, STATUS_MAX_SNAPSHOT_OPS);
        return e;
}

/* The answer for an id that already ran: its recorded outcome, without running it again (the reporter
 * may resend a request after a reconnect; a second save of a tag would fail and hide the first). */
static void reply_recorded(ctl_request *req, const cJSON *e)
{
        const char *id = cJSON_GetStringValue(cJSON_GetObjectItem(e, "id"));
        if (!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(e, "phase")), "Succeeded")) {
                cJSON *result = cJSON_CreateObject();
                cJSON_AddItemToObject(result, "snapshotOperation", cJSON_Duplicate(e, true));
                ctl_reply_ok(req, result);
        } else {
                ctl_reply_error(req, "snapshot operation %s already ran and failed: %s", id,
                                cJSON_GetStringValue(cJSON_GetObjectItem(e, "message")));
        }
}

/* One snapshot-save/-load/-delete in flight. Each step sends one QMP command whose reply callback
 * moves on; `pending` is that command (cancelled if the operation ends otherwise). */
typedef enum {
        SNAP_DEVICES,
        SNAP_ADDING_FD, /* backups: a hot-plugged disk's target into a QEMU fd set (add-fd) */
        SNAP_FREEZING,  /* backups: the guest agent's guest-fsfreeze-freeze */
        SNAP_STARTING,
        SNAP_RUNNING,
        SNAP_QUERYING,
        SNAP_DISMISSING,
        SNAP_LISTING
} snap_step;

struct snap_op {
        liveops *lo;
        ctl_request *req;
        const char *verb, *op; /* "snapshot-save", "save" */
        char *tag, *id;        /* id may be NULL */
        char job[64];
        snap_step step;
        int64_t pending;
        bool failed;
        kv_error err;
        loop_timer poll, deadline;
        /* Backups of raw disks (snapshot_backup_disks): jobs `kv-backup-<i>`, dismissed one by one. */
        cJSON *backups;
        int dismissed;
        int adding;         /* the backup whose target add-fd hands over */
        unsigned agent_cmd; /* the freeze in flight */
        bool thaw;          /* a freeze was sent: thaw after the point in time */
        bool frozen;        /* the guest agent froze the file systems for the point in time */
};

static void snap_free(snap_op *o)
{
        qmp *q = lo_qmp(o->lo);
        if (o->pending > 0 && q)
                qmp_cancel(q, o->pending);
        loop_timer_disarm(o->lo->h.loop, &o->poll);
        loop_timer_disarm(o->lo->h.loop, &o->deadline);
        if (o->agent_cmd && o->lo->h.agent_cancel)
                o->lo->h.agent_cancel(o->lo->h.ctx, o->agent_cmd);
        if (o->lo->snap == o)
                o->lo->snap = NULL;
        cJSON_Delete(o->backups);
        free(o->tag);
        free(o->id);
        free(o);
}

/* The fd sets of hot-plugged disks' targets go (QEMU drops them once its jobs let go of the files). */
static void snap_release_fdsets(snap_op *o)
{
        qmp *q = lo_qmp(o->lo);
        const cJSON *d;
        cJSON_ArrayForEach(d, o->backups)
        {
                const cJSON *set = cJSON_GetObjectItem(d, "fdset");
                kv_error err = {0};
                if (q && cJSON_IsNumber(set) &&
                    qmp_send(q, "remove-fd", jnum(cJSON_CreateObject(), "fdset-id", set->valueint), -1,
                             QMP_QUERY_TIMEOUT_MS, NULL, NULL, &err) < 0)
                        log_warning("remove-fd %d: %s", set->valueint, err.msg);
        }
        if (q)
                rearm(o->lo);
}

/* The end: the outcome into the status (with an id) and the answer to the client. */
static void snap_finish(snap_op *o)
{
        liveops *lo = o->lo;
        kv_error *err = o->failed ? &o->err : NULL;
        if (err) {
                log_warning("%s %s failed: %s", o->verb, o->tag, err->msg);
                kv_error ignored = {0};
                if (o->backups && !strcmp(o->op, "save"))
                        snapshot_backup_remove(o->backups, &ignored); /* no partial copy for a clone Pod */
                if (strlen(err->msg) > SNAPSHOT_MESSAGE_MAX)
                        err->msg[SNAPSHOT_MESSAGE_MAX] = '\0';
        } else {
                log_info("%s %s done%s%s", o->verb, o->tag, o->id ? ", operation " : "", o->id ? o->id : "");
        }
        snap_release_fdsets(o);
        cJSON *e = o->id ? record_operation(lo->h.st, o->id, o->op, o->tag, err) : NULL;
        if (e && o->backups && !err) { /* what the controller copies, and how consistent it is */
                cJSON_AddNumberToObject(e, "backups", cJSON_GetArraySize(o->backups));
                cJSON_AddBoolToObject(e, "guestAgent", o->frozen);
        }
        publish(lo); /* the status file and the reporter: the controller waits for it */
        ctl_request *req = TAKE_PTR(o->req);
        if (err)
                ctl_reply_error(req, "%s", err->msg);
        else {
                cJSON *result = cJSON_CreateObject();
                if (e)
                        cJSON_AddItemToObject(result, "snapshotOperation", cJSON_Duplicate(e, true));
                ctl_reply_ok(req, result);
        }
        snap_free(o);
}

static void snap_fail(snap_op *o, const kv_error *err)
{
        if (o->failed)
                return; /* the first failure is the one reported */
        o->failed = true;
        o->err = *err;
        kv_error_wrap(&o->err, "%s %s", o->verb, o->tag);
}

static void snap_on_reply(qmp *q, const cJSON *ret, const kv_error *err, void *userdata);
static void snap_thaw(snap_op *o);

/* Sends the next step's command (with fd, -1 = none); false (with the failure recorded) when it could not be
 * queued. */
static bool snap_send_fd(snap_op *o, snap_step step, const char *command, cJSON *args, int fd)
{
        kv_error err = {0};
        qmp *q = lo_qmp(o->lo);
        o->step = step;
        /* QEMU answers nothing while it writes the snapshot (the snapshot-save reply itself comes after
         * it): the operation's own deadline bounds these. */
        o->pending = q ? qmp_send(q, command, args, fd, SNAPSHOT_TIMEOUT_MS, snap_on_reply, o, &err)
                       : kv_error_set(&err, ENOTCONN, "QMP is not connected");
        if (!q)
                cJSON_Delete(args);
        if (o->pending < 0) {
                o->pending = 0;
                snap_fail(o, &err);
                return false;
        }
        rearm(o->lo);
        return true;
}

static bool snap_send(snap_op *o, snap_step step, const char *command, cJSON *args)
{
        return snap_send_fd(o, step, command, args, -1);
}

/* After the job (or a failure): what the disks hold now goes into the status, then the end. */
static void snap_conclude(snap_op *o)
{
        snap_thaw(o);
        loop_timer_disarm(o->lo->h.loop, &o->poll);
        loop_timer_disarm(o->lo->h.loop, &o->deadline);
        if (!lo_qmp(o->lo) || !snap_send(o, SNAP_LISTING, "query-block", NULL))
                snap_finish(o);
}

/* The id of job i: the snapshot job, or backup i. */
static const char *snap_job_id(const snap_op *o, int i, char *buf, size_t size)
{
        if (!o->backups)
                return o->job;
        snprintf(buf, size, "%s%d", o->job, i);
        return buf;
}

static int snap_jobs(const snap_op *o)
{
        return o->backups ? cJSON_GetArraySize(o->backups) : 1;
}

static void thaw_logged(const cJSON *ret, const char *why, void *data)
{
        if (ret)
                log_info("guest-fsfreeze-thaw: the guest's file systems are thawed");
        else
                log_warning("guest-fsfreeze-thaw failed: %s", why);
}

/* Right after the point in time, whatever the freeze answered (a timed-out freeze may still have frozen).
 * Never cancelled: the guest must not stay frozen when the operation ends first. */
static void snap_thaw(snap_op *o)
{
        if (o->agent_cmd && o->lo->h.agent_cancel)
                o->lo->h.agent_cancel(o->lo->h.ctx, o->agent_cmd);
        o->agent_cmd = 0;
        if (!o->thaw)
                return;
        o->thaw = false;
        if (o->lo->h.agent_command && !o->lo->h.agent_command(o->lo->h.ctx, "guest-fsfreeze-thaw",
                                                              AGENT_FREEZE_TIMEOUT_MS, thaw_logged, NULL))
                log_warning("guest-fsfreeze-thaw: the guest agent is gone");
}

static void snap_query_job(snap_op *o)
{
        if (o->step == SNAP_RUNNING && !snap_send(o, SNAP_QUERYING, "query-jobs", NULL))
                snap_conclude(o);
}

static void snap_on_poll(loop_timer *t, void *data)
{
        snap_op *o = data;
        loop_timer_arm(o->lo->h.loop, &o->poll, SNAPSHOT_POLL_MS, snap_on_poll, o);
        snap_query_job(o);
}

static void snap_on_deadline(loop_timer *t, void *data)
{
        snap_op *o = data;
        kv_error err = {0};
        kv_error_set(&err, ETIMEDOUT, "job %s still running after %d ms", o->job,
                     o->backups ? BACKUP_TIMEOUT_MS : SNAPSHOT_TIMEOUT_MS);
        snap_fail(o, &err);
        qmp *q = lo_qmp(o->lo);
        for (int i = 0; o->backups && q && i < snap_jobs(o); i++) {
                char id[80];
                kv_error ignored = {0};
                qmp_send(q, "job-cancel", jstr(cJSON_CreateObject(), "id", snap_job_id(o, i, id, sizeof(id))),
                         -1, QMP_QUERY_TIMEOUT_MS, NULL, NULL, &ignored);
        }
        if (o->pending > 0 && q)
                qmp_cancel(q, o->pending);
        o->pending = 0;
        snap_conclude(o);
}

static void snap_arm(snap_op *o, int timeout_ms)
{
        loop_timer_arm(o->lo->h.loop, &o->deadline, timeout_ms, snap_on_deadline, o);
        loop_timer_arm(o->lo->h.loop, &o->poll, SNAPSHOT_POLL_MS, snap_on_poll, o);
}

/* The point in time: every backup job starts in one transaction (the guest frozen when an agent is there). */
static void snap_backup_start(snap_op *o)
{
        if (!snap_send(o, SNAP_STARTING, "transaction", snapshot_backup_transaction(o->backups, o->job))) {
                snap_conclude(o);
                return;
        }
        snap_arm(o, BACKUP_TIMEOUT_MS);
}

static void snap_on_frozen(const cJSON *ret, const char *why, void *data)
{
        snap_op *o = data;
        if (!o->agent_cmd)
                return; /* answered before agent_command returned: treated as no agent */
        o->agent_cmd = 0;
        o->frozen = ret != NULL;
        if (ret)
                log_info("guest-fsfreeze-freeze: %d file systems frozen for snapshot %s",
                         cJSON_IsNumber(ret) ? ret->valueint : -1, o->tag);
        else
                log_warning("guest-fsfreeze-freeze failed (%s): snapshot %s is crash-consistent only", why,
                            o->tag);
        snap_backup_start(o);
}

/* The jobs' ids freed, the guest frozen when an agent is there, then the point in time. */
static void snap_backup_prepare(snap_op *o)
{
        snprintf(o->job, sizeof(o->job), "kv-backup-");
        for (int i = 0; i < snap_jobs(o); i++) {
                char id[80];
                kv_error ignored = {0}; /* a concluded job left by a crash would block the id */
                qmp_send(lo_qmp(o->lo), "job-dismiss",
                         jstr(cJSON_CreateObject(), "id", snap_job_id(o, i, id, sizeof(id))), -1,
                         QMP_QUERY_TIMEOUT_MS, NULL, NULL, &ignored);
        }
        o->step = SNAP_FREEZING;
        unsigned h = o->lo->h.agent_command
                         ? o->lo->h.agent_command(o->lo->h.ctx, "guest-fsfreeze-freeze",
                                                  AGENT_FREEZE_TIMEOUT_MS, snap_on_frozen, o)
                         : 0;
        if (h) {
                o->agent_cmd = h;
                o->thaw = true;
                return;
        }
        o->step = SNAP_STARTING;
        snap_backup_start(o);
}

/* The next hot-plugged disk's target into an fd set of its own (QEMU cannot open the directory virt-handler
 * handed over); then the jobs. */
static void snap_add_next_fd(snap_op *o)
{
        kv_error err = {0};
        int fd = snapshot_backup_open(o->backups, &o->adding, &err);
        if (fd == -1) {
                snap_backup_prepare(o);
                return;
        }
        if (fd < 0) {
                snap_fail(o, &err);
                snap_conclude(o);
                return;
        }
        bool sent = snap_send_fd(o, SNAP_ADDING_FD, "add-fd", cJSON_CreateObject(), fd); /* libqmp dups fd */
        close(fd);
        if (!sent)
                snap_conclude(o);
}

static void snap_on_fd_added(snap_op *o, const cJSON *ret)
{
        const cJSON *id = cJSON_GetObjectItem(ret, "fdset-id");
        cJSON *d = cJSON_GetArrayItem(o->backups, o->adding);
        if (!cJSON_IsNumber(id) || !d) {
                kv_error err = {0};
                kv_error_set(&err, EPROTO, "add-fd: no fdset-id in the reply");
                snap_fail(o, &err);
                snap_conclude(o);
                return;
        }
        char target[40];
        snprintf(target, sizeof(target), "/dev/fdset/%d", id->valueint);
        cJSON_AddNumberToObject(d, "fdset", id->valueint);
        cJSON_AddStringToObject(d, "target", target);
        snap_add_next_fd(o);
}

static int attached_dir(void *ctx, int fdset)
{
        return liveops_attached_dir(ctx, fdset);
}

/* A VM with a writable raw disk: save copies every writable raw disk next to it (the clone Pods' source),
 * delete removes those copies. */
static void snap_backups(snap_op *o, const cJSON *blocks)
{
        kv_error err = {0};
        int r = snapshot_backup_disks(blocks, o->tag, attached_dir, o->lo, &o->backups, &err);
        if (r >= 0 && !strcmp(o->op, "delete"))
                r = snapshot_backup_remove(o->backups, &err);
        else if (r >= 0)
                r = snapshot_backup_create(o->backups, &err);
        if (r < 0 || !strcmp(o->op, "delete")) {
                if (r < 0)
                        snap_fail(o, &err);
                snap_conclude(o);
                return;
        }
        snap_add_next_fd(o);
}

static void snap_start_job(snap_op *o, const cJSON *blocks)
{
        kv_error err = {0};
        cJSON *args = NULL;
        if (strcmp(o->op, "load") && snapshot_backup_mode(blocks)) {
                snap_backups(o, blocks);
                return;
        }
        if (snapshot_job_args(blocks, o->verb, o->tag, o->job, &args, &err) < 0) {
                o->failed = true; /* already says "snapshot-save TAG: ..." */
                o->err = err;
                snap_conclude(o);
                return;
        }
        /* A concluded job of ours left by an earlier crash would block the id; its answer does not matter. */
        qmp_send(lo_qmp(o->lo), "job-dismiss", jstr(cJSON_CreateObject(), "id", o->job), -1,
                 QMP_QUERY_TIMEOUT_MS, NULL, NULL, &err);
        if (!snap_send(o, SNAP_STARTING, o->verb, args)) {
                snap_conclude(o);
                return;
        }
        snap_arm(o, SNAPSHOT_TIMEOUT_MS);
}

/* Dismisses job o->dismissed; false when there is none left (or it could not be sent). */
static bool snap_dismiss_next(snap_op *o)
{
        char id[80];
        return o->dismissed < snap_jobs(o) &&
               snap_send(o, SNAP_DISMISSING, "job-dismiss",
                         jstr(cJSON_CreateObject(), "id", snap_job_id(o, o->dismissed++, id, sizeof(id))));
}

static void snap_on_jobs(snap_op *o, const cJSON *jobs)
{
        bool gone = false;
        for (int i = 0; i < snap_jobs(o); i++) {
                char id[80];
                kv_error err = {0};
                int r = lo_job_outcome(jobs, snap_job_id(o, i, id, sizeof(id)), &err);
                if (r == 0) {
                        o->step = SNAP_RUNNING;
                        return;
                }
                if (r < 0)
                        snap_fail(o, &err);
                gone |= r == -ENOENT;
        }
        if (gone || !snap_dismiss_next(o))
                snap_conclude(o);
}

static void snap_on_reply(qmp *q, const cJSON *ret, const kv_error *err, void *userdata)
{
        snap_op *o = userdata;
        o->pending = 0;
        if (err) {
                snap_fail(o, err);
                if (o->step == SNAP_LISTING || o->step == SNAP_DISMISSING || !lo_qmp(o->lo))
                        snap_finish(o);
                else
                        snap_conclude(o);
                return;
        }
        switch (o->step) {
        case SNAP_DEVICES:
                snap_start_job(o, ret);
                break;
        case SNAP_STARTING: /* the job runs; its events or the poll timer say when it concluded */
                snap_thaw(o);
                o->step = SNAP_RUNNING;
                break;
        case SNAP_QUERYING:
                snap_on_jobs(o, ret);
                break;
        case SNAP_ADDING_FD:
                snap_on_fd_added(o, ret);
                break;
        case SNAP_DISMISSING:
                if (!snap_dismiss_next(o))
                        snap_conclude(o);
                break;
        case SNAP_LISTING: {
                _cleanup_json_ cJSON *list = snapshot_list_from(ret);
                status_set_json(&o->lo->h.st->snapshots, snapshots_for_status(list));
                snap_finish(o);
                break;
        }
        case SNAP_RUNNING:
        case SNAP_FREEZING:
                break;
        }
}

/* snapshot-save/-load/-delete: the job, then the status' snapshots; with args.id the outcome also lands in
 * snapshotOperations (every outcome, so the controller waiting for that id always gets an answer). The
 * client is answered when the job has ended; the loop serves everything else meanwhile. */
static int snapshot_operation(ctl_request *req, const char *verb, const char *op)
{
        liveops *lo = liveops_of(req);
        const cJSON *idj = cJSON_GetObjectItem(req->args, "id");
        if (idj &&
            (!cJSON_IsString(idj) || !idj->valuestring[0] || strlen(idj->valuestring) > SNAPSHOT_ID_MAX)) {
                ctl_reply_error(req, "%s: args.id must be a non-empty string of at most %d bytes", verb,
                                SNAPSHOT_ID_MAX);
                return 0;
        }
        const char *id = idj ? idj->valuestring : NULL;
        const cJSON *done = id ? recorded_operation(lo->h.st, id) : NULL;
        if (done) {
                reply_recorded(req, done);
                return 0;
        }
        const cJSON *tagj = cJSON_GetObjectItem(req->args, "tag");
        snap_op *o = calloc(1, sizeof(*o));
        if (!o) {
                ctl_reply_error(req, "out of memory");
                return 0;
        }
        *o = (snap_op){.lo = lo, .req = req, .verb = verb, .op = op};
        o->tag = strdup(cJSON_IsString(tagj) ? tagj->valuestring : "");
        o->id = id ? strdup(id) : NULL;
        snprintf(o->job, sizeof(o->job), "kv-%s", verb);
        kv_error err = {0};
        if (!o->tag || (id && !o->id))
                kv_error_set(&err, ENOMEM, "out of memory");
        else
                liveops_vm_usable(lo, PHASE_RUNNING, &err);
        if (err.code) {
                o->failed = true;
                o->err = err;
                snap_finish(o);
                return 0;
        }
        lo->snap = o;
        log_info("%s %s started", verb, o->tag);
        if (!snap_send(o, SNAP_DEVICES, "query-block", NULL))
                snap_finish(o);
        return 0;
}

#define SNAPSHOT_HANDLER(fn, verb, op)                                                                       \
        int fn(ctl_request *req)                                                                             \
        {                                                                                                    \
                return snapshot_operation(req, ctl_verb_name(verb), op);                                     \
        }

SNAPSHOT_HANDLER(liveops_ctl_snapshot_save, CTL_VERB_SNAPSHOT_SAVE, "save")
SNAPSHOT_HANDLER(liveops_ctl_snapshot_load, CTL_VERB_SNAPSHOT_LOAD, "load")
SNAPSHOT_HANDLER(liveops_ctl_snapshot_delete, CTL_VERB_SNAPSHOT_DELETE, "delete")

static void ignore_reply(qmp *q, const cJSON *ret, const kv_error *err, void *userdata)
{
}

static void arm_tick(liveops *lo, int64_t delay_ms);

/* QEMU calls a migration completed once its last bytes sit in the kernel's send buffers. Quitting then
 * can lose them when the Pod's network goes with its last process, and the target waits for the end of
 * the stream forever (seen in e2e-migration: the main channel still ESTABLISHED on the target, every
 * multifd channel closed). So the source quits once the target acknowledged every byte on the migration
 * port, or after MIGRATION_DRAIN_MAX_MS. */
static void on_drain_tick(loop_timer *t, void *data)
{
        liveops *lo = data;
        uint64_t unacked = tcp_unacked_to_port(tcp_uri_port(lo->mig.st.target_address));
        if (unacked && kv_now_ms() < lo->mig.drain_deadline) {
                loop_timer_arm(lo->h.loop, t, MIGRATION_DRAIN_TICK_MS, on_drain_tick, lo);
                return;
        }
        if (unacked)
                log_warning("migration: %llu bytes to the target still unacknowledged after %d ms; quitting",
                            (unsigned long long)unacked, MIGRATION_DRAIN_MAX_MS);
        kv_error err = {0};
        qmp_send(lo_qmp(lo), "quit", NULL, -1, 10000, ignore_reply, NULL, &err);
        rearm(lo);
}

/* Completed: the guest runs on the target now; quitting the source makes the launcher end Succeeded. */
static void migration_finished(liveops *lo)
{
        lo->mig.active = false;
        publish_state(lo);
        if (!lo->mig.st.completed) {
                log_warning("migration failed, the VM keeps running here: %s", lo->mig.st.failure_reason);
                return;
        }
        log_info("migration completed to %s: quitting the source QEMU once the target has every byte "
                 "(Succeeded, Migrated)",
                 lo->mig.st.target_address);
        /* KubeVirt's source domain ends "Migrated": not a power-off, not a stop request. */
        lo->h.set_end_reason(lo->h.ctx, "Migrated");
        lo->mig.drain_deadline = kv_now_ms() + MIGRATION_DRAIN_MAX_MS;
        loop_timer_arm(lo->h.loop, &lo->mig.tick, 0, on_drain_tick, lo);
}

/* One poll done (migration.c's step: query-migrate, then its follow-ups: cancel on a timeout, the switch to
 * post-copy, the mirrors' clean-up at the end), all on the loop. */
static void on_polled(lo_seq *s, int r, const kv_error *err, void *data)
{
        liveops *lo = data;
        if (!lo->mig.active)
                return;
        if (r < 0 && !lo_qmp(lo)) { /* QMP gone: QEMU exited; the supervisor reports that */
                lo->mig.active = false;
                return;
        }
        if (r < 0)
                log_warning("migration: %s", err->msg);
        if (r == 0 && lo->mig.st.postcopy_started != lo->mig.was_postcopy)
                publish_state(lo);
        if (r == 0 && lo->mig.poll.finished)
                migration_finished(lo);
        else
                arm_tick(lo, MIGRATION_TICK_MS);
}

static void on_tick(loop_timer *t, void *data)
{
        liveops *lo = data;
        if (!lo->mig.active || lo_seq_running(&lo->mig.seq))
                return;
        if (!lo_qmp(lo)) {
                lo->mig.active = false;
                return;
        }
        lo->mig.was_postcopy = lo->mig.st.postcopy_started;
        migration_poll_init(&lo->mig.poll, &lo->mig.st);
        lo_seq_host sh = seq_host(lo);
        lo_seq_start(&lo->mig.seq, &sh, migration_poll_step, &lo->mig.poll, on_polled, lo);
}

static void arm_tick(liveops *lo, int64_t delay_ms)
{
        loop_timer_arm(lo->h.loop, &lo->mig.tick, delay_ms, on_tick, lo);
}

static cJSON *state_result(liveops *lo)
{
        cJSON *result = cJSON_CreateObject();
        cJSON_AddItemToObject(result, "migrationState", migration_state_to_json(&lo->mig.st));
        return result;
}

/* The start's mirrors are stopped after its failure: the migration failed, the VM runs on here. */
static void on_migration_start_cleaned(lo_seq *s, int r, const kv_error *err, void *data)
{
        liveops *lo = data;
        lo->mig.starting = false;
        migration_start_failed(&lo->mig.st, &lo->mig.start_err);
        log_warning("migration: %s", lo->mig.start_err.msg);
        publish_state(lo);
        ctl_request *req = TAKE_PTR(lo->mig.start_req);
        if (req)
                ctl_reply_error(req, "%s", lo->mig.start_err.msg);
}

static void on_migration_started(lo_seq *s, int r, const kv_error *err, void *data)
{
        liveops *lo = data;
        migration_start_seq_free(&lo->mig.start);
        if (r < 0) {
                lo->mig.start_err = *err;
                migration_stop_init(&lo->mig.stop, &lo->mig.st);
                lo_seq_host sh = seq_host(lo);
                lo_seq_start(&lo->mig.seq, &sh, migration_stop_step, &lo->mig.stop,
                             on_migration_start_cleaned, lo);
                return;
        }
        lo->mig.starting = false;
        lo->mig.active = true;
        log_info("migration to %s: started", lo->mig.st.target_address);
        arm_tick(lo, MIGRATION_TICK_MS);
        publish_state(lo);
        ctl_request *req = TAKE_PTR(lo->mig.start_req);
        if (req)
                ctl_reply_ok(req, state_result(lo));
}

int liveops_ctl_migrate(ctl_request *req)
{
        liveops *lo = liveops_of(req);
        if (!vm_ready(req))
                return 0;
        if (lo->mig.active) {
                ctl_reply_error(req, "a migration is already running");
                return 0;
        }
        const cJSON *uri = cJSON_GetObjectItem(req->args, "uri"),
                    *port = cJSON_GetObjectItem(req->args, "nbdPort");
        const cJSON *host = cJSON_GetObjectItem(req->args, "nbdHost");
        const cJSON *uid = cJSON_GetObjectItem(req->args, "migrationUid");
        if (!cJSON_IsString(uri)) {
                ctl_reply_error(req, "migrate: args.uri (\"tcp:HOST:PORT\" or \"unix:PATH\") is required");
                return 0;
        }
        if (uid && (!cJSON_IsString(uid) || strlen(uid->valuestring) >= sizeof(lo->mig.st.uid))) {
                ctl_reply_error(req, "migrate: args.migrationUid must be a string under %zu bytes",
                                sizeof(lo->mig.st.uid));
                return 0;
        }
        /* The reporter may send the same VMIM twice (reconnects, restarts): one run per migrationUid. */
        if (uid && lo->mig.have && !strcmp(lo->mig.st.uid, uid->valuestring)) {
                ctl_reply_error(req, "migration %s already ran here (%s)", uid->valuestring,
                                lo->mig.st.completed ? "completed" : "failed");
                return 0;
        }
        migration_config c;
        kv_error cerr = {0};
        if (liveops_parse_migration_config(cJSON_GetObjectItem(req->args, "config"), "migrate: args.config",
                                           &c, &cerr) < 0) {
                ctl_reply_error(req, "%s", cerr.msg);
                return 0;
        }
        migration_state_free(&lo->mig.st);
        lo->mig.have = true;
        migration_start_init(&lo->mig.start, &c, uri->valuestring,
                             cJSON_IsString(host) ? host->valuestring : NULL,
                             cJSON_IsNumber(port) ? port->valueint : 0, &lo->mig.st);
        if (uid)
                snprintf(lo->mig.st.uid, sizeof(lo->mig.st.uid), "%s", uid->valuestring);
        lo->mig.starting = true;
        lo->mig.start_req = req;
        log_info("migration to %s: starting", uri->valuestring);
        lo_seq_host sh = seq_host(lo);
        lo_seq_start(&lo->mig.seq, &sh, migration_start_step, &lo->mig.start, on_migration_started, lo);
        return 0;
}

static void on_cancelled(lo_seq *s, int r, const kv_error *err, void *data)
{
        liveops *lo = data;
        ctl_request *req = TAKE_PTR(lo->mig.cancel_req);
        if (r < 0)
                ctl_reply_error(req, "%s", err->msg);
        else
                ctl_reply_ok(req, state_result(lo));
}

int liveops_ctl_migrate_cancel(ctl_request *req)
{
        liveops *lo = liveops_of(req);
        if (lo->mig.starting) {
                ctl_reply_error(req, "the migration is still starting (its disk mirrors are being copied)");
                return 0;
        }
        if (!lo->mig.active) {
                ctl_reply_error(req, "no migration is running");
                return 0;
        }
        kv_error err = {0};
        if (lo->mig.cancel_req || migration_cancel_check(&lo->mig.st, &err) < 0) {
                ctl_reply_error(req, "%s", lo->mig.cancel_req ? "a cancel is already running" : err.msg);
                return 0;
        }
        lo->mig.cancel = (migration_cancel_seq){.st = &lo->mig.st};
        lo->mig.cancel_req = req;
        lo_seq_host sh = seq_host(lo);
        lo_seq_start(&lo->mig.cancel_seq, &sh, migration_cancel_step, &lo->mig.cancel, on_cancelled, lo);
        return 0;
}

int liveops_ctl_migrate_status(ctl_request *req)
{
        liveops *lo = liveops_of(req);
        if (!lo->mig.have)
                ctl_reply_error(req, "no migration was started by this launcher");
        else
                ctl_reply_ok(req, state_result(lo));
        return 0;
}

/* ---- target side ------------------------------------------------------------------------------ */

static bool target_ready(ctl_request *req, bool prepared)
{
        liveops *lo = liveops_of(req);
        kv_error err = {0};
        if (!lo->h.incoming)
                ctl_reply_error(req, "this launcher was not started as a migration target (--incoming)");
        else if (liveops_vm_usable(lo, PHASE_SCHEDULED, &err) < 0)
                ctl_reply_error(req, "the migration target: %s", err.msg);
        else if (lo->mig.target_prepared != prepared)
                ctl_reply_error(req, prepared ? "migration-target was not run yet"
                                              : "the target already waits for a migration");
        else if (!prepared && liveops_deferred_volume(lo, false)) /* the stream would need its device */
                ctl_reply_error(req,
                                "hot-plugged volume %s is not plugged on this target yet (hotplug-attach)",
                                liveops_deferred_volume(lo, false));
        else
                return true;
        return false;
}

/* The target's state once prepared (r >= 0) or not (err): the phase stays Scheduled either way. */
static int target_prepared(liveops *lo, const migration_config *c, const char *uri, int r,
                           const kv_error *err)
{
        lo->mig.have = true;
        lo->mig.st = (migration_state){0};
        migration_params_compute(c, &lo->mig.st.params); /* what was set */
        snprintf(lo->mig.st.mode, sizeof(lo->mig.st.mode), "PreCopy");
        snprintf(lo->mig.st.target_address, sizeof(lo->mig.st.target_address), "%s", uri);
        if (gethostname(lo->mig.st.target_node, sizeof(lo->mig.st.target_node) - 1) < 0)
                lo->mig.st.target_node[0] = '\0';
        rfc3339_now(lo->mig.st.start, sizeof(lo->mig.st.start));
        snprintf(lo->mig.st.qemu_status, sizeof(lo->mig.st.qemu_status), "%s", r < 0 ? "failed" : "setup");
        if (r < 0) {
                lo->mig.st.failed = true;
                snprintf(lo->mig.st.failure_reason, sizeof(lo->mig.st.failure_reason), "%s", err->msg);
                rfc3339_now(lo->mig.st.end, sizeof(lo->mig.st.end));
        }
        lo->mig.target_prepared = r >= 0;
        publish_state(lo);
        return r;
}

/* migration-target's steps ran on the loop. */
static void on_target_prepared(lo_seq *s, int r, const kv_error *err, void *data)
{
        liveops *lo = data;
        lo->mig.starting = false;
        target_prepared(lo, &lo->mig.target_config, lo->mig.prepare.uri, r, err);
        migration_prepare_seq_free(&lo->mig.prepare);
        ctl_request *req = TAKE_PTR(lo->mig.start_req);
        if (!req) { /* started by the launcher itself, after the hot-plugged volumes: as at boot */
                if (r < 0)
                        lo->h.fail(lo->h.ctx, err->msg);
        } else if (r < 0)
                ctl_reply_error(req, "%s", err->msg);
        else
                ctl_reply_ok(req, state_result(lo));
}

/* migration-target's steps on the loop, answered to req (NULL: none). */
static void target_prepare_start(liveops *lo, const migration_config *c, const char *uri,
                                 const char *nbd_host, int nbd_port, ctl_request *req)
{
        lo->mig.target_config = *c;
        migration_prepare_init(&lo->mig.prepare, c, uri, nbd_host, nbd_port);
        lo->mig.starting = true;
        lo->mig.start_req = req;
        lo_seq_host sh = seq_host(lo);
        lo_seq_start(&lo->mig.seq, &sh, migration_prepare_step, &lo->mig.prepare, on_target_prepared, lo);
}

/* The migration fails on this end: the target reports it and ends Failed with why (the VMIM's reason). */
static void target_give_up(liveops *lo, const char *why)
{
        kv_error err = {0};
        kv_error_set(&err, ETIMEDOUT, "%s", why);
        lo->mig.waiting_attach = false;
        loop_timer_disarm(lo->h.loop, &lo->mig.attach_deadline);
        target_prepared(lo, &lo->mig.target_config, lo->h.incoming, -ETIMEDOUT, &err);
        log_error("migration target: %s", why);
        lo->h.fail(lo->h.ctx, why);
}

static void on_attach_deadline(loop_timer *t, void *data)
{
        liveops *lo = data;
        char why[512];
        snprintf(why, sizeof(why),
                 "hot-plugged volume %s was not attached to the migration target within %d s (its attachment "
                 "Pod on the target's node, virt-handler there)",
                 liveops_deferred_volume(lo, true) ?: "?", TARGET_ATTACH_TIMEOUT_MS / 1000);
        target_give_up(lo, why);
}

static void on_deferred_plugged(liveops *lo, int r, const kv_error *err)
{
        if (r == -ECANCELED) /* the launcher ends anyway */
                return;
        if (r < 0) {
                char why[700];
                snprintf(why, sizeof(why), "the migration target could not plug the hot-plugged volumes: %s",
                         err->msg);
                target_give_up(lo, why);
                return;
        }
        log_info("migration target: the hot-plugged volumes are plugged; taking the incoming migration");
        target_prepare_start(lo, &lo->mig.target_config, lo->h.incoming, lo->h.incoming_nbd_host,
                             lo->h.incoming_nbd_port, NULL);
}

void liveops_target_attached(liveops *lo)
{
        if (!lo->mig.waiting_attach || liveops_deferred_volume(lo, true))
                return;
        lo->mig.waiting_attach = false;
        loop_timer_disarm(lo->h.loop, &lo->mig.attach_deadline);
        liveops_plug_deferred(lo, on_deferred_plugged);
}

/* QEMU runs without capabilities, so the userfaultfd(2) a post-copy target needs is refused (EPERM) unless
 * the node allows it to unprivileged processes, as KubeVirt requires of its nodes too. QEMU's own error
 * ("Postcopy is not supported") does not say what to change. */
static int check_userfaultfd(kv_error *err)
{
        FILE *f = fopen("/proc/sys/vm/unprivileged_userfaultfd", "re");
        int v = -1;
        if (f && fscanf(f, "%d", &v) != 1)
                v = -1;
        if (f)
                fclose(f);
        if (v == 0)
                return kv_error_set(
                    err, EPERM,
                    "post-copy (allowPostCopy) needs vm.unprivileged_userfaultfd=1 on this node: "
                    "the target QEMU runs without capabilities and cannot use userfaultfd");
        return 0; /* 1, or a kernel without the sysctl (older than 5.11 allowed it) */
}

int liveops_target_boot(liveops *lo, kv_error *err)
{
        if (!strcmp(lo->h.incoming, "defer"))
                return 0;
        migration_config c;
        cJSON *config = lo->h.incoming_config ? cJSON_Parse(lo->h.incoming_config) : NULL;
        int r = liveops_parse_migration_config(config, "--incoming-config", &c, err); /* main checked it */
        cJSON_Delete(config);
        if (r >= 0 && c.allow_post_copy)
                r = check_userfaultfd(err);
        if (r < 0)
                return r;
        log_info("migration target: capabilities from %s (post-copy %s)",
                 lo->h.incoming_config ? "--incoming-config" : "the default configuration",
                 c.allow_post_copy ? "allowed" : "off");
        if (liveops_deferred_volume(lo, false)) { /* QEMU refuses a stream with a device it lacks */
                log_info(
                    "migration target: waiting for virt-handler to attach the hot-plugged volumes (%s ...) "
                    "before taking the incoming migration",
                    liveops_deferred_volume(lo, false));
                lo->mig.target_config = c;
                lo->mig.waiting_attach = true;
                loop_timer_arm(lo->h.loop, &lo->mig.attach_deadline, TARGET_ATTACH_TIMEOUT_MS,
                               on_attach_deadline, lo);
                return 0;
        }
        /* Start-up, before the loop serves anyone: the same steps, run blocking. */
        r = migration_target_prepare(lo_qmp(lo), &c, lo->h.incoming, lo->h.incoming_nbd_host,
                                     lo->h.incoming_nbd_port, err);
        rearm(lo);
        return target_prepared(lo, &c, lo->h.incoming, r, err);
}

int liveops_ctl_migration_target(ctl_request *req)
{
        liveops *lo = liveops_of(req);
        if (!target_ready(req, false))
                return 0;
        const cJSON *uri = cJSON_GetObjectItem(req->args, "uri"),
                    *port = cJSON_GetObjectItem(req->args, "nbdPort");
        const cJSON *host = cJSON_GetObjectItem(req->args, "nbdHost");
        if (!cJSON_IsString(uri)) {
                ctl_reply_error(
                    req, "migration-target: args.uri (\"tcp:HOST:PORT\" or \"unix:PATH\") is required");
                return 0;
        }
        migration_config c;
        kv_error err = {0};
        if (liveops_parse_migration_config(cJSON_GetObjectItem(req->args, "config"),
                                           "migration-target: args.config", &c, &err) < 0) {
                ctl_reply_error(req, "%s", err.msg);
                return 0;
        }
        target_prepare_start(lo, &c, uri->valuestring, cJSON_IsString(host) ? host->valuestring : NULL,
                             cJSON_IsNumber(port) ? port->valueint : 0, req);
        return 0;
}

/* Answers a waiting migration-target-finish: ok (error NULL) with the state, or the error. */
static void target_finish_answer(liveops *lo, const char *error)
{
        ctl_request *req = TAKE_PTR(lo->mig.finish_req);
        loop_timer_disarm(lo->h.loop, &lo->mig.finish_deadline);
        if (!req)
                return;
        if (error)
                ctl_reply_error(req, "%s", error);
        else
                ctl_reply_ok(req, state_result(lo));
}

static void on_finish_deadline(loop_timer *t, void *data)
{
        liveops *lo = data;
        target_finish_answer(lo, "the incoming migration did not complete in time (migration-target-finish "
                                 "timeoutMs)");
}

/* The guest runs here now: the phase becomes Running (KubeVirt: the VMI's new node). */
static void target_running(liveops *lo)
{
        status *st = lo->h.st;
        lo->mig.st.completed = true;
        snprintf(lo->mig.st.qemu_status, sizeof(lo->mig.st.qemu_status), "completed");
        rfc3339_now(lo->mig.st.end, sizeof(lo->mig.st.end));
        status_set_phase(st, PHASE_RUNNING, NULL);
        snprintf(st->qemu_status, sizeof(st->qemu_status), "running");
        status_set_condition(st, COND_READY, true, true, "", "");
        status_set_condition(st, COND_PAUSED, false, false, NULL, NULL);
        publish_state(lo);
        log_info("incoming migration completed: guest running");
        target_finish_answer(lo, NULL);
}

static void arm_release_tick(liveops *lo);

static void on_released(lo_seq *s, int r, const kv_error *err, void *data)
{
        liveops *lo = data;
        if (!lo->mig.target_releasing)
                return;
        if (r >= 0 && lo->mig.release.left > 0) {
                arm_release_tick(lo);
                return;
        }
        lo->mig.target_releasing = false;
        if (r < 0) {
                log_error("migration target: %s", err->msg);
                target_finish_answer(lo, err->msg);
                lo->h.request_stop(lo->h.ctx, "the migrated guest could not be resumed");
                return;
        }
        lo->mig.target_done = true;
        target_running(lo);
}

/* One step of the target's own finish: the exports go once the source's mirrors let go, then `cont`. */
static void on_release_tick(loop_timer *t, void *data)
{
        liveops *lo = data;
        if (!lo->mig.target_releasing || !lo_qmp(lo) || lo_seq_running(&lo->mig.seq))
                return; /* finished by migration-target-finish meanwhile, or QEMU is gone */
        bool force = kv_now_ms() >= lo->mig.release_deadline;
        if (force)
                log_warning("migration target: the source still used its NBD exports after %d ms; dropped",
                            TARGET_RELEASE_TIMEOUT_MS);
        migration_release_init(&lo->mig.release, force, true, true);
        lo_seq_host sh = seq_host(lo);
        lo_seq_start(&lo->mig.seq, &sh, migration_release_step, &lo->mig.release, on_released, lo);
}

static void arm_release_tick(liveops *lo)
{
        loop_timer_arm(lo->h.loop, &lo->mig.tick, TARGET_RELEASE_TICK_MS, on_release_tick, lo);
}

static void on_migration_event(liveops *lo, const cJSON *data)
{
        const char *state = cJSON_GetStringValue(cJSON_GetObjectItem(data, "status"));
        if (lo->mig.active && !lo_seq_running(&lo->mig.seq)) /* source: look now, not at the next tick */
                arm_tick(lo, 0);
        if (!lo->h.incoming || !lo->mig.target_prepared || lo->mig.target_done || lo->mig.target_releasing ||
            !state)
                return;
        if (!strcmp(state, "postcopy-active") && strcmp(lo->mig.st.mode, "PostCopy")) {
                log_info("incoming migration switched to post-copy");
                snprintf(lo->mig.st.mode, sizeof(lo->mig.st.mode), "PostCopy");
                publish_state(lo); /* no QMP command: only the status file and the reporter */
                return;
        }
        if (!strcmp(state, "failed") || !strcmp(state, "cancelled")) {
                char why[64];
                snprintf(why, sizeof(why), "incoming migration %s", state);
                target_finish_answer(lo, why);
                return;
        }
        if (strcmp(state, "completed"))
                return;
        /* Called from inside libqmp's event dispatch: only a timer here, the QMP commands run from it. */
        log_info("incoming migration completed: finishing the target");
        lo->mig.target_releasing = true;
        lo->mig.release_deadline = kv_now_ms() + TARGET_RELEASE_TIMEOUT_MS;
        arm_release_tick(lo);
}

static void on_job_event(liveops *lo, const cJSON *data)
{
        const char *id = cJSON_GetStringValue(cJSON_GetObjectItem(data, "id")),
                   *st = cJSON_GetStringValue(cJSON_GetObjectItem(data, "status"));
        if (lo->snap && id && st && !strcmp(id, lo->snap->job) && !strcmp(st, "concluded"))
                snap_query_job(lo->snap);
}

void liveops_on_qmp_event(liveops *lo, const char *name, const cJSON *data)
{
        if (!strcmp(name, "MIGRATION"))
                on_migration_event(lo, data);
        else if (!strcmp(name, "JOB_STATUS_CHANGE"))
                on_job_event(lo, data);
}

void liveops_free(liveops *lo)
{
        if (!lo)
                return;
        if (lo->busy.cancel)
                lo->busy.cancel(lo->busy.data);
        if (lo->op) {
                kv_error err = {0};
                kv_error_set(&err, ECANCELED, "the launcher ended");
                hp_run_done(&lo->op->seq, -ECANCELED, &err, lo->op);
        }
        if (lo->snap) { /* normally already ended by the QMP connection's end */
                kv_error err = {0};
                kv_error_set(&err, ECANCELED, "the launcher ended");
                snap_fail(lo->snap, &err);
                snap_finish(lo->snap);
        }
        target_finish_answer(lo, "the launcher ended");
        lo_seq_abort(&lo->mig.seq);
        migration_start_seq_free(&lo->mig.start);
        migration_prepare_seq_free(&lo->mig.prepare);
        cJSON_Delete(TAKE_PTR(lo->mig.release.ids));
        ctl_request *start_req = TAKE_PTR(lo->mig.start_req);
        if (start_req)
                ctl_reply_error(start_req, "the launcher ended");
        lo_seq_abort(&lo->mig.cancel_seq);
        ctl_request *cancel_req = TAKE_PTR(lo->mig.cancel_req);
        if (cancel_req)
                ctl_reply_error(cancel_req, "migrate-cancel: the launcher ended");
        loop_timer_disarm(lo->h.loop, &lo->mig.tick);
        loop_timer_disarm(lo->h.loop, &lo->mig.attach_deadline);
        migration_state_free(&lo->mig.st);
        for (size_t i = 0; i < ARRAY_SIZE(lo->attached); i++)
                if (lo->attached[i].name[0])
                        attached_forget(lo, i);
        free(lo);
}

/* Answered when the target finished by itself (on QEMU's MIGRATION completed event, then the release
 * steps), or at args.timeoutMs (default 30 s); the loop goes on meanwhile. */
int liveops_ctl_migration_target_finish(ctl_request *req)
{
        liveops *lo = liveops_of(req);
        if (lo->mig.target_done) { /* finished by itself on the completed event */
                ctl_reply_ok(req, state_result(lo));
                return 0;
        }
        if (!target_ready(req, true))
                return 0;
        if (lo->mig.finish_req) {
                ctl_reply_error(req, "a migration-target-finish is already waiting");
                return 0;
        }
        const cJSON *t = cJSON_GetObjectItem(req->args, "timeoutMs");
        lo->mig.finish_req = req;
        loop_timer_arm(lo->h.loop, &lo->mig.finish_deadline, cJSON_IsNumber(t) ? t->valueint : 30000,
                       on_finish_deadline, lo);
        return 0;
}
