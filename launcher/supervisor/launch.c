/* virt-launcher's lifecycle from manifest to exit code; every step's failure maps to one exit code
 * and one status reason. */
#include "launch.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helperd.h"
#include "log.h"
#include "macro.h"
#include "cpumem.h"
#include "podnet.h"
#include "probes.h"
#include "qemu-argv.h"
#include "status-channel.h"
#include "rundir.h"
#include "sandbox.h"
#include "strv.h"
#include "supervisor.h"
#include "unixsock.h"
#include "virtiofsd.h"
#include "vmi.h"
#include "volumes.h"

#define DEFAULT_QEMU "qemu-system-x86_64"

typedef struct launch {
        const launch_opts *o;
        status st;
        vmi *v;
        run_dir rd;
        char *qemu_path;
        strv argv;
        int control_fd, qmp_public_fd, serial_fd;
        net_result net;
        net_result net_secondary[NET_MAX_SECONDARY];
        size_t n_net_secondary;
        launcher_paths paths;     /* kept: a VMI `apply` prepares the volumes it adds */
        virtiofsd_set fsd;        /* one daemon per filesystem */
        cpu_set_t cpus;           /* dedicatedCpuPlacement: the launcher's CPU set */
        char hugepages_dir[1024]; /* memory.hugepages: the hugetlbfs QEMU's RAM lives on */
        helperd_set helpers;      /* swtpm, qemu-pr-helper */
} launch;

/* Records the failure in the status file and returns the exit code. */
static int fail(launch *l, int code, const char *what, const kv_error *err)
{
        char reason[1200];
        snprintf(reason, sizeof(reason), "%s: %s", what, err->msg);
        log_error("%s", reason);
        status_set_phase(&l->st, PHASE_FAILED, reason);
        l->st.exit_code = code;
        kv_error werr = {0};
        if (status_write(&l->st, &werr) < 0)
                log_warning("status file: %s", werr.msg);
        return code;
}

/* The bundled common instancetypes and preferences a VirtualMachine may name: installed in
 * <prefix>/share/kvlite/crds/common-instancetypes beside <prefix>/bin, or in the build tree's
 * crds/common-instancetypes (two levels up from
 * launcher/supervisor). Missing files are skipped. */
static void bundle_paths(char paths[4][PATH_MAX], const char *ptrs[5])
{
        static const char *const files[] = {"instancetypes.yaml", "preferences.yaml"};
        char self[PATH_MAX];
        size_t n = 0;
        ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (len > 0) {
                self[len] = 0;
                char *slash = strrchr(self, '/');
                *slash = 0;
                for (size_t i = 0; i < 2; i++) {
                        snprintf(paths[n], PATH_MAX, "%.3000s/../share/kvlite/crds/common-instancetypes/%s",
                                 self, files[i]);
                        if (access(paths[n], R_OK) < 0)
                                snprintf(paths[n], PATH_MAX, "%.3000s/../../crds/common-instancetypes/%s",
                                         self, files[i]);
                        ptrs[n] = paths[n];
                        n++;
                }
        }
        ptrs[n] = NULL;
}

static int load_vmi(launch *l, kv_error *err)
{
        const launch_opts *o = l->o;
        char paths[4][PATH_MAX];
        const char *bundle[5];
        bundle_paths(paths, bundle);
        if (o->vmi_env) {
                const char *text = getenv(o->vmi_env);
                if (!text)
                        return kv_error_set(err, EINVAL, "--vmi-env: environment variable %s is not set",
                                            o->vmi_env);
                return vmi_load_any_string(text, bundle, &l->v, err);
        }
        return vmi_load_any(o->vmi_file, bundle, &l->v, err);
}

static void record_identity(launch *l)
{
        const vmi *v = l->v;
        snprintf(l->st.name, sizeof(l->st.name), "%s", v->name ? v->name : "");
        snprintf(l->st.namespace, sizeof(l->st.namespace), "%s", v->namespace ? v->namespace : "default");
        snprintf(l->st.uid, sizeof(l->st.uid), "%s", v->uid ? v->uid : "");
        char ns_name[520];
        snprintf(ns_name, sizeof(ns_name), "%s/%s", l->st.namespace, l->st.name);
        kv_log_set_vmi(ns_name);
}

/* execve needs a path: search PATH like execvp would, once, here. */
static int resolve_qemu(launch *l, kv_error *err)
{
        const char *name = l->o->qemu ? l->o->qemu : DEFAULT_QEMU;
        if (strchr(name, '/')) {
                if (access(name, X_OK) < 0)
                        return kv_error_errno(err, errno, "--qemu `%s`", name);
                l->qemu_path = strdup(name);
                return l->qemu_path ? 0 : -ENOMEM;
        }
        const char *path = getenv("PATH");
        _cleanup_free_ char *dirs = strdup(path && *path ? path : "/usr/local/bin:/usr/bin:/bin");
        char *save = NULL;
        for (char *d = dirs ? strtok_r(dirs, ":", &save) : NULL; d; d = strtok_r(NULL, ":", &save)) {
                _cleanup_free_ char *cand = NULL;
                if (asprintf(&cand, "%s/%s", d, name) >= 0 && access(cand, X_OK) == 0) {
                        l->qemu_path = TAKE_PTR(cand);
                        return 0;
                }
        }
        return kv_error_set(err, ENOENT, "`%s` not found on PATH", name);
}

static int bind_socket(launch *l, const char *name, int *fd, kv_error *err)
{
        _cleanup_free_ char *path = run_dir_file(&l->rd, name);
        if (!path)
                return kv_error_set(err, ENOMEM, "socket path");
        *fd = unix_listen(path, 0600, err);
        return *fd < 0 ? *fd : 0;
}

static int bind_sockets(launch *l, kv_error *err)
{
        int r = bind_socket(l, "control.sock", &l->control_fd, err);
        if (r >= 0)
                r = bind_socket(l, "qmp.sock", &l->qmp_public_fd, err);
        if (r >= 0 && l->v->serial_console)
                r = bind_socket(l, "serial.sock", &l->serial_fd, err);
        return r;
}

/* The guest's argv from launcher/core, plus the supervisor's private monitor on CHILD_FD_QMP_PRIVATE. */
static int build_argv(launch *l, const char *accel, kv_error *err)
{
        _cleanup_free_ char *serial_log = run_dir_file(&l->rd, "serial.log");
        qemu_argv_opts opts = {
            .qemu_binary = l->qemu_path,
            .accel = accel,
            .run_dir = l->rd.path,
            .qmp_fd = CHILD_FD_QMP_PUBLIC,
            .serial_fd = l->v->serial_console ? CHILD_FD_SERIAL : -1,
            .agent_fd = CHILD_FD_AGENT,
            .serial_log = serial_log,
            .hotplug_ports = -1,
            .net_netdev_json = l->net.binding ? l->net.netdev_json : NULL,
            .net_device_json = l->net.binding ? l->net.device_json : NULL,
            .n_net_secondary = l->n_net_secondary,
            .hugepages_dir = l->hugepages_dir[0] ? l->hugepages_dir : NULL,
        };
        for (size_t i = 0; i < l->n_net_secondary; i++) {
                opts.net_secondary_netdev_json[i] = l->net_secondary[i].netdev_json;
                opts.net_secondary_device_json[i] = l->net_secondary[i].device_json;
                opts.net_secondary_boot_order[i] = l->v->net.secondary[i].boot_order;
        }
        int r = qemu_argv_build(l->v, &opts, &l->argv, err);
        if (r < 0)
                return r;
        if (strv_push(&l->argv, "-chardev") < 0 ||
            strv_pushf(&l->argv, "socket,id=kvlite-qmp,fd=%d,server=off", CHILD_FD_QMP_PRIVATE) < 0 ||
            strv_push(&l->argv, "-mon") < 0 || strv_push(&l->argv, "chardev=kvlite-qmp,mode=control") < 0)
                return kv_error_set(err, ENOMEM, "argv");
        /* A migration target: the same argv (same devices, same RAM layout) receiving instead of booting;
         * the URI is given later with migrate-incoming, after the capabilities are set (notes §6). */
        if (l->o->incoming && (strv_push(&l->argv, "-incoming") < 0 || strv_push(&l->argv, "defer") < 0))
                return kv_error_set(err, ENOMEM, "argv");
        return 0;
}

static void log_argv(const launch *l)
{
        size_t len = 0;
        for (size_t i = 0; i < l->argv.n; i++)
                len += strlen(l->argv.v[i]) + 1;
        _cleanup_free_ char *line = malloc(len + 1);
        if (!line)
                return;
        char *p = line;
        for (size_t i = 0; i < l->argv.n; i++)
                p += sprintf(p, "%s%s", i ? " " : "", l->argv.v[i]);
        log_info("qemu argv: %s", line);
}

static int prepare(launch *l)
{
        kv_error err = {0};
        int r = load_vmi(l, &err);
        if (r < 0)
                return fail(l, EXIT_INVALID, "invalid manifest", &err);
        record_identity(l);
        if ((r = sandbox_no_new_privs(&err)) < 0 || (r = run_dir_setup(&l->rd, l->o->run_dir, &err)) < 0)
                return fail(l, EXIT_SETUP, "setup", &err);
        log_info("run directory %s", l->rd.path);
        _cleanup_free_ char *control_path = run_dir_file(&l->rd, "control.sock");
        /* forks: before the sandbox; best effort */
        if (!l->o->dry_run && status_channel_start(l->st.name, control_path, &err) < 0)
                log_warning("status reporter: %s; the Pod annotation is not updated", err.msg);
        const char *accel = accel_choose(l->o->accel, &l->st);
        launcher_paths paths = {
            .run_dir = l->rd.path,
            .image_root = l->o->image_root,
            .secret_root = l->o->secret_root,
            .pvc_root = l->o->pvc_root,
            .defer_hotplug = l->o->incoming != NULL,
            /* Local runs without an image root: the demo's registry references resolve to the test guest. */
            .fallback_image_root = l->o->image_root ? NULL : KV_LOCAL_IMAGE_ROOT};
        l->paths = paths;
        if ((r = vmi_prepare(l->v, &l->paths, &err)) < 0)
                return fail(l, r == -EINVAL ? EXIT_INVALID : EXIT_SETUP, "prepare volumes", &err);
        if ((r = cpumem_check_cpus(l->v, &l->cpus, &err)) < 0 ||
            (r = cpumem_hugepages_dir(l->v, l->hugepages_dir, sizeof(l->hugepages_dir), &err)) < 0 ||
            (!l->o->dry_run && (r = cpumem_memlock_limit(l->v, &err)) < 0))
                return fail(l, r == -EINVAL ? EXIT_INVALID : EXIT_SETUP, "host resources", &err);
        /* QEMU connects to the daemons' sockets as it starts; a dry run only prints the argv */
        if (!l->o->dry_run && (r = virtiofsd_start_all(l->v, l->rd.path, l->o->virtiofsd, &l->fsd, &err)) < 0)
                return fail(l, EXIT_SETUP, "virtiofs", &err);
        /* Before the supervisor drops capabilities and installs seccomp: wiring needs CAP_NET_ADMIN. */
        if ((r = podnet_setup(l->v, l->o->pod_network, l->o->dry_run, l->rd.path, &l->net, l->net_secondary,
                              &l->n_net_secondary, &l->st, &err)) < 0)
                return fail(l, r == -EINVAL ? EXIT_INVALID : EXIT_SETUP, "network", &err);
        if (probes_need_guest_address(l->v) && !l->net.binding) {
                /* the path of the probe that needs it, so that the refusal names its field */
                const vmi_probe *rp = &l->v->readiness;
                bool ready = (rp->kind == PROBE_TCP || rp->kind == PROBE_HTTP) && !rp->host;
                kv_error_set(&err, EINVAL,
                             "spec.%s.%s: reaches the guest through the Pod network (--pod-network); "
                             "without it give the probe a host",
                             ready ? "readinessProbe" : "livenessProbe",
                             (ready ? l->v->readiness : l->v->liveness).kind == PROBE_TCP ? "tcpSocket"
                                                                                          : "httpGet");
                return fail(l, EXIT_INVALID, "probes", &err);
        }
        if ((r = resolve_qemu(l, &err)) < 0)
                return fail(l, EXIT_FAILED, "qemu failed to start", &err);
        /* swtpm / qemu-pr-helper: children of the launcher, forked before the sandbox */
        if (!l->o->dry_run && (r = helperd_start(l->v, l->rd.path, &l->helpers, &err)) < 0)
                return fail(l, EXIT_SETUP, "helper daemons", &err);
        if ((r = bind_sockets(l, &err)) < 0)
                return fail(l, EXIT_SETUP, "setup", &err);
        if ((r = build_argv(l, accel, &err)) < 0)
                return fail(l, EXIT_INVALID, "build the QEMU command line", &err);
        log_argv(l);
        return 0;
}

static void launch_free(launch *l)
{
        if (l->control_fd >= 0)
                close(l->control_fd);
        if (l->qmp_public_fd >= 0)
                close(l->qmp_public_fd);
        if (l->serial_fd >= 0)
                close(l->serial_fd);
        virtiofsd_stop_all(&l->fsd);
        helperd_stop(&l->helpers);
        net_result_release(&l->net); /* before the run dir: passt's socket lives there */
        for (size_t i = 0; i < l->n_net_secondary; i++)
                net_result_release(&l->net_secondary[i]);
        run_dir_cleanup(&l->rd);
        strv_free(&l->argv);
        free(l->qemu_path);
        vmi_freep(&l->v);
        status_fini(&l->st);
}

static void print_argv(const launch *l)
{
        cJSON *arr = cJSON_CreateArray();
        for (size_t i = 0; i < l->argv.n; i++)
                cJSON_AddItemToArray(arr, cJSON_CreateString(l->argv.v[i]));
        _cleanup_free_ char *text = cJSON_PrintUnformatted(arr);
        cJSON_Delete(arr);
        if (text)
                puts(text);
}

int launch_run(const launch_opts *o)
{
        launch l = {.o = o, .control_fd = -1, .qmp_public_fd = -1, .serial_fd = -1};
        status_init(&l.st, o->status_file);
        int code = prepare(&l);
        if (code == 0 && o->dry_run)
                print_argv(&l);
        else if (code == 0) {
                sup_config cfg = {
                    .qemu_path = l.qemu_path,
                    .argv = strv_argv(&l.argv),
                    .run_dir = l.rd.path,
                    .grace_seconds = (int)l.v->grace_seconds,
                    .start_paused = l.v->start_paused,
                    .qmp_public_fd = l.qmp_public_fd,
                    .serial_listen_fd = l.serial_fd,
                    .control_fd = l.control_fd,
                    .sandbox = o->sandbox,
                    .serial_stdout = o->serial_stdout,
                    .net = &l.net,
                    .net_secondary = l.net_secondary,
                    .n_net_secondary = l.n_net_secondary,
                    .incoming = o->incoming,
                    .cpus = &l.cpus,
                    .incoming_nbd_host = o->incoming_nbd_host,
                    .incoming_nbd_port = o->incoming_nbd_port,
                    .incoming_config = o->incoming_config,
                    .vmi = &l.v,
                    .paths = &l.paths,
                };
                code = supervisor_run(&cfg, &l.st);
        }
        launch_free(&l);
        return code;
}
