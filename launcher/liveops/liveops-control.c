/* liveops-control: control-socket handlers over libkvliveops. Hot-plug and snapshot commands run the
 * blocking library calls (bounded by their timeouts, a few seconds at most) on the supervisor's QMP
 * connection; a migration is started, then driven by a libqmp timer (an event waiter that never matches
 * and expires every MIGRATION_TICK_MS, so it fires from the main loop's qmp_handle_timeouts). */
#include "liveops-control.h"

#include <errno.h>
#include <string.h>

#include "liveops-command.h"
#include "log.h"
#include "migration.h"

#define MIGRATION_TICK_MS 200
#define MIGRATION_TICK_EVENT "KVLITE-MIGRATION-TICK" /* QEMU never sends it */

static struct {
        supervisor *s;
        migration_state st;
        bool have, active;
} mig;

static bool vm_ready(ctl_request *req)
{
        if (req->s->qmp && req->s->st->phase == PHASE_RUNNING && req->s->stage == STOP_NONE)
                return true;
        ctl_reply_error(req, "the VM is %s%s", phase_name(req->s->st->phase),
                        req->s->stage != STOP_NONE ? " and stopping" : "");
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
BLOCKING_HANDLER(liveops_ctl_snapshot_save, "snapshot-save")
BLOCKING_HANDLER(liveops_ctl_snapshot_load, "snapshot-load")
BLOCKING_HANDLER(liveops_ctl_snapshot_delete, "snapshot-delete")
BLOCKING_HANDLER(liveops_ctl_snapshot_list, "snapshot-list")
BLOCKING_HANDLER(liveops_ctl_migration_target, "migrate-target")
BLOCKING_HANDLER(liveops_ctl_migration_target_finish, "migrate-target-finish")

static void ignore_reply(qmp *q, const cJSON *ret, const kv_error *err, void *userdata)
{
}

static void arm_tick(void);

/* Completed: the guest runs on the target now; quitting the source makes the launcher end Succeeded. */
static void migration_finished(void)
{
        mig.active = false;
        if (!mig.st.completed) {
                log_warning("migration failed, the VM keeps running here: %s", mig.st.failure_reason);
                return;
        }
        log_info("migration completed to %s: quitting the source QEMU (Succeeded, migrated)",
                 mig.st.target_address);
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
        int r = migration_poll(q, &mig.st, &e);
        if (r < 0)
                log_warning("migration: %s", e.msg);
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
        if (!cJSON_IsString(uri)) {
                ctl_reply_error(req, "migrate: args.uri (\"tcp:HOST:PORT\" or \"unix:PATH\") is required");
                return 0;
        }
        migration_config c;
        liveops_read_migration_config(cJSON_GetObjectItem(req->args, "config"), &c);
        migration_state_free(&mig.st);
        mig.s = req->s;
        mig.have = true;
        kv_error err = {0};
        int r = migration_start(req->s->qmp, &c, uri->valuestring,
                                cJSON_IsString(host) ? host->valuestring : NULL,
                                cJSON_IsNumber(port) ? port->valueint : 0, &mig.st, &err);
        if (r < 0) {
                supervisor_qmp_rearm(req->s);
                ctl_reply_error(req, "%s", err.msg);
                return 0;
        }
        mig.active = true;
        arm_tick();
        supervisor_qmp_rearm(req->s);
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
