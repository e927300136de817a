/* virt-controller: parses options, loads the API configuration and runs the controller loop. */
#include "controller.h"
#include "log.h"
#include "metrics.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

/* Exit codes (also in --help and docs/controller.md). */
enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2, EXIT_CONFIG = 3, EXIT_METRICS = 4 };

static controller ctl;
static cJSON *tolerations; /* --vm-toleration, for the whole run */

static void usage(FILE *f)
{
        fputs(
            "Usage: virt-controller [--kubeconfig FILE [--context NAME] | --in-cluster] [OPTIONS]\n"
            "Turns kubevirt.io/v1 VMIs into launcher Pods, VMs into VMIs, and reports their status.\n\n"
            "  --kubeconfig FILE       kubeconfig to use (default: in-cluster when KUBERNETES_SERVICE_HOST\n"
            "                          is set, else $KUBECONFIG or ~/.kube/config)\n"
            "  --context NAME          kubeconfig context instead of current-context\n"
            "  --in-cluster            use the Pod's service account\n"
            "  --namespace NS          watch only NS (default: all namespaces)\n"
            "  --metrics-addr ADDR     serve /metrics, /healthz, /readyz on ADDR (default 0.0.0.0:8080,\n"
            "                          \"\" to disable, port 0 for any free port)\n"
            "  --launcher-image IMG    launcher image for Pods (default $KVLITE_LAUNCHER_IMAGE or\n"
            "                          kvlite/virt-launcher:0.1.0)\n"
            "  --launcher-service-account SA  (default kvlite-launcher, \"\" for none)\n"
            "  --importer-image IMG    DataVolume importer Pods' image (default $KVLITE_IMPORTER_IMAGE or\n"
            "                          kvlite/importer:0.1.0)\n"
            "  --registry-config NS/NAME  Secret with registries.yaml (mirrors, credentials, CAs) that\n"
            "                          importer Pods get (default kvlite/kvlite-registries; \"\" for none)\n"
            "  --use-emulation         launcher Pods request no devices.kubevirt.io/kvm: VMs run under TCG "
            "on\n"
            "                          any node (KubeVirt's developerConfiguration.useEmulation); without "
            "it\n"
            "                          they land only on nodes whose node agent advertises usable KVM\n"
            "  --api-relay-dir DIR     the node directory where virt-handler --api-relay-dir serves its\n"
            "                          API-server relay: launcher Pods mount it and their reporter reaches\n"
            "                          the API server through it (a Pod whose address its guest took has no\n"
            "                          other way); default: none, the reporter connects directly\n"
            "  --vm-toleration KEY[=VALUE]:EFFECT  a toleration every launcher Pod gets besides the VMI's\n"
            "                          own (repeatable), for nodes tainted to keep other Pods off\n"
            "  --workers N             reconcile workers, 1..64 (default 4)\n"
            "  --discovery-interval S  seconds between checks of the optional API groups\n"
            "                          (snapshot.kubevirt.io, migrations.kubevirt.io, cdi.kubevirt.io),\n"
            "                          1..3600 (default 10)\n"
            "  -v, --verbose           debug logs\n"
            "  -h, --help              this text\n\n"
            "Exit codes: 0 stopped by SIGTERM/SIGINT, 1 runtime failure, 2 bad arguments,\n"
            "            3 bad kubeconfig or in-cluster configuration, 4 metrics address unusable.\n",
            f);
}

static void on_signal(int sig)
{
        controller_stop(&ctl);
}

int main(int argc, char **argv)
{
        static const struct option longopts[] = {{"kubeconfig", required_argument, NULL, 'k'},
                                                 {"context", required_argument, NULL, 'c'},
                                                 {"in-cluster", no_argument, NULL, 'i'},
                                                 {"namespace", required_argument, NULL, 'n'},
                                                 {"metrics-addr", required_argument, NULL, 'm'},
                                                 {"launcher-image", required_argument, NULL, 'l'},
                                                 {"launcher-service-account", required_argument, NULL, 's'},
                                                 {"workers", required_argument, NULL, 'w'},
                                                 {"importer-image", required_argument, NULL, 'I'},
                                                 {"registry-config", required_argument, NULL, 'R'},
                                                 {"discovery-interval", required_argument, NULL, 'd'},
                                                 {"use-emulation", no_argument, NULL, 'E'},
                                                 {"vm-toleration", required_argument, NULL, 'T'},
                                                 {"api-relay-dir", required_argument, NULL, 'A'},
                                                 {"verbose", no_argument, NULL, 'v'},
                                                 {"help", no_argument, NULL, 'h'},
                                                 {NULL, 0, NULL, 0}};
        const char *kubeconfig = NULL, *context = NULL;
        bool in_cluster = false;
        const char *image = getenv("KVLITE_LAUNCHER_IMAGE"), *importer = getenv("KVLITE_IMPORTER_IMAGE");
        controller_opts opts = {
            .metrics_addr = "0.0.0.0:8080",
            .workers = 4,
            .importer_image = importer && *importer ? importer : "kvlite/importer:0.1.0",
            .registry_config = "kvlite/kvlite-registries",
            .pod = {.launcher_image = image && *image ? image : "kvlite/virt-launcher:0.1.0",
                    .service_account = "kvlite-launcher"}};
        int o;
        kv_log_init("virt-controller");
        while ((o = getopt_long(argc, argv, "vh", longopts, NULL)) != -1) {
                char *end;
                switch (o) {
                case 'k':
                        kubeconfig = optarg;
                        break;
                case 'c':
                        context = optarg;
                        break;
                case 'i':
                        in_cluster = true;
                        break;
                case 'n':
                        opts.namespace = *optarg ? optarg : NULL;
                        break;
                case 'm':
                        opts.metrics_addr = optarg;
                        break;
                case 'l':
                        opts.pod.launcher_image = optarg;
                        break;
                case 's':
                        opts.pod.service_account = *optarg ? optarg : NULL;
                        break;
                case 'I':
                        opts.importer_image = optarg;
                        break;
                case 'R':
                        if (*optarg && !strchr(optarg, '/')) {
                                fprintf(
                                    stderr,
                                    "virt-controller: --registry-config \"%s\": expected NAMESPACE/NAME\n",
                                    optarg);
                                return EXIT_USAGE;
                        }
                        opts.registry_config = *optarg ? optarg : NULL;
                        break;
                case 'w':
                        opts.workers = (unsigned)strtoul(optarg, &end, 10);
                        if (*end || opts.workers < 1 || opts.workers > 64) {
                                fprintf(stderr, "virt-controller: --workers \"%s\": expected 1..64\n",
                                        optarg);
                                return EXIT_USAGE;
                        }
                        break;
                case 'd': {
                        unsigned long s = strtoul(optarg, &end, 10);
                        if (*end || s < 1 || s > 3600) {
                                fprintf(stderr,
                                        "virt-controller: --discovery-interval \"%s\": expected 1..3600\n",
                                        optarg);
                                return EXIT_USAGE;
                        }
                        opts.discovery_interval_ms = (unsigned)s * 1000;
                        break;
                }
                case 'E':
                        opts.pod.use_emulation = true;
                        break;
                case 'A':
                        if (optarg[0] != '/') {
                                fprintf(
                                    stderr,
                                    "virt-controller: --api-relay-dir \"%s\": expected an absolute path\n",
                                    optarg);
                                return EXIT_USAGE;
                        }
                        opts.pod.api_relay_dir = optarg;
                        break;
                case 'T': {
                        kv_error terr = {0};
                        cJSON *t = pod_toleration_parse(optarg, &terr);
                        if (!t) {
                                fprintf(stderr, "virt-controller: --vm-toleration: %s\n", terr.msg);
                                return EXIT_USAGE;
                        }
                        if (!tolerations)
                                tolerations = cJSON_CreateArray();
                        cJSON_AddItemToArray(tolerations, t);
                        opts.pod.tolerations = tolerations;
                        break;
                }
                case 'v':
                        kv_log_set_level(KV_LOG_DEBUG);
                        break;
                case 'h':
                        usage(stdout);
                        return EXIT_OK;
                default: /* getopt named the option; the whole usage would bury that line */
                        fputs("Try 'virt-controller --help'.\n", stderr);
                        return EXIT_USAGE;
                }
        }
        opts.pod.importer_image = opts.importer_image; /* registry containerDisks pull through it too */
        if (optind < argc) {
                fprintf(stderr, "virt-controller: unexpected argument \"%s\"\n", argv[optind]);
                return EXIT_USAGE;
        }
        if (in_cluster && (kubeconfig || context)) {
                fprintf(stderr,
                        "virt-controller: --in-cluster cannot be combined with --kubeconfig/--context\n");
                return EXIT_USAGE;
        }
        kube_config cfg;
        kv_error err = {0};
        curl_global_init(CURL_GLOBAL_DEFAULT);
        if (kube_config_load(&cfg, kubeconfig, context, in_cluster, &err) < 0) {
                log_error("%s", err.msg);
                fprintf(stderr, "virt-controller: %s\n", err.msg);
                kube_config_free(&cfg);
                return EXIT_CONFIG;
        }
        int rc = EXIT_OK;
        if (controller_init(&ctl, &cfg, &opts, &err) < 0) {
                fprintf(stderr, "virt-controller: %s\n", err.msg);
                rc = err.code == EINVAL || err.code == EADDRINUSE ? EXIT_METRICS : EXIT_RUNTIME;
        } else {
                if (ctl.metrics)
                        log_info("serving /metrics on port %u", metrics_server_port(ctl.metrics));
                struct sigaction sa = {.sa_handler = on_signal};
                sigaction(SIGTERM, &sa, NULL);
                sigaction(SIGINT, &sa, NULL);
                signal(SIGPIPE, SIG_IGN);
                log_info("watching %s at %s", opts.namespace ? opts.namespace : "all namespaces", cfg.server);
                if (controller_run(&ctl, &err) < 0) {
                        log_error("%s", err.msg);
                        rc = EXIT_RUNTIME;
                }
        }
        controller_free(&ctl);
        kube_config_free(&cfg);
        curl_global_cleanup();
        return rc;
}
