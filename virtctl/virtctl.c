/* virtctl: KubeVirt's command-line client for VM actions, in C over libkube. Commands, flags, messages
 * and exit codes follow KubeVirt's virtctl (pkg/virtctl); installed also as kubectl-virt. */
#include <arpa/inet.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "tty.h"
#include "api.h"
#include "cli.h"
#include "createvm.h"
#include "credentials.h"
#include "macro.h"
#include "port-forward.h"
#include "ssh.h"
#include "wsclient.h"

static void cjson_freep(cJSON **p)
{
        cJSON_Delete(*p);
}
#define _cleanup_json_ _cleanup_(cjson_freep)

typedef struct ctx {
        kube_config cfg;
        kube_client *api;
        const char *ns;
} ctx;

static const char *progname = "virtctl";

static void usage(FILE *f)
{
        fprintf(
            f,
            "Usage: %s [--kubeconfig FILE] [--context NAME] [-n NAMESPACE] COMMAND [ARGS]\n"
            "virtctl controls VirtualMachine related operations on your kubernetes cluster.\n\n"
            "Commands:\n"
            "  start VM [--dry-run]                    start a VirtualMachine\n"
            "  stop VM [--grace-period N] [--force]    stop a VirtualMachine\n"
            "  restart VM [--force --grace-period 0]   restart a VirtualMachine (a new VMI)\n"
            "  migrate VM                              live-migrate a VirtualMachine (a stopped one moves\n"
            "                                          with: kubectl annotate vm VM\n"
            "                                          kvlite.io/cold-migrate=[NODE])\n"
            "  migrate-cancel VM                       cancel its running migration\n"
            "  rename VM NEW_NAME                      rename a stopped VirtualMachine: refused while it\n"
            "                                          runs or when NEW_NAME exists; its DataVolumes and\n"
            "                                          snapshots follow it, the old VM goes last\n"
            "  pause vm|vmi NAME, unpause vm|vmi NAME  pause/unpause the guest\n"
            "  soft-reboot VMI                         reboot the guest (ACPI power button, the power-off\n"
            "                                          becomes a reset); the VMI keeps running\n"
            "  addvolume VMI --volume-name=PVC [--disk-type disk|lun] [--bus B] [--serial S] [--persist]\n"
            "  removevolume VMI --volume-name=NAME [--persist]\n"
            "  expose vm|vmi NAME --name SVC [--port P] [--target-port T] [--protocol TCP|UDP]\n"
            "                [--type ClusterIP|NodePort|LoadBalancer] [--port-name N] [--cluster-ip IP]\n"
            "  guestosinfo VMI                         the guest agent's OS information\n"
            "  userlist VMI                            the users logged in to the guest (guest agent)\n"
            "  fslist VMI                              the guest's filesystems (guest agent)\n"
            "  create vm [--name N] [--run-strategy S] [--termination-grace-period N] [--memory Q]\n"
            "            [--instancetype [KIND/]IT | --infer-instancetype[=VOLUME]] "
            "[--infer-instancetype-from V]\n"
            "            [--preference [KIND/]P | --infer-preference[=VOLUME]] [--infer-preference-from V]\n"
            "            [--volume-containerdisk src:IMAGE[,name:N][,bootorder:N]]...\n"
            "            [--volume-pvc src:CLAIM[,name:N][,bootorder:N]]...\n"
            "            [--volume-import type:ds|pvc|blank|registry|http[,src:[NS/]S][,size:Q][,name:N]\n"
            "                             [,namespace:NS][,bootorder:N]]...\n"
            "            [--cloud-init-user-data BASE64 | --user U [--ssh-key K]... [--password-file F]]\n"
            "                                          print a VirtualMachine manifest (YAML)\n"
            "  console VMI [--timeout MIN]             the serial console (raw terminal; Ctrl-] detaches);\n"
            "                                          waits up to MIN minutes (default 5) for the VMI to "
            "run\n"
            "  vnc VMI --proxy-only [--port N]         print {\"port\":N} and bridge that local port to the\n"
            "                                          VMI's VNC (for any VNC viewer)\n"
            "  port-forward [vm/|vmi/]NAME[.NS] [tcp/]LOCAL[:REMOTE]... [--address A] [--stdio]\n"
            "                                          forward local ports (or stdin/stdout) to the guest's\n"
            "                                          ports; `port-forward --help` for the forms\n"
            "  ssh [USER@]vm|vmi/NAME[/NS] [-i FILE] [-p PORT] [-l USER] [-t SSH_OPT]... [-c CMD]\n"
            "                                          the local ssh with port-forward --stdio as its\n"
            "                                          ProxyCommand; `ssh --help` for the flags\n"
            "  credentials add-ssh-key VM --user U (--file F | --value KEY) [--secret S]\n"
            "              [--create-secret | --update-secret] [--force]\n"
            "                                          add an SSH key to the user's Secret, or a new Secret\n"
            "                                          (owned by the VM) to the VM's accessCredentials\n"
            "  credentials remove-ssh-key VM --user U (--file F | --value KEY) [--secret S] [--force]\n"
            "                                          remove the key from the user's Secrets\n"
            "  credentials set-password VM --user U --password P [--secret S] [--force]\n"
            "                                          set the user's password in the userPassword Secret\n"
            "                                          (--force: a Secret the VM does not own)\n"
            "  version                                 client and server versions\n\n"
            "Global options:\n"
            "  --kubeconfig FILE   kubeconfig (default $KUBECONFIG, ~/.kube/config, or in-cluster)\n"
            "  --context NAME      kubeconfig context\n"
            "  -n, --namespace NS  namespace (default: the context's)\n"
            "  -h, --help          this text\n\n"
            "Installed as kubectl-virt too: `kubectl virt start vm1`.\n"
            "Exit codes: 0 done, 1 any error (bad arguments, refused or failed request), as KubeVirt's "
            "virtctl.\n",
            progname);
}

int die(const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        fputs("Error: ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
        return EXIT_FAIL;
}

const char *api_message(const kv_error *err)
{
        const char *p = err->msg;
        for (const char *q = p; (q = strstr(q, ": ")); q += 2)
                if (q[2] >= '1' && q[2] <= '5' && q[3] >= '0' && q[3] <= '9' && q[4] >= '0' && q[4] <= '9' &&
                    q[5] == ' ') {
                        const char *m = strstr(q + 6, ": ");
                        return m ? m + 2 : q + 2;
                }
        return p;
}

static int load_config(kube_config *cfg, const char *kubeconfig, const char *context, kv_error *err)
{
        if (kubeconfig)
                return kube_config_from_file(cfg, kubeconfig, context, err);
        const char *env = getenv("KUBECONFIG"), *home = getenv("HOME");
        char path[4096];
        snprintf(path, sizeof(path), "%s/.kube/config", home ? home : "/");
        if ((!env || !*env) && access(path, R_OK) != 0 && getenv("KUBERNETES_SERVICE_HOST"))
                return kube_config_in_cluster(cfg, err);
        return kube_config_from_default(cfg, context, err);
}

static int ctx_open(ctx *c, const char *kubeconfig, const char *context, const char *ns)
{
        kv_error err = {0};
        if (load_config(&c->cfg, kubeconfig, context, &err) < 0)
                return die("%s", err.msg);
        c->ns = ns ? ns : c->cfg.namespace;
        c->api = kube_client_new(&c->cfg);
        if (!c->api)
                return die("out of memory");
        c->api->max_attempts = 2;
        return 0;
}

static void ctx_close(ctx *c)
{
        if (c->api)
                kube_client_free(c->api);
        kube_config_free(&c->cfg);
}

/* PUT/GET on a subresource; 0 or an API error in err. */
static int subresource(ctx *c, const char *method, bool vm, const char *name, const char *verb,
                       const cJSON *body, cJSON **out, kv_error *err)
{
        const kube_resource res = {.prefix = SUBRES,
                                   .plural = vm ? "virtualmachines" : "virtualmachineinstances"};
        _cleanup_free_ char *path = kube_path(&res, c->ns, name, verb);
        _cleanup_free_ char *text = body ? cJSON_PrintUnformatted(body) : NULL;
        if (!path)
                return kv_error_set(err, ENOMEM, "out of memory");
        return kube_request(c->api, method, path, body ? "application/json" : NULL, text, out, err);
}

/* done: what KubeVirt prints, "<VM|VMI> <name> was scheduled to <done>". */
static int simple_action(ctx *c, bool vm, const char *name, const char *verb, const cJSON *body,
                         const char *failing, const char *what, const char *done)
{
        kv_error err = {0};
        if (subresource(c, "PUT", vm, name, verb, body, NULL, &err) < 0)
                return die("%s %s", failing, api_message(&err));
        printf("%s %s was scheduled to %s\n", what, name, done);
        return EXIT_OK;
}

/* Options of one command: long options only, parsed after the command word. */
typedef struct opts {
        bool force, dry_run, proxy_only, persist;
        long grace; /* -1: not given */
        const char *volume_name, *disk_type, *bus, *serial;
        const char *svc_name, *port, *target_port, *protocol, *type, *port_name, *cluster_ip;
        int timeout;
        const cred_cmd *cred; /* `credentials`: its own flags (credentials.c) */
        const pf_cmd *pf;     /* `port-forward`: its own flags (port-forward.c) */
} opts;

enum {
        O_FORCE = 256,
        O_DRY,
        O_GRACE,
        O_VOLNAME,
        O_DISKTYPE,
        O_BUS,
        O_SERIAL,
        O_PERSIST,
        O_NAME,
        O_PORT,
        O_TPORT,
        O_PROTO,
        O_TYPE,
        O_PNAME,
        O_CIP,
        O_TIMEOUT,
        O_PROXY
};

static int parse_opts(int argc, char **argv, opts *o, int *first_arg)
{
        static const struct option longopts[] = {{"force", no_argument, NULL, O_FORCE},
                                                 {"dry-run", no_argument, NULL, O_DRY},
                                                 {"grace-period", required_argument, NULL, O_GRACE},
                                                 {"volume-name", required_argument, NULL, O_VOLNAME},
                                                 {"disk-type", required_argument, NULL, O_DISKTYPE},
                                                 {"bus", required_argument, NULL, O_BUS},
                                                 {"serial", required_argument, NULL, O_SERIAL},
                                                 {"persist", no_argument, NULL, O_PERSIST},
                                                 {"name", required_argument, NULL, O_NAME},
                                                 {"port", required_argument, NULL, O_PORT},
                                                 {"target-port", required_argument, NULL, O_TPORT},
                                                 {"protocol", required_argument, NULL, O_PROTO},
                                                 {"type", required_argument, NULL, O_TYPE},
                                                 {"port-name", required_argument, NULL, O_PNAME},
                                                 {"cluster-ip", required_argument, NULL, O_CIP},
                                                 {"timeout", required_argument, NULL, O_TIMEOUT},
                                                 {"proxy-only", no_argument, NULL, O_PROXY},
                                                 {NULL, 0, NULL, 0}};
        *o = (opts){.grace = -1, .timeout = 5, .protocol = "TCP", .type = "ClusterIP"};
        int opt;
        optind = 1;
        while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
                char *end;
                switch (opt) {
                case O_FORCE:
                        o->force = true;
                        break;
                case O_DRY:
                        o->dry_run = true;
                        break;
                case O_PERSIST:
                        o->persist = true;
                        break;
                case O_PROXY:
                        o->proxy_only = true;
                        break;
                case O_GRACE:
                        o->grace = strtol(optarg, &end, 10);
                        if (*end || !*optarg || o->grace < -1)
                                return die("invalid argument \"%s\" for \"--grace-period\" flag", optarg);
                        break;
                case O_TIMEOUT:
                        o->timeout = (int)strtol(optarg, &end, 10);
                        if (*end || !*optarg || o->timeout < 0)
                                return die("invalid argument \"%s\" for \"--timeout\" flag", optarg);
                        break;
                case O_VOLNAME:
                        o->volume_name = optarg;
                        break;
                case O_DISKTYPE:
                        o->disk_type = optarg;
                        break;
                case O_BUS:
                        o->bus = optarg;
                        break;
                case O_SERIAL:
                        o->serial = optarg;
                        break;
                case O_NAME:
                        o->svc_name = optarg;
                        break;
                case O_PORT:
                        o->port = optarg;
                        break;
                case O_TPORT:
                        o->target_port = optarg;
                        break;
                case O_PROTO:
                        o->protocol = optarg;
                        break;
                case O_TYPE:
                        o->type = optarg;
                        break;
                case O_PNAME:
                        o->port_name = optarg;
                        break;
                case O_CIP:
                        o->cluster_ip = optarg;
                        break;
                default:
                        return EXIT_FAIL; /* getopt named the flag */
                }
        }
        *first_arg = optind;
        return 0;
}

static cJSON *dry_run_body(const opts *o)
{
        cJSON *b = cJSON_CreateObject();
        if (o->dry_run)
                cJSON_AddItemToArray(cJSON_AddArrayToObject(b, "dryRun"), cJSON_CreateString("All"));
        return b;
}

static int cmd_start(ctx *c, const char *name, const opts *o)
{
        _cleanup_json_ cJSON *b = dry_run_body(o);
        return simple_action(c, true, name, "start", b, "Error starting VirtualMachine", "VM", "start");
}

static int cmd_stop(ctx *c, const char *name, const opts *o)
{
        _cleanup_json_ cJSON *b = dry_run_body(o);
        if (o->force && o->grace < 0)
                return die("Can not force stop/restart without gracePeriod");
        if (o->grace >= 0)
                cJSON_AddNumberToObject(b, "gracePeriod", (double)o->grace);
        return simple_action(c, true, name, "stop", b, "Error stopping VirtualMachine", "VM", "stop");
}

static int cmd_restart(ctx *c, const char *name, const opts *o)
{
        _cleanup_json_ cJSON *b = dry_run_body(o);
        if (o->force && o->grace < 0)
                return die("Can not force stop/restart without gracePeriod");
        if (o->grace >= 0)
                cJSON_AddNumberToObject(b, "gracePeriodSeconds", (double)o->grace);
        return simple_action(c, true, name, "restart", b, "Error restarting VirtualMachine", "VM", "restart");
}

static int cmd_migrate(ctx *c, const char *name, const opts *o)
{
        _cleanup_json_ cJSON *b = dry_run_body(o);
        return simple_action(c, true, name, "migrate", b, "Error migrating VirtualMachine", "VM", "migrate");
}

static int cmd_migrate_cancel(ctx *c, const char *name, const opts *o)
{
        _cleanup_json_ cJSON *list = NULL;
        kv_error err = {0};
        if (kube_list(c->api, &kube_vmim, c->ns, NULL, &list, &err) < 0)
                return die("Error canceling migration of VirtualMachine %s: %s", name, api_message(&err));
        const cJSON *m;
        cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(list, "items"))
        {
                const char *phase = kube_str(m, "status.phase") ?: "";
                if (strcmp(kube_str(m, "spec.vmiName") ?: "", name) || !strcmp(phase, "Succeeded") ||
                    !strcmp(phase, "Failed") || kube_obj(m, "metadata.deletionTimestamp"))
                        continue;
                if (kube_delete(c->api, &kube_vmim, c->ns, kube_str(m, "metadata.name"), NULL, NULL, NULL,
                                &err) < 0)
                        return die("Error canceling migration of VirtualMachine %s: %s", name,
                                   api_message(&err));
                printf("VM %s was scheduled to migrate cancel\n", name);
                return EXIT_OK;
        }
        return die("Found no migration to cancel for %s", name);
}

/* KubeVirt's removed `virtctl rename`, done safely (docs/virtctl.md): the VM must be stopped and the new name
 * free; the new VM is made first, the old one deleted once its disks and snapshots are the new one's. */
static int cmd_rename(ctx *c, const char *name, const char *new_name, const opts *o)
{
        _cleanup_json_ cJSON *b = dry_run_body(o);
        cJSON_AddStringToObject(b, "newName", new_name);
        return simple_action(c, true, name, "rename", b, "Error renaming VirtualMachine", "VM", "rename");
}

static int cmd_pause(ctx *c, const char *kind, const char *name, bool pause)
{
        if (strcmp(kind, "vm") && strcmp(kind, "vmi"))
                return die("unsupported resource type '%s'", kind);
        _cleanup_json_ cJSON *b = cJSON_CreateObject();
        char failing[96];
        bool vm = !strcmp(kind, "vm");
        snprintf(failing, sizeof(failing), "Error %spausing %s", pause ? "" : "un",
                 vm ? "VirtualMachine" : "VirtualMachineInstance");
        /* virtctl pauses the VM's VMI: the endpoint is the VMI's for both kinds */
        return simple_action(c, false, name, pause ? "pause" : "unpause", b, failing, vm ? "VM" : "VMI",
                             pause ? "pause" : "unpause");
}

static int cmd_softreboot(ctx *c, const char *name)
{
        return simple_action(c, false, name, "softreboot", NULL,
                             "Error soft rebooting VirtualMachineInstance", "VMI", "soft reboot");
}

static int cmd_addvolume(ctx *c, const char *name, const opts *o, bool add)
{
        if (!o->volume_name)
                return die("required flag(s) \"volume-name\" not set");
        _cleanup_json_ cJSON *b = dry_run_body(o);
        cJSON_AddStringToObject(b, "name", o->volume_name);
        if (add) {
                cJSON *disk = cJSON_AddObjectToObject(b, "disk");
                const char *type = o->disk_type ? o->disk_type : "disk";
                if (strcmp(type, "disk") && strcmp(type, "lun"))
                        return die("Invalid disk type '%s'. Only LUN and Disk are supported.", type);
                cJSON *target = cJSON_AddObjectToObject(disk, type);
                cJSON_AddStringToObject(target, "bus", o->bus ? o->bus : "scsi");
                if (o->serial)
                        cJSON_AddStringToObject(disk, "serial", o->serial);
                cJSON_AddStringToObject(cJSON_AddObjectToObject(cJSON_AddObjectToObject(b, "volumeSource"),
                                                                "persistentVolumeClaim"),
                                        "claimName", o->volume_name);
        }
        /* KubeVirt's order: the VM's endpoint, the VMI's when there is no such VM (a standalone VMI). */
        kv_error err = {0};
        const char *verb = add ? "addvolume" : "removevolume";
        int r = subresource(c, "PUT", true, name, verb, b, NULL, &err);
        if (r == -KUBE_ENOTFOUND) {
                kv_error_clear(&err);
                r = subresource(c, "PUT", false, name, verb, b, NULL, &err);
        }
        if (r < 0)
                return die("error %s volume, %s", add ? "adding" : "removing", api_message(&err));
        printf("Successfully submitted %s volume request to VM %s for volume %s\n", add ? "add" : "remove",
               name, o->volume_name);
        return EXIT_OK;
}

/* guestosinfo, userlist, fslist: the subresource's JSON, indented (KubeVirt's virtctl prints it so). */
static int cmd_agent_info(ctx *c, const char *name, const char *verb)
{
        _cleanup_json_ cJSON *out = NULL;
        kv_error err = {0};
        if (subresource(c, "GET", false, name, verb, NULL, &out, &err) < 0)
                return die("%s", api_message(&err));
        _cleanup_free_ char *text = cJSON_Print(out);
        puts(text ? text : "{}");
        return EXIT_OK;
}

cJSON *owner_ref(const cJSON *obj, const char *kind)
{
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "apiVersion", "kubevirt.io/v1");
        cJSON_AddStringToObject(o, "kind", kind);
        cJSON_AddStringToObject(o, "name", kube_str(obj, "metadata.name"));
        cJSON_AddStringToObject(o, "uid", kube_str(obj, "metadata.uid") ?: "");
        cJSON_AddBoolToObject(o, "controller", true);
        cJSON_AddBoolToObject(o, "blockOwnerDeletion", false);
        return o;
}

static int parse_port(const char *flag, const char *v, long *out)
{
        char *end;
        *out = strtol(v, &end, 10);
        if (*end || !*v || *out < 1 || *out > 65535)
                return die("invalid argument \"%s\" for \"--%s\" flag: expected 1..65535", v, flag);
        return 0;
}

/* The Service KubeVirt's virtctl expose creates (pkg/virtctl/expose): the launcher Pod's
 * vm.kubevirt.io/name label as selector, owned by the VM/VMI. */
static int cmd_expose(ctx *c, const char *kind, const char *name, const opts *o)
{
        bool vm = !strcmp(kind, "vm") || !strcmp(kind, "virtualmachine");
        if (!vm && strcmp(kind, "vmi") && strcmp(kind, "virtualmachineinstance"))
                return die("unsupported resource type '%s'", kind);
        if (!o->svc_name)
                return die("required flag(s) \"name\" not set");
        if (!o->port)
                return die("the --port flag is required (port introspection is not supported)");
        long port, tport;
        if (parse_port("port", o->port, &port) ||
            parse_port("target-port", o->target_port ?: o->port, &tport))
                return EXIT_FAIL;
        if (strcmp(o->protocol, "TCP") && strcmp(o->protocol, "UDP") && strcmp(o->protocol, "SCTP"))
                return die("unsupported protocol '%s'", o->protocol);
        if (strcmp(o->type, "ClusterIP") && strcmp(o->type, "NodePort") && strcmp(o->type, "LoadBalancer"))
                return die("unsupported service type '%s'", o->type);
        _cleanup_json_ cJSON *obj = NULL, *svc = cJSON_CreateObject();
        kv_error err = {0};
        if (kube_get(c->api, vm ? &kube_vm : &kube_vmi, c->ns, name, &obj, &err) < 0)
                return die("%s", api_message(&err));
        cJSON_AddStringToObject(svc, "apiVersion", "v1");
        cJSON_AddStringToObject(svc, "kind", "Service");
        cJSON *md = cJSON_AddObjectToObject(svc, "metadata");
        cJSON_AddStringToObject(md, "name", o->svc_name);
        cJSON_AddStringToObject(md, "namespace", c->ns);
        cJSON_AddItemToArray(cJSON_AddArrayToObject(md, "ownerReferences"),
                             owner_ref(obj, vm ? "VirtualMachine" : "VirtualMachineInstance"));
        cJSON *spec = cJSON_AddObjectToObject(svc, "spec");
        cJSON *p = cJSON_CreateObject();
        if (o->port_name)
                cJSON_AddStringToObject(p, "name", o->port_name);
        cJSON_AddStringToObject(p, "protocol", o->protocol);
        cJSON_AddNumberToObject(p, "port", (double)port);
        cJSON_AddNumberToObject(p, "targetPort", (double)tport);
        cJSON_AddItemToArray(cJSON_AddArrayToObject(spec, "ports"), p);
        cJSON_AddStringToObject(cJSON_AddObjectToObject(spec, "selector"), "vm.kubevirt.io/name", name);
        cJSON_AddStringToObject(spec, "type", o->type);
        if (o->cluster_ip)
                cJSON_AddStringToObject(spec, "clusterIP", o->cluster_ip);
        static const kube_resource svc_res = {"/api/v1", "services", "Service", "v1", false};
        if (kube_create(c->api, &svc_res, c->ns, svc, NULL, &err) < 0)
                return die("%s", api_message(&err));
        printf("Service %s successfully exposed for %s %s\n", o->svc_name, kind, name);
        return EXIT_OK;
}

static int cmd_version(ctx *c)
{
        printf(
            "Client Version: version.Info{GitVersion:\"v%s\", Compiler:\"gc\", Platform:\"linux/amd64\"}\n",
            KVLITE_VERSION);
        _cleanup_json_ cJSON *v = NULL;
        kv_error err = {0};
        if (kube_request(c->api, "GET", SUBRES "/version", NULL, NULL, &v, &err) < 0)
                return die("%s", api_message(&err));
        printf("Server Version: version.Info{GitVersion:\"%s\", Platform:\"%s\"}\n",
               kube_str(v, "gitVersion") ?: "", kube_str(v, "platform") ?: "");
        return EXIT_OK;
}

/* ---- console and vnc: websockets through the API server to virt-api (docs/console.md) ---------------- */

#define ESCAPE_KEY 0x1d /* Ctrl-] */

/* The websocket of a VMI's console or vnc; a VMI that is not running yet (400) is retried until
 * `timeout_min` minutes have passed, as KubeVirt's virtctl does. */
static int open_stream(ctx *c, const char *name, const char *kind, int timeout_min, wsclient **w)
{
        const kube_resource res = {.prefix = SUBRES, .plural = "virtualmachineinstances"};
        _cleanup_free_ char *path = kube_path(&res, c->ns, name, kind);
        time_t deadline = time(NULL) + (time_t)timeout_min * 60;
        if (!path)
                return die("out of memory");
        for (;;) {
                kv_error err = {0};
                long code = 0;
                if (ws_open(&c->cfg, path, "plain.kubevirt.io", w, &code, &err) == 0)
                        return EXIT_OK;
                if (code != 400 || time(NULL) >= deadline)
                        return die("Can't access VMI %s: %s", name, err.msg);
                sleep(1);
        }
}

static int cmd_console(ctx *c, const char *name, const opts *o)
{
        wsclient *w = NULL;
        int rc = open_stream(c, name, "console", o->timeout, &w);
        if (rc)
                return rc;
        fprintf(stderr, "Successfully connected to %s console. The escape sequence is ^]\n", name);
        kv_tty_make_raw();
        int r = ws_pump(w, STDIN_FILENO, STDOUT_FILENO, kv_tty_is_raw() ? ESCAPE_KEY : 0);
        if (r == 1) /* stdin ended (a script): the guest's output keeps coming until the session ends */
                r = ws_pump(w, -1, STDOUT_FILENO, 0);
        bool was_raw = kv_tty_is_raw();
        kv_tty_restore();
        ws_close(w);
        if (was_raw || isatty(STDOUT_FILENO))
                fputs("\n", stderr);
        return r < 0 ? die("console of %s: %s", name, strerror(-r)) : EXIT_OK;
}

/* --proxy-only: a local port any VNC viewer connects to; one connection, bridged to the VMI's VNC. */
static int cmd_vnc(ctx *c, const char *name, const opts *o)
{
        if (!o->proxy_only)
                return die("vnc: only --proxy-only is supported (no VNC viewer is started)");
        char *end;
        long port = o->port ? strtol(o->port, &end, 10) : 0;
        if (o->port && (*end || port < 0 || port > 65535))
                return die("invalid argument \"%s\" for \"--port\" flag", o->port);
        wsclient *w = NULL;
        int rc = open_stream(c, name, "vnc", o->timeout, &w);
        if (rc)
                return rc;
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_port = htons((uint16_t)port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof(sa);
        int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), client = -1;
        if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
            bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1) < 0 ||
            getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
                rc = die("vnc: cannot listen on 127.0.0.1:%ld: %s", port, strerror(errno));
        } else {
                printf("{\"port\":%u}\n", ntohs(sa.sin_port));
                fflush(stdout);
                while ((client = accept4(fd, NULL, NULL, SOCK_CLOEXEC)) < 0 && errno == EINTR)
                        ;
                int r = client < 0 ? -errno : ws_pump(w, client, client, 0);
                rc = r < 0 ? die("vnc of %s: %s", name, strerror(-r)) : EXIT_OK;
        }
        if (client >= 0)
                close(client);
        if (fd >= 0)
                close(fd);
        ws_close(w);
        return rc;
}

static int need(int argc, int n, const char *cmd)
{
        if (argc != n)
                return die("%s: expected %d argument%s, got %d (see '%s --help')", cmd, n, n == 1 ? "" : "s",
                           argc, progname);
        return 0;
}

static int run(ctx *c, const char *cmd, int argc, char **argv, const opts *o)
{
        if (!strcmp(cmd, "start"))
                return need(argc, 1, cmd) ?: cmd_start(c, argv[0], o);
        if (!strcmp(cmd, "stop"))
                return need(argc, 1, cmd) ?: cmd_stop(c, argv[0], o);
        if (!strcmp(cmd, "restart"))
                return need(argc, 1, cmd) ?: cmd_restart(c, argv[0], o);
        if (!strcmp(cmd, "migrate"))
                return need(argc, 1, cmd) ?: cmd_migrate(c, argv[0], o);
        if (!strcmp(cmd, "migrate-cancel"))
                return need(argc, 1, cmd) ?: cmd_migrate_cancel(c, argv[0], o);
        if (!strcmp(cmd, "pause") || !strcmp(cmd, "unpause"))
                return need(argc, 2, cmd) ?: cmd_pause(c, argv[0], argv[1], !strcmp(cmd, "pause"));
        if (!strcmp(cmd, "rename"))
                return need(argc, 2, cmd) ?: cmd_rename(c, argv[0], argv[1], o);
        if (!strcmp(cmd, "soft-reboot"))
                return need(argc, 1, cmd) ?: cmd_softreboot(c, argv[0]);
        if (!strcmp(cmd, "addvolume") || !strcmp(cmd, "removevolume"))
                return need(argc, 1, cmd) ?: cmd_addvolume(c, argv[0], o, !strcmp(cmd, "addvolume"));
        if (!strcmp(cmd, "expose"))
                return need(argc, 2, cmd) ?: cmd_expose(c, argv[0], argv[1], o);
        if (!strcmp(cmd, "guestosinfo") || !strcmp(cmd, "userlist"))
                return need(argc, 1, cmd) ?: cmd_agent_info(c, argv[0], cmd);
        if (!strcmp(cmd, "fslist"))
                return need(argc, 1, cmd) ?: cmd_agent_info(c, argv[0], "filesystemlist");
        if (!strcmp(cmd, "version"))
                return need(argc, 0, cmd) ?: cmd_version(c);
        if (!strcmp(cmd, "console"))
                return need(argc, 1, cmd) ?: cmd_console(c, argv[0], o);
        if (!strcmp(cmd, "vnc"))
                return need(argc, 1, cmd) ?: cmd_vnc(c, argv[0], o);
        if (!strcmp(cmd, "credentials"))
                return credentials_run(c->api, c->ns, o->cred);
        if (!strcmp(cmd, "port-forward"))
                return portforward_run(&c->cfg, c->api, c->ns, o->pf);
        return die("unknown command \"%s\" for \"%s\"", cmd, progname);
}

int main(int argc, char **argv)
{
        const char *base = strrchr(argv[0], '/');
        base = base ? base + 1 : argv[0];
        if (!strcmp(base, "kubectl-virt"))
                progname = "kubectl virt";
        /* Global options come before the command (and may follow it: they are taken out first). */
        const char *kubeconfig = NULL, *context = NULL, *ns = NULL;
        char **rest = calloc((size_t)argc + 1, sizeof(char *));
        int n = 0;
        if (!rest)
                return EXIT_FAIL;
        rest[n++] = argv[0];
        for (int i = 1; i < argc; i++) {
                const char *a = argv[i];
                const char **dst = !strcmp(a, "--kubeconfig")                      ? &kubeconfig
                                   : !strcmp(a, "--context")                       ? &context
                                   : !strcmp(a, "-n") || !strcmp(a, "--namespace") ? &ns
                                                                                   : NULL;
                if (dst) {
                        if (i + 1 >= argc) {
                                free(rest);
                                return die("flag needs an argument: %s", a);
                        }
                        *dst = argv[++i];
                } else if (!strncmp(a, "--kubeconfig=", 13)) {
                        kubeconfig = a + 13;
                } else if (!strncmp(a, "--namespace=", 12)) {
                        ns = a + 12;
                } else if (!strncmp(a, "--context=", 10)) {
                        context = a + 10;
                } else if ((!strcmp(a, "-h") || !strcmp(a, "--help")) &&
                           !(n >= 2 && (!strcmp(rest[1], "port-forward") || !strcmp(rest[1], "ssh")))) {
                        usage(stdout);
                        free(rest);
                        return EXIT_OK;
                } else {
                        rest[n++] = argv[i];
                }
        }
        if (n < 2) {
                usage(stderr);
                free(rest);
                return EXIT_FAIL;
        }
        const char *cmd = rest[1];
        if (cmd[0] == '-') {
                free(rest);
                return die("unknown flag: %s", cmd);
        }
        if (!strcmp(cmd, "ssh")) { /* the local ssh, with port-forward as its ProxyCommand (ssh.c) */
                int rc = ssh_main(n - 2, rest + 2, &(ssh_globals){kubeconfig, context, ns});
                free(rest);
                return rc;
        }
        if (!strcmp(cmd, "create")) { /* its own flags (createvm.c), no API call */
                int rc = n >= 3 && !strcmp(rest[2], "vm") ? createvm_main(n - 2, rest + 2)
                                                          : die("create: only \"create vm\" is supported");
                free(rest);
                return rc;
        }
        opts o = {0};
        cred_cmd cred;
        pf_cmd pf;
        int first = 1, bad = 0;
        if (!strcmp(cmd,
                    "credentials")) { /* its own flags, refused before the API is asked (credentials.c) */
                bad = credentials_parse(n - 2, rest + 2, &cred);
                o.cred = &cred;
        } else if (!strcmp(cmd, "port-forward")) { /* the same (port-forward.c) */
                bad = portforward_parse(n - 2, rest + 2, &pf);
                o.pf = &pf;
        } else {
                bad = parse_opts(n - 1, rest + 1, &o, &first);
        }
        if (bad) {
                free(rest);
                return bad < 0 ? EXIT_OK : EXIT_FAIL;
        }
        int nargs = n - 1 - first;
        char **args = rest + 1 + first;
        int rc;
        ctx c = {0};
        signal(SIGPIPE, SIG_IGN); /* a VNC viewer that goes away is an EPIPE, not a crash */
        curl_global_init(CURL_GLOBAL_DEFAULT);
        rc = ctx_open(&c, kubeconfig, context, ns);
        if (rc == 0)
                rc = run(&c, cmd, nargs, args, &o);
        ctx_close(&c);
        curl_global_cleanup();
        free(rest);
        return rc;
}
