/* Status replies as kv_errors, and the retry backoff, shared by both transports (libcurl's client.c and
 * the reporter's lite.c). */
#include "status.h"

#include <stdlib.h>
#include <string.h>

unsigned kube_backoff_ms(unsigned base_ms, unsigned cap_ms, unsigned attempt)
{
        unsigned long d = base_ms;
        for (unsigned i = 0; i < attempt && d < cap_ms; i++)
                d *= 2;
        if (d > cap_ms)
                d = cap_ms;
        /* jitter keeps a fleet of clients from retrying in lock step after a server restart */
        return (unsigned)(d / 2 + (unsigned long)random() % (d ? d : 1));
}

const char *kube_status_reason(const cJSON *status)
{
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(status, "reason");
        return cJSON_IsString(r) ? r->valuestring : "";
}

static int http_errno(long code, const char *reason)
{
        switch (code) {
        case 400:
        case 422:
                return KUBE_EINVALID;
        case 401:
                return KUBE_EUNAUTH;
        case 403:
                return KUBE_EFORBIDDEN;
        case 404:
                return KUBE_ENOTFOUND;
        case 409:
                return strcmp(reason, "AlreadyExists") == 0 ? KUBE_EEXISTS : KUBE_ECONFLICT;
        case 410:
                return KUBE_EEXPIRED;
        case 429:
                return KUBE_ETHROTTLED;
        default:
                return code >= 500 ? KUBE_ESERVER : EPROTO;
        }
}

int kube_status_error(const cJSON *status, long http_code, const char *what, kv_error *err)
{
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(status, "code");
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(status, "message");
        const char *reason = kube_status_reason(status);
        /* Trust the Status's code only when it is an HTTP status; anything else (or out of range for a
         * long) keeps the transport's code. */
        if (cJSON_IsNumber(code) && code->valuedouble >= 100 && code->valuedouble <= 599)
                http_code = (long)code->valuedouble;
        return kv_error_set(err, http_errno(http_code, reason), "%s: %ld %s: %s", what, http_code,
                            *reason ? reason : "Error",
                            cJSON_IsString(msg) ? msg->valuestring : "(no message)");
}
