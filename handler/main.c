/* virt-handler: kvlite's node agent. Serves the kubelet device plugins devices.kubevirt.io/{kvm,tun,
 * vhost-net,vhost-vsock}, labels its Node from kvmcheck, and hands hot-plugged claims' images to their
 * launchers (hotplug.c). It holds no VM state. */
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "apirelay.h"
#include "console.h"
#include "config.h"
#include "hotplug.h"
#include "log.h"
#include "macro.h"

/* Exit codes (also in --help and docs/node-agent.md). */
enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2, EXIT_CONFIG = 3, EXIT_SOCKET = 4 };

static volatile sig_atomic_t stop_requested;

static void usage(FILE *f)
{
        fputs(
            "Usage: virt-handler --node-name NAME [OPTIONS]\n"
            "kvlite's node agent: serves the kubelet device plugins devices.kubevirt.io/kvm, tun, vhost-net\n"
            "and vhost-vsock, and labels the Node from kvmcheck (kubevirt.io/schedulable, CPU model and\n"
            "feature labels, kvlite.io/kvm-verdict). KVM is advertised only when kvmcheck says usable.\n"
            "With the API it also hands the disk images of claims that attachment Pods (hp-volume-*)\n"
            "mount on this node to their launcher Pods (virtctl addvolume).\n\n"
            "  --node-name NAME        this node (default $NODE_NAME)\n"
            "  --kubeconfig FILE       kubeconfig (default: in-cluster when KUBERNETES_SERVICE_HOST is set,\n"
            "                          else $KUBECONFIG or ~/.kube/config)\n"
            "  --context NAME          kubeconfig context instead of current-context\n"
            "  --in-cluster            use the Pod's service account\n"
            "  --no-labels             do not label the Node; without --kubeconfig, --in-cluster or\n"
            "                          --api-relay-dir too, never talk to the API server (device plugins\n"
            "                          and console only)\n"
            "  --no-hotplug            do not hand hot-plugged volumes to launchers\n"
            "  --device-plugin-dir DIR the kubelet's device-plugins directory, holding kubelet.sock\n"
            "                          (default /var/lib/kubelet/device-plugins)\n"
            "  --dev-dir DIR           where the host's device nodes are seen (default /dev)\n"
            "  --devices LIST          kinds to serve, comma separated (default "
            "kvm,tun,vhost-net,vhost-vsock)\n"
            "  --max-devices N         devices advertised per kind, 1..100000 (default 1000, as KubeVirt)\n"
            "  --recheck-interval S    seconds between kvmcheck runs, 1..86400 (default 300)\n"
            "  --kvm-replay FILE       decide from a recorded `kvmcheck --profile` instead of probing\n"
            "  --console-certs DIR     serve virt-api's console/VNC channel over mutual TLS with ca.crt,\n"
            "                          tls.crt, tls.key from DIR (virt-api's Secret kvlite-handler-certs)\n"
            "  --console-listen ADDR   its address (default 0.0.0.0:8186, KubeVirt's virt-handler port)\n"
            "  --console-client-name N the name virt-api's client certificate must carry\n"
            "                          (default virt-api.kvlite.svc)\n"
            "  --pods-dir DIR          the kubelet's Pod directories, where launcher sockets and attachment\n"
            "                          Pods' volumes are found\n"
            "                          (default /var/lib/kubelet/pods)\n"
            "  --api-relay-dir DIR     relay launcher Pods to the API server (of this agent's kubeconfig or\n"
            "                          in-cluster config) through the unix socket DIR/apiserver.sock\n"
            "                          (created, mode 0666): bytes only, TLS stays end to end. For Pods\n"
            "                          whose address went to the guest (bridge or macvtap binding)\n"
            "  -v, --verbose           debug logs\n"
            "  -h, --help              this text\n\n"
            "Exit codes: 0 stopped by SIGTERM/SIGINT, 1 runtime failure, 2 bad arguments,\n"
            "            3 bad kubeconfig or in-cluster configuration, 4 a plugin socket, the console\n"
            "            address or the API relay socket cannot be served.\n",
            f);
}

static void on_signal(int sig)
{
        stop_requested = 1;
}

static int bad(const char *opt, const char *arg, const char *why)
{
        fprintf(stderr, "virt-handler: %s %s: %s (see --help)\n", opt, arg, why);
        return EXIT_USAGE;
}

static int parse_uint(const char *opt, const char *arg, unsigned lo, unsigned hi, unsigned *out)
{
        char *end;
        unsigned long v = strtoul(arg, &end, 10);
        if (!*arg || *end || arg[0] == '-' || v < lo || v > hi) {
                char why[64];
                snprintf(why, sizeof(why), "not a number in %u..%u", lo, hi);
                return bad(opt, arg, why);
        }
        *out = (unsigned)v;
        return 0;
}

static int parse_devices(const char *arg, agent_config *cfg)
{
        _cleanup_free_ char *copy = strdup(arg);
        char *save = NULL;
        cfg->n_kinds = 0;
        for (char *t = copy ? strtok_r(copy, ",", &save) : NULL; t; t = strtok_r(NULL, ",", &save)) {
                const dp_kind *k = dp_kind_find(t);
                if (!k)
                        return bad("--devices", t, "unknown device (kvm, tun, vhost-net, vhost-vsock)");
                for (size_t i = 0; i < cfg->n_kinds; i++)
                        if (cfg->kinds[i] == k)
                                return bad("--devices", t, "given twice");
                cfg->kinds[cfg->n_kinds++] = k;
        }
        return cfg->n_kinds ? 0 : bad("--devices", arg, "empty list");
}

int main(int argc, char **argv)
{
        static const struct option longopts[] = {{"node-name", required_argument, NULL, 'n'},
                                                 {"kubeconfig", required_argument, NULL, 'k'},
                                                 {"context", required_argument, NULL, 'c'},
                                                 {"in-cluster", no_argument, NULL, 'i'},
                                                 {"no-labels", no_argument, NULL, 'L'},
                                                 {"no-hotplug", no_argument, NULL, 'H'},
                                                 {"device-plugin-dir", required_argument, NULL, 'd'},
                                                 {"dev-dir", required_argument, NULL, 'D'},
                                                 {"devices", required_argument, NULL, 'e'},
                                                 {"max-devices", required_argument, NULL, 'm'},
                                                 {"recheck-interval", required_argument, NULL, 'r'},
                                                 {"kvm-replay", required_argument, NULL, 'R'},
                                                 {"console-certs", required_argument, NULL, 'C'},
                                                 {"console-listen", required_argument, NULL, 'l'},
                                                 {"console-client-name", required_argument, NULL, 'N'},
                                                 {"pods-dir", required_argument, NULL, 'P'},
                                                 {"api-relay-dir", required_argument, NULL, 'A'},
                                                 {"verbose", no_argument, NULL, 'v'},
                                                 {"help", no_argument, NULL, 'h'},
                                                 {NULL, 0, NULL, 0}};
        agent_config cfg = {.node_name = getenv("NODE_NAME"),
                            .plugin_dir = "/var/lib/kubelet/device-plugins",
                            .dev_dir = "/dev",
                            .count = 1000,
                            .recheck_s = 300};
        console_config console = {.listen = "0.0.0.0:8186",
                                  .client_name = "virt-api.kvlite.svc",
                                  .pods_dir = "/var/lib/kubelet/pods"};
        const char *kubeconfig = NULL, *context = NULL, *relay_dir = NULL;
        bool in_cluster = false, labels = true, hotplug = true;
        int c, r;
        for (size_t i = 0; i < dp_kinds_count; i++)
                cfg.kinds[cfg.n_kinds++] = &dp_kinds[i];
        kv_log_init("virt-handler");
        opterr = 0;
        while ((c = getopt_long(argc, argv, "vh", longopts, NULL)) != -1) {
                r = 0;
                switch (c) {
                case 'n':
                        cfg.node_name = optarg;
                        break;
                case 'k':
                        kubeconfig = optarg;
                        break;
                case 'c':
                        context = optarg;
                        break;
                case 'i':
                        in_cluster = true;
                        break;
                case 'L':
                        labels = false;
                        break;
                case 'H':
                        hotplug = false;
                        break;
                case 'd':
                        cfg.plugin_dir = optarg;
                        break;
                case 'D':
                        cfg.dev_dir = optarg;
                        break;
                case 'e':
                        r = parse_devices(optarg, &cfg);
                        break;
                case 'm':
                        r = parse_uint("--max-devices", optarg, 1, 100000, &cfg.count);
                        break;
                case 'r':
                        r = parse_uint("--recheck-interval", optarg, 1, 86400, &cfg.recheck_s);
                        break;
                case 'R':
                        cfg.kvm_replay = optarg;
                        break;
                case 'C':
                        console.cert_dir = optarg;
                        break;
                case 'l':
                        console.listen = optarg;
                        break;
                case 'N':
                        console.client_name = optarg;
                        break;
                case 'P':
                        console.pods_dir = optarg;
                        break;
                case 'A':
                        relay_dir = optarg;
                        break;
                case 'v':
                        kv_log_set_level(KV_LOG_DEBUG);
                        break;
                case 'h':
                        usage(stdout);
                        return EXIT_OK;
                default:
                        fprintf(stderr, "virt-handler: %s: %s (see --help)\n", argv[optind - 1],
                                optopt ? "needs an argument" : "unknown option");
                        return EXIT_USAGE;
                }
                if (r)
                        return r;
        }
        if (optind < argc)
                return bad("argument", argv[optind], "unexpected");
        if (!cfg.node_name || !*cfg.node_name)
                return bad("--node-name", "(unset)", "required (or $NODE_NAME)");
        static kube_config kc; /* static: the hot-plug agent's thread reads it until the process ends */
        _cleanup_(kube_client_freep) kube_client *kube = NULL;
        kv_error err = {0};
        if (labels || kubeconfig || in_cluster || relay_dir) {
                if (kube_config_load(&kc, kubeconfig, context, in_cluster, &err) < 0) {
                        fprintf(stderr, "virt-handler: %s\n", err.msg);
                        return EXIT_CONFIG;
                }
                kube = kube_client_new(&kc);
                cfg.kube = labels ? kube : NULL;
                if (!kube) {
                        kube_config_free(&kc);
                        fprintf(stderr, "virt-handler: out of memory\n");
                        return EXIT_RUNTIME;
                }
        }
        struct sigaction sa = {.sa_handler = on_signal};
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        signal(SIGPIPE, SIG_IGN);
        if (relay_dir && api_relay_start(relay_dir, kc.server, &err) < 0) {
                log_error("%s", err.msg);
                return EXIT_SOCKET;
        }
        if (console.cert_dir) {
                if ((r = console_server_start(&console, &err)) < 0) {
                        log_error("%s", err.msg);
                        return EXIT_SOCKET;
                }
                log_info("console channel on port %d (pods in %s)", r, console.pods_dir);
        }
        if (kube && hotplug) {
                hotplug_config hp = {.kc = &kc, .node_name = cfg.node_name, .pods_dir = console.pods_dir};
                if (hotplug_agent_start(&hp, &err) < 0) {
                        log_error("%s", err.msg);
                        return EXIT_RUNTIME;
                }
                log_info("hot-plug agent watching attachment pods on node %s (pods in %s)", cfg.node_name,
                         console.pods_dir);
        }
        r = agent_run(&cfg, &stop_requested, &err);
        if (relay_dir)
                api_relay_stop();
        if (kube) {
                kube_client_free(TAKE_PTR(kube));
                if (!hotplug) /* else the hot-plug agent's thread reads kc until the process ends */
                        kube_config_free(&kc);
        }
        if (r < 0) {
                log_error("%s", err.msg);
                return err.code == EADDRNOTAVAIL ? EXIT_SOCKET : EXIT_RUNTIME;
        }
        return EXIT_OK;
}
