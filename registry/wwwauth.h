/* WWW-Authenticate challenges (RFC 7235) as registries send them: `Bearer realm="…",service="…",scope="…"`
 * or `Basic realm="…"`. */
#pragma once

#include "error.h"

enum kvreg_auth_scheme { KVREG_AUTH_NONE, KVREG_AUTH_BASIC, KVREG_AUTH_BEARER };

typedef struct kvreg_challenge {
        enum kvreg_auth_scheme scheme;
        char *realm;
        char *service; /* may be NULL */
        char *scope;   /* may be NULL */
} kvreg_challenge;

/* Parses the first Basic or Bearer challenge of a header value (other schemes are skipped).
 * Returns 0, or -EINVAL when no usable challenge is there (Bearer needs a realm). */
int kvreg_challenge_parse(const char *value, kvreg_challenge *out, kv_error *err);
void kvreg_challenge_done(kvreg_challenge *c);
