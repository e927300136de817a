/* virtctl port-forward (port-forward.h). --stdio: one websocket between stdin/stdout and the guest's port
 * (what `ssh -o ProxyCommand=...` runs). Otherwise a listener per port; each accepted connection gets its own
 * websocket in a child process of its own (as KubeVirt's virtctl gives it a goroutine), so a slow or broken
 * connection never holds up the others, and the listeners run until SIGINT. The end of a local connection's
 * input is passed on (a close frame, the guest's FIN), and its output keeps coming until the guest closes. */
#include "port-forward.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api.h"
#include "cli.h"
#include "json.h"
#include "log.h"
#include "macro.h"
#include "wsclient.h"

static void usage(FILE *f)
{
        fputs("Forward local ports to a virtualmachine or virtualmachineinstance.\n\n"
              "Usage:\n"
              "  virtctl port-forward TYPE/NAME[/NAMESPACE] [PROTOCOL/]LOCAL[:REMOTE]... [flags]\n\n"
              "TYPE: vmi (the default for a bare NAME) or vm (its VMI), or their long and plural forms;\n"
              "TYPE/NAME.NAMESPACE is read as well (the older syntax). PROTOCOL: tcp (the default); REMOTE\n"
              "defaults to LOCAL, LOCAL 0 picks a free port. Traffic goes through the API server.\n\n"
              "Examples:\n"
              "  virtctl port-forward vmi/testvmi 8080:80\n"
              "  virtctl port-forward vm/testvm/mynamespace 2222:22 8080\n"
              "  ssh -o 'ProxyCommand=virtctl port-forward --stdio=true vmi/testvmi.mynamespace 22' "
              "user@vmi/testvmi.mynamespace\n\n"
              "Flags:\n"
              "      --address string   the address the local ports listen on (default \"127.0.0.1\")\n"
              "  -h, --help             help for port-forward\n"
              "      --stdio            forward the single port's connection to stdin/stdout\n",
              f);
}

static int flag(void *ctx, int argc, char **argv, int *i)
{
        pf_cmd *out = ctx;
        const char *a = argv[*i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help"))
                return usage(stdout), -1;
        if (!strcmp(a, "--stdio")) {
                out->stdio = true;
        } else if (!strncmp(a, "--stdio=", 8)) {
                if (pf_bool_parse(a + 8, &out->stdio) < 0)
                        return die("invalid argument \"%s\" for \"--stdio\" flag: strconv.ParseBool: parsing "
                                   "\"%s\": invalid syntax",
                                   a + 8, a + 8);
        } else if (!strncmp(a, "--address=", 10)) {
                out->address = a + 10;
        } else if (!strcmp(a, "--address")) {
                if (*i + 1 >= argc)
                        return die("flag needs an argument: --address");
                out->address = argv[++*i];
        } else {
                return die("unknown flag: %s", a);
        }
        return 0;
}

int portforward_parse(int argc, char **argv, pf_cmd *out)
{
        const char *args[PF_MAX_PORTS + 1];
        char why[300];
        int n = 0;
        *out = (pf_cmd){.address = "127.0.0.1"};
        int r = cli_split(argc, argv, flag, out, args, PF_MAX_PORTS + 1, &n);
        if (r)
                return r;
        if (n < 2) {
                usage(stderr);
                return die("Number of input parameters is incorrect, portforward requires at least 2 arg(s), "
                           "received %d",
                           n);
        }
        if (pf_target_parse(args[0], &out->target, why, sizeof(why)) < 0)
                return die("%s", why);
        for (int i = 1; i < n; i++)
                if (pf_port_parse(args[i], &out->ports[out->n_ports++], why, sizeof(why)) < 0)
                        return die("%s", why);
        if (out->stdio && out->n_ports != 1)
                return die("only one port supported when forwarding to stdout");
        for (size_t i = 0; i < out->n_ports; i++)
                if (!strcmp(out->ports[i].protocol, "udp"))
                        return die("udp/%u: forwarding UDP is not supported yet", out->ports[i].local);
        return 0;
}

/* The websocket path of one port: KubeVirt's client always names the protocol. */
static char *stream_path(const char *ns, const pf_cmd *c, const pf_port *p)
{
        const kube_resource res = {.prefix = SUBRES,
                                   .plural = c->target.vm ? "virtualmachines" : "virtualmachineinstances"};
        char sub[48];
        snprintf(sub, sizeof(sub), "portforward/%u/%s", p->remote, p->protocol);
        return kube_path(&res, ns, c->target.name, sub);
}

/* One connection's bytes both ways: in_fd's end goes on as a close frame, out_fd gets the rest until the
 * guest closes. 0, or negative errno. */
static int forward(wsclient *w, int in_fd, int out_fd)
{
        int r = ws_pump(w, in_fd, out_fd, 0);
        if (r == 1)
                r = ws_end_input(w) < 0 ? -EIO : ws_pump(w, -1, out_fd, 0);
        return r < 0 ? r : 0;
}

static int run_stdio(kube_config *cfg, const char *path)
{
        wsclient *w = NULL;
        long code = 0;
        kv_error err = {0};
        if (ws_open(cfg, path, "plain.kubevirt.io", &w, &code, &err) < 0)
                return die("%s", err.msg);
        int r = forward(w, STDIN_FILENO, STDOUT_FILENO);
        ws_close(w);
        return r < 0 ? die("the forwarded connection: %s", strerror(-r)) : EXIT_OK;
}

/* What virt-api would refuse, before anything listens: an unknown VM or VMI, one not running. A user who may
 * forward but not read VMIs (403) is let through: virt-api decides per connection. */
static int precheck(kube_client *api, const char *ns, const pf_target *t)
{
        _cleanup_json_ cJSON *vm = NULL, *vmi = NULL;
        kv_error err = {0};
        int r = t->vm ? kube_get(api, &kube_vm, ns, t->name, &vm, &err) : 0;
        if (r == 0 && vm && !cJSON_IsTrue(kube_obj(vm, "status.created")))
                return die(
                    "Operation cannot be fulfilled on virtualmachine.kubevirt.io \"%s\": VMI is not started",
                    t->name);
        if (r == 0)
                r = kube_get(api, &kube_vmi, ns, t->name, &vmi, &err);
        if (r == -KUBE_EFORBIDDEN)
                return 0;
        if (r < 0)
                return die("%s", api_message(&err));
        const char *phase = kube_str(vmi, "status.phase") ?: "";
        if (!strcmp(phase, "Failed") || !strcmp(phase, "Succeeded"))
                return die(
                    "Operation cannot be fulfilled on virtualmachineinstance.kubevirt.io \"%s\": VMI is "
                    "in phase %s",
                    t->name, phase);
        if (strcmp(phase, "Running"))
                return die(
                    "Unable to connect to VirtualMachineInstance because phase is %s instead of Running",
                    *phase ? phase : "Pending");
        return 0;
}

typedef struct listener {
        int fd;
        const pf_port *port;
} listener;

/* A listening socket on address:port->local (as KubeVirt's net.ListenTCP) in *out, its port in *bound. */
static int listen_on(const char *address, const pf_port *port, int *out, unsigned *bound)
{
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV},
                        *ai = NULL;
        char service[8];
        snprintf(service, sizeof(service), "%u", port->local);
        int r = getaddrinfo(address, service, &hints, &ai);
        if (r != 0)
                return die("lookup %s: %s", address, gai_strerror(r));
        struct sockaddr_storage sa;
        socklen_t len = sizeof(sa);
        int one = 1, fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
            bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 16) < 0 ||
            getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
                r = errno;
                freeaddrinfo(ai);
                if (fd >= 0)
                        close(fd);
                return die("listen tcp %s:%u: %s", address, port->local, strerror(r));
        }
        freeaddrinfo(ai);
        *bound = ntohs(sa.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&sa)->sin6_port
                                                : ((struct sockaddr_in *)&sa)->sin_port);
        *out = fd;
        return EXIT_OK;
}

/* A child's whole life: its connection's websocket, forwarded until either side ends. */
static int serve(kube_config *cfg, const char *path, int fd, const pf_port *p, const char *what)
{
        wsclient *w = NULL;
        long code = 0;
        kv_error err = {0};
        log_info("opening new tcp tunnel to %u", p->remote);
        if (ws_open(cfg, path, "plain.kubevirt.io", &w, &code, &err) < 0) {
                log_error("can't access %s: %s", what, err.msg);
                return EXIT_FAIL;
        }
        log_info("handling tcp connection for %u", p->local);
        int r = forward(w, fd, fd);
        ws_close(w);
        if (r < 0)
                log_error("error handling connection for %u: %s", p->local, strerror(-r));
        return r < 0 ? EXIT_FAIL : EXIT_OK;
}

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
        (void)sig;
        interrupted = 1;
}

/* Accepts on every listener until SIGINT; each connection is served by a child. */
static int accept_loop(kube_config *cfg, char **paths, listener *l, size_t n, const char *what)
{
        struct pollfd p[PF_MAX_PORTS];
        for (size_t i = 0; i < n; i++)
                p[i] = (struct pollfd){.fd = l[i].fd, .events = POLLIN};
        while (!interrupted) {
                if (poll(p, n, -1) < 0)
                        continue; /* EINTR: SIGINT */
                for (size_t i = 0; i < n; i++) {
                        int c = p[i].revents ? accept4(l[i].fd, NULL, NULL, SOCK_CLOEXEC) : -1;
                        pid_t pid = c >= 0 ? fork() : -1;
                        if (pid == 0) {
                                signal(SIGINT, SIG_DFL);
                                for (size_t j = 0; j < n; j++)
                                        close(l[j].fd);
                                _exit(serve(cfg, paths[i], c, l[i].port, what));
                        }
                        if (p[i].revents && (c < 0 || pid < 0)) {
                                log_error("error accepting connection for %u: %s", l[i].port->local,
                                          strerror(errno));
                                usleep(100000); /* out of fds or processes: not a busy loop */
                        }
                        if (c >= 0)
                                close(c);
                }
        }
        return EXIT_OK;
}

static int run_listeners(kube_config *cfg, const char *ns, const pf_cmd *c)
{
        listener l[PF_MAX_PORTS];
        char *paths[PF_MAX_PORTS] = {0}, what[600];
        size_t n = 0;
        int rc = EXIT_OK;
        snprintf(what, sizeof(what), "%s/%s.%s", c->target.vm ? "vm" : "vmi", c->target.name, ns);
        for (; n < c->n_ports; n++) {
                unsigned bound = 0;
                l[n] = (listener){.fd = -1, .port = &c->ports[n]};
                if ((rc = listen_on(c->address, &c->ports[n], &l[n].fd, &bound)) != EXIT_OK)
                        break;
                if (!(paths[n] = stream_path(ns, c, &c->ports[n]))) {
                        rc = die("out of memory");
                        close(l[n].fd);
                        break;
                }
                log_info("forwarding tcp %s:%u to %u", c->address, bound, c->ports[n].remote);
        }
        if (rc == EXIT_OK) {
                struct sigaction sa = {.sa_handler = on_sigint}; /* no SA_RESTART: poll returns */
                sigaction(SIGINT, &sa, NULL);
                signal(SIGCHLD, SIG_IGN); /* children are reaped by the kernel */
                rc = accept_loop(cfg, paths, l, n, what);
        }
        for (size_t i = 0; i < n; i++) {
                close(l[i].fd);
                free(paths[i]);
        }
        return rc;
}

int portforward_run(kube_config *cfg, kube_client *api, const char *ns, const pf_cmd *c)
{
        if (c->target.ns[0])
                ns = c->target.ns;
        kv_log_init("portforward");
        if (c->stdio) {
                _cleanup_free_ char *path = stream_path(ns, c, &c->ports[0]);
                return path ? run_stdio(cfg, path) : die("out of memory");
        }
        return precheck(api, ns, &c->target) ?: run_listeners(cfg, ns, c);
}
