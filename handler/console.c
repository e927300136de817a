/* virt-handler's console channel (console.h): a mutual-TLS listener for virt-api only. A session is one
 * request line after the handshake, "console POD-UID\n", "vnc POD-UID\n" or a port-forward request
 * (common/portfwd.h), answered "ok\n" or "error WHY\n"; then raw bytes both ways between virt-api and the
 * launcher's control socket (its `console` stream), QEMU's VNC socket, or a connection to the guest made in
 * the Pod's network namespace (portforward.c). One console session per Pod, as KubeVirt's virt-handler: a new
 * one closes the old. Blocking I/O with a thread per session: sessions are few (people at consoles, forwarded
 * connections), and the device-plugin loop stays untouched. */
#include "tlsio.h"
#include "console.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "fdio.h"
#include "hostport.h"
#include "log.h"
#include "macro.h"
#include "portforward.h"
#include "unixsock.h"

#define LINE_MAX_LEN 256
#define HANDSHAKE_TIMEOUT_S 10

typedef struct session {
        const console_config *cfg;
        int fd;
} session;

/* The open console session of each Pod (by uid): the newest wins. */
typedef struct console_slot {
        char uid[64];
        int fd; /* the virt-api connection, shut down when another session takes the Pod */
        struct console_slot *next;
} console_slot;

static pthread_mutex_t slots_lock = PTHREAD_MUTEX_INITIALIZER;
static console_slot *slots;

static void slot_take(console_slot *mine)
{
        pthread_mutex_lock(&slots_lock);
        for (console_slot **p = &slots; *p; p = &(*p)->next)
                if (!strcmp((*p)->uid, mine->uid)) {
                        console_slot *old = *p;
                        *p = old->next;
                        shutdown(old->fd, SHUT_RDWR); /* its relay ends and frees nothing of ours */
                        log_info("console of pod %s: a new session closes the previous one", mine->uid);
                        break;
                }
        mine->next = slots;
        slots = mine;
        pthread_mutex_unlock(&slots_lock);
}

static void slot_release(console_slot *mine)
{
        pthread_mutex_lock(&slots_lock);
        for (console_slot **p = &slots; *p; p = &(*p)->next)
                if (*p == mine) {
                        *p = mine->next;
                        break;
                }
        pthread_mutex_unlock(&slots_lock);
}

static bool uid_valid(const char *uid)
{
        size_t n = strlen(uid);
        return n > 0 && n < 64 && strspn(uid, "0123456789abcdefABCDEF-") == n;
}

int console_socket_path(const char *pods_dir, const char *uid, const char *name, char *out, size_t size)
{
        if (!uid_valid(uid))
                return -EINVAL;
        struct stat st;
        for (int layout = 0; layout < 2; layout++) {
                int w = snprintf(out, size, "%s/%s/volumes/%s/%s", pods_dir, uid,
                                 layout == 0 ? "kubernetes.io~empty-dir/run" : "run", name);
                if (w > 0 && (size_t)w < size && stat(out, &st) == 0 && S_ISSOCK(st.st_mode))
                        return 0;
        }
        return -ENOENT;
}

/* Opens the launcher end of a session: the console stream of control.sock, or QEMU's vnc.sock. */
static int launcher_open(const console_config *cfg, const char *kind, const char *uid, kv_error *err)
{
        bool console = !strcmp(kind, "console");
        char path[4096], line[LINE_MAX_LEN];
        int r = console_socket_path(cfg->pods_dir, uid, console ? "control.sock" : "vnc.sock", path,
                                    sizeof(path));
        if (r == -EINVAL)
                return kv_error_set(err, EINVAL, "bad pod uid");
        if (r < 0)
                return kv_error_set(err, ENOENT, "no %s socket for pod %s on this node", kind, uid);
        _cleanup_close_ int fd = unix_connect(path, err);
        if (fd < 0)
                return fd;
        if (console) {
                static const char req[] = "{\"cmd\":\"console\"}\n";
                if (fd_write_all(fd, req, sizeof(req) - 1) < 0 ||
                    kv_fd_recv_line(fd, line, sizeof(line)) < 0 || !strstr(line, "\"ok\":true"))
                        return kv_error_set(err, EIO, "the launcher refused the console");
        }
        return TAKE_FD(fd);
}

/* Bytes both ways until either side closes; with half_close (a port-forward), virt-api's close_notify is the
 * client's end of input: the guest gets its FIN and the guest's bytes keep coming until it closes too, or
 * until virt-api's connection ends altogether (its TCP FIN). */
static void relay(gnutls_session_t tls, int net_fd, int fd, bool half_close)
{
        char buf[16384];
        bool input_done = false;
        for (;;) {
                struct pollfd p[2] = {{.fd = net_fd, .events = input_done ? POLLRDHUP : POLLIN},
                                      {.fd = fd, .events = POLLIN}};
                if ((input_done || gnutls_record_check_pending(tls) == 0) && poll(p, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        return;
                }
                if (input_done && p[0].revents)
                        return;
                if (!input_done && (gnutls_record_check_pending(tls) > 0 || p[0].revents)) {
                        ssize_t n = gnutls_record_recv(tls, buf, sizeof(buf));
                        if (n == GNUTLS_E_INTERRUPTED || n == GNUTLS_E_AGAIN)
                                continue;
                        if (n == 0 && half_close) {
                                input_done = true;
                                shutdown(fd, SHUT_WR);
                        } else if (n <= 0 || fd_write_all(fd, buf, (size_t)n) < 0) {
                                return;
                        }
                }
                if (p[1].revents) {
                        ssize_t n = read(fd, buf, sizeof(buf));
                        if (n <= 0 || kv_tls_send_all(tls, buf, (size_t)n) < 0)
                                return;
                }
        }
}

static void set_timeout(int fd, unsigned seconds)
{
        struct timeval tv = {.tv_sec = seconds};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static bool tls_setup(const console_config *cfg, int fd, gnutls_certificate_credentials_t *cred,
                      gnutls_session_t *tls)
{
        char ca[4096], crt[4096], key[4096];
        snprintf(ca, sizeof(ca), "%s/ca.crt", cfg->cert_dir);
        snprintf(crt, sizeof(crt), "%s/tls.crt", cfg->cert_dir);
        snprintf(key, sizeof(key), "%s/tls.key", cfg->cert_dir);
        /* Read for every session: a rotation (virt-api rewrites its Secret) needs no restart. */
        if (gnutls_certificate_allocate_credentials(cred) < 0)
                return false;
        if (gnutls_certificate_set_x509_trust_file(*cred, ca, GNUTLS_X509_FMT_PEM) <= 0 ||
            gnutls_certificate_set_x509_key_file(*cred, crt, key, GNUTLS_X509_FMT_PEM) < 0) {
                log_warning("console: cannot load the certificates in %s", cfg->cert_dir);
                return false;
        }
        if (gnutls_init(tls, GNUTLS_SERVER) < 0)
                return false;
        gnutls_set_default_priority(*tls);
        gnutls_credentials_set(*tls, GNUTLS_CRD_CERTIFICATE, *cred);
        gnutls_certificate_server_set_request(*tls, GNUTLS_CERT_REQUIRE);
        gnutls_transport_set_int(*tls, fd);
        gnutls_handshake_set_timeout(*tls, HANDSHAKE_TIMEOUT_S * 1000);
        int r;
        do
                r = gnutls_handshake(*tls);
        while (r < 0 && !gnutls_error_is_fatal(r));
        unsigned status = 1;
        /* Signed by virt-api's CA and issued to virt-api's name: the handler's own certificate (same CA) is
         * not a client that may open consoles. */
        if (r < 0 || gnutls_certificate_verify_peers3(*tls, cfg->client_name, &status) < 0 || status != 0) {
                log_warning("console: refused a client: %s",
                            r < 0 ? gnutls_strerror(r) : "no certificate from virt-api's CA for its name");
                return false;
        }
        return true;
}

/* The launcher end a request line names: its fd, or negative with err saying why. */
static int request_open(const console_config *cfg, const char *line, char kind[static 16],
                        char uid[static 64], kv_error *err)
{
        pf_request pf;
        if (!strncmp(line, PF_VERB " ", strlen(PF_VERB " "))) {
                if (pf_request_parse(line, &pf) < 0)
                        return kv_error_set(err, EINVAL, "bad request");
                snprintf(kind, 16, PF_VERB);
                snprintf(uid, 64, "%s", pf.pod_uid);
                return portforward_dial(cfg->pods_dir, &pf, err);
        }
        if (sscanf(line, "%15s %63s", kind, uid) != 2 || (strcmp(kind, "console") && strcmp(kind, "vnc")))
                return kv_error_set(err, EINVAL, "bad request");
        return launcher_open(cfg, kind, uid, err);
}

/* After "ok": the relay, as the only console session of its Pod when it is one. */
static void session_serve(gnutls_session_t tls, int fd, int lfd, const char *kind, const char *uid,
                          const char *line)
{
        console_slot slot = {.fd = fd};
        bool console = !strcmp(kind, "console"), pf = !strcmp(kind, PF_VERB);
        snprintf(slot.uid, sizeof(slot.uid), "%s", uid);
        if (console)
                slot_take(&slot);
        if (pf) /* the line names the Pod, and where the connection goes in it */
                log_info("%s: session opened", line);
        else
                log_info("%s session for pod %s opened", kind, uid);
        set_timeout(fd, 0);
        relay(tls, fd, lfd, pf);
        if (console)
                slot_release(&slot);
        if (pf)
                log_info("%s: session closed", line);
        else
                log_info("%s session for pod %s closed", kind, uid);
}

static void *session_run(void *arg)
{
        session *s = arg;
        _cleanup_close_ int fd = s->fd;
        const console_config *cfg = s->cfg;
        free(s);
        gnutls_certificate_credentials_t cred = NULL;
        gnutls_session_t tls = NULL;
        char line[LINE_MAX_LEN], kind[16] = "", uid[64] = "";
        set_timeout(fd, HANDSHAKE_TIMEOUT_S);
        if (tls_setup(cfg, fd, &cred, &tls) && kv_tls_recv_line(tls, line, sizeof(line)) == 0) {
                kv_error err = {0};
                _cleanup_close_ int lfd = request_open(cfg, line, kind, uid, &err);
                if (lfd < 0) {
                        char reply[LINE_MAX_LEN + 16];
                        int n = snprintf(reply, sizeof(reply), "error %s\n", err.msg);
                        kv_tls_send_all(tls, reply, n < (int)sizeof(reply) ? (size_t)n : sizeof(reply) - 1);
                        log_warning("console: %s: %s", line, err.msg);
                } else if (kv_tls_send_all(tls, "ok\n", 3) == 0) {
                        session_serve(tls, fd, lfd, kind, uid, line);
                }
                gnutls_bye(tls, GNUTLS_SHUT_WR);
        }
        if (tls)
                gnutls_deinit(tls);
        if (cred)
                gnutls_certificate_free_credentials(cred);
        return NULL;
}

typedef struct server {
        console_config cfg;
        int fd;
} server;

static void *accept_loop(void *arg)
{
        server *srv = arg;
        for (;;) {
                int fd = accept4(srv->fd, NULL, NULL, SOCK_CLOEXEC);
                if (fd < 0) {
                        if (errno != EINTR && errno != ECONNABORTED)
                                usleep(100000);
                        continue;
                }
                session *s = malloc(sizeof(*s));
                pthread_t t;
                pthread_attr_t attr;
                pthread_attr_init(&attr);
                pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
                if (!s || (*s = (session){&srv->cfg, fd}, pthread_create(&t, &attr, session_run, s)) != 0) {
                        free(s);
                        close(fd);
                }
                pthread_attr_destroy(&attr);
        }
        return NULL;
}

int console_server_start(const console_config *cfg, kv_error *err)
{
        struct sockaddr_in sa;
        int r = hostport_parse_ipv4("--console-listen", cfg->listen, &sa, err);
        if (r < 0)
                return r;
        _cleanup_close_ int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int one = 1;
        socklen_t len = sizeof(sa);
        if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
            bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 16) < 0 ||
            getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
                return kv_error_errno(err, errno, "--console-listen %s", cfg->listen);
        static server srv; /* one per process, for its whole life */
        pthread_t t;
        srv = (server){*cfg, fd};
        if ((r = pthread_create(&t, NULL, accept_loop, &srv)) != 0)
                return kv_error_errno(err, r, "console server thread");
        pthread_detach(t);
        TAKE_FD(fd);
        return ntohs(sa.sin_port);
}
