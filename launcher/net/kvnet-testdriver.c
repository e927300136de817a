/* kvnet-testdriver: a stand-in for virt-launcher's network part, run by the net tests and the benchmark
 * inside a test Pod netns. net_setup() from a VMI file, then QEMU (-accel tcg) with the test guest on the
 * produced netdev, the DHCP server on an epoll loop, until QEMU exits or SIGTERM. */
#include "log.h"
#include "macro.h"
#include "net.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>

enum { EXIT_USAGE = 2, EXIT_BAD_VMI = 3, EXIT_NET = 4, EXIT_QEMU = 5 };

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
            "Wires the VMI's pod network in the current network namespace (libkvnet), prints one JSON line\n"
            "describing it, boots the test guest from DIR under QEMU -accel tcg on that network (serial on\n"
            "RUN-DIR/serial.sock, logged to RUN-DIR/serial.log) and serves DHCP until QEMU exits, SIGTERM\n"
            "or the timeout (default 120 s). Exit codes: 2 usage, 3 bad VMI, 4 network setup, 5 QEMU.\n");
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

static pid_t start_qemu(const options *o, const net_result *net)
{
        char kernel[512], initrd[512], append[1024], serial[1024];
        snprintf(kernel, sizeof(kernel), "%s/vmlinuz", o->guest);
        snprintf(initrd, sizeof(initrd), "%s/initrd.img", o->guest);
        snprintf(append, sizeof(append), "console=ttyS0 quiet %s", o->append);
        snprintf(serial, sizeof(serial),
                 "socket,id=ser0,path=%s/serial.sock,server=on,wait=off,logfile=%s/serial.log", o->run_dir,
                 o->run_dir);
        const char *argv[] = {o->qemu,
                              "-accel",
                              "tcg",
                              "-machine",
                              "q35",
                              "-m",
                              "256M",
                              "-smp",
                              "1",
                              "-nodefaults",
                              "-no-user-config",
                              "-display",
                              "none",
                              "-kernel",
                              kernel,
                              "-initrd",
                              initrd,
                              "-append",
                              append,
                              "-chardev",
                              serial,
                              "-serial",
                              "chardev:ser0",
                              "-netdev",
                              net->netdev_json,
                              "-device",
                              net->device_json,
                              NULL};
        pid_t pid = fork();
        if (pid == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                sigset_t none;
                sigemptyset(&none);
                sigprocmask(SIG_SETMASK, &none, NULL);
                execvp(argv[0], (char *const *)argv);
                _exit(127);
        }
        return pid;
}

static void print_result(const net_result *net, pid_t qemu)
{
        printf("{\"binding\":\"%s\",\"guest_ip\":\"%s\",\"status_ip\":\"%s\",\"guest_ip6\":\"%s\","
               "\"status_ip6\":\"%s\",\"mac\":\"%s\",\"tap\":\"%s\","
               "\"net_admin\":%s,\"qemu_pid\":%d,\"netdev\":%s,\"device\":%s}\n",
               net_binding_name(net->binding), net->guest_ip, net->status_ip, net->guest_ip6, net->status_ip6,
               net->mac, net->tap_name, has_net_admin() ? "true" : "false", (int)qemu, net->netdev_json,
               net->device_json);
        fflush(stdout);
}

/* The launcher's loop in miniature: DHCP requests, signals (QEMU exit, SIGTERM), a deadline. */
static int run_loop(const options *o, net_result *net, pid_t qemu)
{
        _cleanup_close_ int ep = epoll_create1(EPOLL_CLOEXEC);
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD), sigaddset(&mask, SIGTERM), sigaddset(&mask, SIGINT);
        _cleanup_close_ int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
        epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &(struct epoll_event){.events = EPOLLIN, .data.fd = sfd});
        if (net->dhcp)
                epoll_ctl(ep, EPOLL_CTL_ADD, dhcp_server_fd(net->dhcp),
                          &(struct epoll_event){.events = EPOLLIN, .data.fd = dhcp_server_fd(net->dhcp)});
        bool announced = false, announced6 = false;
        for (int waited_ms = 0; waited_ms < o->timeout * 1000;) {
                struct epoll_event ev;
                int n = epoll_wait(ep, &ev, 1, 1000);
                if (n == 0)
                        waited_ms += 1000;
                if (n <= 0)
                        continue;
                if (net->dhcp && ev.data.fd == dhcp_server_fd(net->dhcp)) {
                        kv_error err = {0};
                        if (dhcp_server_handle(net->dhcp, &err) < 0)
                                log_warning("%s", err.msg);
                        if (!announced && dhcp_server_bound(net->dhcp))
                                log_info("guest bound its DHCP lease"), announced = true;
                        if (!announced6 && dhcp_server_bound6(net->dhcp))
                                log_info("guest took its DHCPv6 address"), announced6 = true;
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
        net_result net;
        if (net_setup(&req, &net, &err) < 0) {
                log_error("%s", err.msg);
                return EXIT_NET;
        }
        pid_t qemu = start_qemu(&o, &net);
        if (qemu < 0) {
                log_error("fork: %m");
                net_result_release(&net);
                return EXIT_QEMU;
        }
        print_result(&net, qemu);
        int rc = run_loop(&o, &net, qemu);
        net_result_release(&net);
        return rc;
}
