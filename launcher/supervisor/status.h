/* The launcher's status: KubeVirt-style phase and conditions, accel, QEMU pid, VMI identity and
 * timestamps; rendered as JSON for the control socket and written atomically to --status-file. */
#pragma once
#include <cjson/cJSON.h>
#include <stdbool.h>
#include <sys/types.h>
#include <time.h>

#include "clock.h" /* rfc3339_now, rfc3339_at for the status times */
#include "error.h"

enum phase { PHASE_PENDING, PHASE_SCHEDULED, PHASE_RUNNING, PHASE_SUCCEEDED, PHASE_FAILED };
enum cond_type {
        COND_READY,
        COND_PAUSED,
        COND_SOFTWARE_EMULATION,
        COND_AGENT_CONNECTED,
        COND_ACCESS_CREDENTIALS_SYNCHRONIZED,
        COND__MAX
};

typedef struct condition {
        bool present;
        bool status;
        char reason[64];
        char message[256];
        char last_transition[40];
} condition;

/* One entry of KubeVirt's status.interfaces[], from the launcher's network setup. */
#define STATUS_MAX_INTERFACES 9 /* the pod interface + NET_MAX_SECONDARY Multus ones */
typedef struct status_interface {
        char name[64]; /* spec.domain.devices.interfaces[].name */
        char ip[46];   /* where the VM answers ("" = unknown) */
        char ip6[46];  /* dual stack: its IPv6 address too, ipAddresses[1] ("" = none) */
        char mac[18];
        char interface_name[16]; /* the guest's name for it, "" = unknown */
        char info_source[32]; /* "domain" (the launcher's own wiring), "domain, guest-agent", "guest-agent" */
} status_interface;

typedef struct status {
        enum phase phase;
        char reason[512]; /* one line: why the launcher is in this phase (failures) */
        char accel[8];
        pid_t qemu_pid;
        int exit_code; /* the launcher's own exit code once final, else -1 */
        char qemu_status[32];
        char name[254], namespace[254], uid[64];
        condition conds[COND__MAX];
        char created[40], started[40], finished[40];
        status_interface ifaces[STATUS_MAX_INTERFACES];
        size_t n_ifaces;
        /* Live operations (launcher/liveops): KubeVirt's status.migrationState and status.volumeStatus;
         * owned, NULL = absent. */
        cJSON *migration_state;
        cJSON *volume_status;
        /* Snapshots (docs/cluster-snapshots.md): the last STATUS_MAX_SNAPSHOT_OPS operations run with an
         * id, newest last, and what snapshot-list gave after the last operation; owned, NULL = absent. */
        cJSON *snapshot_operations;
        cJSON *snapshots;
        cJSON *guest_os_info; /* KubeVirt's status.guestOSInfo, from the guest agent; owned, NULL = absent */
        /* the rest of KubeVirt's VirtualMachineInstanceGuestAgentInfo (agent-proto.h agent_info_apply), what
         * virt-api's guestosinfo, userlist and filesystemlist answer from; owned, NULL = absent */
        cJSON *guest_agent_info;
        char soft_reboot_id[129]; /* the id of the last softreboot request done ("" = none) */
        char *path;               /* --status-file, or NULL */
} status;

void status_init(status *st, const char *path);
void status_fini(status *st);
const char *phase_name(enum phase p);
bool phase_is_final(enum phase p);
/* 0 when the VM is in phase `want` and not being stopped, else -EBUSY with "the VM is Succeeded", "the VM
 * is Running and stopping": the one check every command that drives the VM makes first. */
int status_require_phase(const status *st, enum phase want, bool stopping, kv_error *err);
/* Changes phase (and reason, may be NULL); stamps started/finished. */
void status_set_phase(status *st, enum phase p, const char *reason);
/* Sets or clears (present=false) a condition; the transition time changes only when status flips. */
void status_set_condition(status *st, enum cond_type t, bool present, bool value, const char *reason,
                          const char *message);
/* Replaces st->*slot (migration_state / volume_status / ...) with v (consumed; NULL clears it). */
void status_set_json(cJSON **slot, cJSON *v);
#define STATUS_MAX_SNAPSHOT_OPS 32
/* Appends item (consumed) to the array *slot (created when NULL), dropping its oldest entries beyond max. */
void status_append_bounded(cJSON **slot, cJSON *item, int max);
cJSON *status_to_json(const status *st);
/* Rewrites st->path atomically (tmp file + rename; no-op without a path) and hands the document to the
 * status reporter (status-channel.h). */
int status_write(const status *st, kv_error *err);
