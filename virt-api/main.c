/* virt-api: parses options, loads the API configuration and serves subresources.kubevirt.io/v1 and the
 * admission webhooks over HTTPS until SIGTERM. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>

#include "certs.h"
#include "console.h"
#include "eviction.h"
#include "log.h"
#include "macro.h"
#include "registration.h"
#include "server.h"

/* Exit codes (also in --help and docs/virt-api.md). */
enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2, EXIT_CONFIG = 3, EXIT_LISTEN = 4 };

static volatile sig_atomic_t stopping;

static void usage(FILE *f)
{
        fputs(
            "Usage: virt-api (--cert-dir DIR | --tls-cert FILE --tls-key FILE) [--client-ca FILE]\n"
            "                [--kubeconfig FILE | --in-cluster] [OPTIONS]\n"
            "Serves KubeVirt's subresources.kubevirt.io/v1 API (start, stop, restart, softreboot, migrate,\n"
            "pause, unpause, addvolume, removevolume, guestosinfo, userlist, filesystemlist) behind the API "
            "server's APIService, and "
            "the\n"
            "admission webhooks (/validate, /mutate, " EVICTION_VALIDATE_PATH "), over HTTPS.\n\n"
            "  --cert-dir DIR       keep its own CA and serving certificate there (made at start, renewed\n"
            "                       before expiry) and write the CA into the caBundle of the webhook\n"
            "                       configurations " REG_VALIDATING_WEBHOOK ", " REG_MUTATING_WEBHOOK
            " and the\n"
            "                       APIService " REG_APISERVICE " (retried until they exist)\n"
            "  --service NAME.NS    the Service the certificate is for (default virt-api.kvlite: names\n"
            "                       virt-api.kvlite.svc, virt-api.kvlite.svc.cluster.local)\n"
            "  --cert-validity DAYS serving certificate lifetime (default 30; the CA lives twice as long)\n"
            "  --cert-check SECONDS how often the certificates are checked for renewal (default 3600)\n"
            "  --tls-cert FILE      instead of --cert-dir: a serving certificate (PEM), not renewed or "
            "published\n"
            "  --tls-key FILE       its private key (PEM)\n"
            "  --client-ca FILE     front-proxy CA (requestheader-client-ca-file), any client name; "
            "default:\n"
            "                       read from kube-system/" REG_AUTH_CONFIGMAP " with\n"
            "                       requestheader-allowed-names, as an aggregated API server does. "
            "Subresource\n"
            "                       requests must present a client certificate it signed and X-Remote-User\n"
            "  --listen ADDR        HOST:PORT to serve on (default 0.0.0.0:8443; port 0 = any free port)\n"
            "  --port-file FILE     write {\"port\": N} there once serving (for tests)\n"
            "  --kubeconfig FILE    kubeconfig (default: in-cluster when KUBERNETES_SERVICE_HOST is set,\n"
            "                       else $KUBECONFIG or ~/.kube/config)\n"
            "  --in-cluster         use the Pod's service account\n"
            "  --handler-port N     virt-handler's console channel port on each node (default 8186);\n"
            "                       console and vnc reach the launcher through it (docs/console.md)\n"
            "  --eviction-strategy S  the cluster-wide evictionStrategy of VMIs that name none (KubeVirt's\n"
            "                       spec.configuration.evictionStrategy): None (default), LiveMigrate,\n"
            "                       LiveMigrateIfPossible or External; the pods/eviction webhook\n"
            "                       (" EVICTION_VALIDATE_PATH ") follows it\n"
            "  -v, --verbose        debug logs\n"
            "  -h, --help           this text\n\n"
            "Exit codes: 0 stopped by SIGTERM/SIGINT, 1 runtime failure, 2 bad arguments,\n"
            "            3 bad kubeconfig or in-cluster configuration, or no front-proxy CA,\n"
            "            4 cannot serve (address, certificate, --cert-dir).\n",
            f);
}

static void on_signal(int sig)
{
        stopping = 1;
}

/* --cert-dir: the managed certificates and where their CA is published. */
typedef struct cert_manager {
        const char *dir;
        char names[512];
        char ns[256];            /* the Service's namespace: virt-handler's Secret goes there */
        char handler_names[512]; /* virt-handler's certificate for the console channel */
        char handler_host[300];  /* the name virt-api checks on it */
        unsigned validity_days, check_seconds;
        char crt[4096], key[4096], ca[4096];
        bool published;
} cert_manager;

static int service_names(cert_manager *m, const char *service)
{
        const char *dot = strchr(service, '.');
        if (!dot || dot == service || !dot[1] || strchr(dot + 1, '.'))
                return -1;
        snprintf(m->names, sizeof(m->names), "%s.svc,%s.svc.cluster.local", service, service);
        snprintf(m->ns, sizeof(m->ns), "%s", dot + 1);
        snprintf(m->handler_host, sizeof(m->handler_host), CONSOLE_HANDLER_NAME ".%s.svc", dot + 1);
        snprintf(m->handler_names, sizeof(m->handler_names), "%s,%s.cluster.local", m->handler_host,
                 m->handler_host);
        return 0;
}

static char *read_text(const char *path)
{
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        char *buf = NULL;
        size_t cap = 0;
        if (!f || getdelim(&buf, &cap, '\0', f) < 0) {
                free(buf);
                return NULL;
        }
        return buf;
}

/* Publishes the CA until it has worked once; after a renewal again. Failures are logged and retried. */
static void publish(cert_manager *m, kube_client *api)
{
        char path[4200], crt[4200], key[4200];
        snprintf(path, sizeof(path), "%s/%s", m->dir, CERTS_CA_CRT);
        snprintf(crt, sizeof(crt), "%s/%s", m->dir, CERTS_HANDLER_CRT);
        snprintf(key, sizeof(key), "%s/%s", m->dir, CERTS_HANDLER_KEY);
        _cleanup_free_ char *ca = read_text(path), *hcrt = read_text(crt), *hkey = read_text(key);
        kv_error err = {0};
        if (!ca || !hcrt || !hkey)
                log_error("caBundle: cannot read %s", !ca ? path : !hcrt ? crt : key);
        else if (reg_publish_ca(api, ca, &err) < 0 ||
                 reg_publish_handler_secret(api, m->ns, ca, hcrt, hkey, &err) < 0)
                log_warning("%s (retried)", err.msg);
        else if (!m->published)
                log_info("CA published in %s, %s and %s", REG_VALIDATING_WEBHOOK, REG_MUTATING_WEBHOOK,
                         REG_APISERVICE);
        m->published = ca && hcrt && hkey && !err.code;
}

/* certs_ensure; 1 when something was renewed. */
static int certs_check(cert_manager *m, kv_error *err)
{
        int r = certs_ensure(m->dir, m->names, m->validity_days, err);
        if (r >= 0) {
                int h = certs_ensure_peer(m->dir, CERTS_HANDLER_CRT, CERTS_HANDLER_KEY, m->handler_names,
                                          m->validity_days, err);
                r = h < 0 ? h : (r || h);
        }
        if (r > 0)
                log_info("certificates in %s renewed", m->dir);
        return r;
}

static void certs_tick(cert_manager *m, vapi_server *srv, kube_client *api)
{
        kv_error err = {0};
        int r = certs_check(m, &err);
        if (r < 0)
                log_error("certificates: %s", err.msg);
        if (r > 0) {
                if (vapi_server_reload_cert(srv, &err) < 0)
                        log_error("certificates: %s", err.msg);
                m->published = false;
        }
        if (!m->published)
                publish(m, api);
}

static int write_port_file(const char *path, unsigned port)
{
        FILE *f = fopen(path, "we");
        if (!f)
                return -1;
        fprintf(f, "{\"port\": %u}\n", port);
        return fclose(f);
}

int main(int argc, char **argv)
{
        static const struct option longopts[] = {{"tls-cert", required_argument, NULL, 'c'},
                                                 {"tls-key", required_argument, NULL, 'k'},
                                                 {"client-ca", required_argument, NULL, 'a'},
                                                 {"cert-dir", required_argument, NULL, 'd'},
                                                 {"service", required_argument, NULL, 's'},
                                                 {"cert-validity", required_argument, NULL, 'V'},
                                                 {"cert-check", required_argument, NULL, 'C'},
                                                 {"listen", required_argument, NULL, 'l'},
                                                 {"port-file", required_argument, NULL, 'p'},
                                                 {"kubeconfig", required_argument, NULL, 'K'},
                                                 {"in-cluster", no_argument, NULL, 'i'},
                                                 {"handler-port", required_argument, NULL, 'H'},
                                                 {"eviction-strategy", required_argument, NULL, 'E'},
                                                 {"verbose", no_argument, NULL, 'v'},
                                                 {"help", no_argument, NULL, 'h'},
                                                 {NULL, 0, NULL, 0}};
        vapi_server_opts so = {.addr = "0.0.0.0:8443", .handler_port = 8186};
        const char *kubeconfig = NULL, *port_file = NULL, *client_ca = NULL, *service = "virt-api.kvlite";
        cert_manager cm = {.validity_days = 30, .check_seconds = 3600};
        bool in_cluster = false;
        char *end;
        int o;
        kv_log_init("virt-api");
        while ((o = getopt_long(argc, argv, "vh", longopts, NULL)) != -1) {
                switch (o) {
                case 'c':
                        so.tls_cert = optarg;
                        break;
                case 'k':
                        so.tls_key = optarg;
                        break;
                case 'a':
                        client_ca = optarg;
                        break;
                case 'd':
                        cm.dir = optarg;
                        break;
                case 's':
                        service = optarg;
                        break;
                case 'V':
                case 'C': {
                        unsigned long v = strtoul(optarg, &end, 10);
                        if (*end || !*optarg || v == 0 || v > (o == 'V' ? 36500 : 86400 * 30)) {
                                fprintf(stderr, "virt-api: --%s \"%s\": expected a whole number in [1, %u]\n",
                                        o == 'V' ? "cert-validity" : "cert-check", optarg,
                                        o == 'V' ? 36500 : 86400 * 30);
                                return EXIT_USAGE;
                        }
                        *(o == 'V' ? &cm.validity_days : &cm.check_seconds) = (unsigned)v;
                        break;
                }
                case 'l':
                        so.addr = optarg;
                        break;
                case 'p':
                        port_file = optarg;
                        break;
                case 'K':
                        kubeconfig = optarg;
                        break;
                case 'i':
                        in_cluster = true;
                        break;
                case 'H': {
                        unsigned long v = strtoul(optarg, &end, 10);
                        if (*end || !*optarg || v == 0 || v > 65535) {
                                fprintf(stderr,
                                        "virt-api: --handler-port \"%s\": expected a port in [1, 65535]\n",
                                        optarg);
                                return EXIT_USAGE;
                        }
                        so.handler_port = (unsigned)v;
                        break;
                }
                case 'E': {
                        size_t i = 0;
                        while (eviction_strategies[i] && strcmp(eviction_strategies[i], optarg))
                                i++;
                        if (!eviction_strategies[i]) {
                                fprintf(stderr,
                                        "virt-api: --eviction-strategy \"%s\": expected None, LiveMigrate, "
                                        "LiveMigrateIfPossible or External\n",
                                        optarg);
                                return EXIT_USAGE;
                        }
                        so.eviction_strategy = i ? eviction_strategies[i] : NULL;
                        break;
                }
                case 'v':
                        kv_log_set_level(KV_LOG_DEBUG);
                        break;
                case 'h':
                        usage(stdout);
                        return EXIT_OK;
                default:
                        fputs("Try 'virt-api --help'.\n", stderr);
                        return EXIT_USAGE;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "virt-api: unexpected argument \"%s\"\n", argv[optind]);
                return EXIT_USAGE;
        }
        if (cm.dir && (so.tls_cert || so.tls_key)) {
                fputs("virt-api: --cert-dir cannot be combined with --tls-cert/--tls-key\n", stderr);
                return EXIT_USAGE;
        }
        if (!cm.dir && (!so.tls_cert || !so.tls_key)) {
                fprintf(stderr, "virt-api: --%s is required (or --cert-dir)\n",
                        so.tls_cert ? "tls-key" : "tls-cert");
                return EXIT_USAGE;
        }
        if (service_names(&cm, service) < 0) {
                fprintf(stderr, "virt-api: --service \"%s\": expected NAME.NAMESPACE\n", service);
                return EXIT_USAGE;
        }
        so.handler_ns = cm.ns;
        so.handler_name = cm.handler_host;
        if (cm.dir) {
                kv_error cerr = {0};
                snprintf(cm.crt, sizeof(cm.crt), "%s/%s", cm.dir, CERTS_TLS_CRT);
                snprintf(cm.key, sizeof(cm.key), "%s/%s", cm.dir, CERTS_TLS_KEY);
                so.tls_cert = cm.crt;
                so.tls_key = cm.key;
                snprintf(cm.ca, sizeof(cm.ca), "%s/%s", cm.dir, CERTS_CA_CRT);
                so.console_ca = cm.ca;
                if (certs_check(&cm, &cerr) < 0) {
                        fprintf(stderr, "virt-api: --cert-dir %s: %s\n", cm.dir, cerr.msg);
                        return EXIT_LISTEN;
                }
        }
        if (in_cluster && kubeconfig) {
                fputs("virt-api: --in-cluster cannot be combined with --kubeconfig\n", stderr);
                return EXIT_USAGE;
        }
        kube_config cfg;
        kv_error err = {0};
        curl_global_init(CURL_GLOBAL_DEFAULT);
        if (kube_config_load(&cfg, kubeconfig, NULL, in_cluster, &err) < 0) {
                fprintf(stderr, "virt-api: %s\n", err.msg);
                kube_config_free(&cfg);
                return EXIT_CONFIG;
        }
        int rc = EXIT_OK;
        kube_client *api = kube_client_new(&cfg);
        vapi_server *srv = NULL;
        _cleanup_free_ char *ca_pem = NULL, *allowed = NULL;
        if (client_ca && !(ca_pem = read_text(client_ca))) {
                fprintf(stderr, "virt-api: --client-ca %s: %s\n", client_ca, strerror(errno));
                rc = EXIT_CONFIG;
        } else if (api && !client_ca && reg_front_proxy(api, &ca_pem, &allowed, &err) < 0) {
                fprintf(stderr, "virt-api: %s\n", err.msg);
                rc = EXIT_CONFIG;
        }
        so.client_ca_pem = ca_pem;
        so.allowed_names = allowed;
        if (rc != EXIT_OK) {
        } else if (!api) {
                rc = EXIT_RUNTIME;
        } else if (vapi_server_start(&so, api, &srv, &err) < 0) {
                fprintf(stderr, "virt-api: %s\n", err.msg);
                log_error("%s", err.msg);
                rc = err.code == ENOTSUP || err.code == ENOMEM ? EXIT_RUNTIME : EXIT_LISTEN;
        } else {
                struct sigaction sa = {.sa_handler = on_signal};
                sigaction(SIGTERM, &sa, NULL);
                sigaction(SIGINT, &sa, NULL);
                signal(SIGPIPE, SIG_IGN);
                log_info("serving on port %u (API %s), front-proxy CA from %s", vapi_server_port(srv),
                         cfg.server, client_ca ? client_ca : REG_AUTH_CONFIGMAP_NS "/" REG_AUTH_CONFIGMAP);
                if (port_file && write_port_file(port_file, vapi_server_port(srv)) < 0) {
                        fprintf(stderr, "virt-api: --port-file %s: %s\n", port_file, strerror(errno));
                        rc = EXIT_RUNTIME;
                }
                /* The certificate timer: every --cert-check seconds, every 2 s until the CA is published. */
                for (unsigned waited = cm.check_seconds; !stopping && rc == EXIT_OK; waited += 2) {
                        if (cm.dir && (!cm.published || waited >= cm.check_seconds)) {
                                certs_tick(&cm, srv, api);
                                waited = 0;
                        }
                        sleep(2);
                }
                log_info("stopping");
        }
        vapi_server_stop(srv);
        if (api)
                kube_client_free(api);
        kube_config_free(&cfg);
        curl_global_cleanup();
        return rc;
}
