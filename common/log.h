/* JSON-lines logging to stderr, shaped like KubeVirt's component logs. */
#pragma once

enum kv_log_level { KV_LOG_DEBUG, KV_LOG_INFO, KV_LOG_WARNING, KV_LOG_ERROR };

void kv_log_init(const char *component);
void kv_log_set_vmi(const char *ns_name); /* "namespace/name" or NULL */
void kv_log_set_level(enum kv_log_level min);
void kv_log(enum kv_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Log with extra pre-rendered JSON members, e.g. "\"reason\":\"x\"" (caller guarantees valid JSON). */
void kv_log_kv(enum kv_log_level level, const char *extra_json, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_debug(...) kv_log(KV_LOG_DEBUG, __VA_ARGS__)
#define log_info(...) kv_log(KV_LOG_INFO, __VA_ARGS__)
#define log_warning(...) kv_log(KV_LOG_WARNING, __VA_ARGS__)
#define log_error(...) kv_log(KV_LOG_ERROR, __VA_ARGS__)
