/* virtctl's websocket client (wsclient.h). */
#include "wsclient.h"

#include <curl/curl.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "client.h"
#include "fdio.h"
#include "macro.h"
#include "wsframe.h"

#define HEAD_MAX 16384
#define IO_TIMEOUT_MS 30000

struct wsclient {
        CURL *e;
        curl_socket_t fd;
        uint8_t *in; /* received bytes not yet parsed into frames */
        size_t len;
};

static void random_bytes(void *p, size_t n)
{
        if (getrandom(p, n, 0) != (ssize_t)n)
                memset(p, 0x5a, n); /* the key and masks defend against proxies' caches, not attackers */
}

static int wait_fd(curl_socket_t fd, short events, int timeout_ms)
{
        struct pollfd p = {.fd = fd, .events = events};
        int r;
        while ((r = poll(&p, 1, timeout_ms)) < 0 && errno == EINTR)
                ;
        return r > 0 ? 0 : -ETIMEDOUT;
}

static int send_all(wsclient *w, const void *buf, size_t len)
{
        const char *p = buf;
        while (len) {
                size_t n = 0;
                CURLcode cc = curl_easy_send(w->e, p, len, &n);
                if (cc == CURLE_AGAIN) {
                        if (wait_fd(w->fd, POLLOUT, IO_TIMEOUT_MS) < 0)
                                return -ETIMEDOUT;
                        continue;
                }
                if (cc != CURLE_OK)
                        return -EIO;
                p += n;
                len -= n;
        }
        return 0;
}

/* Whatever is there now: >0 bytes, 0 for none yet, -EPIPE when the server closed. */
static ssize_t recv_some(wsclient *w, void *buf, size_t size)
{
        size_t n = 0;
        CURLcode cc = curl_easy_recv(w->e, buf, size, &n);
        if (cc == CURLE_AGAIN)
                return 0;
        if (cc != CURLE_OK || n == 0)
                return -EPIPE;
        return (ssize_t)n;
}

/* A masked frame, as a client must send. */
static int send_frame(wsclient *w, unsigned opcode, const void *payload, size_t len)
{
        uint8_t mask[4], h[WS_HEADER_MAX];
        _cleanup_free_ uint8_t *copy = malloc(len ? len : 1);
        if (!copy)
                return -ENOMEM;
        random_bytes(mask, sizeof(mask));
        size_t hl = ws_frame_header(h, opcode, len, mask);
        if (len)
                memcpy(copy, payload, len);
        ws_mask(copy, len, mask);
        int r = send_all(w, h, hl);
        return r < 0 ? r : send_all(w, copy, len);
}

/* A random Sec-WebSocket-Key: 16 bytes in base64 (22 characters, the last with 4 zero bits, and "=="). */
static void make_key(char key[25])
{
        static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        uint8_t r[22];
        random_bytes(r, sizeof(r));
        for (int i = 0; i < 21; i++)
                key[i] = b64[r[i] & 63];
        key[21] = b64[r[21] & 48];
        memcpy(key + 22, "==", 3);
}

/* The message of a Status body, or the body itself. */
static void error_body(const char *body, long code, kv_error *err)
{
        cJSON *st = cJSON_Parse(body);
        const char *msg = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(st, "message"));
        kv_error_set(err, EPROTO, "%s", msg ? msg : *body ? body : "the server refused the upgrade");
        cJSON_Delete(st);
}

static int read_head(wsclient *w, char *head, size_t *len, char **end)
{
        while (!(*end = memmem(head, *len, "\r\n\r\n", 4))) {
                if (*len >= HEAD_MAX - 1)
                        return -E2BIG;
                ssize_t n = recv_some(w, head + *len, HEAD_MAX - 1 - *len);
                if (n < 0)
                        return (int)n;
                if (n == 0 && wait_fd(w->fd, POLLIN, IO_TIMEOUT_MS) < 0)
                        return -ETIMEDOUT;
                *len += (size_t)n;
                head[*len] = 0;
        }
        return 0;
}

/* The rest of a refusal's body (the server closes or sends Content-Length bytes). */
static void read_body(wsclient *w, char *head, size_t len, const char *body)
{
        const char *cl = strcasestr(head, "\r\nContent-Length:");
        size_t want = cl ? strtoul(cl + 17, NULL, 10) : HEAD_MAX;
        while ((size_t)(head + len - body) < want && len < HEAD_MAX - 1) {
                ssize_t n = recv_some(w, head + len, HEAD_MAX - 1 - len);
                if (n < 0 || (n == 0 && wait_fd(w->fd, POLLIN, IO_TIMEOUT_MS) < 0))
                        break;
                len += (size_t)n;
                head[len] = 0;
        }
}

static int upgrade(wsclient *w, kube_config *cfg, const char *path, const char *subprotocol, long *code,
                   kv_error *err)
{
        const char *host = strstr(cfg->server, "://");
        host = host ? host + 3 : cfg->server;
        _cleanup_free_ char *token = NULL, *req = NULL, *head = malloc(HEAD_MAX);
        char key[25], *end;
        int r = kube_config_bearer(cfg, &token, err);
        if (r < 0)
                return r;
        if (!head)
                return kv_error_set(err, ENOMEM, "out of memory");
        make_key(key);
        if (asprintf(&req,
                     "GET %s HTTP/1.1\r\nHost: %.*s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: %s\r\n"
                     "User-Agent: virtctl/kvlite\r\n%s%s%s\r\n",
                     path, (int)strcspn(host, "/"), host, key, subprotocol,
                     token ? "Authorization: Bearer " : "", token ? token : "", token ? "\r\n" : "") < 0)
                return kv_error_set(err, ENOMEM, "out of memory");
        size_t len = 0;
        if ((r = send_all(w, req, strlen(req))) < 0 || (r = read_head(w, head, &len, &end)) < 0)
                return kv_error_errno(err, -r, "websocket upgrade %s", path);
        if (sscanf(head, "HTTP/1.%*d %ld", code) != 1)
                return kv_error_set(err, EPROTO, "websocket upgrade %s: not an HTTP answer", path);
        if (*code != 101) {
                read_body(w, head, len, end + 4);
                error_body(end + 4, *code, err);
                return -EPROTO;
        }
        /* Frames the server sent right behind its answer. */
        size_t extra = len - (size_t)(end + 4 - head);
        if (extra > WS_PAYLOAD_MAX)
                return kv_error_set(err, EPROTO, "websocket: too much data");
        memcpy(w->in, end + 4, extra);
        w->len = extra;
        return 0;
}

int ws_open(kube_config *cfg, const char *path, const char *subprotocol, wsclient **out, long *http_code,
            kv_error *err)
{
        _cleanup_free_ char *url = NULL;
        struct curl_slist *headers = NULL;
        *http_code = 0;
        wsclient *w = calloc(1, sizeof(*w));
        if (!w || !(w->in = malloc(WS_PAYLOAD_MAX + WS_HEADER_MAX)) || !(w->e = curl_easy_init()) ||
            asprintf(&url, "%s%s", cfg->server, path) < 0) {
                ws_close(w);
                return kv_error_set(err, ENOMEM, "out of memory");
        }
        int r = kube_easy_setup(cfg, w->e, url, &headers, err);
        curl_slist_free_all(headers); /* not sent: the request below is written by hand */
        curl_easy_setopt(w->e, CURLOPT_HTTPHEADER, NULL);
        if (r < 0) {
                ws_close(w);
                return r;
        }
        curl_easy_setopt(w->e, CURLOPT_CONNECT_ONLY, 1L);
        CURLcode cc = curl_easy_perform(w->e);
        if (cc != CURLE_OK || curl_easy_getinfo(w->e, CURLINFO_ACTIVESOCKET, &w->fd) != CURLE_OK) {
                kv_error_set(err, EIO, "%s: %s", cfg->server, curl_easy_strerror(cc));
                ws_close(w);
                return -EIO;
        }
        if ((r = upgrade(w, cfg, path, subprotocol, http_code, err)) < 0) {
                ws_close(w);
                return r;
        }
        *out = w;
        return 0;
}

/* Parses the received frames: data to out_fd, ping answered. 1 when the server closed. */
static int frames_in(wsclient *w, int out_fd)
{
        size_t off = 0;
        int r = 0;
        while (r == 0) {
                ws_frame f;
                long n = ws_frame_parse(w->in + off, w->len - off, false, &f);
                if (n == 0)
                        break;
                if (n < 0)
                        return -EPROTO;
                off += (size_t)n;
                if (f.opcode == WS_BINARY || f.opcode == WS_TEXT || f.opcode == WS_CONT)
                        r = f.len && fd_write_all(out_fd, (const char *)f.payload, f.len) < 0 ? -EIO : 0;
                else if (f.opcode == WS_PING)
                        r = send_frame(w, WS_PONG, f.payload, f.len);
                else if (f.opcode == WS_CLOSE)
                        r = 1;
        }
        memmove(w->in, w->in + off, w->len - off);
        w->len -= off;
        return r;
}

/* in_fd → one binary frame; 1 on the escape byte or EOF (2). */
static int input(wsclient *w, int in_fd, unsigned char escape)
{
        char buf[16384];
        ssize_t n = read(in_fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
                return 0;
        if (n <= 0)
                return 2;
        char *esc = escape ? memchr(buf, escape, (size_t)n) : NULL;
        size_t len = esc ? (size_t)(esc - buf) : (size_t)n;
        if (len && send_frame(w, WS_BINARY, buf, len) < 0)
                return -EIO;
        return esc ? 1 : 0;
}

int ws_pump(wsclient *w, int in_fd, int out_fd, unsigned char escape)
{
        int r = frames_in(w, out_fd);
        while (r == 0) {
                struct pollfd p[2] = {{.fd = w->fd, .events = POLLIN}, {.fd = in_fd, .events = POLLIN}};
                if (poll(p, in_fd >= 0 ? 2 : 1, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (p[0].revents) {
                        ssize_t n;
                        while (r == 0 && (n = recv_some(w, w->in + w->len,
                                                        WS_PAYLOAD_MAX + WS_HEADER_MAX - w->len)) > 0) {
                                w->len += (size_t)n;
                                r = frames_in(w, out_fd);
                        }
                        if (r == 0 && n < 0)
                                return 0; /* the server closed without a close frame */
                }
                if (r == 0 && in_fd >= 0 && p[1].revents) {
                        r = input(w, in_fd, escape);
                        if (r == 1) { /* escape: a clean close */
                                send_frame(w, WS_CLOSE, "\x03\xe8", 2);
                                return 0;
                        }
                        if (r == 2)
                                return 1;
                }
        }
        return r < 0 ? r : 0;
}

int ws_end_input(wsclient *w)
{
        return send_frame(w, WS_CLOSE, "\x03\xe8", 2);
}

void ws_close(wsclient *w)
{
        if (!w)
                return;
        if (w->e)
                curl_easy_cleanup(w->e);
        free(w->in);
        free(w);
}
