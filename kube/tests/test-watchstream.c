/* Watch stream decoding: events split at every byte, several per chunk, garbage and over-long lines. */
#include "watchstream.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

typedef struct seen {
        int n;
        char types[16][16];
        char names[16][32];
} seen;

static int record(enum kube_event_type type, cJSON *obj, void *ud)
{
        seen *s = ud;
        const cJSON *md = cJSON_GetObjectItem(obj, "metadata"), *name = cJSON_GetObjectItem(md, "name");
        if (s->n < 16) {
                snprintf(s->types[s->n], 16, "%s", kube_event_type_name(type));
                snprintf(s->names[s->n], 32, "%s", cJSON_IsString(name) ? name->valuestring : "");
        }
        s->n++;
        cJSON_Delete(obj);
        return 0;
}

static const char stream[] =
    "{\"type\":\"ADDED\",\"object\":{\"kind\":\"Pod\",\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"5\"}"
    "}}\n"
    "\n"
    "{\"type\":\"MODIFIED\",\"object\":{\"metadata\":{\"name\":\"b\"}}}\r\n"
    "{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{\"resourceVersion\":\"9\"}}}\n"
    "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":410,\"reason\":\"Expired\"}}\n";

static void check_stream(seen *s)
{
        assert(s->n == 4);
        assert(!strcmp(s->types[0], "ADDED") && !strcmp(s->names[0], "a"));
        assert(!strcmp(s->types[1], "MODIFIED") && !strcmp(s->names[1], "b"));
        assert(!strcmp(s->types[2], "BOOKMARK"));
        assert(!strcmp(s->types[3], "ERROR"));
}

static void test_chunkings(void)
{
        size_t len = strlen(stream);
        for (size_t step = 1; step <= len; step = step < 8 ? step + 1 : step * 2) {
                seen s = {0};
                kube_watchstream ws;
                kube_watchstream_init(&ws, record, &s);
                for (size_t off = 0; off < len; off += step)
                        assert(kube_watchstream_feed(&ws, stream + off,
                                                     off + step > len ? len - off : step) == 0);
                check_stream(&s);
                assert(ws.bad_lines == 0 && ws.len == 0);
                kube_watchstream_free(&ws);
        }
}

static void test_garbage(void)
{
        seen s = {0};
        kube_watchstream ws;
        kube_watchstream_init(&ws, record, &s);
        const char *bad[] = {"not json\n",
                             "{\"type\":\"ADDED\"}\n",
                             "{\"type\":\"WHAT\",\"object\":{}}\n",
                             "{\"type\":3,\"object\":{}}\n",
                             "{\"type\":\"ADDED\",\"object\":[]}\n",
                             "[1,2]\n",
                             "{\"type\":\"ADDED\",\"object\":{}\n"};
        for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
                assert(kube_watchstream_feed(&ws, bad[i], strlen(bad[i])) == 0);
        assert(ws.bad_lines == 7 && s.n == 0);
        assert(strstr(ws.last_error, "watch event"));
        /* a good event after garbage still decodes */
        const char *good = "{\"type\":\"DELETED\",\"object\":{\"metadata\":{\"name\":\"z\"}}}\n";
        kube_watchstream_feed(&ws, good, strlen(good));
        assert(s.n == 1 && !strcmp(s.types[0], "DELETED"));
        kube_watchstream_free(&ws);
}

static void test_long_line(void)
{
        seen s = {0};
        kube_watchstream ws;
        kube_watchstream_init(&ws, record, &s);
        ws.max_line = 64;
        char big[200];
        memset(big, 'x', sizeof(big));
        kube_watchstream_feed(&ws, "{\"type\":\"ADDED\",", 16);
        kube_watchstream_feed(&ws, big, sizeof(big));
        kube_watchstream_feed(&ws, big, sizeof(big));
        kube_watchstream_feed(&ws, "}\n{\"type\":\"ADDED\",\"object\":{}}\n", 31);
        assert(ws.bad_lines == 1 && s.n == 1);
        kube_watchstream_free(&ws);
}

static int stop_at_first(enum kube_event_type type, cJSON *obj, void *ud)
{
        cJSON_Delete(obj);
        (*(int *)ud)++;
        return -1;
}

static void test_callback_abort(void)
{
        int n = 0;
        kube_watchstream ws;
        kube_watchstream_init(&ws, stop_at_first, &n);
        assert(kube_watchstream_feed(&ws, stream, strlen(stream)) < 0 && n == 1);
        kube_watchstream_free(&ws);
}

int main(void)
{
        test_chunkings();
        test_garbage();
        test_long_line();
        test_callback_abort();
        printf("watchstream: ok\n");
        return 0;
}
