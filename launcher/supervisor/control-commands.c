/* The control command table. A new command is one row in ctl-protocol.h (name, summary) and one handler
 * here (or in LIVEOPS_CTL_HANDLERS); the wire protocol does not change. */
#include <stdio.h>
#include <string.h>

#include "console.h"
#include "control-server.h"
#include "liveops-control.h" /* hot-plug, snapshot, migration rows (launcher/liveops) */

static int cmd_help(ctl_request *req)
{
        cJSON *result = cJSON_CreateObject();
        cJSON *list = cJSON_AddArrayToObject(result, "commands");
        for (int v = 0; v < CTL_VERB__MAX; v++) {
                cJSON *o = cJSON_CreateObject();
                cJSON_AddStringToObject(o, "cmd", ctl_verb_name(v));
                cJSON_AddStringToObject(o, "summary", ctl_verb_summary(v));
                cJSON_AddItemToArray(list, o);
        }
        ctl_reply_ok(req, result);
        return 0;
}

static int cmd_status(ctl_request *req)
{
        cJSON *result = cJSON_CreateObject();
        cJSON_AddItemToObject(result, "status", status_to_json(req->s->st));
        ctl_reply_ok(req, result);
        return 0;
}

static bool require_running_vm(ctl_request *req)
{
        kv_error err = {0};
        if (status_require_phase(req->s->st, PHASE_RUNNING, req->s->stage != STOP_NONE, &err) == 0)
                return true;
        ctl_reply_error(req, "%s", err.msg);
        return false;
}

/* Paused/unpaused state is taken from QEMU's STOP/RESUME events, not from here, so a pause done
 * through the public qmp.sock shows up the same way. */
static int cmd_pause(ctl_request *req)
{
        if (require_running_vm(req))
                ctl_forward_qmp(req, "stop", NULL);
        return 0;
}

static int cmd_unpause(ctl_request *req)
{
        if (require_running_vm(req))
                ctl_forward_qmp(req, "cont", NULL);
        return 0;
}

static int cmd_shutdown(ctl_request *req)
{
        supervisor_request_stop(req->s, "shutdown requested on the control socket");
        ctl_reply_ok(req, NULL);
        return 0;
}

/* args.id (optional): recorded as the status's softRebootId once done, so whoever forwards requests
 * (virt-launcher-reporter) never sends the same one twice, even after a restart of its own. */
static int cmd_softreboot(ctl_request *req)
{
        kv_error err = {0};
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(req->args, "id");
        if (id && (!cJSON_IsString(id) || !*id->valuestring ||
                   strlen(id->valuestring) >= sizeof(req->s->st->soft_reboot_id))) {
                ctl_reply_error(req, "args.id: a string of 1 to %zu bytes",
                                sizeof(req->s->st->soft_reboot_id) - 1);
                return 0;
        }
        if (!require_running_vm(req))
                return 0;
        if (supervisor_soft_reboot(req->s, &err) < 0) {
                ctl_reply_error(req, "%s", err.msg);
                return 0;
        }
        if (id) {
                snprintf(req->s->st->soft_reboot_id, sizeof(req->s->st->soft_reboot_id), "%s",
                         id->valuestring);
                supervisor_publish(req->s);
        }
        ctl_reply_ok(req, NULL);
        return 0;
}

static int cmd_console(ctl_request *req)
{
        return ctl_attach_console(req);
}

const ctl_handler ctl_handlers[CTL_VERB__MAX] = {
    [CTL_VERB_HELP] = cmd_help,
    [CTL_VERB_STATUS] = cmd_status,
    [CTL_VERB_PAUSE] = cmd_pause,
    [CTL_VERB_UNPAUSE] = cmd_unpause,
    [CTL_VERB_SHUTDOWN] = cmd_shutdown,
    [CTL_VERB_CONSOLE] = cmd_console,
    [CTL_VERB_SOFTREBOOT] = cmd_softreboot,
    LIVEOPS_CTL_HANDLERS,
};
