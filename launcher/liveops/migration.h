/* migration: live migration between two QEMUs (notes §6). Pure half: KubeVirt's MigrationConfiguration →
 * QEMU capabilities/parameters and timeouts. Live half: target prepare/finish, source start/poll/cancel,
 * local disks mirrored over NBD, and the state shaped like KubeVirt's status.migrationState. */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "qmp.h"
#include "qmp-seq.h"
#include "strv.h"

/* The knobs of KubeVirt's MigrationConfiguration that apply here; 0/false = the launcher's default. */
typedef struct migration_config {
        uint64_t bandwidth;                  /* bandwidthPerMigration, bytes/s; 0 = unlimited */
        unsigned completion_timeout_per_gib; /* seconds; 0 = 150 (KubeVirt) */
        unsigned progress_timeout;           /* seconds without progress before aborting; 0 = 150 */
        bool allow_auto_converge;
        bool allow_post_copy;
        unsigned parallel_threads; /* multifd channels; 0 = the default (8, the same on every host) */
        bool disable_multifd;
        unsigned downtime_ms; /* 0 = 300 */
} migration_config;

/* What both QEMUs are set to. Both sides compute it from the same config, so caps that must match
 * (multifd, postcopy-ram) do. */
typedef struct migration_params {
        bool multifd;
        unsigned channels;
        bool postcopy;      /* postcopy-ram capability (switch happens only on completion timeout) */
        bool auto_converge; /* source only */
        uint64_t max_bandwidth;
        unsigned downtime_ms;
        unsigned completion_timeout_per_gib, progress_timeout;
} migration_params;

#define MIGRATION_UNLIMITED_BW (10ull << 30) /* QEMU's default is 128 MiB/s (notes §6) */

void migration_params_compute(const migration_config *c, migration_params *out);
/* The migrate-set-capabilities "capabilities" array / migrate-set-parameters arguments for one side. */
cJSON *migration_caps_json(const migration_params *p, bool source);
cJSON *migration_params_json(const migration_params *p, bool source);
/* Completion timeout for `bytes` of guest memory + disks (at least one GiB is counted). */
uint64_t migration_completion_timeout_ms(const migration_params *p, uint64_t bytes);

/* KubeVirt-shaped state of one migration (status.migrationState) plus progress. */
typedef struct migration_state {
        char uid[128];           /* migrationUid: the VMIM's uid in a cluster ("" locally) */
        char start[40], end[40]; /* RFC 3339 */
        char target_address[256];
        char source_node[64], target_node[64]; /* host names (KubeVirt: sourceNode, targetNode) */
        char mode[16];                         /* "PreCopy" / "PostCopy" */
        char abort_status[16];                 /* "", "Succeeded", "Failed" */
        bool completed, failed, abort_requested;
        char failure_reason[512];
        char qemu_status[32]; /* query-migrate status */
        uint64_t ram_total, ram_remaining, ram_transferred;
        int64_t total_time_ms, downtime_ms;
        /* driver state */
        migration_params params;
        int64_t start_ms, last_progress_ms;
        int64_t last_yank_ms; /* after a cancel: when the migration's channels were last yanked */
        /* a cancel that came while QEMU was still in "setup": sent by the poll once the migration left it
         * (or MIGRATION_CANCEL_SETUP_WAIT_MS passed) */
        bool cancel_deferred;
        int64_t cancel_requested_ms;
        int64_t active_since_ms; /* when the poll first saw QEMU "active" (0: not yet) */
        uint64_t best_remaining, disk_bytes;
        bool postcopy_started, finished;
        char **mirrors; /* node names mirrored to the target over NBD */
        size_t n_mirrors;
} migration_state;

/* Target side (QEMU started with -incoming defer, and -S). nbd_host/nbd_port: when nbd_port > 0, every
 * writable disk node is exported for the source's mirror. */
int migration_target_prepare(qmp *q, const migration_config *c, const char *uri, const char *nbd_host,
                             int nbd_port, kv_error *err);
/* Wait until the incoming migration completed (and the source's mirrors are done: call after the
 * source reported completed), remove NBD exports and `cont`. */
int migration_target_finish(qmp *q, int timeout_ms, kv_error *err);

/* Event-driven form of the above, for a target whose incoming migration completed: removes the NBD
 * exports the source no longer uses (a source still connected is finishing its mirror: its export stays)
 * and returns how many remain; with force, drops them all (and the source's connections). Once 0 is
 * returned the NBD server is stopped; the caller then `cont`s. <0 on a QMP failure. */
int migration_target_unexport(qmp *q, bool force, kv_error *err);
/* `cont` unless the guest already runs. */
int migration_target_resume(qmp *q, kv_error *err);

/* migration_target_prepare as a step function (qmp-seq.h), for the launcher's loop. */
typedef struct migration_prepare_seq {
        migration_params params;
        char uri[256], nbd_host[256];
        int nbd_port, step;
        strv nodes; /* the writable nodes to export, from i */
        size_t i;
} migration_prepare_seq;
void migration_prepare_init(migration_prepare_seq *s, const migration_config *c, const char *uri,
                            const char *nbd_host, int nbd_port);
int migration_prepare_step(void *ctx, const cJSON *ret, const kv_error *qerr, lo_next *next, kv_error *err);
void migration_prepare_seq_free(migration_prepare_seq *s);
/* migration_target_unexport (unexport) and then, once no export is left, migration_target_resume (resume)
 * as a step function; s->left says how many exports remain. */
typedef struct migration_release_seq {
        bool force, resume;
        int step, left;
        cJSON *ids; /* the exports still to delete (freed when the step function is done) */
} migration_release_seq;
void migration_release_init(migration_release_seq *s, bool force, bool unexport, bool resume);
int migration_release_step(void *ctx, const cJSON *ret, const kv_error *qerr, lo_next *next, kv_error *err);

/* Starting a migration as a step function (qmp-seq.h), for the launcher's loop: capabilities and
 * parameters, with nbd_port > 0 every writable disk mirrored to the target's NBD exports until all are
 * READY (query-block-jobs, woken by BLOCK_JOB_READY; 120 s at most), then `migrate`. init fills *st. On a
 * failure run the mirrors' stop, then migration_start_failed. */
typedef struct migration_start_seq {
        migration_config c;
        char uri[256], nbd_host[256];
        int nbd_port, step;
        migration_state *st;
        strv nodes; /* the writable nodes still to mirror, from i */
        size_t i;
        int64_t ready_deadline;
} migration_start_seq;
void migration_start_init(migration_start_seq *s, const migration_config *c, const char *uri,
                          const char *nbd_host, int nbd_port, migration_state *st);
int migration_start_step(void *ctx, const cJSON *ret, const kv_error *qerr, lo_next *next, kv_error *err);
void migration_start_seq_free(migration_start_seq *s);
/* Records the failure in *st; returns -err->code with err wrapped ("start migration: ..."). */
int migration_start_failed(migration_state *st, kv_error *err);
/* The mirrors of *st stopped (cancelled, their jobs dismissed, their NBD nodes deleted) and forgotten. */
typedef struct migration_stop_seq {
        migration_state *st;
        size_t i;
        int step;
        lo_job_seq job;
} migration_stop_seq;
void migration_stop_init(migration_stop_seq *s, migration_state *st);
int migration_stop_step(void *ctx, const cJSON *ret, const kv_error *qerr, lo_next *next, kv_error *err);

/* Source side. nbd_port > 0: mirror every writable disk to the target's NBD exports first. */
int migration_start(qmp *q, const migration_config *c, const char *uri, const char *nbd_host, int nbd_port,
                    migration_state *st, kv_error *err);
/* One step: query-migrate, progress/completion timeouts (auto-converge is already on; post-copy or abort
 * when the completion timeout passes, abort when no progress). Returns 1 once finished (completed or
 * failed; mirrors cleaned up), 0 while running, <0 on a QMP failure. */
int migration_poll(qmp *q, migration_state *st, kv_error *err);
/* The same step as a step function (qmp-seq.h) for the launcher's loop: s->finished says 1 above. */
typedef struct migration_poll_seq {
        migration_state *st;
        int step;
        bool ok, finished;
        char why[256];
        migration_stop_seq stop;
} migration_poll_seq;
void migration_poll_init(migration_poll_seq *s, migration_state *st);
int migration_poll_step(void *ctx, const cJSON *ret, const kv_error *qerr, lo_next *next, kv_error *err);
/* migrate_cancel, then yank of the migration's channels. -EALREADY once finished, -EBUSY in post-copy
 * (migration_cancel_check says so before anything is sent). During QEMU's "setup" the cancel waits for the
 * poll (migration_state.cancel_deferred): QEMU 7.2 cancelled while it sets its multifd channels up can stay
 * "cancelling" for good, which no yank ends (seen in CI). */
#define MIGRATION_CANCEL_SETUP_WAIT_MS 3000
/* ... and the first moments of "active" too: a deferred cancel sent 1 ms after QEMU went active hung the same
 * way (its multifd channels were still connecting), so it waits until the migration has been active this
 * long. */
#define MIGRATION_CANCEL_ACTIVE_SETTLE_MS 500
int migration_cancel(qmp *q, migration_state *st, kv_error *err);
int migration_cancel_check(const migration_state *st, kv_error *err);
typedef struct migration_cancel_seq {
        migration_state *st;
        int step;
} migration_cancel_seq;
int migration_cancel_step(void *ctx, const cJSON *ret, const kv_error *qerr, lo_next *next, kv_error *err);
/* Blocking: start, poll until finished or timeout_ms (then cancel). 0 when completed. */
int migration_run(qmp *q, const migration_config *c, const char *uri, const char *nbd_host, int nbd_port,
                  int timeout_ms, migration_state *st, kv_error *err);
void migration_state_free(migration_state *st);
cJSON *migration_state_to_json(const migration_state *st);
