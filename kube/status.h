/* What both API transports share: Status replies mapped to errno codes, and backoff with jitter. No I/O,
 * no libcurl (libkubecore). */
#pragma once

#include <cjson/cJSON.h>
#include <errno.h>

#include "error.h"

/* errno codes that Status replies map to (kube_status_errno); callers branch on these. */
#define KUBE_ENOTFOUND ENOENT /* 404 */
#define KUBE_EEXISTS EEXIST   /* 409 AlreadyExists */
#define KUBE_ECONFLICT ESTALE /* 409 Conflict: stale resourceVersion or failed precondition */
#define KUBE_EEXPIRED ENODATA /* 410 Expired / Gone */
#define KUBE_EINVALID EINVAL  /* 400, 422 */
#define KUBE_EUNAUTH EACCES   /* 401 */
#define KUBE_EFORBIDDEN EPERM /* 403 */
#define KUBE_ETHROTTLED EBUSY /* 429 */
#define KUBE_ESERVER EIO      /* 5xx */

/* Fills err from a Status object (or from the HTTP code alone when status is NULL) and returns -errno. */
int kube_status_error(const cJSON *status, long http_code, const char *what, kv_error *err);
/* The `reason` of a Status object, or "". */
const char *kube_status_reason(const cJSON *status);

/* Backoff with full jitter in [d/2, 3d/2), d = base·2^attempt capped at cap_ms. */
unsigned kube_backoff_ms(unsigned base_ms, unsigned cap_ms, unsigned attempt);
