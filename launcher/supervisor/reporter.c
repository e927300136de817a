/* virt-launcher-reporter: patches the launcher's status onto its own Pod as the annotation
 * kvlite.io/launcher-status. A separate process (privilege separation): the sandboxed launcher never
 * opens a network socket nor maps libcurl; this one holds no capabilities and only talks to the API. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "client.h"
#include "config.h"
#include "log.h"
#include "macro.h"
#include "sandbox.h"

#define ANNOTATION "kvlite.io/launcher-status"
#define MAX_DOC 65536
#define BACKOFF_BASE_MS 250
#define BACKOFF_CAP_MS 5000
/* After the launcher closed its end: how long to keep retrying the final status (the launcher waits
 * 5 s for this process to exit). */
#define FINAL_DEADLINE_MS 4000
#define REQUEST_TIMEOUT_MS 3000

static const char usage[] =
    "Usage: virt-launcher-reporter [--parent PID]\n"
    "\n"
    "Started by virt-launcher in a Pod: reads status documents (one per SOCK_SEQPACKET message) on\n"
    "stdin and merge-patches the latest onto the Pod $POD_NAMESPACE/$POD_NAME as the annotation\n"
    "kvlite.io/launcher-status, with in-cluster credentials (KUBERNETES_SERVICE_HOST/PORT, the\n"
    "service-account files in $KVLITE_SA_DIR or /var/run/secrets/kubernetes.io/serviceaccount).\n"
    "Failed patches are retried with backoff; only the latest status is kept. Exits when stdin closes\n"
    "(after delivering the last status) or when the parent PID dies.\n"
    "\n"
    "Options:\n"
    "  --parent PID   exit (SIGKILL via PR_SET_PDEATHSIG) when process PID, the launcher, dies\n"
    "  -h, --help     this text\n"
    "\n"
    "Exit codes: 0 done, 1 the last status could not be delivered, 2 usage, 3 no in-cluster config.\n";

typedef struct reporter {
        kube_client *client;
        const char *ns, *pod;
        char *pending; /* latest document not yet on the Pod */
        unsigned attempt;
        int64_t next_try, give_up; /* monotonic ms; give_up set once stdin closed */
        bool eof;
} reporter;

static int64_t now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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
                        r->give_up = now_ms() + FINAL_DEADLINE_MS;
                        return;
                }
                if ((size_t)n > sizeof(buf)) {
                        log_warning("status document of %zd bytes dropped (limit %d)", n, MAX_DOC);
                        continue;
                }
                char *doc = strndup(buf, (size_t)n);
                if (!doc)
                        continue;
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
        int ret = kube_merge_patch(r->client, &kube_pod, r->ns, r->pod, body, false, NULL, err);
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
        r->next_try = now_ms() + delay;
}

static int run(reporter *r)
{
        for (;;) {
                int64_t now = now_ms();
                if (r->pending && now >= r->next_try)
                        try_deliver(r);
                if (r->eof && !r->pending)
                        return 0;
                now = now_ms();
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

int main(int argc, char **argv)
{
        kv_log_init("virt-launcher-reporter");
        static const struct option longopts[] = {
            {"parent", required_argument, NULL, 'p'}, {"help", no_argument, NULL, 'h'}, {0}};
        long parent = 0;
        int c;
        while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
                char *end;
                switch (c) {
                case 'p':
                        parent = strtol(optarg, &end, 10);
                        if (*end || parent <= 0) {
                                fprintf(stderr, "virt-launcher-reporter: --parent: not a PID: %s\n", optarg);
                                return 2;
                        }
                        break;
                case 'h':
                        fputs(usage, stdout);
                        return 0;
                default:
                        fputs("Try 'virt-launcher-reporter --help'.\n", stderr);
                        return 2;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "virt-launcher-reporter: unexpected argument: %s\nTry 'virt-launcher-reporter --help'.\n",
                        argv[optind]);
                return 2;
        }
        /* Die with the launcher even if exec cleared the death signal set before it. */
        if (parent && (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != (pid_t)parent))
                return 1;
        kv_error err = {0};
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || sandbox_drop_capabilities(&err) < 0) {
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
        r.client = kube_client_new(&cfg);
        if (!r.client) {
                kube_config_free(&cfg);
                return 3;
        }
        r.client->max_attempts = 1; /* our own loop retries, and keeps reading newer documents meanwhile */
        r.client->timeout_ms = REQUEST_TIMEOUT_MS;
        int code = run(&r);
        free(r.pending);
        kube_client_free(r.client);
        kube_config_free(&cfg);
        return code;
}
