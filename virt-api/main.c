/* virt-api: parses options, loads the API configuration and serves subresources.kubevirt.io/v1 and the
 * admission webhooks over HTTPS until SIGTERM. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>

#include "log.h"
#include "server.h"

/* Exit codes (also in --help and docs/virt-api.md). */
enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2, EXIT_CONFIG = 3, EXIT_LISTEN = 4 };

static volatile sig_atomic_t stopping;

static void usage(FILE *f)
{
        fputs("Usage: virt-api --tls-cert FILE --tls-key FILE [--client-ca FILE] [--kubeconfig FILE | --in-cluster]\n"
              "                [OPTIONS]\n"
              "Serves KubeVirt's subresources.kubevirt.io/v1 API (start, stop, restart, migrate, pause,\n"
              "unpause, addvolume, removevolume, guestosinfo) behind the API server's APIService, and the\n"
              "admission webhooks (/validate, /mutate), over HTTPS.\n\n"
              "  --tls-cert FILE      serving certificate (PEM)\n"
              "  --tls-key FILE       its private key (PEM)\n"
              "  --client-ca FILE     front-proxy CA (requestheader-client-ca-file): subresource requests must\n"
              "                       present a client certificate it signed and X-Remote-User; without it\n"
              "                       every subresource request gets 401\n"
              "  --listen ADDR        HOST:PORT to serve on (default 0.0.0.0:8443; port 0 = any free port)\n"
              "  --port-file FILE     write {\"port\": N} there once serving (for tests)\n"
              "  --kubeconfig FILE    kubeconfig (default: in-cluster when KUBERNETES_SERVICE_HOST is set,\n"
              "                       else $KUBECONFIG or ~/.kube/config)\n"
              "  --in-cluster         use the Pod's service account\n"
              "  -v, --verbose        debug logs\n"
              "  -h, --help           this text\n\n"
              "Exit codes: 0 stopped by SIGTERM/SIGINT, 1 runtime failure, 2 bad arguments,\n"
              "            3 bad kubeconfig or in-cluster configuration, 4 cannot serve (address, certificate).\n",
              f);
}

static void on_signal(int sig)
{
        stopping = 1;
}

static int load_config(kube_config *cfg, const char *kubeconfig, bool in_cluster, kv_error *err)
{
        if (in_cluster || (!kubeconfig && getenv("KUBERNETES_SERVICE_HOST")))
                return kube_config_in_cluster(cfg, err);
        if (kubeconfig)
                return kube_config_from_file(cfg, kubeconfig, NULL, err);
        return kube_config_from_default(cfg, NULL, err);
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
                                                 {"listen", required_argument, NULL, 'l'},
                                                 {"port-file", required_argument, NULL, 'p'},
                                                 {"kubeconfig", required_argument, NULL, 'K'},
                                                 {"in-cluster", no_argument, NULL, 'i'},
                                                 {"verbose", no_argument, NULL, 'v'},
                                                 {"help", no_argument, NULL, 'h'},
                                                 {NULL, 0, NULL, 0}};
        vapi_server_opts so = {.addr = "0.0.0.0:8443"};
        const char *kubeconfig = NULL, *port_file = NULL;
        bool in_cluster = false;
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
                        so.client_ca = optarg;
                        break;
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
        if (!so.tls_cert || !so.tls_key) {
                fprintf(stderr, "virt-api: --%s is required\n", so.tls_cert ? "tls-key" : "tls-cert");
                return EXIT_USAGE;
        }
        if (in_cluster && kubeconfig) {
                fputs("virt-api: --in-cluster cannot be combined with --kubeconfig\n", stderr);
                return EXIT_USAGE;
        }
        kube_config cfg;
        kv_error err = {0};
        curl_global_init(CURL_GLOBAL_DEFAULT);
        if (load_config(&cfg, kubeconfig, in_cluster, &err) < 0) {
                fprintf(stderr, "virt-api: %s\n", err.msg);
                kube_config_free(&cfg);
                return EXIT_CONFIG;
        }
        int rc = EXIT_OK;
        kube_client *api = kube_client_new(&cfg);
        vapi_server *srv = NULL;
        if (!api) {
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
                log_info("serving on port %u (API %s)%s", vapi_server_port(srv), cfg.server,
                         so.client_ca ? "" : "; no --client-ca: subresource requests are refused");
                if (port_file && write_port_file(port_file, vapi_server_port(srv)) < 0) {
                        fprintf(stderr, "virt-api: --port-file %s: %s\n", port_file, strerror(errno));
                        rc = EXIT_RUNTIME;
                }
                while (!stopping && rc == EXIT_OK)
                        pause();
                log_info("stopping");
        }
        vapi_server_stop(srv);
        if (api)
                kube_client_free(api);
        kube_config_free(&cfg);
        curl_global_cleanup();
        return rc;
}
