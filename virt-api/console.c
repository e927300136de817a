/* console and vnc subresources (console.h): the VMI's checks, the channel to virt-handler, the relay. */
#include "json.h"
#include "tlsio.h"
#include "console.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "api.h"
#include "fdio.h"
#include "log.h"
#include "macro.h"
#include "wsframe.h"

#define CHANNEL_TIMEOUT_S 10

struct console_channel {
        int fd;
        gnutls_session_t tls;
        gnutls_certificate_credentials_t cred;
};

bool console_path_parse(const char *path, char ns[static 254], char name[static 254], char kind[static 8])
{
        static const char prefix[] = SUBRES_PREFIX "/namespaces/";
        char tail[16];
        if (strncmp(path, prefix, sizeof(prefix) - 1) != 0)
                return false;
        int n = 0;
        if (sscanf(path + sizeof(prefix) - 1, "%253[^/]/virtualmachineinstances/%253[^/]/%15[^/]%n", ns, name,
                   tail, &n) != 3 ||
            path[sizeof(prefix) - 1 + n] != '\0')
                return false;
        if (strcmp(tail, "console") && strcmp(tail, "vnc"))
                return false;
        snprintf(kind, 8, "%s", tail);
        return true;
}

void console_channel_free(console_channel *ch)
{
        if (!ch)
                return;
        if (ch->tls) {
                gnutls_bye(ch->tls, GNUTLS_SHUT_WR);
                gnutls_deinit(ch->tls);
        }
        if (ch->cred)
                gnutls_certificate_free_credentials(ch->cred);
        if (ch->fd >= 0)
                close(ch->fd);
        free(ch);
}

/* TLS to virt-handler at ip:port as virt-api (its own certificate), the peer checked against virt-api's CA
 * and virt-handler's name; then the request line and its answer. */
static int channel_connect(const console_opts *o, const char *ip, const char *request, console_channel *ch,
                           char *why, size_t why_size)
{
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o->handler_port)};
        struct timeval tv = {.tv_sec = CHANNEL_TIMEOUT_S};
        if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1)
                return snprintf(why, why_size, "virt-handler address %s is not IPv4", ip), -1;
        if ((ch->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
            setsockopt(ch->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
            setsockopt(ch->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
            connect(ch->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return snprintf(why, why_size, "connect %s:%u: %s", ip, o->handler_port, strerror(errno)), -1;
        if (gnutls_certificate_allocate_credentials(&ch->cred) < 0 ||
            gnutls_certificate_set_x509_trust_file(ch->cred, o->ca_file, GNUTLS_X509_FMT_PEM) <= 0 ||
            gnutls_certificate_set_x509_key_file(ch->cred, o->cert_file, o->key_file, GNUTLS_X509_FMT_PEM) <
                0 ||
            gnutls_init(&ch->tls, GNUTLS_CLIENT) < 0)
                return snprintf(why, why_size, "cannot load virt-api's certificates"), -1;
        gnutls_set_default_priority(ch->tls);
        gnutls_credentials_set(ch->tls, GNUTLS_CRD_CERTIFICATE, ch->cred);
        gnutls_transport_set_int(ch->tls, ch->fd);
        gnutls_handshake_set_timeout(ch->tls, CHANNEL_TIMEOUT_S * 1000);
        int r;
        do
                r = gnutls_handshake(ch->tls);
        while (r < 0 && !gnutls_error_is_fatal(r));
        unsigned status = 1;
        if (r < 0)
                return snprintf(why, why_size, "TLS with virt-handler: %s", gnutls_strerror(r)), -1;
        if (gnutls_certificate_verify_peers3(ch->tls, o->handler_name, &status) < 0 || status != 0)
                return snprintf(why, why_size, "virt-handler's certificate is not from virt-api's CA for %s",
                                o->handler_name),
                       -1;
        char line[512];
        if (kv_tls_send_all(ch->tls, request, strlen(request)) < 0)
                return snprintf(why, why_size, "virt-handler closed the channel"), -1;
        size_t len = 0;
        while (len + 1 < sizeof(line)) {
                ssize_t got = gnutls_record_recv(ch->tls, line + len, 1);
                if (got == GNUTLS_E_INTERRUPTED || got == GNUTLS_E_AGAIN)
                        continue;
                if (got <= 0)
                        return snprintf(why, why_size, "virt-handler closed the channel"), -1;
                if (line[len] == '\n')
                        break;
                len++;
        }
        line[len] = 0;
        if (strcmp(line, "ok") != 0)
                return snprintf(why, why_size, "%s", strncmp(line, "error ", 6) ? line : line + 6), -2;
        tv.tv_sec = 0; /* a console may stay silent for hours */
        setsockopt(ch->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(ch->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        return 0;
}

/* The first object of a list whose dotted field equals want (want NULL: any), or NULL. */
static const cJSON *item_where(const cJSON *list, const char *field, const char *want)
{
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(list, "items"))
        {
                const char *v = kube_str(it, field);
                if (v && (!want || !strcmp(v, want)) && kube_str(it, "status.podIP"))
                        return it;
        }
        return NULL;
}

const cJSON *console_launcher_pod(const cJSON *pods, const cJSON *vmi)
{
        const cJSON *ms = kube_obj(vmi, "status.migrationState"), *it;
        const char *node = kube_str(vmi, "status.nodeName"), *want = NULL;
        if (ms && kube_str(ms, "migrationUid"))
                want = kube_str(ms, cJSON_IsTrue(kube_obj(ms, "completed")) ? "targetPod" : "sourcePod");
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(pods, "items"))
        {
                const char *name = kube_str(it, "metadata.name"), *on = kube_str(it, "spec.nodeName");
                if (strcmp(kube_str(it, "status.phase") ?: "", "Running") || !kube_str(it, "status.podIP"))
                        continue;
                if (want ? name && !strcmp(name, want) : node && on && !strcmp(on, node))
                        return it;
        }
        return NULL;
}

int console_vmi_running(const cJSON *vmi, const char *name, subres_reply *r)
{
        const char *phase = kube_str(vmi, "status.phase");
        if (phase && (!strcmp(phase, "Failed") || !strcmp(phase, "Succeeded")))
                return subres_fail(
                    r, 409,
                    "Operation cannot be fulfilled on virtualmachineinstance.kubevirt.io \"%s\": "
                    "VMI is in phase %s",
                    name, phase);
        if (!phase || strcmp(phase, "Running"))
                return subres_fail(
                    r, 400,
                    "Unable to connect to VirtualMachineInstance because phase is %s instead of "
                    "Running",
                    phase && *phase ? phase : "Pending");
        return 0;
}

/* KubeVirt's checks before a console or VNC connection. */
static int vmi_check(const cJSON *vmi, const char *name, const char *kind, subres_reply *r)
{
        if (console_vmi_running(vmi, name, r) < 0)
                return -1;
        const cJSON *dev = kube_obj(vmi, "spec.domain.devices");
        bool console = !strcmp(kind, "console");
        if (cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(dev, console ? "autoattachSerialConsole"
                                                                        : "autoattachGraphicsDevice")))
                return subres_fail(
                    r, 400, console ? "No serial consoles are present." : "No graphics devices are present.");
        return 0;
}

int console_locate(kube_client *api, const console_opts *o, const cJSON *vmi, console_plan *plan,
                   char pod_uid[static 64], char pod_ip[static 64], subres_reply *r)
{
        _cleanup_json_ cJSON *pods = NULL, *handlers = NULL;
        kv_error err = {0};
        if (!o->ca_file)
                return subres_fail(r, 503, "virt-api runs without --cert-dir: no console channel");
        const char *uid = kube_str(vmi, "metadata.uid");
        char sel[128];
        snprintf(sel, sizeof(sel), "kubevirt.io/created-by=%s", uid ? uid : "");
        if (kube_list(api, &kube_pod, kube_str(vmi, "metadata.namespace"), sel, &pods, &err) < 0 ||
            kube_list(api, &kube_pod, o->handler_ns, "kubevirt.io=virt-handler", &handlers, &err) < 0)
                return subres_fail(r, 500, "%s", err.msg);
        const cJSON *pod = console_launcher_pod(pods, vmi);
        const cJSON *handler =
            pod ? item_where(handlers, "spec.nodeName", kube_str(pod, "spec.nodeName")) : NULL;
        if (!pod)
                return subres_fail(r, 400,
                                   "Unable to connect to VirtualMachineInstance: no running launcher Pod");
        if (!handler)
                return subres_fail(r, 503, "no virt-handler on node %s", kube_str(pod, "spec.nodeName"));
        snprintf(plan->handler_ip, sizeof(plan->handler_ip), "%s", kube_str(handler, "status.podIP"));
        snprintf(pod_uid, 64, "%s", kube_str(pod, "metadata.uid") ?: "");
        snprintf(pod_ip, 64, "%s", kube_str(pod, "status.podIP"));
        return 0;
}

int console_plan_make(kube_client *api, const console_opts *o, const char *ns, const char *name,
                      const char *kind, console_plan *plan, subres_reply *r)
{
        _cleanup_json_ cJSON *vmi = NULL;
        kv_error err = {0};
        char pod_uid[64], pod_ip[64];
        int rc = kube_get(api, &kube_vmi, ns, name, &vmi, &err);
        if (rc == -KUBE_ENOTFOUND)
                return subres_fail(r, 404, "virtualmachineinstances.kubevirt.io \"%s\" not found", name);
        if (rc < 0)
                return subres_fail(r, 500, "%s", err.msg);
        if (vmi_check(vmi, name, kind, r) < 0 || console_locate(api, o, vmi, plan, pod_uid, pod_ip, r) < 0)
                return -1;
        snprintf(plan->line, sizeof(plan->line), "%s %s\n", kind, pod_uid);
        return 0;
}

int console_dial(const console_opts *o, const console_plan *plan, console_channel **out, char *why,
                 size_t why_size)
{
        console_channel *ch = calloc(1, sizeof(*ch));
        if (!ch)
                return snprintf(why, why_size, "out of memory"), -1;
        ch->fd = -1;
        int r = channel_connect(o, plan->handler_ip, plan->line, ch, why, why_size);
        if (r < 0) {
                console_channel_free(ch);
                return r;
        }
        *out = ch;
        return 0;
}

/* One frame to the websocket client (server frames are not masked). */
static int ws_send(int fd, unsigned opcode, const void *payload, size_t len)
{
        uint8_t h[WS_HEADER_MAX];
        size_t hl = ws_frame_header(h, opcode, len, NULL);
        return fd_write_all(fd, (const char *)h, hl) < 0 || (len && fd_write_all(fd, payload, len) < 0) ? -1
                                                                                                        : 0;
}

/* A relay's state: the client's frames not parsed yet, and whether its direction has ended. */
typedef struct relay_state {
        console_channel *ch;
        int fd;
        bool half_close, client_done;
        uint8_t *in;
        size_t len;
} relay_state;

/* The client ended its direction: a close frame answered at once (the session ends), or with half_close the
 * end passed on to virt-handler as TLS close_notify (the session goes on until the guest ends). 1 to end. */
static int client_closed(relay_state *st, const ws_frame *f)
{
        if (!st->half_close) {
                ws_send(st->fd, WS_CLOSE, f->payload, f->len < 2 ? f->len : 2);
                return 1;
        }
        if (!st->client_done)
                gnutls_bye(st->ch->tls, GNUTLS_SHUT_WR);
        st->client_done = true;
        return 0;
}

/* Frames from the client in st->in: data to the channel, ping answered, close as client_closed says. 1 at
 * the end. */
static int from_client(relay_state *st)
{
        size_t off = 0;
        int done = 0;
        while (!done) {
                ws_frame f;
                long n = ws_frame_parse(st->in + off, st->len - off, true, &f);
                if (n == 0)
                        break;
                if (n < 0)
                        return 1;
                off += (size_t)n;
                if (st->client_done) /* nothing may follow a close frame */
                        continue;
                if (f.opcode == WS_BINARY || f.opcode == WS_TEXT || f.opcode == WS_CONT)
                        done = f.len && kv_tls_send_all(st->ch->tls, f.payload, f.len) < 0;
                else if (f.opcode == WS_PING)
                        done = ws_send(st->fd, WS_PONG, f.payload, f.len) < 0;
                else if (f.opcode == WS_CLOSE)
                        done = client_closed(st, &f);
        }
        memmove(st->in, st->in + off, st->len - off);
        st->len -= off;
        return done;
}

/* What the channel has: one binary frame to the client. 1 when the channel ended (a close frame sent). */
static int from_channel(relay_state *st)
{
        char out[16384];
        ssize_t n = gnutls_record_recv(st->ch->tls, out, sizeof(out));
        if (n == GNUTLS_E_INTERRUPTED || n == GNUTLS_E_AGAIN)
                return 0;
        if (n <= 0) { /* the launcher, the guest or another session ended it */
                ws_send(st->fd, WS_CLOSE, "\x03\xe8", 2);
                return 1;
        }
        return ws_send(st->fd, WS_BINARY, out, (size_t)n) < 0;
}

void console_relay(console_channel *ch, int fd, const char *extra, size_t extra_len, bool half_close)
{
        const size_t cap = WS_PAYLOAD_MAX + WS_HEADER_MAX;
        _cleanup_free_ uint8_t *in = malloc(cap);
        relay_state st = {.ch = ch, .fd = fd, .half_close = half_close, .in = in, .len = extra_len};
        if (!in || extra_len > cap)
                goto done;
        if (extra_len)
                memcpy(in, extra, extra_len);
        if (from_client(&st))
                goto done;
        for (;;) {
                struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = ch->fd, .events = POLLIN}};
                if (gnutls_record_check_pending(ch->tls) == 0 && poll(p, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                if ((gnutls_record_check_pending(ch->tls) > 0 || p[1].revents) && from_channel(&st))
                        break;
                if (p[0].revents) {
                        ssize_t n = read(fd, in + st.len, cap - st.len);
                        if (n <= 0)
                                break;
                        st.len += (size_t)n;
                        if (from_client(&st))
                                break;
                }
        }
done:
        console_channel_free(ch);
}
