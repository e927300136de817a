/* Golden tests for the QMP codec: each codec/NAME.in is a byte stream from a peer; codec/NAME.out is
 * what the framer + parser make of it. Every input is also fed in 1- and 7-byte pieces, which must not
 * change the result (partial lines). KV_UPDATE_GOLDEN=1 rewrites the .out files. */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "qmp-codec.h"
#include "qmp-framer.h"
#include "test-util.h"

#define TEST_MAX_LINE 4096

typedef struct text {
        char *s;
        size_t len;
} text;

static void text_add(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void text_add(text *t, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        char *more = NULL;
        int n = vasprintf(&more, fmt, ap);
        va_end(ap);
        if (n < 0)
                abort();
        t->s = realloc(t->s, t->len + (size_t)n + 1);
        memcpy(t->s + t->len, more, (size_t)n + 1);
        t->len += (size_t)n;
        free(more);
}

static void render_json(text *t, const char *label, const cJSON *json)
{
        _cleanup_free_ char *s = json ? cJSON_PrintUnformatted(json) : strdup("(none)");
        text_add(t, " %s=%s", label, s);
}

static void render_msg(text *t, const qmp_msg *m)
{
        static const char *kinds[] = {"greeting", "return", "error", "event"};
        text_add(t, "%s", kinds[m->kind]);
        if (m->kind == QMP_MSG_RETURN || m->kind == QMP_MSG_ERROR) {
                if (m->has_id)
                        text_add(t, " id=%lld", (long long)m->id);
                else
                        text_add(t, " id=-");
        }
        if (m->kind == QMP_MSG_GREETING)
                render_json(t, "QMP", cJSON_GetObjectItem(m->json, "QMP"));
        if (m->kind == QMP_MSG_RETURN)
                render_json(t, "return", m->ret);
        if (m->kind == QMP_MSG_ERROR)
                text_add(t, " class=%s desc=%s", m->err_class, m->err_desc);
        if (m->kind == QMP_MSG_EVENT) {
                text_add(t, " name=%s", m->event);
                render_json(t, "data", m->data);
        }
        text_add(t, "\n");
}

/* Run the stream through framer + parser like the transport does: the first error is fatal. */
static text decode(const char *in, size_t len, size_t piece)
{
        text t = {0};
        qmp_framer f;
        qmp_framer_init(&f, TEST_MAX_LINE);
        int r = 0;
        for (size_t off = 0; off < len && r >= 0; off += piece) {
                size_t n = len - off < piece ? len - off : piece;
                qmp_framer_feed(&f, in + off, n);
                const char *line;
                size_t ll;
                kv_error err = {0};
                while ((r = qmp_framer_next(&f, &line, &ll, &err)) > 0) {
                        qmp_msg m;
                        r = qmp_msg_parse(line, ll, &m, &err);
                        if (r < 0)
                                break;
                        render_msg(&t, &m);
                        qmp_msg_done(&m);
                }
                if (r < 0)
                        text_add(&t, "fatal %s: %s\n",
                                 r == -E2BIG    ? "E2BIG"
                                 : r == -EPROTO ? "EPROTO"
                                                : "other",
                                 err.msg);
        }
        if (r >= 0 && qmp_framer_pending(&f))
                text_add(&t, "eof mid-message (%zu bytes)\n", qmp_framer_pending(&f));
        qmp_framer_free(&f);
        if (!t.s)
                t.s = strdup("");
        return t;
}

static char *slurp(const char *path, size_t *len)
{
        _cleanup_fclose_ FILE *f = fopen(path, "rb");
        if (!f)
                return NULL;
        char *buf = NULL;
        size_t cap = 0, n;
        *len = 0;
        do {
                buf = realloc(buf, cap += 65536);
                n = fread(buf + *len, 1, cap - *len - 1, f);
                *len += n;
        } while (n > 0);
        buf[*len] = '\0';
        return buf;
}

static void golden_case(const char *dir, const char *name)
{
        char in_path[4096], out_path[4096];
        snprintf(in_path, sizeof(in_path), "%s/%s.in", dir, name);
        snprintf(out_path, sizeof(out_path), "%s/%s.out", dir, name);
        size_t len, elen;
        _cleanup_free_ char *in = slurp(in_path, &len);
        if (!CHECK(in != NULL))
                return;
        text whole = decode(in, len, len ? len : 1), bytes = decode(in, len, 1), sevens = decode(in, len, 7);
        if (!check_at(!strcmp(whole.s, bytes.s) && !strcmp(whole.s, sevens.s), in_path, 0,
                      "result depends on how the stream is split"))
                fprintf(stderr, "whole:\n%s1-byte:\n%s7-byte:\n%s", whole.s, bytes.s, sevens.s);
        if (getenv("KV_UPDATE_GOLDEN")) {
                FILE *f = fopen(out_path, "w");
                fputs(whole.s, f);
                fclose(f);
        }
        _cleanup_free_ char *expected = slurp(out_path, &elen);
        if (!check_at(expected && !strcmp(expected, whole.s), out_path, 0, "golden output differs"))
                fprintf(stderr, "got:\n%s", whole.s);
        free(whole.s);
        free(bytes.s);
        free(sevens.s);
}

static void test_encode(void)
{
        size_t len;
        _cleanup_free_ char *a = qmp_command_encode("query-status", NULL, 1, &len);
        CHECK(a && !strcmp(a, "{\"execute\":\"query-status\",\"id\":1}") && len == strlen(a));
        cJSON *args = cJSON_Parse("{\"id\":\"vdisk1\",\"n\":{\"x\":[1,true,null]}}");
        _cleanup_free_ char *b = qmp_command_encode("device_del", args, 42, &len);
        CHECK(b &&
              !strcmp(
                  b,
                  "{\"execute\":\"device_del\",\"arguments\":{\"id\":\"vdisk1\",\"n\":{\"x\":[1,true,null]}},"
                  "\"id\":42}"));
        /* args is only borrowed */
        CHECK(cJSON_GetObjectItem(args, "id") != NULL);
        cJSON_Delete(args);
}

static void test_event_match(void)
{
        cJSON *ev = cJSON_Parse("{\"event\":\"DEVICE_DELETED\",\"data\":{\"device\":\"vdisk1\",\"n\":1}}");
        CHECK(qmp_event_matches(ev, "DEVICE_DELETED", NULL, NULL));
        CHECK(qmp_event_matches(ev, NULL, NULL, NULL));
        CHECK(qmp_event_matches(ev, "DEVICE_DELETED", "device", "vdisk1"));
        CHECK(!qmp_event_matches(ev, "DEVICE_DELETED", "device", "vdisk2"));
        CHECK(!qmp_event_matches(ev, "DEVICE_DELETED", "n", "1")); /* only string members match */
        CHECK(!qmp_event_matches(ev, "STOP", NULL, NULL));
        cJSON_Delete(ev);
}

int main(int argc, char **argv)
{
        const char *root = getenv("KV_SOURCE_ROOT");
        char dir[4096];
        snprintf(dir, sizeof(dir), "%s/qmp/tests/codec", argc > 1 ? argv[1] : root ? root : ".");
        DIR *d = opendir(dir);
        if (!CHECK(d != NULL))
                return test_exit();
        int cases = 0;
        struct dirent *e;
        while ((e = readdir(d))) {
                size_t n = strlen(e->d_name);
                if (n > 3 && !strcmp(e->d_name + n - 3, ".in")) {
                        char name[256];
                        snprintf(name, sizeof(name), "%.*s", (int)(n - 3), e->d_name);
                        golden_case(dir, name);
                        cases++;
                }
        }
        closedir(d);
        CHECK(cases >= 10);
        test_encode();
        test_event_match();
        printf("%d golden cases\n", cases);
        return test_exit();
}
