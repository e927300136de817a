/* vmifwd: what virt-launcher-reporter forwards from its VMI to the launcher's control socket
 * (docs/cluster-live-ops.md): a changed spec as `apply`, status.migrationState as `migrate` or
 * `migrate-cancel` (its migrationConfiguration goes along as the launcher's config). Pure: the decision from
 * the VMI, the launcher's last status document and what was already answered; unit-tested in
 * test-supervisor-unit.c. */
#pragma once

#include <cjson/cJSON.h>

typedef enum fwd_kind { FWD_NONE, FWD_APPLY, FWD_MIGRATE, FWD_CANCEL } fwd_kind;

#define FWD_UID_MAX 128

typedef struct fwd_state {
        cJSON *spec;                 /* the last spec the launcher answered; NULL: none yet */
        char migrated[FWD_UID_MAX];  /* the migrationUid whose migrate was answered */
        char cancelled[FWD_UID_MAX]; /* the migrationUid whose migrate-cancel was answered */
        int port, nbd_port;          /* dialled at targetNodeAddress; 0: KV_MIGRATION_PORT/_NBD_PORT */
} fwd_state;

typedef struct fwd_request {
        fwd_kind kind;
        cJSON *req;  /* {"cmd":..., "args":...}; the caller adds an id */
        cJSON *spec; /* FWD_APPLY: the spec sent */
        char uid[FWD_UID_MAX];
} fwd_request;

/* The next request to send, most urgent first (abort, migration start, spec change): 1 with *out
 * filled, 0 when nothing is due. vmi: the VMI as the API has it; launcher: the launcher's last status
 * document (NULL before the first); pod: $POD_NAME. Nothing is due unless the launcher is Running. */
int fwd_next(const fwd_state *st, const cJSON *vmi, const cJSON *launcher, const char *pod, fwd_request *out);
/* The launcher answered req (ok or not): it is not sent again. Takes req's spec. */
void fwd_commit(fwd_state *st, fwd_request *req);
/* Cuts a VMI down in place to what fwd_next reads: metadata (less managedFields and kubectl's
 * last-applied copy), spec and status.migrationState. The reporter's informer stores only that. */
void fwd_prune(cJSON *vmi);
void fwd_request_free(fwd_request *req);
void fwd_state_free(fwd_state *st);
const char *fwd_kind_name(fwd_kind kind);
