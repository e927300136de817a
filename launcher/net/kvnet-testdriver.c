/* kvnet-testdriver: a stand-in for virt-launcher's network part, run by the net tests and the benchmark
 * inside a test Pod netns. net_setup_secondary() for each Multus interface and net_setup() for the pod
 * interface from a VMI file, then QEMU (-accel tcg) with the test guest on the produced netdevs, the DHCP
 * servers on an epoll loop, until QEMU exits or SIGTERM. */
#include "log.h"
#include "macro.h"
#include "net.h"

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>

enum { EXIT_USAGE = 2, EXIT_BAD_VMI = 3, EXIT_NET = 4, EXIT_QEMU = 5 };
/* QEMU finds secondary interface i's macvtap fd at CHILD_FD_NET_BASE + i. */
enum { CHILD_FD_NET_BASE = 3, CHILD_FD_SCRATCH = 64 };

/* Every interface the driver wired: the pod interface's result (binding NONE when the VMI has no pod
 * network), then one per Multus network. */
typedef struct wired {
        net_result pod;
        net_result sec[NET_MAX_SECONDARY];
        size_t n_sec;
} wired;

typedef struct options {
        const char *vmi, *guest, *run_dir, *resolv_conf, *append, *qemu;
        int timeout;
        bool keep_caps;
} options;

static void usage(FILE *f)
{
        fprintf(
            f,
            "usage: kvnet-testdriver --vmi FILE --guest DIR --run-dir DIR [--resolv-conf FILE]\n"
            "                        [--append ARGS] [--timeout SEC] [--qemu BINARY] [--keep-caps]\n"
            "Wires the VMI's pod network and its Multus networks (whose Pod interfaces must already be in\n"
            "the current network namespace) with libkvnet, prints one JSON line describing them, boots the\n"
            "test guest from DIR under QEMU -accel tcg on those networks (serial on RUN-DIR/serial.sock,\n"
            "logged to RUN-DIR/serial.log) and serves DHCP until QEMU exits, SIGTERM or the timeout\n"
            "(default 120 s). Exit codes: 2 usage, 3 bad VMI, 4 network setup, 5 QEMU.\n");
}

static int parse_args(int argc, char **argv, options *o)
{
        static const struct option longs[] = {
            {"vmi", required_argument, NULL, 'v'},     {"guest", required_argument, NULL, 'g'},
            {"run-dir", required_argument, NULL, 'r'}, {"resolv-conf", required_argument, NULL, 'c'},
            {"append", required_argument, NULL, 'a'},  {"timeout", required_argument, NULL, 't'},
            {"qemu", required_argument, NULL, 'q'},    {"keep-caps", no_argument, NULL, 'k'},
            {"help", no_argument, NULL, 'h'},          {0},
        };
        *o = (options){.append = "", .timeout = 120, .qemu = "qemu-system-x86_64"};
        int c;
        while ((c = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
                switch (c) {
                case 'v':
                        o->vmi = optarg;
                        break;
                case 'g':
                        o->guest = optarg;
                        break;
                case 'r':
                        o->run_dir = optarg;
                        break;
                case 'c':
                        o->resolv_conf = optarg;
                        break;
                case 'a':
                        o->append = optarg;
                        break;
                case 't':
                        o->timeout = atoi(optarg);
                        break;
                case 'q':
                        o->qemu = optarg;
                        break;
                case 'k':
                        o->keep_caps = true;
                        break;
                case 'h':
                        usage(stdout);
                        exit(0);
                default:
                        return -1;
                }
        }
        if (!o->vmi || !o->guest || !o->run_dir || o->timeout <= 0) {
                fprintf(stderr, "kvnet-testdriver: --vmi, --guest and --run-dir are required (see --help)\n");
                return -1;
        }
        return 0;
}

static cJSON *read_json(const char *path, kv_error *err)
{
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        if (!f) {
                kv_error_errno(err, errno, "open %s", path);
                return NULL;
        }
        char text[65536];
        size_t n = fread(text, 1, sizeof(text) - 1, f);
        text[n] = '\0';
        cJSON *j = cJSON_Parse(text);
        if (!j)
                kv_error_set(err, EINVAL, "%s: not JSON", path);
        return j;
}

static bool has_net_admin(void)
{
        _cleanup_fclose_ FILE *f = fopen("/proc/self/status", "re");
        char line[256];
        unsigned long long eff = 0;
        while (f && fgets(line, sizeof(line), f))
                sscanf(line, "CapEff: %llx", &eff);
        return eff & (1ULL << 12); /* CAP_NET_ADMIN */
}

/* In the forked child: each macvtap fd to CHILD_FD_NET_BASE + i, through scratch copies so that no fd
 * overwrites another one still to be moved. dup2 leaves the targets without O_CLOEXEC. */
static int place_macvtap_fds(const wired *w)
{
        int tmp[NET_MAX_SECONDARY];
        for (size_t i = 0; i < w->n_sec; i++)
                if ((tmp[i] = w->sec[i].macvtap_fd) > 0 &&
                    (tmp[i] = fcntl(tmp[i], F_DUPFD, CHILD_FD_SCRATCH)) < 0)
                        return -1;
        for (size_t i = 0; i < w->n_sec; i++)
                if (tmp[i] > 0 && dup2(tmp[i], CHILD_FD_NET_BASE + (int)i) < 0)
                        return -1;
        return 0;
}

static void add_nic(const char **argv, size_t *n, const net_result *net)
{
        argv[(*n)++] = "-netdev";
        argv[(*n)++] = net->netdev_json;
        argv[(*n)++] = "-device";
        argv[(*n)++] = net->device_json;
}

static pid_t start_qemu(const options *o, const wired *w)
{
        char kernel[512], initrd[512], append[1024], serial[1024];
        snprintf(kernel, sizeof(kernel), "%s/vmlinuz", o->guest);
        snprintf(initrd, sizeof(initrd), "%s/initrd.img", o->guest);
        snprintf(append, sizeof(append), "console=ttyS0 quiet %s", o->append);
        snprintf(serial, sizeof(serial),
                 "socket,id=ser0,path=%s/serial.sock,server=on,wait=off,logfile=%s/serial.log", o->run_dir,
                 o->run_dir);
        const char *argv[32 + 4 * (1 + NET_MAX_SECONDARY)] = {
            o->qemu,   "-accel",      "tcg",         "-machine",        "q35",      "-m",       "256M",
            "-smp",    "1",           "-nodefaults", "-no-user-config", "-display", "none",     "-kernel",
            kernel,    "-initrd",     initrd,        "-append",         append,     "-chardev", serial,
            "-serial", "chardev:ser0"};
        size_t n = 0;
        while (argv[n])
                n++;
        if (w->pod.binding)
                add_nic(argv, &n, &w->pod);
        for (size_t i = 0; i < w->n_sec; i++)
                add_nic(argv, &n, &w->sec[i]);
        pid_t pid = fork();
        if (pid == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                sigset_t none;
                sigemptyset(&none);
                sigprocmask(SIG_SETMASK, &none, NULL);
                if (place_macvtap_fds(w) < 0)
                        _exit(126);
                execvp(argv[0], (char *const *)argv);
                _exit(127);
        }
        return pid;
}

static void print_net(const net_result *net)
{
        printf("\"binding\":\"%s\",\"guest_ip\":\"%s\",\"status_ip\":\"%s\",\"guest_ip6\":\"%s\","
               "\"status_ip6\":\"%s\",\"mac\":\"%s\",\"tap\":\"%s\",\"netdev\":%s,\"device\":%s",
               net_binding_name(net->binding), net->guest_ip, net->status_ip, net->guest_ip6, net->status_ip6,
               net->mac, net->tap_name, net->netdev_json[0] ? net->netdev_json : "null",
               net->device_json[0] ? net->device_json : "null");
}

/* The pod interface's fields at the top level, the Multus interfaces' in "secondary". */
static void print_result(const wired *w, pid_t qemu)
{
        printf("{");
        print_net(&w->pod);
        printf(",\"net_admin\":%s,\"qemu_pid\":%d,\"secondary\":[", has_net_admin() ? "true" : "false",
               (int)qemu);
        for (size_t i = 0; i < w->n_sec; i++) {
                printf("%s{", i ? "," : "");
                print_net(&w->sec[i]);
                printf("}");
        }
        printf("]}\n");
        fflush(stdout);
}

static void watch_dhcp(int ep, net_result *net)
{
        if (net->dhcp)
                epoll_ctl(ep, EPOLL_CTL_ADD, dhcp_server_fd(net->dhcp),
                          &(struct epoll_event){.events = EPOLLIN, .data.ptr = net});
}

static void serve_dhcp(net_result *net)
{
        bool bound = dhcp_server_bound(net->dhcp), bound6 = dhcp_server_bound6(net->dhcp);
        kv_error err = {0};
        if (dhcp_server_handle(net->dhcp, &err) < 0)
                log_warning("%s", err.msg);
        if (!bound && dhcp_server_bound(net->dhcp))
                log_info("guest bound its DHCP lease %s", net->guest_ip);
        if (!bound6 && dhcp_server_bound6(net->dhcp))
                log_info("guest took its DHCPv6 address");
}

/* The launcher's loop in miniature: DHCP requests, signals (QEMU exit, SIGTERM), a deadline. */
static int run_loop(const options *o, wired *w, pid_t qemu)
{
        _cleanup_close_ int ep = epoll_create1(EPOLL_CLOEXEC);
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD), sigaddset(&mask, SIGTERM), sigaddset(&mask, SIGINT);
        _cleanup_close_ int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
        epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &(struct epoll_event){.events = EPOLLIN, .data.ptr = NULL});
        watch_dhcp(ep, &w->pod);
        for (size_t i = 0; i < w->n_sec; i++)
                watch_dhcp(ep, &w->sec[i]);
        for (int waited_ms = 0; waited_ms < o->timeout * 1000;) {
                struct epoll_event ev;
                int n = epoll_wait(ep, &ev, 1, 1000);
                if (n == 0)
                        waited_ms += 1000;
                if (n <= 0)
                        continue;
                if (ev.data.ptr) {
                        serve_dhcp(ev.data.ptr);
                        continue;
                }
                struct signalfd_siginfo si;
                if (read(sfd, &si, sizeof(si)) != sizeof(si))
                        continue;
                int status;
                if (si.ssi_signo == SIGCHLD && waitpid(qemu, &status, WNOHANG) == qemu) {
                        log_info("QEMU exited with status %d", status);
                        return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : EXIT_QEMU;
                }
                if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
                        break;
        }
        kill(qemu, SIGKILL);
        waitpid(qemu, NULL, 0);
        return 0;
}

static void wired_release(wired *w)
{
        net_result_release(&w->pod);
        for (size_t i = 0; i < w->n_sec; i++)
                net_result_release(&w->sec[i]);
}

/* As virt-launcher: the Multus interfaces first (net_setup_secondary keeps the capabilities), then the pod
 * interface, whose net_setup drops them; without one, net_drop_caps does. */
static int wire(net_request *req, wired *w, kv_error *err)
{
        *w = (wired){0};
        for (size_t i = 0; i < req->n_secondary; i++) {
                req->child_fd = CHILD_FD_NET_BASE + (int)i;
                int r = net_setup_secondary(req, i, &w->sec[i], err);
                if (r < 0)
                        return r;
                w->n_sec = i + 1;
        }
        if (req->binding)
                return net_setup(req, &w->pod, err);
        return req->keep_caps ? 0 : net_drop_caps(err);
}

int main(int argc, char **argv)
{
        kv_log_init("kvnet-testdriver");
        options o;
        if (parse_args(argc, argv, &o) < 0)
                return EXIT_USAGE;
        kv_error err = {0};
        cJSON *vmi = read_json(o.vmi, &err);
        const cJSON *spec = vmi ? cJSON_GetObjectItemCaseSensitive(vmi, "spec") : NULL;
        net_request req;
        if (!vmi || net_request_from_vmi(spec ? spec : vmi, &req, &err) < 0) {
                fprintf(stderr, "kvnet-testdriver: %s\n", err.msg);
                cJSON_Delete(vmi);
                return EXIT_BAD_VMI;
        }
        cJSON_Delete(vmi);
        req.run_dir = o.run_dir;
        req.resolv_conf = o.resolv_conf;
        req.hostname = "testvm";
        req.keep_caps = o.keep_caps;
        /* Signals go to the loop's signalfd; block them before any child exists. */
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD), sigaddset(&mask, SIGTERM), sigaddset(&mask, SIGINT);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        static wired w;
        if (wire(&req, &w, &err) < 0) {
                log_error("%s", err.msg);
                wired_release(&w);
                return EXIT_NET;
        }
        pid_t qemu = start_qemu(&o, &w);
        if (qemu < 0) {
                log_error("fork: %m");
                wired_release(&w);
                return EXIT_QEMU;
        }
        print_result(&w, qemu);
        int rc = run_loop(&o, &w, qemu);
        wired_release(&w);
        return rc;
}
