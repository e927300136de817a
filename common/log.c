/* JSON-lines logger: {"level":..,"component":..,"msg":..,"vmi":..,"ts":..}. One write(2) per line so
 * lines from several processes sharing stderr do not interleave. */
#include "log.h"
#include "jsonesc.h"
#include "macro.h"
#include "clock.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
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

/* Ends s at its first len bytes, less a UTF-8 sequence the cut split. */
static void utf8_cut(char *s, size_t len)
{
        size_t end = len;
        while (end > 0 && ((unsigned char)s[end - 1] & 0xC0) == 0x80)
                end--; /* continuation bytes of the last sequence */
        if (end > 0 && (unsigned char)s[end - 1] >= 0xC0) {
                unsigned char lead = (unsigned char)s[end - 1];
                size_t want = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
                if (len - (end - 1) >= want)
                        end = len; /* the last sequence is whole */
                else
                        end--;
        } else {
                end = len;
        }
        s[end] = '\0';
}

static const char *level_name(enum kv_log_level level)
{
        static const char *names[] = {"debug", "info", "warning", "error"};
        return level <= KV_LOG_ERROR ? names[level] : "info";
}

static int format_line(char *buf, size_t size, enum kv_log_level level, const char *esc_msg,
                       const char *esc_vmi, const char *extra, const char *ts)
{
        return snprintf(
            buf, size, "{\"level\":\"%s\",\"component\":\"%s\",\"msg\":\"%s\"%s%s%s%s%s,\"ts\":\"%s\"}\n",
            level_name(level), component, esc_msg, vmi[0] ? ",\"vmi\":\"" : "", vmi[0] ? esc_vmi : "",
            vmi[0] ? "\"" : "", extra && *extra ? "," : "", extra ? extra : "", ts);
}

/* The usual line is built on the stack; a longer message or extra members go to the heap so the line stays
 * one whole JSON object. Without memory the message is cut (on a UTF-8 boundary) and the extra members
 * dropped, which "truncated":true says. */
__attribute__((format(printf, 3, 0))) static void emit(enum kv_log_level level, const char *extra,
                                                       const char *fmt, va_list ap)
{
        if (level < min_level)
                return;
        char msg_buf[2048], esc_buf[4200], esc_vmi[600], ts[40], line_buf[8192];
        _cleanup_free_ char *msg_heap = NULL, *esc_heap = NULL, *line_heap = NULL;
        va_list ap2;
        va_copy(ap2, ap);
        int n = vsnprintf(msg_buf, sizeof(msg_buf), fmt, ap);
        const char *msg = msg_buf;
        if (n >= (int)sizeof(msg_buf) && vasprintf(&msg_heap, fmt, ap2) >= 0)
                msg = msg_heap;
        else
                msg_heap = NULL;
        va_end(ap2);
        size_t esc_size = strlen(msg) * 6 + 1; /* \u00XX at most */
        char *esc_msg = esc_buf;
        if (esc_size > sizeof(esc_buf) && (esc_heap = malloc(esc_size)))
                esc_msg = esc_heap;
        else
                esc_size = sizeof(esc_buf);
        json_escape(msg, esc_msg, esc_size);
        json_escape(vmi, esc_vmi, sizeof(esc_vmi));
        rfc3339_now_us(ts, sizeof(ts));

        const char *line = line_buf;
        int len = format_line(line_buf, sizeof(line_buf), level, esc_msg, esc_vmi, extra, ts);
        if (len < 0)
                return;
        if ((size_t)len >= sizeof(line_buf)) {
                if ((line_heap = malloc((size_t)len + 1)) &&
                    format_line(line_heap, (size_t)len + 1, level, esc_msg, esc_vmi, extra, ts) == len) {
                        line = line_heap;
                } else {
                        /* fits: the message's escape is at most 4 KiB, the VMI's 600 bytes */
                        utf8_cut(msg_buf, n < (int)sizeof(msg_buf) ? (size_t)n : sizeof(msg_buf) - 1);
                        json_escape(msg_buf, esc_buf, sizeof(esc_buf));
                        utf8_cut(esc_buf, strlen(esc_buf));
                        len = format_line(line_buf, sizeof(line_buf), level, esc_buf, esc_vmi,
                                          "\"truncated\":true", ts);
                        if (len < 0 || (size_t)len >= sizeof(line_buf))
                                return;
                }
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
