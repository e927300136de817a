/* The OCI distribution pull path with failover: a tag is resolved on the first registry that answers,
 * the digest is pinned and verified, then blobs are fetched by digest down the list of registries,
 * continuing a blob on the next registry when one stops mid-transfer. Every blob is verified (sha256)
 * while it streams; nothing is held in memory but manifests. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "http.h"
#include "manifest.h"
#include "reference.h"
#include "regconfig.h"

#define KVREG_MAX_FAILURES 32

/* Which registry served what and which failed, for DataVolume status and Events. */
typedef struct kvreg_failure {
        char registry[128];
        char what[96];    /* "manifest vms/guest:1", "blob sha256:abcd…" */
        char reason[256]; /* "connection refused", "HTTP 503", "stopped after 123 bytes: …" */
} kvreg_failure;

typedef struct kvreg_report {
        char resolved_by[128]; /* registry that resolved the tag */
        char digest[80];       /* pinned manifest digest */
        char served[4][128];   /* registries that served blob bytes, in order of first use */
        size_t n_served;
        kvreg_failure failed[KVREG_MAX_FAILURES];
        size_t n_failed;
} kvreg_report;

/* Renders the report as one JSON object (caller frees). */
char *kvreg_report_json(const kvreg_report *r);

typedef struct kvreg_client {
        kvreg_http http;
        kvreg_endpoint *endpoints;
        size_t n_endpoints;
        kvreg_ref ref;
        const char *arch; /* "amd64" */
        kvreg_report report;
        /* called with each chunk's size as blob bytes arrive (progress) */
        void (*progress)(void *ctx, size_t bytes);
        void *progress_ctx;
} kvreg_client;

/* cfg may be NULL (the reference's own registry over https). */
int kvreg_client_init(kvreg_client *c, const kvreg_config *cfg, const char *reference, kv_error *err);
void kvreg_client_done(kvreg_client *c);

/* Resolves the reference to an image manifest (through an index when needed). */
int kvreg_resolve(kvreg_client *c, kvreg_manifest *out, kv_error *err);

/* Streams a blob to sink, verifying size and sha256. Fails over between registries, resuming with a
 * Range request (or skipping what was already delivered). -EIO when no registry could serve it,
 * -EBADMSG on a digest mismatch, the sink's error otherwise. */
int kvreg_blob_fetch(kvreg_client *c, const kvreg_descriptor *blob, kvreg_sink sink, void *sink_ctx,
                     kv_error *err);
