/* kv_error: one error slot, filled where the failure happens. */
#include "error.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

__attribute__((format(printf, 4, 0))) static int fill(kv_error *err, int code, const char *suffix,
                                                      const char *fmt, va_list ap)
{
        if (code <= 0)
                code = EIO;
        if (!err)
                return -code;
        err->code = code;
        int n = vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        if (suffix && n >= 0 && (size_t)n < sizeof(err->msg))
                snprintf(err->msg + n, sizeof(err->msg) - n, ": %s", suffix);
        return -code;
}

int kv_error_set(kv_error *err, int code, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        int r = fill(err, code, NULL, fmt, ap);
        va_end(ap);
        return r;
}

int kv_error_errno(kv_error *err, int code, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        int r = fill(err, code, strerror(code > 0 ? code : EIO), fmt, ap);
        va_end(ap);
        return r;
}

int kv_error_wrap(kv_error *err, const char *fmt, ...)
{
        if (!err)
                return -EIO;
        char prefix[KV_ERR_MSG_MAX], old[KV_ERR_MSG_MAX];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(prefix, sizeof(prefix), fmt, ap);
        va_end(ap);
        memcpy(old, err->msg, sizeof(old));
        snprintf(err->msg, sizeof(err->msg), "%s: %s", prefix, old);
        if (err->code <= 0)
                err->code = EIO;
        return -err->code;
}

void kv_error_clear(kv_error *err)
{
        if (err) {
                err->code = 0;
                err->msg[0] = '\0';
        }
}
