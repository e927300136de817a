/* HTTP/1.1 response parser; see httpparse.h. RFC 9112: status line, header fields, message body length
 * (section 6.3), chunked transfer coding (section 7.1). */
#include "httpparse.h"

#include <stdarg.h>
#include <stdio.h>
#include <strings.h>
#include <string.h>

void http_parser_init(http_parser *p, http_body_fn body, void *ud)
{
        memset(p, 0, sizeof(*p));
        p->state = HTTP_STATUS;
        p->body = body;
        p->ud = ud;
}

__attribute__((format(printf, 2, 3))) static long fail(http_parser *p, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->error, sizeof(p->error), fmt, ap);
        va_end(ap);
        p->state = HTTP_ERROR;
        return -1;
}

/* "HTTP/1.x NNN reason" */
static long status_line(http_parser *p, const char *l)
{
        if (strncmp(l, "HTTP/1.", 7) != 0 || l[7] < '0' || l[7] > '9' || l[8] != ' ')
                return fail(p, "not an HTTP/1.x status line");
        int code = 0;
        for (int i = 9; i < 12; i++) {
                if (l[i] < '0' || l[i] > '9')
                        return fail(p, "bad status code");
                code = code * 10 + (l[i] - '0');
        }
        if (code < 100 || (l[12] != ' ' && l[12] != '\0'))
                return fail(p, "bad status code");
        p->minor = l[7] - '0';
        p->status = code;
        p->close = p->minor == 0; /* HTTP/1.0 closes unless it says keep-alive */
        p->chunked = p->has_length = false;
        p->headers = 0;
        p->state = HTTP_HEADER;
        return 0;
}

static bool token_in_list(const char *list, const char *token)
{
        size_t n = strlen(token);
        for (const char *s = list; *s;) {
                s += strspn(s, " \t,");
                size_t len = strcspn(s, ",");
                while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
                        len--;
                if (len == n && strncasecmp(s, token, n) == 0)
                        return true;
                s += strcspn(s, ",");
        }
        return false;
}

/* The last transfer coding of a Transfer-Encoding list. */
static bool ends_chunked(const char *v)
{
        const char *last = strrchr(v, ',');
        last = last ? last + 1 : v;
        last += strspn(last, " \t");
        size_t len = strcspn(last, " \t;");
        return len == 7 && strncasecmp(last, "chunked", 7) == 0;
}

static long content_length(http_parser *p, const char *v)
{
        uint64_t n = 0;
        if (!*v)
                return fail(p, "empty Content-Length");
        for (const char *s = v; *s; s++) {
                if (*s < '0' || *s > '9' || n > (UINT64_MAX - 9) / 10)
                        return fail(p, "bad Content-Length");
                n = n * 10 + (uint64_t)(*s - '0');
        }
        if (p->has_length && n != p->length)
                return fail(p, "conflicting Content-Length headers");
        p->has_length = true;
        p->length = n;
        return 0;
}

/* Where the body starts, once the empty line ends the headers. */
static long end_of_headers(http_parser *p)
{
        if (p->status < 200) { /* 1xx interim response: the real one follows */
                p->state = HTTP_STATUS;
                return 0;
        }
        if (p->status == 204 || p->status == 304) {
                p->state = HTTP_DONE;
                return 0;
        }
        if (p->chunked) {
                p->has_length = false; /* Transfer-Encoding overrides Content-Length */
                p->state = HTTP_CHUNK_SIZE;
        } else if (p->has_length) {
                p->remaining = p->length;
                p->state = p->length ? HTTP_BODY_LENGTH : HTTP_DONE;
        } else {
                p->close = true;
                p->state = HTTP_BODY_CLOSE;
        }
        return 0;
}

static long header_line(http_parser *p, char *l)
{
        if (!*l)
                return end_of_headers(p);
        if (*l == ' ' || *l == '\t')
                return fail(p, "obsolete header line folding");
        if (++p->headers > HTTP_HEADERS_MAX)
                return fail(p, "more than %d header fields", HTTP_HEADERS_MAX);
        char *colon = strchr(l, ':');
        if (!colon || colon == l || strcspn(l, " \t") < (size_t)(colon - l))
                return fail(p, "malformed header field");
        *colon = '\0';
        char *v = colon + 1;
        v += strspn(v, " \t");
        size_t vl = strlen(v);
        while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
                v[--vl] = '\0';
        if (strcasecmp(l, "Content-Length") == 0)
                return content_length(p, v);
        if (strcasecmp(l, "Transfer-Encoding") == 0) {
                /* anything but chunked last: the body runs to the close (RFC 9112 6.3) */
                p->chunked = ends_chunked(v);
                if (!p->chunked)
                        p->close = true;
        } else if (strcasecmp(l, "Connection") == 0) {
                if (token_in_list(v, "close"))
                        p->close = true;
                else if (token_in_list(v, "keep-alive"))
                        p->close = false;
        }
        return 0;
}

/* "1a3f;ext=1" */
static long chunk_size(http_parser *p, const char *l)
{
        uint64_t n = 0;
        size_t digits = 0;
        for (; *l && *l != ';' && *l != ' ' && *l != '\t'; l++, digits++) {
                int d = *l >= '0' && *l <= '9'   ? *l - '0'
                        : *l >= 'a' && *l <= 'f' ? *l - 'a' + 10
                        : *l >= 'A' && *l <= 'F' ? *l - 'A' + 10
                                                 : -1;
                if (d < 0 || digits >= 15)
                        return fail(p, "bad chunk size");
                n = n * 16 + (uint64_t)d;
        }
        if (!digits)
                return fail(p, "bad chunk size");
        p->remaining = n;
        p->state = n ? HTTP_CHUNK_DATA : HTTP_TRAILER;
        return 0;
}

static long on_line(http_parser *p)
{
        char *l = p->line;
        switch (p->state) {
        case HTTP_STATUS:
                if (!*l && p->status == 0 && p->headers == 0)
                        return 0; /* tolerate an empty line before the response (RFC 9112 2.2) */
                return status_line(p, l);
        case HTTP_HEADER:
                return header_line(p, l);
        case HTTP_CHUNK_SIZE:
                return chunk_size(p, l);
        case HTTP_CHUNK_END:
                if (*l)
                        return fail(p, "chunk data longer than its size");
                p->state = HTTP_CHUNK_SIZE;
                return 0;
        case HTTP_TRAILER:
                if (!*l)
                        p->state = HTTP_DONE;
                return 0; /* trailer fields are not used */
        default:
                return fail(p, "internal: line in state %d", (int)p->state);
        }
}

/* Collects one CRLF (or bare LF) terminated line; returns bytes consumed, the line handled when complete. */
static long take_line(http_parser *p, const char *data, size_t n)
{
        const char *nl = memchr(data, '\n', n);
        size_t take = nl ? (size_t)(nl - data) + 1 : n;
        size_t add = nl ? take - 1 : take;
        if (p->line_len + add >= sizeof(p->line))
                return fail(p, "line longer than %d bytes", HTTP_LINE_MAX);
        memcpy(p->line + p->line_len, data, add);
        p->line_len += add;
        if (!nl)
                return (long)take;
        if (p->line_len && p->line[p->line_len - 1] == '\r')
                p->line_len--;
        p->line[p->line_len] = '\0';
        if (memchr(p->line, '\0', p->line_len))
                return fail(p, "NUL byte in a line");
        p->line_len = 0;
        long r = on_line(p);
        return r < 0 ? r : (long)take;
}

static long take_body(http_parser *p, const char *data, size_t n)
{
        size_t take = n;
        if (p->state != HTTP_BODY_CLOSE && p->remaining < take)
                take = (size_t)p->remaining;
        if (p->body) {
                int r = p->body(data, take, p->ud);
                if (r < 0)
                        return r;
        }
        if (p->state != HTTP_BODY_CLOSE) {
                p->remaining -= take;
                if (!p->remaining)
                        p->state = p->state == HTTP_CHUNK_DATA ? HTTP_CHUNK_END : HTTP_DONE;
        }
        return (long)take;
}

long http_parser_feed(http_parser *p, const char *data, size_t n)
{
        size_t off = 0;
        while (off < n) {
                long r;
                switch (p->state) {
                case HTTP_DONE:
                        return (long)off;
                case HTTP_ERROR:
                        return -1;
                case HTTP_BODY_LENGTH:
                case HTTP_BODY_CLOSE:
                case HTTP_CHUNK_DATA:
                        r = take_body(p, data + off, n - off);
                        break;
                default:
                        r = take_line(p, data + off, n - off);
                }
                if (r < 0)
                        return r;
                off += (size_t)r;
        }
        return (long)off;
}

int http_parser_eof(http_parser *p)
{
        if (p->state == HTTP_BODY_CLOSE)
                p->state = HTTP_DONE;
        if (p->state == HTTP_DONE)
                return 0;
        if (p->state != HTTP_ERROR)
                fail(p, "connection closed before the end of the response");
        return -1;
}
