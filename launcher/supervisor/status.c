/* Status model and its JSON shape (see docs/launcher-supervisor.md "Status file"). */
#include "status.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fdio.h"
#include "macro.h"
#include "status-channel.h"

static const char *const cond_names[COND__MAX] = {
    [COND_READY] = "Ready",
    [COND_PAUSED] = "Paused",
    [COND_SOFTWARE_EMULATION] = "SoftwareEmulation",
    [COND_AGENT_CONNECTED] = "AgentConnected",
    [COND_ACCESS_CREDENTIALS_SYNCHRONIZED] = "AccessCredentialsSynchronized",
};

void status_init(status *st, const char *path)
{
        *st = (status){.phase = PHASE_PENDING, .exit_code = -1};
        snprintf(st->accel, sizeof(st->accel), "none");
        rfc3339_now(st->created, sizeof(st->created));
        st->path = path ? strdup(path) : NULL;
}

void status_fini(status *st)
{
        free(st->path);
        st->path = NULL;
        status_set_json(&st->migration_state, NULL);
        status_set_json(&st->volume_status, NULL);
        status_set_json(&st->snapshot_operations, NULL);
        status_set_json(&st->snapshots, NULL);
        status_set_json(&st->guest_os_info, NULL);
        status_set_json(&st->guest_agent_info, NULL);
}

void status_set_json(cJSON **slot, cJSON *v)
{
        cJSON_Delete(*slot);
        *slot = v;
}

void status_append_bounded(cJSON **slot, cJSON *item, int max)
{
        if (!cJSON_IsArray(*slot))
                status_set_json(slot, cJSON_CreateArray());
        cJSON_AddItemToArray(*slot, item);
        while (cJSON_GetArraySize(*slot) > max)
                cJSON_DeleteItemFromArray(*slot, 0);
}

const char *phase_name(enum phase p)
{
        static const char *const names[] = {"Pending", "Scheduled", "Running", "Succeeded", "Failed"};
        return p <= PHASE_FAILED ? names[p] : "Unknown";
}

bool phase_is_final(enum phase p)
{
        return p == PHASE_SUCCEEDED || p == PHASE_FAILED;
}

int status_require_phase(const status *st, enum phase want, bool stopping, kv_error *err)
{
        if (st->phase == want && !stopping)
                return 0;
        return kv_error_set(err, EBUSY, "the VM is %s%s", phase_name(st->phase),
                            stopping ? " and stopping" : "");
}

void status_set_phase(status *st, enum phase p, const char *reason)
{
        st->phase = p;
        snprintf(st->reason, sizeof(st->reason), "%s", reason ? reason : "");
        if (p == PHASE_RUNNING && !st->started[0])
                rfc3339_now(st->started, sizeof(st->started));
        if (phase_is_final(p))
                rfc3339_now(st->finished, sizeof(st->finished));
}

void status_set_condition(status *st, enum cond_type t, bool present, bool value, const char *reason,
                          const char *message)
{
        condition *c = &st->conds[t];
        if (!present) {
                *c = (condition){0};
                return;
        }
        if (!c->present || c->status != value)
                rfc3339_now(c->last_transition, sizeof(c->last_transition));
        c->present = true;
        c->status = value;
        snprintf(c->reason, sizeof(c->reason), "%s", reason ? reason : "");
        snprintf(c->message, sizeof(c->message), "%s", message ? message : "");
}

static void add_string_or_null(cJSON *o, const char *key, const char *value)
{
        if (value && *value)
                cJSON_AddStringToObject(o, key, value);
        else
                cJSON_AddNullToObject(o, key);
}

static cJSON *conditions_to_json(const status *st)
{
        cJSON *arr = cJSON_CreateArray();
        for (int t = 0; t < COND__MAX; t++) {
                const condition *c = &st->conds[t];
                if (!c->present)
                        continue;
                cJSON *o = cJSON_CreateObject();
                cJSON_AddStringToObject(o, "type", cond_names[t]);
                cJSON_AddStringToObject(o, "status", c->status ? "True" : "False");
                cJSON_AddNullToObject(o, "lastProbeTime");
                cJSON_AddStringToObject(o, "lastTransitionTime", c->last_transition);
                cJSON_AddStringToObject(o, "reason", c->reason);
                cJSON_AddStringToObject(o, "message", c->message);
                cJSON_AddItemToArray(arr, o);
        }
        return arr;
}

/* KubeVirt's shape: name, ipAddress, ipAddresses, mac, interfaceName, infoSource. */
static cJSON *interfaces_to_json(const status *st)
{
        cJSON *arr = cJSON_CreateArray();
        for (size_t i = 0; i < st->n_ifaces; i++) {
                const status_interface *f = &st->ifaces[i];
                cJSON *o = cJSON_CreateObject();
                if (f->name[0]) /* the guest agent's interfaces the launcher did not wire have none */
                        cJSON_AddStringToObject(o, "name", f->name);
                cJSON *ips = cJSON_CreateArray();
                if (f->ip[0]) {
                        cJSON_AddStringToObject(o, "ipAddress", f->ip);
                        cJSON_AddItemToArray(ips, cJSON_CreateString(f->ip));
                }
                if (f->ip6[0])
                        cJSON_AddItemToArray(ips, cJSON_CreateString(f->ip6));
                cJSON_AddItemToObject(o, "ipAddresses", ips);
                cJSON_AddStringToObject(o, "mac", f->mac);
                if (f->interface_name[0])
                        cJSON_AddStringToObject(o, "interfaceName", f->interface_name);
                cJSON_AddStringToObject(o, "infoSource", f->info_source);
                cJSON_AddItemToArray(arr, o);
        }
        return arr;
}

cJSON *status_to_json(const status *st)
{
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "phase", phase_name(st->phase));
        cJSON_AddStringToObject(o, "reason", st->reason);
        cJSON_AddStringToObject(o, "accel", st->accel);
        cJSON_AddNumberToObject(o, "qemuPid", st->qemu_pid);
        cJSON_AddNumberToObject(o, "launcherPid", getpid());
        add_string_or_null(o, "qemuStatus", st->qemu_status);
        if (st->exit_code >= 0)
                cJSON_AddNumberToObject(o, "exitCode", st->exit_code);
        cJSON *vmi = cJSON_AddObjectToObject(o, "vmi");
        add_string_or_null(vmi, "name", st->name);
        add_string_or_null(vmi, "namespace", st->namespace);
        add_string_or_null(vmi, "uid", st->uid);
        cJSON_AddItemToObject(o, "conditions", conditions_to_json(st));
        cJSON_AddItemToObject(o, "interfaces", interfaces_to_json(st));
        cJSON *ts = cJSON_AddObjectToObject(o, "timestamps");
        add_string_or_null(ts, "created", st->created);
        add_string_or_null(ts, "running", st->started);
        add_string_or_null(ts, "finished", st->finished);
        if (st->migration_state)
                cJSON_AddItemToObject(o, "migrationState", cJSON_Duplicate(st->migration_state, true));
        if (st->volume_status)
                cJSON_AddItemToObject(o, "volumeStatus", cJSON_Duplicate(st->volume_status, true));
        if (st->snapshot_operations)
                cJSON_AddItemToObject(o, "snapshotOperations",
                                      cJSON_Duplicate(st->snapshot_operations, true));
        if (st->snapshots)
                cJSON_AddItemToObject(o, "snapshots", cJSON_Duplicate(st->snapshots, true));
        if (st->guest_os_info)
                cJSON_AddItemToObject(o, "guestOSInfo", cJSON_Duplicate(st->guest_os_info, true));
        if (st->guest_agent_info)
                cJSON_AddItemToObject(o, "guestAgentInfo", cJSON_Duplicate(st->guest_agent_info, true));
        if (st->soft_reboot_id[0])
                cJSON_AddStringToObject(o, "softRebootId", st->soft_reboot_id);
        return o;
}

int status_write(const status *st, kv_error *err)
{
        cJSON *o = status_to_json(st);
        _cleanup_free_ char *text = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        if (!text)
                return kv_error_set(err, ENOMEM, "render status");
        status_channel_publish(text, strlen(text)); /* the Pod annotation, when running in a cluster */
        if (!st->path)
                return 0;
        _cleanup_free_ char *tmp = NULL;
        if (asprintf(&tmp, "%s.tmp", st->path) < 0)
                return kv_error_set(err, ENOMEM, "status path");
        _cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0)
                return kv_error_errno(err, errno, "open `%s`", tmp);
        size_t len = strlen(text);
        text[len] = '\n'; /* one line, newline-terminated: replaces the NUL, written by length */
        int r = fd_write_all(fd, text, len + 1);
        if (r < 0)
                return kv_error_errno(err, -r, "write `%s`", tmp);
        if (rename(tmp, st->path) < 0)
                return kv_error_errno(err, errno, "rename `%s` to `%s`", tmp, st->path);
        return 0;
}
