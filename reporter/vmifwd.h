/* vmifwd: what virt-launcher-reporter forwards from its VMI to the launcher's control socket
 * (docs/cluster-live-ops.md): a changed spec as `apply`, status.migrationState as `migrate` or
 * `migrate-cancel` (its migrationConfiguration goes along as the launcher's config), the entries of the
 * annotation kvlite.io/snapshot-requests as `snapshot-save/-load/-delete` (docs/cluster-snapshots.md), the
 * annotation kvlite.io/paused as `pause`/`unpause`, kvlite.io/softreboot-request as `softreboot`
 * (docs/virt-api.md). Pure:
 * the decision from
 * the VMI, the launcher's last status document and what was already answered; unit-tested in
 * test-supervisor-unit.c. */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>

typedef enum fwd_kind {
        FWD_NONE,
        FWD_APPLY,
        FWD_MIGRATE,
        FWD_CANCEL,
        FWD_SNAPSHOT,
        FWD_PAUSE,
        FWD_SOFTREBOOT
} fwd_kind;

#define FWD_UID_MAX 128
#define FWD_SNAPSHOT_ANNOTATION "kvlite.io/snapshot-requests"
/* The wanted pause state virt-api's pause/unpause write on the VMI: "true" or "false" (docs/virt-api.md). */
#define FWD_PAUSE_ANNOTATION "kvlite.io/paused"
/* virt-api's softreboot: a new request id each time (docs/virt-api.md); the launcher's softRebootId says
 * which one it did last. */
#define FWD_SOFTREBOOT_ANNOTATION "kvlite.io/softreboot-request"
#define FWD_SNAPSHOT_ID_MAX 128 /* bytes of a request's id (the launcher's limit) and of its tag */
#define FWD_SNAPSHOT_DONE 32    /* answered snapshot ids remembered (the launcher's status keeps 32 too) */

typedef struct fwd_state {
        cJSON *spec;                 /* the last spec the launcher answered; NULL: none yet */
        char migrated[FWD_UID_MAX];  /* the migrationUid whose migrate was answered */
        char cancelled[FWD_UID_MAX]; /* the migrationUid whose migrate-cancel was answered */
        int port, nbd_port;          /* dialled at targetNodeAddress; 0: KV_MIGRATION_PORT/_NBD_PORT */
        /* snapshot request ids the launcher answered, a ring (its status says so too, once it arrives) */
        char snapshots_done[FWD_SNAPSHOT_DONE][FWD_SNAPSHOT_ID_MAX + 1];
        unsigned n_snapshots_done;
        char *requests_checked; /* the snapshot-requests text last checked for malformed entries */
        char pause_sent[8];     /* the FWD_PAUSE_ANNOTATION value last forwarded ("true"/"false") */
        char softreboot_sent[FWD_SNAPSHOT_ID_MAX + 1]; /* the softreboot request id last forwarded */
        /* The last apply was refused (a hot-plugged claim not attached yet): it goes again once the
         * launcher's volumeStatus differs from this copy (NULL: it had none), e.g. AttachedToNode. */
        bool apply_refused;
        cJSON *refused_volumes;
} fwd_state;

typedef struct fwd_request {
        fwd_kind kind;
        cJSON *req;                        /* {"cmd":..., "args":...}; the caller adds an id */
        cJSON *spec;                       /* FWD_APPLY: the spec sent */
        char uid[FWD_SNAPSHOT_ID_MAX + 1]; /* the migrationUid, or FWD_SNAPSHOT: the request's id */
} fwd_request;

/* The next request to send, most urgent first (abort, migration start, spec change, snapshot request):
 * 1 with *out filled, 0 when nothing is due. vmi: the VMI as the API has it; launcher: the launcher's last
 * status document (NULL before the first); pod: $POD_NAME. Nothing is due unless the launcher is Running.
 * Snapshot requests: the first well-formed entry whose id neither the launcher's snapshotOperations nor
 * st's answered ids hold, and none while a migration runs (the launcher's or the VMI's migrationState). */
int fwd_next(const fwd_state *st, const cJSON *vmi, const cJSON *launcher, const char *pod, fwd_request *out);
/* The launcher answered req (ok or not): it is not sent again. Takes req's spec. */
void fwd_commit(fwd_state *st, fwd_request *req);
/* After fwd_commit of an apply the launcher refused: it is sent again when the volumeStatus of the launcher's
 * status (launcher, the document at the refusal) changes, so a claim virt-handler attaches later gets in. */
void fwd_apply_refused(fwd_state *st, const cJSON *launcher);
/* Cuts a VMI down in place to what fwd_next reads: metadata (less managedFields and kubectl's
 * last-applied copy), spec and status.migrationState. The reporter's informer stores only that. */
void fwd_prune(cJSON *vmi);
/* Calls skipped(why) once per malformed entry of the VMI's snapshot requests (or once when the annotation
 * is not a JSON array), only when the annotation's text changed since the last call: the log line says
 * why an entry is never forwarded, without repeating on every decision. */
void fwd_check_snapshot_requests(fwd_state *st, const cJSON *vmi, void (*skipped)(const char *why, void *ud),
                                 void *ud);
void fwd_request_free(fwd_request *req);
void fwd_state_free(fwd_state *st);
