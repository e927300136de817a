/* virt-launcher: boot a kubevirt.io/v1 VMI on QEMU and supervise it (default), or talk to a running
 * launcher (`ctl`, `console`). Thin: options here, the work in launch.c and supervisor.c. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control-client.h"
#include "launch.h"
#include "liveops-command.h"
#include "log.h"
#include "supervisor.h"

static const char usage[] =
    "Usage: virt-launcher --vmi FILE|- [OPTIONS]\n"
    "       virt-launcher --vmi-env VAR [OPTIONS]\n"
    "       virt-launcher console --run-dir DIR\n"
    "       virt-launcher ctl --run-dir DIR COMMAND [ARGS]   (status, pause, unpause, shutdown, apply FILE,\n"
    "                                                     hot-plug, snapshot and migration commands: `help` "
    "lists them)\n"
    "\n"
    "Boots a kubevirt.io/v1 VirtualMachineInstance (YAML or JSON) on QEMU and supervises it until the\n"
    "guest powers off or the launcher is asked to stop (SIGTERM/SIGINT: ACPI power button, then quit\n"
    "and SIGKILL after spec.terminationGracePeriodSeconds).\n"
    "\n"
    "Options:\n"
    "  --vmi FILE|-         read the VMI from FILE (\"-\": stdin); a VirtualMachine runs its template,\n"
    "                       sized by the instancetype and preference it names (in FILE, a multi-document\n"
    "                       file, or the bundled common ones in share/kvlite/crds/common-instancetypes)\n"
    "  --vmi-env VAR        read the VMI (JSON or YAML) from environment variable VAR\n"
    "  --run-dir DIR        sockets, serial.log and created disks (default: a private 0700 temp dir,\n"
    "                       removed on exit)\n"
    "  --image-root DIR     containerDisk volume V resolves to DIR/V when that directory exists\n"
    "                       (default $KVLITE_IMAGE_ROOT). With neither, a reference that is not an\n"
    "                       absolute directory is looked up as " KV_LOCAL_IMAGE_ROOT "/V\n"
    "                       (the test guest this build was configured with)\n"
    "  --pvc-root DIR       persistentVolumeClaim volume V is DIR/V/disk.img (default\n"
    "                       /var/run/kvlite/pvc)\n"
    "  --secret-root DIR    the keys of configMap, secret, serviceAccount, downwardAPI and sysprep\n"
    "                       volume V, and cloud-init secretRef/networkDataSecretRef of volume V\n"
    "                       (userdata|userData, networkdata|networkData), are the files in DIR/V\n"
    "                       (default /var/run/kvlite/secrets)\n"
    "  --status-file FILE   rewrite FILE atomically with the status JSON on every change\n"
    "  --accel auto|kvm|tcg accelerator (default auto: KVM only when kvmcheck says it really works)\n"
    "  --qemu PATH          QEMU binary (default qemu-system-x86_64 on PATH)\n"
    "  --virtiofsd PATH     virtiofsd for spec.domain.devices.filesystems (default\n"
    "                       /usr/lib/qemu/virtiofsd)\n"
    "  --no-sandbox         keep capabilities and skip the seccomp filter (debugging)\n"
    "  --pod-network        run inside a Pod's network namespace (the controller sets it): wire the\n"
    "                       masquerade, bridge or passt binding there (needs CAP_NET_ADMIN and\n"
    "                       /dev/net/tun). Default (local): passt is wired, masquerade falls back to\n"
    "                       QEMU user networking with a warning, bridge is refused\n"
    "  --serial-stdout      copy the guest's serial output to stdout (default when stdout is a\n"
    "                       terminal; logs stay on stderr)\n"
    "  --incoming URI|defer start as a live-migration target: QEMU gets the same argv plus\n"
    "                       -incoming defer and stays paused (phase Scheduled) until the control\n"
    "                       command migration-target-finish; \"defer\" waits for migration-target,\n"
    "                       a URI (tcp:HOST:PORT, unix:PATH) listens at once (--incoming-config)\n"
    "  --incoming-config JSON\n"
    "                       with an --incoming URI: the migration configuration the target sets\n"
    "                       QEMU's capabilities from (KubeVirt's MigrationConfiguration, as `migrate`\n"
    "                       takes it in args.config, e.g. '{\"allowPostCopy\":true,\n"
    "                       \"bandwidthPerMigration\":\"64Mi\"}'); it must be the source's, so that\n"
    "                       post-copy and multifd match on both sides (default: the defaults).\n"
    "                       allowPostCopy needs vm.unprivileged_userfaultfd=1 on the node\n"
    "  --migration-target   the same as --incoming defer\n"
    "  --dry-run            prepare everything, print the QEMU argv as a JSON array, exit\n"
    "  --log-level LEVEL    debug|info|warning|error (default info)\n"
    "  -h, --help           this text\n"
    "\n"
    "Exit codes: 0 Succeeded (guest powered off, or stopped on request), 1 Failed (QEMU failed to\n"
    "start, crashed or was killed), 2 invalid manifest or usage, 3 setup error (run dir, sockets,\n"
    "volume I/O).\n";

static int parse_level(const char *name)
{
        static const char *const names[] = {"debug", "info", "warning", "error"};
        for (int i = 0; i < 4; i++)
                if (strcmp(name, names[i]) == 0) {
                        kv_log_set_level((enum kv_log_level)i);
                        return 0;
                }
        return -1;
}

/* Without --image-root: $KVLITE_IMAGE_ROOT (the same thing as an environment default). */
static const char *default_image_root(void)
{
        const char *env = getenv("KVLITE_IMAGE_ROOT");
        return env && *env ? env : NULL;
}

/* HOST:PORT or [V6ADDR]:PORT; the host goes into a QMP inet address, so only address characters. */
static int parse_host_port(const char *arg, char *host, size_t size, int *port)
{
        const char *colon = strrchr(arg, ':');
        if (!colon || colon == arg)
                return -1;
        size_t len = (size_t)(colon - arg);
        if (arg[0] == '[') {
                if (len < 3 || arg[len - 1] != ']')
                        return -1;
                arg++, len -= 2;
        }
        if (len >= size ||
            strspn(arg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.:-") < len)
                return -1;
        memcpy(host, arg, len);
        host[len] = '\0';
        char *end;
        long p = strtol(colon + 1, &end, 10);
        if (!colon[1] || *end || p < 1 || p > 65535)
                return -1;
        *port = (int)p;
        return 0;
}

static int usage_error(const char *what, const char *arg)
{
        fprintf(stderr, "virt-launcher: %s%s%s\nTry 'virt-launcher --help'.\n", what, arg ? ": " : "",
                arg ? arg : "");
        return EXIT_INVALID;
}

/* Refused here (exit 2) rather than by the target's boot, where it would only fail the migration. */
static int check_incoming_config(const char *arg)
{
        cJSON *c = cJSON_Parse(arg);
        kv_error err = {0};
        migration_config ignored;
        int r = c ? liveops_parse_migration_config(c, "--incoming-config", &ignored, &err)
                  : kv_error_set(&err, EINVAL, "--incoming-config: not valid JSON: %.60s", arg);
        cJSON_Delete(c);
        if (r < 0)
                usage_error(err.msg, NULL);
        return r;
}

int main(int argc, char **argv)
{
        kv_log_init("virt-launcher");
        if (argc > 1 && strcmp(argv[1], "console") == 0)
                return console_client_main(argc - 1, argv + 1);
        if (argc > 1 && strcmp(argv[1], "ctl") == 0)
                return ctl_client_main(argc - 1, argv + 1);

        enum {
                OPT_VMI = 256,
                OPT_VMI_ENV,
                OPT_RUN_DIR,
                OPT_IMAGE_ROOT,
                OPT_SECRET_ROOT,
                OPT_PVC_ROOT,
                OPT_STATUS,
                OPT_ACCEL,
                OPT_QEMU,
                OPT_VIRTIOFSD,
                OPT_NO_SANDBOX,
                OPT_LOG_LEVEL,
                OPT_DRY_RUN,
                OPT_SERIAL_STDOUT,
                OPT_POD_NETWORK,
                OPT_INCOMING,
                OPT_INCOMING_NBD,
                OPT_INCOMING_CONFIG,
                OPT_MIGRATION_TARGET
        };
        static const struct option longopts[] = {
            {"vmi", required_argument, NULL, OPT_VMI},
            {"vmi-env", required_argument, NULL, OPT_VMI_ENV},
            {"run-dir", required_argument, NULL, OPT_RUN_DIR},
            {"image-root", required_argument, NULL, OPT_IMAGE_ROOT},
            {"secret-root", required_argument, NULL, OPT_SECRET_ROOT},
            {"pvc-root", required_argument, NULL, OPT_PVC_ROOT},
            {"status-file", required_argument, NULL, OPT_STATUS},
            {"accel", required_argument, NULL, OPT_ACCEL},
            {"qemu", required_argument, NULL, OPT_QEMU},
            {"virtiofsd", required_argument, NULL, OPT_VIRTIOFSD},
            {"no-sandbox", no_argument, NULL, OPT_NO_SANDBOX},
            {"dry-run", no_argument, NULL, OPT_DRY_RUN},
            {"serial-stdout", no_argument, NULL, OPT_SERIAL_STDOUT},
            {"pod-network", no_argument, NULL, OPT_POD_NETWORK},
            {"incoming", required_argument, NULL, OPT_INCOMING},
            {"incoming-nbd", required_argument, NULL, OPT_INCOMING_NBD},
            {"incoming-config", required_argument, NULL, OPT_INCOMING_CONFIG},
            {"migration-target", no_argument, NULL, OPT_MIGRATION_TARGET},
            {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
            {"help", no_argument, NULL, 'h'},
            {0},
        };
        static char nbd_host[256];
        launch_opts o = {.accel = ACCEL_AUTO, .sandbox = true, .serial_stdout = isatty(STDOUT_FILENO)};
        int c;
        while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
                switch (c) {
                case OPT_VMI:
                        o.vmi_file = optarg;
                        break;
                case OPT_VMI_ENV:
                        o.vmi_env = optarg;
                        break;
                case OPT_RUN_DIR:
                        o.run_dir = optarg;
                        break;
                case OPT_IMAGE_ROOT:
                        o.image_root = optarg;
                        break;
                case OPT_SECRET_ROOT:
                        o.secret_root = optarg;
                        break;
                case OPT_PVC_ROOT:
                        o.pvc_root = optarg;
                        break;
                case OPT_STATUS:
                        o.status_file = optarg;
                        break;
                case OPT_QEMU:
                        o.qemu = optarg;
                        break;
                case OPT_VIRTIOFSD:
                        o.virtiofsd = optarg;
                        break;
                case OPT_NO_SANDBOX:
                        o.sandbox = false;
                        break;
                case OPT_DRY_RUN:
                        o.dry_run = true;
                        break;
                case OPT_SERIAL_STDOUT:
                        o.serial_stdout = true;
                        break;
                case OPT_POD_NETWORK:
                        o.pod_network = true;
                        break;
                case OPT_INCOMING:
                        if (strcmp(optarg, "defer") && strncmp(optarg, "tcp:", 4) &&
                            strncmp(optarg, "unix:", 5))
                                return usage_error(
                                    "--incoming must be defer, tcp:HOST:PORT or unix:PATH, not", optarg);
                        o.incoming = optarg;
                        break;
                case OPT_INCOMING_NBD:
                        if (parse_host_port(optarg, nbd_host, sizeof(nbd_host), &o.incoming_nbd_port) < 0)
                                return usage_error(
                                    "--incoming-nbd must be HOST:PORT or [ADDR]:PORT with a port "
                                    "in 1-65535, not",
                                    optarg);
                        o.incoming_nbd_host = nbd_host;
                        break;
                case OPT_INCOMING_CONFIG:
                        if (check_incoming_config(optarg) < 0)
                                return EXIT_INVALID;
                        o.incoming_config = optarg;
                        break;
                case OPT_MIGRATION_TARGET:
                        o.incoming = "defer";
                        break;
                case OPT_ACCEL:
                        if (accel_parse(optarg, &o.accel) < 0)
                                return usage_error("--accel must be one of auto, kvm, tcg, not", optarg);
                        break;
                case OPT_LOG_LEVEL:
                        if (parse_level(optarg) < 0)
                                return usage_error(
                                    "--log-level must be one of debug, info, warning, error, not", optarg);
                        break;
                case 'h':
                        fputs(usage, stdout);
                        return 0;
                default: /* getopt_long already named the option */
                        fputs("Try 'virt-launcher --help'.\n", stderr);
                        return EXIT_INVALID;
                }
        }
        if (optind < argc)
                return usage_error("unexpected argument", argv[optind]);
        if (!o.vmi_file == !o.vmi_env)
                return usage_error("exactly one of --vmi and --vmi-env is required", NULL);
        if (o.incoming_nbd_host && (!o.incoming || !strcmp(o.incoming, "defer")))
                return usage_error("--incoming-nbd needs --incoming tcp:HOST:PORT or unix:PATH (with defer, "
                                   "migration-target takes nbdHost/nbdPort)",
                                   NULL);
        if (o.incoming_config && (!o.incoming || !strcmp(o.incoming, "defer")))
                return usage_error(
                    "--incoming-config needs --incoming tcp:HOST:PORT or unix:PATH (with defer, "
                    "migration-target takes args.config)",
                    NULL);
        if (!o.image_root)
                o.image_root = default_image_root();
        return launch_run(&o);
}
