/* virt-launcher-reporter: patches the launcher's status onto its own Pod as the annotation
 * kvlite.io/launcher-status, and (with --vmi) watches the launcher's VMI and forwards spec changes,
 * migration and snapshot requests to the launcher's control socket (docs/cluster-live-ops.md,
 * docs/cluster-snapshots.md). A separate process
 * (privilege separation): the sandboxed launcher never opens a network socket nor maps a TLS library; this
 * one holds no capabilities and only talks to the API and to the control socket, under its own seccomp
 * filter once set up (reporter-sandbox.c). Its API client is libkubelite (HTTP/1.1 over mbedTLS, no
 * libcurl: issue 21, its memory per VM). One poll loop (the watch's connection + its stdin + the control
 * socket), no threads. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "kvlite-annotations.h"
#include "caps.h"
#include "clock.h"
#include "ctl-protocol.h" /* CTL_LINE_MAX */
#include "config.h"
#include "control-link.h"
#include "lite.h"
#include "log.h"
#include "macro.h"
#include "memtrim.h"
#include "reporter-sandbox.h"
#include "vmifwd.h"

#define ANNOTATION KVLITE_ANN_LAUNCHER_STATUS
#define MAX_DOC 65536
#define BACKOFF_BASE_MS 250
#define BACKOFF_CAP_MS 5000
/* After the launcher closed its end: how long to keep retrying the final status (the launcher waits
 * 5 s for this process to exit). */
#define FINAL_DEADLINE_MS 4000
#define REQUEST_TIMEOUT_MS 3000
#define LIST_TIMEOUT_MS 5000 /* the VMI list blocks the loop (and the status patches) while it runs */
#define IDLE_POLL_MS 60000
/* Quiet this long after a wake-up: the memory of the burst (TLS records, JSON) goes back (kv_memtrim). */
#define TRIM_AFTER_MS 2000

static const char usage[] =
    "Usage: virt-launcher-reporter [--parent PID] [--vmi NAME --control-socket PATH]\n"
    "\n"
    "Started by virt-launcher in a Pod: reads status documents (one per SOCK_SEQPACKET message) on\n"
    "stdin and merge-patches the latest onto the Pod $POD_NAMESPACE/$POD_NAME as the annotation\n"
    "kvlite.io/launcher-status, with in-cluster credentials (KUBERNETES_SERVICE_HOST/PORT, the\n"
    "service-account files in $KVLITE_SA_DIR or /var/run/secrets/kubernetes.io/serviceaccount).\n"
    "Failed patches are retried with backoff; only the latest status is kept. Exits when stdin closes\n"
    "(after delivering the last status) or when the parent PID dies.\n"
    "\n"
    "With --vmi it also lists and watches the VirtualMachineInstance NAME of $POD_NAMESPACE and, while\n"
    "the launcher's status says Running, forwards to its control socket: a spec that differs from the\n"
    "last one forwarded as `apply` (the first one too: the launcher diffs it against the spec it booted\n"
    "from); status.migrationState naming this Pod as sourcePod, with a targetNodeAddress, as `migrate`\n"
    "to tcp:ADDRESS:49152 with the disks mirrored to ADDRESS:49153 (once per migrationUid); and\n"
    "abortRequested for the running migration as `migrate-cancel`; and, while no migration runs, the\n"
    "entries of the annotation kvlite.io/snapshot-requests ([{id, op: save|load|delete, tag}]) that\n"
    "the launcher's status does not report yet, in order, as `snapshot-save/-load/-delete` (malformed\n"
    "entries are skipped with a log line). One request at a time; replies are logged.\n"
    "$KVLITE_MIGRATION_PORTS=PORT,NBDPORT replaces 49152,49153 (tests with several targets on one host).\n"
    "$KVLITE_API_RELAY=PATH: reach the API server through virt-handler's relay socket PATH (a Pod whose\n"
    "address went to the guest) instead of TCP; TLS, name check and token stay the API server's.\n"
    "\n"
    "Options:\n"
    "  --parent PID           exit (SIGKILL via PR_SET_PDEATHSIG) when process PID, the launcher, dies\n"
    "  --vmi NAME             the launcher's VMI, to watch (needs --control-socket)\n"
    "  --control-socket PATH  the launcher's control socket (<run-dir>/control.sock)\n"
    "  -h, --help             this text\n"
    "\n"
    "Exit codes: 0 done, 1 the last status could not be delivered, 2 usage (also a bad\n"
    "$KVLITE_MIGRATION_PORTS), 3 no in-cluster config (or the sandbox could not be set up).\n"
    "Once set up it runs under a seccomp allowlist: a call outside it kills it by SIGSYS after one log\n"
    "line naming the call (docs/security.md).\n";

typedef struct reporter {
        kube_lite api;
        const char *ns, *pod;
        char *pending; /* latest document not yet on the Pod */
        unsigned attempt;
        int64_t next_try, give_up; /* monotonic ms; give_up set once stdin closed */
        bool eof;
        /* --vmi: the informer and what it forwards (vmi_name NULL: status only) */
        const char *vmi_name;
        kube_informer watch; /* res NULL until initialised; its store holds the VMI, pruned by fwd_prune */
        char *vmi_key;       /* "namespace/name" in that store */
        ctl_link link;
        cJSON *launcher; /* the launcher's last status document */
        fwd_state fwd;
        fwd_request inflight; /* kind FWD_NONE: nothing awaits a reply */
        int inflight_id, next_id;
        int64_t trim_due; /* monotonic ms; 0: nothing happened since the last trim */
} reporter;

/* Reads every queued message; the last one wins (coalescing). */
static void drain(reporter *r)
{
        static char buf[MAX_DOC];
        for (;;) {
                ssize_t n = recv(STDIN_FILENO, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return;
                if (n <= 0) { /* EOF, or stdin is not our socket any more */
                        r->eof = true;
                        r->give_up = kv_now_ms() + FINAL_DEADLINE_MS;
                        return;
                }
                if ((size_t)n > sizeof(buf)) {
                        log_warning("status document of %zd bytes dropped (limit %d)", n, MAX_DOC);
                        continue;
                }
                char *doc = strndup(buf, (size_t)n);
                if (!doc)
                        continue;
                cJSON *parsed = r->vmi_name ? cJSON_ParseWithLength(buf, (size_t)n) : NULL;
                if (parsed) { /* what the forwarding decisions read (phase, migrationState) */
                        cJSON_Delete(r->launcher);
                        r->launcher = parsed;
                }
                free(r->pending);
                r->pending = doc;
                r->attempt = 0;
                r->next_try = 0;
        }
}

static int patch(reporter *r, kv_error *err)
{
        cJSON *body = cJSON_CreateObject();
        cJSON *ann = cJSON_AddObjectToObject(cJSON_AddObjectToObject(body, "metadata"), "annotations");
        cJSON_AddStringToObject(ann, ANNOTATION, r->pending);
        int ret = kube_lite_merge_patch(&r->api, &kube_pod, r->ns, r->pod, body, NULL, err);
        cJSON_Delete(body);
        return ret;
}

static void try_deliver(reporter *r)
{
        kv_error err = {0};
        if (patch(r, &err) >= 0) {
                if (r->attempt)
                        log_info("status delivered after %u retries", r->attempt);
                free(r->pending);
                r->pending = NULL;
                r->attempt = 0;
                return;
        }
        unsigned delay = kube_backoff_ms(BACKOFF_BASE_MS, BACKOFF_CAP_MS, r->attempt++);
        log_warning("patch pod %s/%s: %s (retry in %u ms)", r->ns, r->pod, err.msg, delay);
        r->next_try = kv_now_ms() + delay;
}

/* ---- the VMI watch and the control socket ----------------------------------------------------- */

/* Only logs: the VMI stays in the informer's store (obj is the store's, for the call only), and forward()
 * reads it from there. */
static void on_vmi(kube_informer *inf, enum kube_event_type type, const cJSON *obj, void *ud)
{
        reporter *r = ud;
        (void)inf;
        (void)obj;
        if (type == KUBE_DELETED)
                log_warning("VMI %s/%s is gone from the API", r->ns, r->vmi_name);
}

static void drop_inflight(reporter *r)
{
        fwd_request_free(&r->inflight);
        r->inflight_id = 0;
}

static void on_reply(const cJSON *reply, void *ud)
{
        reporter *r = ud;
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(reply, "id");
        if (r->inflight.kind == FWD_NONE || !cJSON_IsNumber(id) || id->valueint != r->inflight_id)
                return; /* not ours, or not JSON */
        const char *what = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r->inflight.req, "cmd"));
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "ok")))
                log_info("launcher: %s done", what);
        else {
                const char *why = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(reply, "error"));
                log_warning("launcher: %s refused: %s", what, why ? why : "(no reason)");
        }
        bool refused_apply =
            r->inflight.kind == FWD_APPLY && !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "ok"));
        fwd_commit(&r->fwd, &r->inflight);
        if (refused_apply) /* again once the launcher reports other volumes (a claim attached) */
                fwd_apply_refused(&r->fwd, r->launcher);
        drop_inflight(r);
}

static void log_skipped(const char *why, void *ud)
{
        (void)ud;
        log_warning("%s", why);
}

/* One request at a time: the next decision is taken once the launcher answered the previous one. */
static void forward(reporter *r)
{
        if (!ctl_link_up(&r->link) || r->inflight.kind != FWD_NONE)
                return;
        fwd_request req;
        /* a private parsed copy (NULL: not found yet, or deleted); the store keeps only compact text */
        cJSON *vmi = kube_store_get(&r->watch.store, r->vmi_key);
        fwd_check_snapshot_requests(&r->fwd, vmi, log_skipped, NULL);
        int due = fwd_next(&r->fwd, vmi, r->launcher, r->pod, &req);
        cJSON_Delete(vmi);
        if (due <= 0)
                return;
        cJSON_AddNumberToObject(req.req, "id", ++r->next_id);
        _cleanup_free_ char *line = cJSON_PrintUnformatted(req.req);
        const char *what = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(req.req, "cmd"));
        if (!line || strlen(line) >= CTL_LINE_MAX || ctl_link_send(&r->link, line) < 0) {
                log_error("%s not forwarded: %s", what,
                          line ? "the request exceeds the control socket's 64 KiB line" : "out of memory");
                fwd_commit(&r->fwd, &req); /* the same input would fail the same way */
                fwd_request_free(&req);
                return;
        }
        const char *of = req.kind == FWD_SNAPSHOT     ? " of snapshot request "
                         : req.kind == FWD_PAUSE      ? ": wanted paused="
                         : req.kind == FWD_SOFTREBOOT ? ": request "
                                                      : " of migration ";
        log_info("forwarding %s%s%s to the launcher", what, req.uid[0] ? of : "", req.uid);
        r->inflight = req;
        r->inflight_id = r->next_id;
}

static int min_timeout(int a, long b)
{
        if (b < 0)
                return a;
        return a < 0 || b < a ? (int)b : a;
}

static void watch_and_wait(reporter *r, int timeout)
{
        int64_t now = kv_now_ms();
        timeout = min_timeout(timeout, kube_informer_tick(&r->watch, kv_now_ms()));
        timeout = min_timeout(timeout, ctl_link_tick(&r->link, now));
        forward(r);
        enum { STDIN, WATCH, LINK };
        struct pollfd fds[3] = {{.fd = STDIN_FILENO, .events = POLLIN},
                                {.fd = kube_lite_informer_fd(&r->watch), .events = POLLIN},
                                {.fd = -1}};
        if (ctl_link_up(&r->link))
                fds[LINK] = (struct pollfd){.fd = r->link.fd, .events = ctl_link_events(&r->link)};
        if (poll(fds, 3, timeout < 0 ? IDLE_POLL_MS : timeout) <= 0)
                return;
        if (fds[WATCH].revents)
                kube_lite_informer_io(&r->watch, kv_now_ms());
        if (fds[LINK].revents && !ctl_link_io(&r->link, fds[LINK].revents, kv_now_ms(), on_reply, r))
                drop_inflight(r); /* not answered: decided again once reconnected */
        if (fds[STDIN].revents)
                drain(r);
}

/* Called on each wake-up: a trim once the loop has slept TRIM_AFTER_MS. Returns the poll timeout, lowered
 * to the trim's due time. */
static int trim_when_idle(reporter *r, int64_t now, int timeout)
{
        if (r->trim_due && now >= r->trim_due) {
                kv_memtrim();
                r->trim_due = 0;
                return timeout;
        }
        r->trim_due = now + TRIM_AFTER_MS;
        return min_timeout(timeout, TRIM_AFTER_MS);
}

static int run(reporter *r)
{
        for (;;) {
                int64_t now = kv_now_ms();
                if (r->pending && now >= r->next_try)
                        try_deliver(r);
                if (r->eof && !r->pending)
                        return 0;
                now = kv_now_ms();
                if (r->eof && now >= r->give_up) {
                        log_error("the final status was not delivered to pod %s/%s", r->ns, r->pod);
                        return 1;
                }
                int timeout = -1;
                if (r->pending)
                        timeout = (int)(r->next_try > now ? r->next_try - now : 0);
                if (r->eof) {
                        int64_t left = r->give_up - now;
                        timeout = timeout < 0 || left < timeout ? (int)left : timeout;
                        if (timeout > 0)
                                poll(NULL, 0, timeout); /* sleep: stdin has nothing more to say */
                        continue;
                }
                timeout = trim_when_idle(r, now, timeout);
                if (r->vmi_name) {
                        watch_and_wait(r, timeout);
                        continue;
                }
                struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
                if (poll(&p, 1, timeout) > 0)
                        drain(r);
        }
}

static int env_required(const char *name, const char **out)
{
        *out = getenv(name);
        if (*out && **out)
                return 0;
        log_error("environment variable %s is not set", name);
        return -EINVAL;
}

/* $KVLITE_MIGRATION_PORTS=PORT,NBDPORT: where targets listen instead of 49152,49153 (tests run several
 * targets on one host's loopback). */
static int migration_ports(fwd_state *fwd)
{
        const char *v = getenv("KVLITE_MIGRATION_PORTS");
        if (!v || !*v)
                return 0;
        char *end;
        long a = strtol(v, &end, 10), b = *end == ',' ? strtol(end + 1, &end, 10) : 0;
        if (*end || a < 1 || a > 65535 || b < 1 || b > 65535) {
                log_error("KVLITE_MIGRATION_PORTS must be PORT,NBDPORT (1-65535), not \"%s\"", v);
                return -EINVAL;
        }
        fwd->port = (int)a;
        fwd->nbd_port = (int)b;
        return 0;
}

/* One informer over the VMI alone (fieldSelector=metadata.name=NAME): the reporter must not see, nor
 * hold, the other VMIs of its namespace. Its store keeps the VMI cut down by fwd_prune. */
static int start_informer(reporter *r, const char *vmi_name)
{
        static const kube_store_ops ops = {.prune = fwd_prune};
        _cleanup_free_ char *selector = NULL;
        if (asprintf(&selector, "metadata.name=%s", vmi_name) < 0) {
                selector = NULL; /* undefined after a failure */
                return -ENOMEM;
        }
        if (asprintf(&r->vmi_key, "%s/%s", r->ns, vmi_name) < 0) {
                r->vmi_key = NULL;
                return -ENOMEM;
        }
        if (kube_lite_informer_init(&r->watch, &r->api, &kube_vmi, r->ns, NULL, &ops, on_vmi, r) < 0 ||
            kube_informer_set_field_selector(&r->watch, selector) < 0)
                return -ENOMEM;
        /* one attempt: the informer's backoff retries, without blocking the loop */
        kube_lite_informer_set_timeout(&r->watch, LIST_TIMEOUT_MS);
        return 0;
}

static int start_watch(reporter *r, const char *vmi_name, const char *control_socket)
{
        if (migration_ports(&r->fwd) < 0)
                return -EINVAL;
        r->vmi_name = vmi_name;
        ctl_link_init(&r->link, control_socket);
        if (start_informer(r, vmi_name) < 0) {
                log_error("VMI watch: out of memory");
                return -1;
        }
        log_info("watching VMI %s/%s; forwarding to %s", r->ns, vmi_name, control_socket);
        return 0;
}

static void stop_watch(reporter *r)
{
        if (!r->vmi_name)
                return;
        if (r->watch.res)
                kube_informer_free(&r->watch);
        ctl_link_free(&r->link);
        drop_inflight(r);
        fwd_state_free(&r->fwd);
        free(r->vmi_key);
        cJSON_Delete(r->launcher);
}

/* The seccomp filter, once everything that needs more is done (docs/security.md). Exit code 3 when it
 * cannot be loaded: the reporter parses what the API server sends and never runs unconfined. */
static int confine(void)
{
        /* A kill by the filter must not leave the service-account token in a core file. */
        if (setrlimit(RLIMIT_CORE, &(struct rlimit){0, 0}) < 0) {
                log_error("confine: setrlimit(RLIMIT_CORE): %s", strerror(errno));
                return 3;
        }
        kv_error err = {0};
        if (reporter_sandbox_apply(&err) < 0) {
                log_error("confine: %s", err.msg);
                return 3;
        }
        return 0;
}

typedef struct reporter_opts {
        long parent;
        const char *vmi_name, *control_socket;
} reporter_opts;

__attribute__((format(printf, 1, 2))) static int opt_error(const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        fputs("virt-launcher-reporter: ", stderr);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputs("\nTry 'virt-launcher-reporter --help'.\n", stderr);
        return 2;
}

/* -1: go on; else the exit code (0 after --help, 2 for bad usage). */
static int parse_options(int argc, char **argv, reporter_opts *o)
{
        static const struct option longopts[] = {{"parent", required_argument, NULL, 'p'},
                                                 {"vmi", required_argument, NULL, 'v'},
                                                 {"control-socket", required_argument, NULL, 'c'},
                                                 {"help", no_argument, NULL, 'h'},
                                                 {0}};
        int c;
        char *end;
        while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
                switch (c) {
                case 'p':
                        o->parent = strtol(optarg, &end, 10);
                        if (*end || o->parent <= 0)
                                return opt_error("--parent: not a PID: %s", optarg);
                        break;
                case 'v':
                        if (!*optarg || strlen(optarg) > 253 || strchr(optarg, '/'))
                                return opt_error("--vmi: not a VMI name: %s", optarg);
                        o->vmi_name = optarg;
                        break;
                case 'c':
                        if (optarg[0] != '/')
                                return opt_error("--control-socket: not an absolute path: %s", optarg);
                        o->control_socket = optarg;
                        break;
                case 'h':
                        fputs(usage, stdout);
                        return 0;
                default:
                        fputs("Try 'virt-launcher-reporter --help'.\n", stderr);
                        return 2;
                }
        }
        if (optind < argc)
                return opt_error("unexpected argument: %s", argv[optind]);
        if (!o->vmi_name != !o->control_socket)
                return opt_error("--vmi and --control-socket go together");
        return -1;
}

int main(int argc, char **argv)
{
        kv_log_init("virt-launcher-reporter");
        reporter_opts o = {0};
        int code = parse_options(argc, argv, &o);
        if (code >= 0)
                return code;
        /* Die with the launcher even if exec cleared the death signal set before it. */
        if (o.parent && (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != (pid_t)o.parent))
                return 1;
        kv_error err = {0};
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || caps_drop_all(&err) < 0) {
                log_error("confine: %s", err.msg[0] ? err.msg : strerror(errno));
                return 3;
        }
        reporter r = {0};
        if (env_required("POD_NAME", &r.pod) < 0 || env_required("POD_NAMESPACE", &r.ns) < 0)
                return 3;
        kube_config cfg;
        if (kube_config_in_cluster(&cfg, &err) < 0) {
                log_error("%s", err.msg);
                kube_config_free(&cfg);
                return 3;
        }
        /* the CA is read and the random generator seeded here, before the filter forbids more than reading;
         * one attempt per request: our own loop retries, and keeps reading newer documents meanwhile */
        if (kube_lite_init(&r.api, &cfg, &err) < 0) {
                log_error("%s", err.msg);
                kube_lite_free(&r.api);
                kube_config_free(&cfg);
                return 3;
        }
        r.api.timeout_ms = REQUEST_TIMEOUT_MS;
        int w = o.vmi_name ? start_watch(&r, o.vmi_name, o.control_socket) : 0;
        if (w < 0) {
                stop_watch(&r);
                kube_lite_free(&r.api);
                kube_config_free(&cfg);
                return w == -EINVAL ? 2 : 3;
        }
        code = confine();
        if (code == 0)
                code = run(&r);
        stop_watch(&r);
        free(r.pending);
        kube_lite_free(&r.api);
        kube_config_free(&cfg);
        return code;
}
