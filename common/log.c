/* JSON-lines logger: {"level":..,"component":..,"msg":..,"vmi":..,"ts":..}. One write(2) per line so
 * lines from several processes sharing stderr do not interleave. */
#include "log.h"
#include "jsonesc.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *component = "kvlite";
static char vmi[256];
static enum kv_log_level min_level = KV_LOG_INFO;

void kv_log_init(const char *name)
{
        component = name;
}

void kv_log_set_vmi(const char *ns_name)
{
        snprintf(vmi, sizeof(vmi), "%s", ns_name ? ns_name : "");
}

void kv_log_set_level(enum kv_log_level level)
{
        min_level = level;
}

static const char *level_name(enum kv_log_level level)
{
        static const char *names[] = {"debug", "info", "warning", "error"};
        return level <= KV_LOG_ERROR ? names[level] : "info";
}

__attribute__((format(printf, 3, 0))) static void emit(enum kv_log_level level, const char *extra,
                                                       const char *fmt, va_list ap)
{
        if (level < min_level)
                return;
        char msg[2048], esc_msg[4200], esc_vmi[600], ts[40], line[8192];
        vsnprintf(msg, sizeof(msg), fmt, ap);
        json_escape(msg, esc_msg, sizeof(esc_msg));
        json_escape(vmi, esc_vmi, sizeof(esc_vmi));
        struct timespec now;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &now);
        gmtime_r(&now.tv_sec, &tm);
        size_t n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(ts + n, sizeof(ts) - n, ".%06ldZ", now.tv_nsec / 1000);
        int len = snprintf(line, sizeof(line),
                           "{\"level\":\"%s\",\"component\":\"%s\",\"msg\":\"%s\"%s%s%s%s%s,\"ts\":\"%s\"}\n",
                           level_name(level), component, esc_msg, vmi[0] ? ",\"vmi\":\"" : "",
                           vmi[0] ? esc_vmi : "", vmi[0] ? "\"" : "", extra && *extra ? "," : "",
                           extra ? extra : "", ts);
        if (len < 0)
                return;
        if ((size_t)len >= sizeof(line)) {
                len = sizeof(line) - 1;
                line[len - 1] = '\n';
        }
        ssize_t w = write(STDERR_FILENO, line, (size_t)len);
        (void)w;
}

void kv_log(enum kv_log_level level, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        emit(level, NULL, fmt, ap);
        va_end(ap);
}

void kv_log_kv(enum kv_log_level level, const char *extra_json, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        emit(level, extra_json, fmt, ap);
        va_end(ap);
}
