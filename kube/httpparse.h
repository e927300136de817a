/* Incremental parser of one HTTP/1.1 response as it arrives in arbitrary pieces: the status line, the
 * headers the client acts on (Content-Length, Transfer-Encoding, Connection) and the body framing
 * (Content-Length, chunked, or up to the end of the connection), handing body bytes to a callback as they
 * come, so a watch streams. Pure (no I/O): unit-tested (kube/tests/test-httpparse.c) and fuzzed
 * (tests/fuzz/fuzz-httpparse.c). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_LINE_MAX 8192 /* status line, a header line, a chunk-size line */
#define HTTP_HEADERS_MAX 100

/* Body bytes; returns <0 to stop parsing (that value is returned by http_parser_feed). */
typedef int (*http_body_fn)(const char *data, size_t n, void *ud);

enum http_parse_state {
        HTTP_STATUS,
        HTTP_HEADER,
        HTTP_BODY_LENGTH, /* remaining bytes of a Content-Length body */
        HTTP_BODY_CLOSE,  /* up to the end of the connection */
        HTTP_CHUNK_SIZE,
        HTTP_CHUNK_DATA,
        HTTP_CHUNK_END, /* the CRLF after a chunk's data */
        HTTP_TRAILER,
        HTTP_DONE,
        HTTP_ERROR,
};

typedef struct http_parser {
        enum http_parse_state state;
        int status; /* the final (non-1xx) status code, once the status line is in */
        int minor;  /* HTTP/1.<minor> */
        bool chunked, has_length, close;
        uint64_t length, remaining;
        unsigned headers;
        char line[HTTP_LINE_MAX];
        size_t line_len;
        char error[128]; /* why the state is HTTP_ERROR */
        http_body_fn body;
        void *ud;
} http_parser;

/* Starts a response; body may be NULL (body bytes dropped). */
void http_parser_init(http_parser *p, http_body_fn body, void *ud);
/* Feeds n bytes. Returns how many were consumed (fewer than n once the response is complete: the rest
 * belongs to no response of ours), -1 on a malformed response (p->error says why), or the body callback's
 * negative value. */
long http_parser_feed(http_parser *p, const char *data, size_t n);
/* The peer closed the connection: 0 if that completed the response (a body up to the close, or one already
 * complete), -1 if the response was cut short. */
int http_parser_eof(http_parser *p);
static inline bool http_parser_done(const http_parser *p)
{
        return p->state == HTTP_DONE;
}
/* The headers are in (status known, body or its end next). */
static inline bool http_parser_head_done(const http_parser *p)
{
        return p->state > HTTP_HEADER;
}
/* Whether the connection may carry another request after this (complete) response. */
static inline bool http_parser_reusable(const http_parser *p)
{
        return p->state == HTTP_DONE && !p->close;
}
