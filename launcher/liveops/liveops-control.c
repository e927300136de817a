/* liveops-control: control-socket handlers over libkvliveops. Hot-plug and snapshot commands run the
 * blocking library calls (bounded by their timeouts, a few seconds at most) on the supervisor's QMP
 * connection; a migration is started, then driven by a libqmp timer (an event waiter that never matches
 * and expires every MIGRATION_TICK_MS, so it fires from the main loop's qmp_handle_timeouts). A target
 * finishes by itself on QEMU's MIGRATION completed event, through the same kind of timer. Snapshot
 * operations may carry an id; their outcome and the snapshots the disks hold go into the status
 * (docs/cluster-snapshots.md). */
#include "liveops-control.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "liveops-command.h"
#include "log.h"
#include "migration.h"
#include "qmp-helpers.h"
#include "snapshot.h"

#define MIGRATION_TICK_MS 200
#define MIGRATION_TICK_EVENT "KVLITE-MIGRATION-TICK" /* QEMU never sends it */
/* Target: how often the NBD exports are retried while the source's mirrors still hold them, and how
 * long before they are dropped anyway (the source normally lets go within one of its ticks). */
#define TARGET_RELEASE_TICK_MS 50
#define TARGET_RELEASE_TIMEOUT_MS 10000

static struct {
        supervisor *s;
        migration_state st;
        bool have, active;
        bool target_prepared; /* this launcher is a target and migrate-incoming was sent */
        bool target_releasing; /* incoming migration completed: waiting for the source's mirrors */
        bool target_done;      /* the guest runs here */
        int64_t release_deadline;
} mig;

/* Copies the migration state into the status file (and so the Pod annotation): on start, on a mode
 * change and at the end, not on every tick. */
static void publish_state(supervisor *s)
{
        status_set_json(&s->st->migration_state, migration_state_to_json(&mig.st));
        supervisor_publish(s);
}

/* 0 when QMP commands may run on the VM, else -EBUSY with why in err. */
static int vm_usable(supervisor *s, kv_error *err)
{
        if (s->qmp && s->st->phase == PHASE_RUNNING && s->stage == STOP_NONE)
                return 0;
        return kv_error_set(err, EBUSY, "the VM is %s%s", phase_name(s->st->phase),
                            s->stage != STOP_NONE ? " and stopping" : "");
}

static bool vm_ready(ctl_request *req)
{
        kv_error err = {0};
        if (vm_usable(req->s, &err) == 0)
                return true;
        ctl_reply_error(req, "%s", err.msg);
        return false;
}

static int run_blocking(ctl_request *req, const char *verb)
{
        if (!vm_ready(req))
                return 0;
        kv_error err = {0};
        cJSON *result = NULL;
        int r = liveops_command(req->s->qmp, verb, req->args, &result, &err);
        supervisor_qmp_rearm(req->s);
        if (r < 0) {
                cJSON_Delete(result);
                log_warning("%s failed: %s", verb, err.msg);
                ctl_reply_error(req, "%s", err.msg);
        } else {
                log_info("%s done", verb);
                ctl_reply_ok(req, result);
        }
        return 0;
}

#define BLOCKING_HANDLER(fn, verb)                                                                           \
        int fn(ctl_request *req)                                                                             \
        {                                                                                                    \
                return run_blocking(req, verb);                                                              \
        }

BLOCKING_HANDLER(liveops_ctl_hotplug_disk, "hotplug-disk")
BLOCKING_HANDLER(liveops_ctl_unplug_disk, "unplug-disk")
BLOCKING_HANDLER(liveops_ctl_hotplug_nic, "hotplug-nic")
BLOCKING_HANDLER(liveops_ctl_unplug_nic, "unplug-nic")
BLOCKING_HANDLER(liveops_ctl_set_cpus, "set-cpus")
BLOCKING_HANDLER(liveops_ctl_set_memory, "set-memory")
BLOCKING_HANDLER(liveops_ctl_snapshot_list, "snapshot-list")

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

/* After every snapshot operation, ok or not: what the disks hold now. */
static void refresh_snapshots(supervisor *s)
{
        kv_error err = {0};
        _cleanup_cjson_ cJSON *list = NULL;
        if (snapshot_list(s->qmp, &list, &err) < 0)
                log_warning("snapshot-list after a snapshot operation: %s", err.msg);
        else
                status_set_json(&s->st->snapshots, snapshots_for_status(list));
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

/* snapshot-save/-load/-delete: the job, then the status' snapshots; with args.id the outcome also lands in
 * snapshotOperations (every outcome, so the controller waiting for that id always gets an answer). */
static int snapshot_operation(ctl_request *req, const char *verb, const char *op)
{
        supervisor *s = req->s;
        const cJSON *idj = cJSON_GetObjectItem(req->args, "id");
        if (idj &&
            (!cJSON_IsString(idj) || !idj->valuestring[0] || strlen(idj->valuestring) > SNAPSHOT_ID_MAX)) {
                ctl_reply_error(req, "%s: args.id must be a non-empty string of at most %d bytes", verb,
                                SNAPSHOT_ID_MAX);
                return 0;
        }
        const char *id = idj ? idj->valuestring : NULL;
        const cJSON *done = id ? recorded_operation(s->st, id) : NULL;
        if (done) {
                reply_recorded(req, done);
                return 0;
        }
        const cJSON *tagj = cJSON_GetObjectItem(req->args, "tag");
        const char *tag = cJSON_IsString(tagj) ? tagj->valuestring : "";
        kv_error err = {0};
        int r = vm_usable(s, &err);
        if (r == 0) {
                _cleanup_cjson_ cJSON *unused = NULL;
                r = liveops_command(s->qmp, verb, req->args, &unused, &err);
                refresh_snapshots(s);
                supervisor_qmp_rearm(s);
        }
        if (r < 0) {
                log_warning("%s %s failed: %s", verb, tag, err.msg);
                if (strlen(err.msg) > SNAPSHOT_MESSAGE_MAX)
                        err.msg[SNAPSHOT_MESSAGE_MAX] = '\0';
        } else {
                log_info("%s %s done%s%s", verb, tag, id ? ", operation " : "", id ? id : "");
        }
        cJSON *e = id ? record_operation(s->st, id, op, tag, r < 0 ? &err : NULL) : NULL;
        supervisor_publish(s); /* the status file and the reporter: the controller waits for it */
        if (r < 0) {
                ctl_reply_error(req, "%s", err.msg);
                return 0;
        }
        cJSON *result = cJSON_CreateObject();
        if (e)
                cJSON_AddItemToObject(result, "snapshotOperation", cJSON_Duplicate(e, true));
        ctl_reply_ok(req, result);
        return 0;
}

#define SNAPSHOT_HANDLER(fn, verb, op)                                                                       \
        int fn(ctl_request *req)                                                                             \
        {                                                                                                    \
                return snapshot_operation(req, verb, op);                                                    \
        }

SNAPSHOT_HANDLER(liveops_ctl_snapshot_save, "snapshot-save", "save")
SNAPSHOT_HANDLER(liveops_ctl_snapshot_load, "snapshot-load", "load")
SNAPSHOT_HANDLER(liveops_ctl_snapshot_delete, "snapshot-delete", "delete")

static void ignore_reply(qmp *q, const cJSON *ret, const kv_error *err, void *userdata)
{
}

static void arm_tick(void);

/* Completed: the guest runs on the target now; quitting the source makes the launcher end Succeeded. */
static void migration_finished(void)
{
        mig.active = false;
        publish_state(mig.s);
        if (!mig.st.completed) {
                log_warning("migration failed, the VM keeps running here: %s", mig.st.failure_reason);
                return;
        }
        log_info("migration completed to %s: quitting the source QEMU (Succeeded, Migrated)",
                 mig.st.target_address);
        /* KubeVirt's source domain ends "Migrated": not a power-off, not a stop request. */
        snprintf(mig.s->end_reason, sizeof(mig.s->end_reason), "Migrated");
        kv_error err = {0};
        qmp_send(mig.s->qmp, "quit", NULL, -1, 10000, ignore_reply, NULL, &err);
}

static void on_tick(qmp *q, const cJSON *event, const kv_error *err, void *userdata)
{
        if (!mig.active)
                return;
        if (err && err->code != ETIMEDOUT) { /* QMP gone: QEMU exited; the supervisor reports that */
                mig.active = false;
                return;
        }
        kv_error e = {0};
        bool was_postcopy = mig.st.postcopy_started;
        int r = migration_poll(q, &mig.st, &e);
        if (r < 0)
                log_warning("migration: %s", e.msg);
        if (r == 0 && mig.st.postcopy_started != was_postcopy)
                publish_state(mig.s);
        if (r > 0)
                migration_finished();
        else
                arm_tick();
        supervisor_qmp_rearm(mig.s);
}

static void arm_tick(void)
{
        kv_error err = {0};
        if (qmp_wait_event_async(mig.s->qmp, MIGRATION_TICK_EVENT, NULL, NULL, MIGRATION_TICK_MS, on_tick,
                                 NULL, &err) < 0)
                log_error("migration: cannot arm its timer: %s", err.msg);
}

static cJSON *state_result(void)
{
        cJSON *result = cJSON_CreateObject();
        cJSON_AddItemToObject(result, "migrationState", migration_state_to_json(&mig.st));
        return result;
}

int liveops_ctl_migrate(ctl_request *req)
{
        if (!vm_ready(req))
                return 0;
        if (mig.active) {
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
        if (uid && (!cJSON_IsString(uid) || strlen(uid->valuestring) >= sizeof(mig.st.uid))) {
                ctl_reply_error(req, "migrate: args.migrationUid must be a string under %zu bytes",
                                sizeof(mig.st.uid));
                return 0;
        }
        /* The reporter may send the same VMIM twice (reconnects, restarts): one run per migrationUid. */
        if (uid && mig.have && !strcmp(mig.st.uid, uid->valuestring)) {
                ctl_reply_error(req, "migration %s already ran here (%s)", uid->valuestring,
                                mig.st.completed ? "completed" : "failed");
                return 0;
        }
        migration_config c;
        kv_error cerr = {0};
        if (liveops_parse_migration_config(cJSON_GetObjectItem(req->args, "config"), "migrate: args.config",
                                           &c, &cerr) < 0) {
                ctl_reply_error(req, "%s", cerr.msg);
                return 0;
        }
        migration_state_free(&mig.st);
        mig.s = req->s;
        mig.have = true;
        kv_error err = {0};
        int r = migration_start(req->s->qmp, &c, uri->valuestring,
                                cJSON_IsString(host) ? host->valuestring : NULL,
                                cJSON_IsNumber(port) ? port->valueint : 0, &mig.st, &err);
        if (uid)
                snprintf(mig.st.uid, sizeof(mig.st.uid), "%s", uid->valuestring);
        if (r < 0) {
                supervisor_qmp_rearm(req->s);
                publish_state(req->s);
                ctl_reply_error(req, "%s", err.msg);
                return 0;
        }
        mig.active = true;
        arm_tick();
        supervisor_qmp_rearm(req->s);
        publish_state(req->s);
        ctl_reply_ok(req, state_result());
        return 0;
}

int liveops_ctl_migrate_cancel(ctl_request *req)
{
        if (!mig.active) {
                ctl_reply_error(req, "no migration is running");
                return 0;
        }
        kv_error err = {0};
        int r = migration_cancel(req->s->qmp, &mig.st, &err);
        supervisor_qmp_rearm(req->s);
        if (r < 0)
                ctl_reply_error(req, "%s", err.msg);
        else
                ctl_reply_ok(req, state_result());
        return 0;
}

int liveops_ctl_migrate_status(ctl_request *req)
{
        if (!mig.have)
                ctl_reply_error(req, "no migration was started by this launcher");
        else
                ctl_reply_ok(req, state_result());
        return 0;
}

/* ---- target side ------------------------------------------------------------------------------ */

static bool target_ready(ctl_request *req, bool prepared)
{
        supervisor *s = req->s;
        if (!s->cfg->incoming)
                ctl_reply_error(req, "this launcher was not started as a migration target (--incoming)");
        else if (!s->qmp || s->st->phase != PHASE_SCHEDULED || s->stage != STOP_NONE)
                ctl_reply_error(req, "the migration target is %s%s", phase_name(s->st->phase),
                                s->stage != STOP_NONE ? " and stopping" : "");
        else if (mig.target_prepared != prepared)
                ctl_reply_error(req, prepared ? "migration-target was not run yet"
                                              : "the target already waits for a migration");
        else
                return true;
        return false;
}

static int target_prepare(supervisor *s, const migration_config *c, const char *uri, const char *nbd_host,
                          int nbd_port, kv_error *err)
{
        int r = migration_target_prepare(s->qmp, c, uri, nbd_host, nbd_port, err);
        supervisor_qmp_rearm(s);
        mig.s = s;
        mig.have = true;
        mig.st = (migration_state){0};
        migration_params_compute(c, &mig.st.params); /* what was set */
        snprintf(mig.st.mode, sizeof(mig.st.mode), "PreCopy");
        snprintf(mig.st.target_address, sizeof(mig.st.target_address), "%s", uri);
        if (gethostname(mig.st.target_node, sizeof(mig.st.target_node) - 1) < 0)
                mig.st.target_node[0] = '\0';
        rfc3339_now(mig.st.start, sizeof(mig.st.start));
        snprintf(mig.st.qemu_status, sizeof(mig.st.qemu_status), "%s", r < 0 ? "failed" : "setup");
        if (r < 0) {
                mig.st.failed = true;
                snprintf(mig.st.failure_reason, sizeof(mig.st.failure_reason), "%s", err->msg);
                rfc3339_now(mig.st.end, sizeof(mig.st.end));
        }
        mig.target_prepared = r >= 0;
        publish_state(s);
        return r;
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

int liveops_target_boot(supervisor *s, const char *incoming, kv_error *err)
{
        if (!strcmp(incoming, "defer"))
                return 0;
        migration_config c;
        cJSON *config = s->cfg->incoming_config ? cJSON_Parse(s->cfg->incoming_config) : NULL;
        int r = liveops_parse_migration_config(config, "--incoming-config", &c, err); /* main checked it */
        cJSON_Delete(config);
        if (r >= 0 && c.allow_post_copy)
                r = check_userfaultfd(err);
        if (r < 0)
                return r;
        log_info("migration target: capabilities from %s (post-copy %s)",
                 s->cfg->incoming_config ? "--incoming-config" : "the default configuration",
                 c.allow_post_copy ? "allowed" : "off");
        return target_prepare(s, &c, incoming, s->cfg->incoming_nbd_host, s->cfg->incoming_nbd_port, err);
}

int liveops_ctl_migration_target(ctl_request *req)
{
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
        if (target_prepare(req->s, &c, uri->valuestring, cJSON_IsString(host) ? host->valuestring : NULL,
                           cJSON_IsNumber(port) ? port->valueint : 0, &err) < 0)
                ctl_reply_error(req, "%s", err.msg);
        else
                ctl_reply_ok(req, state_result());
        return 0;
}

/* The guest runs here now: the phase becomes Running (KubeVirt: the VMI's new node). */
static void target_running(supervisor *s)
{
        mig.st.completed = true;
        snprintf(mig.st.qemu_status, sizeof(mig.st.qemu_status), "completed");
        rfc3339_now(mig.st.end, sizeof(mig.st.end));
        status_set_phase(s->st, PHASE_RUNNING, NULL);
        snprintf(s->st->qemu_status, sizeof(s->st->qemu_status), "running");
        status_set_condition(s->st, COND_READY, true, true, "", "");
        status_set_condition(s->st, COND_PAUSED, false, false, NULL, NULL);
        publish_state(s);
        log_info("incoming migration completed: guest running");
}

static void arm_release_tick(supervisor *s);

/* One step of the target's own finish: the exports go once the source's mirrors let go, then `cont`. */
static void on_release_tick(qmp *q, const cJSON *event, const kv_error *err, void *userdata)
{
        supervisor *s = userdata;
        if (!mig.target_releasing || (err && err->code != ETIMEDOUT))
                return; /* finished by migration-target-finish meanwhile, or QEMU is gone */
        kv_error e = {0};
        bool force = lo_now_ms() >= mig.release_deadline;
        int left = migration_target_unexport(q, force, &e);
        if (left > 0) {
                arm_release_tick(s);
                return;
        }
        if (force)
                log_warning("migration target: the source still used its NBD exports after %d ms; dropped",
                            TARGET_RELEASE_TIMEOUT_MS);
        int r = left < 0 ? left : migration_target_resume(q, &e);
        supervisor_qmp_rearm(s);
        mig.target_releasing = false;
        if (r < 0) {
                log_error("migration target: %s", e.msg);
                supervisor_request_stop(s, "the migrated guest could not be resumed");
                return;
        }
        mig.target_done = true;
        target_running(s);
}

static void arm_release_tick(supervisor *s)
{
        kv_error err = {0};
        if (qmp_wait_event_async(s->qmp, MIGRATION_TICK_EVENT, NULL, NULL, TARGET_RELEASE_TICK_MS,
                                 on_release_tick, s, &err) < 0)
                log_error("migration target: cannot arm its timer: %s", err.msg);
}

void liveops_on_migration_event(supervisor *s, const cJSON *data)
{
        const char *state = cJSON_GetStringValue(cJSON_GetObjectItem(data, "status"));
        if (!s->cfg->incoming || !mig.target_prepared || mig.target_done || mig.target_releasing || !state)
                return;
        if (!strcmp(state, "postcopy-active") && strcmp(mig.st.mode, "PostCopy")) {
                log_info("incoming migration switched to post-copy");
                snprintf(mig.st.mode, sizeof(mig.st.mode), "PostCopy");
                publish_state(s); /* no QMP command: only the status file and the reporter */
                return;
        }
        if (strcmp(state, "completed"))
                return;
        /* Called from inside libqmp's event dispatch: only a timer here, the QMP commands run from it. */
        log_info("incoming migration completed: finishing the target");
        mig.target_releasing = true;
        mig.release_deadline = lo_now_ms() + TARGET_RELEASE_TIMEOUT_MS;
        arm_release_tick(s);
}

int liveops_ctl_migration_target_finish(ctl_request *req)
{
        if (mig.target_done) { /* finished by itself on the completed event */
                ctl_reply_ok(req, state_result());
                return 0;
        }
        if (!target_ready(req, true))
                return 0;
        const cJSON *t = cJSON_GetObjectItem(req->args, "timeoutMs");
        kv_error err = {0};
        int r = migration_target_finish(req->s->qmp, cJSON_IsNumber(t) ? t->valueint : 30000, &err);
        supervisor_qmp_rearm(req->s);
        if (r < 0) {
                log_warning("migration target: %s", err.msg);
                ctl_reply_error(req, "%s", err.msg);
                return 0;
        }
        mig.target_releasing = false;
        mig.target_done = true;
        target_running(req->s);
        ctl_reply_ok(req, state_result());
        return 0;
}
