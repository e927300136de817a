/* Watch stream framing and event decoding. */
#include "watchstream.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const type_names[] = {"ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"};

const char *kube_event_type_name(enum kube_event_type t)
{
        return (unsigned)t < 5 ? type_names[t] : "?";
}

void kube_watchstream_init(kube_watchstream *ws, kube_event_fn fn, void *userdata)
{
        memset(ws, 0, sizeof(*ws));
        ws->max_line = 32u << 20;
        ws->fn = fn;
        ws->userdata = userdata;
}

void kube_watchstream_reset(kube_watchstream *ws)
{
        ws->len = 0;
        ws->discarding = 0;
}

void kube_watchstream_free(kube_watchstream *ws)
{
        free(ws->line);
        ws->line = NULL;
        ws->len = ws->cap = 0;
}

int kube_event_decode(const char *line, size_t len, enum kube_event_type *type, cJSON **object, kv_error *err)
{
        *object = NULL;
        cJSON *ev = cJSON_ParseWithLength(line, len);
        if (!ev)
                return kv_error_set(err, EPROTO, "watch event: not JSON");
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(ev, "type");
        cJSON *obj = cJSON_DetachItemFromObjectCaseSensitive(ev, "object");
        int r = 0;
        if (!cJSON_IsString(t))
                r = kv_error_set(err, EPROTO, "watch event: type missing");
        else if (!cJSON_IsObject(obj))
                r = kv_error_set(err, EPROTO, "watch event %s: object missing", t->valuestring);
        else {
                r = kv_error_set(err, EPROTO, "watch event: unknown type \"%.32s\"", t->valuestring);
                for (unsigned i = 0; i < 5; i++)
                        if (strcmp(t->valuestring, type_names[i]) == 0) {
                                *type = (enum kube_event_type)i;
                                *object = obj;
                                obj = NULL;
                                r = 0;
                                break;
                        }
        }
        cJSON_Delete(obj);
        cJSON_Delete(ev);
        return r;
}

static int emit_line(kube_watchstream *ws, const char *line, size_t len)
{
        while (len && (line[len - 1] == '\r' || line[len - 1] == ' '))
                len--;
        if (len == 0)
                return 0; /* blank keep-alive lines are legal */
        enum kube_event_type type;
        cJSON *obj;
        kv_error err = {0};
        if (kube_event_decode(line, len, &type, &obj, &err) < 0) {
                ws->bad_lines++;
                snprintf(ws->last_error, sizeof(ws->last_error), "%s", err.msg);
                return 0;
        }
        ws->events++;
        return ws->fn(type, obj, ws->userdata);
}

static int append(kube_watchstream *ws, const char *data, size_t n)
{
        if (ws->discarding)
                return 0;
        if (ws->len + n > ws->max_line) {
                ws->discarding = 1;
                ws->len = 0;
                ws->bad_lines++;
                snprintf(ws->last_error, sizeof(ws->last_error), "watch event: line longer than %zu bytes",
                         ws->max_line);
                return 0;
        }
        if (ws->len + n + 1 > ws->cap) {
                size_t cap = ws->cap ? ws->cap : 4096;
                while (cap < ws->len + n + 1)
                        cap *= 2;
                char *l = realloc(ws->line, cap);
                if (!l)
                        return -ENOMEM;
                ws->line = l;
                ws->cap = cap;
        }
        memcpy(ws->line + ws->len, data, n);
        ws->len += n;
        return 0;
}

int kube_watchstream_feed(kube_watchstream *ws, const char *data, size_t n)
{
        while (n > 0) {
                const char *nl = memchr(data, '\n', n);
                size_t take = nl ? (size_t)(nl - data) : n;
                int r;
                if (nl && ws->len == 0 && !ws->discarding) {
                        r = emit_line(ws, data, take); /* common case: whole line in this chunk, no copy */
                } else {
                        r = append(ws, data, take);
                        if (r == 0 && nl && !ws->discarding)
                                r = emit_line(ws, ws->line, ws->len);
                        if (nl) {
                                ws->len = 0;
                                ws->discarding = 0;
                        }
                }
                if (r < 0)
                        return r;
                if (!nl)
                        break;
                data += take + 1;
                n -= take + 1;
        }
        return 0;
}
