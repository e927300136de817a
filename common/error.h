/* The one error object passed down the call chain (crun style): filled once where a failure happens,
 * wrapped with context by callers, printed once at the top. */
#pragma once

#include <stdarg.h>

#define KV_ERR_MSG_MAX 1024

typedef struct kv_error {
        int code;                 /* errno-style code, positive; 0 = no error */
        char msg[KV_ERR_MSG_MAX]; /* human readable, already includes strerror where relevant */
} kv_error;

/* Record an error and return -code (so `return kv_error_set(err, EINVAL, "...")` works). */
int kv_error_set(kv_error *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Same, appending ": strerror(code)". */
int kv_error_errno(kv_error *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Prefix context to an existing error ("open disk: " + old message); returns -err->code. */
int kv_error_wrap(kv_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void kv_error_clear(kv_error *err);
