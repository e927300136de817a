/* HTTP response parsing: each framing (Content-Length, chunked, up to the close), fed whole and a byte at a
 * time, keep-alive decisions, interim 1xx replies, and malformed responses rejected with a reason. */
#include "httpparse.h"

#include <stdlib.h>

#include "test-util.h"

typedef struct sink {
        char data[4096];
        size_t len;
        int stop_after; /* >0: the callback stops the parser after this many calls */
        int calls;
} sink;

static int collect(const char *d, size_t n, void *ud)
{
        sink *s = ud;
        if (s->len + n < sizeof(s->data)) {
                memcpy(s->data + s->len, d, n);
                s->len += n;
                s->data[s->len] = '\0';
        }
        return ++s->calls == s->stop_after ? -7 : 0;
}

/* Feeds text in steps of `step` bytes (0: whole); returns the bytes consumed in all, or the error. */
static long feed(http_parser *p, const char *text, size_t step)
{
        size_t n = strlen(text), off = 0;
        while (off < n) {
                size_t take = step && step < n - off ? step : n - off;
                long r = http_parser_feed(p, text + off, take);
                if (r < 0)
                        return r;
                off += (size_t)r;
                if ((size_t)r < take)
                        break;
        }
        return (long)off;
}

static void check_body(const char *resp, size_t step, int status, const char *body, bool reusable)
{
        http_parser p;
        sink s = {0};
        http_parser_init(&p, collect, &s);
        long r = feed(&p, resp, step);
        if (p.state == HTTP_BODY_CLOSE)
                CHECK(http_parser_eof(&p) == 0);
        CHECK(r > 0);
        CHECK(http_parser_done(&p));
        CHECK(p.status == status);
        CHECK_STR(s.data, body);
        CHECK(http_parser_reusable(&p) == reusable);
}

static void framing(void)
{
        static const char length[] =
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n"
            "{\"a\":1}";
        static const char chunked[] = "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
                                      "3;ext=x\r\nabc\r\n"
                                      "A\r\n0123456789\r\n"
                                      "0\r\nX-Trailer: y\r\n\r\n";
        static const char close_delim[] = "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n\r\nto the end";
        static const char http10[] = "HTTP/1.0 404 Not Found\r\nContent-Length: 2\r\n\r\nno";
        static const char lf_only[] = "HTTP/1.1 500 Boom\nContent-Length: 3\nConnection: Close\n\nerr";
        static const char interim[] =
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        static const char empty[] = "HTTP/1.1 204 No Content\r\n\r\n";
        for (size_t step = 0; step < 4; step++) {
                check_body(length, step, 200, "{\"a\":1}", true);
                check_body(chunked, step, 201, "abc0123456789", true);
                check_body(close_delim, step, 200, "to the end", false);
                check_body(http10, step, 404, "no", false);
                check_body(lf_only, step, 500, "err", false);
                check_body(interim, step, 200, "ok", true);
                check_body(empty, step, 204, "", true);
        }
}

/* The bytes after a complete response are not consumed (they are no reply to our request). */
static void pipelined_rest(void)
{
        static const char two[] = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxHTTP/1.1 200 OK\r\n";
        http_parser p;
        http_parser_init(&p, NULL, NULL);
        CHECK(http_parser_feed(&p, two, strlen(two)) == (long)strlen(two) - 17);
        CHECK(http_parser_done(&p));
}

/* A watch: chunks arrive as events happen; the body reaches the callback before the response ends, and the
 * callback's stop comes back from feed. */
static void streaming(void)
{
        http_parser p;
        sink s = {.stop_after = 2};
        http_parser_init(&p, collect, &s);
        const char *head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        CHECK(http_parser_feed(&p, head, strlen(head)) == (long)strlen(head));
        CHECK(http_parser_head_done(&p) && p.status == 200 && p.chunked);
        CHECK(http_parser_feed(&p, "4\r\nev1\n\r\n", 9) == 9);
        CHECK_STR(s.data, "ev1\n");
        CHECK(!http_parser_done(&p));
        CHECK(http_parser_feed(&p, "4\r\nev2\n\r\n", 9) == -7);
        /* cut before the last chunk: the close does not complete it */
        http_parser_init(&p, NULL, NULL);
        CHECK(http_parser_feed(&p, head, strlen(head)) == (long)strlen(head));
        CHECK(http_parser_eof(&p) < 0);
        CHECK(strstr(p.error, "closed") != NULL);
        /* and a Content-Length body cut short neither */
        http_parser_init(&p, NULL, NULL);
        const char *cut = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc";
        CHECK(http_parser_feed(&p, cut, strlen(cut)) == (long)strlen(cut));
        CHECK(http_parser_eof(&p) < 0);
}

static void check_bad(const char *resp, const char *why)
{
        http_parser p;
        http_parser_init(&p, NULL, NULL);
        long r = feed(&p, resp, 0);
        CHECK(r == -1);
        CHECK(p.state == HTTP_ERROR);
        if (!strstr(p.error, why)) {
                fprintf(stderr, "error \"%s\" does not say \"%s\"\n", p.error, why);
                test_failures++;
        }
}

static void malformed(void)
{
        check_bad("SSH-2.0-OpenSSH\r\n", "status line");
        check_bad("HTTP/1.1 2x0 OK\r\n", "status code");
        check_bad("HTTP/1.1 099 Low\r\n", "status code");
        check_bad("HTTP/1.1 200 OK\r\nContent-Length: 12a\r\n\r\n", "Content-Length");
        check_bad("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n", "Content-Length");
        check_bad("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "conflicting");
        check_bad("HTTP/1.1 200 OK\r\nNo colon here\r\n\r\n", "malformed header");
        check_bad("HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", "malformed header");
        check_bad("HTTP/1.1 200 OK\r\n folded\r\n\r\n", "folding");
        check_bad("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "chunk size");
        check_bad("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1000000000000000\r\n", "chunk size");
        check_bad("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n",
                  "longer than its size");
        char *long_line = malloc(HTTP_LINE_MAX + 64);
        snprintf(long_line, HTTP_LINE_MAX + 64, "HTTP/1.1 200 OK\r\nX: %0*d\r\n\r\n", HTTP_LINE_MAX, 0);
        check_bad(long_line, "longer than");
        free(long_line);
        char many[HTTP_HEADERS_MAX * 8 + 64] = "HTTP/1.1 200 OK\r\n";
        for (int i = 0; i <= HTTP_HEADERS_MAX; i++)
                strcat(many, "A: b\r\n");
        check_bad(many, "header fields");
        /* Transfer-Encoding wins over Content-Length (RFC 9112 6.3) */
        check_body(
            "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nz\r\n0\r\n\r\n",
            0, 200, "z", true);
}

int main(void)
{
        framing();
        pipelined_rest();
        streaming();
        malformed();
        return test_result("test-httpparse");
}
