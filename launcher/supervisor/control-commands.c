/* The control command table. A new command (hot-plug, snapshot, migration) is one handler and one row
 * here; the wire protocol does not change. */
#include <string.h>

#include "console.h"
#include "control.h"
#include "liveops-control.h" /* hot-plug, snapshot, migration rows (launcher/liveops) */

static int cmd_help(ctl_request *req)
{
        cJSON *result = cJSON_CreateObject();
        cJSON *list = cJSON_AddArrayToObject(result, "commands");
        for (const ctl_command *cmd = ctl_commands; cmd->name; cmd++) {
                cJSON *o = cJSON_CreateObject();
                cJSON_AddStringToObject(o, "cmd", cmd->name);
                cJSON_AddStringToObject(o, "summary", cmd->summary);
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
        if (req->s->st->phase == PHASE_RUNNING && req->s->stage == STOP_NONE)
                return true;
        ctl_reply_error(req, "the VM is %s%s", phase_name(req->s->st->phase),
                        req->s->stage != STOP_NONE ? " and stopping" : "");
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

static int cmd_console(ctl_request *req)
{
        return ctl_attach_console(req);
}

const ctl_command ctl_commands[] = {
    {"help", cmd_help, "list the commands"},
    {"status", cmd_status, "the launcher status (same document as --status-file)"},
    {"pause", cmd_pause, "pause the guest (QMP stop)"},
    {"unpause", cmd_unpause, "resume the guest (QMP cont)"},
    {"shutdown", cmd_shutdown, "ACPI power button, then quit and SIGKILL after the grace period"},
    {"console", cmd_console, "switch this connection to the raw serial console stream"},
    LIVEOPS_CTL_COMMANDS,
    {NULL, NULL, NULL},
};
