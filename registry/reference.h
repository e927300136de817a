/* Image references: `docker://host[:port]/repo[:tag|@digest]` or plain `host/repo:tag`, with Docker's
 * defaults (no host → docker.io, one-component docker.io repos → library/NAME, no tag → latest). */
#pragma once

#include "error.h"

typedef struct kvreg_ref {
        char *host;   /* "docker.io", "127.0.0.1:5000" */
        char *repo;   /* "library/debian", "vms/guest" */
        char *tag;    /* NULL when the reference names a digest */
        char *digest; /* "sha256:<64 hex>" or NULL */
} kvreg_ref;

/* Returns 0 or -EINVAL with a message naming the bad part. */
int kvreg_ref_parse(const char *s, kvreg_ref *out, kv_error *err);
void kvreg_ref_done(kvreg_ref *r);
/* "sha256:" followed by 64 lowercase hex digits (the only algorithm this client verifies). */
int kvreg_digest_valid(const char *d);
