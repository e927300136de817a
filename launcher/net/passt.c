/* passt: a user-mode network stack process in the Pod netns that gives the guest the Pod's own address
 * and forwards ports; QEMU 7.2 reaches it through -netdev stream on a unix socket. No tap, no bridge, no
 * NAT rules: nothing needs CAP_NET_ADMIN. */
#include "binding.h"
#include "log.h"
#include "jsonesc.h"
#include "macro.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#define PASST_START_TIMEOUT_MS 5000

/* "-t 80,443" style lists per protocol; "all" for TCP when no port is listed (what KubeVirt forwards). */
static void port_spec(const net_request *req, int protocol, char *out, size_t outsz)
{
        size_t len = 0;
        out[0] = '\0';
        for (size_t i = 0; i < req->n_ports; i++)
                if (req->ports[i].protocol == protocol)
                        len += (size_t)snprintf(out + len, outsz - len, "%s%u", len ? "," : "",
                                                req->ports[i].port);
        if (!len)
                snprintf(out, outsz, "%s", req->n_ports == 0 && protocol == IPPROTO_TCP ? "all" : "none");
}

static void exec_passt(const net_request *req, const char *socket_path, const char *log_path)
{
        char tcp[NET_MAX_PORTS * 6 + 8], udp[NET_MAX_PORTS * 6 + 8], runas[32];
        port_spec(req, IPPROTO_TCP, tcp, sizeof(tcp));
        port_spec(req, IPPROTO_UDP, udp, sizeof(udp));
        snprintf(runas, sizeof(runas), "%u:%u", (unsigned)(req->tap_owner_set ? req->tap_owner : getuid()),
                 (unsigned)(req->tap_owner_set ? req->tap_group : getgid()));
        const char *passt = req->passt_path ? req->passt_path : "passt";
        /* --no-map-gw: the guest reaches the real gateway, not the Pod's loopback behind the gateway address.
         * --one-off: passt exits with its QEMU. */
        const char *argv[] = {passt,
                              "--foreground",
                              "--one-off",
                              "--quiet",
                              "--socket",
                              socket_path,
                              "--log-file",
                              log_path,
                              "--runas",
                              runas,
                              "--no-map-gw",
                              "--interface",
                              net_pod_ifname(req),
                              "-t",
                              tcp,
                              "-u",
                              udp,
                              NULL};
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        sigset_t none; /* the launcher blocks signals for its signalfd; passt must see SIGTERM */
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null >= 0)
                dup2(null, STDIN_FILENO);
        execvp(passt, (char *const *)argv);
        _exit(127);
}

/* passt binds its socket and then listens; QEMU connects once, so wait for the listening state in
 * /proc/net/unix (flag __SO_ACCEPTCON, 00010000) rather than probing with a connection. */
static bool socket_listening(const char *path)
{
        _cleanup_fclose_ FILE *f = fopen("/proc/net/unix", "re");
        char line[512];
        size_t plen = strlen(path);
        while (f && fgets(line, sizeof(line), f)) {
                line[strcspn(line, "\n")] = '\0';
                size_t len = strlen(line);
                unsigned long flags;
                if (len > plen && strcmp(line + len - plen, path) == 0 && line[len - plen - 1] == ' ' &&
                    sscanf(line, "%*s %*s %*s %lx", &flags) == 1 && (flags & 0x10000))
                        return true;
        }
        return false;
}

static int wait_listening(pid_t pid, const char *path, const char *log_path, kv_error *err)
{
        for (int waited = 0; waited < PASST_START_TIMEOUT_MS; waited += 10) {
                if (socket_listening(path))
                        return 0;
                int status;
                if (waitpid(pid, &status, WNOHANG) == pid)
                        return kv_error_set(err, ECHILD, "passt exited (status %d) before listening; see %s",
                                            status, log_path);
                nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
        }
        return kv_error_set(err, ETIMEDOUT, "passt did not listen on %s within %d ms", path,
                            PASST_START_TIMEOUT_MS);
}

int render_passt_netdev(const net_request *req, net_result *res)
{
        int n = snprintf(res->passt_socket, sizeof(res->passt_socket), "%s/passt-%s.sock",
                         req->run_dir ? req->run_dir : ".", req->iface_name);
        if (n < 0 || (size_t)n >= sizeof(res->passt_socket))
                return -ENAMETOOLONG;
        char path[2 * sizeof(res->passt_socket)];
        json_escape(res->passt_socket, path, sizeof(path));
        snprintf(res->netdev_json, sizeof(res->netdev_json),
                 "{\"type\":\"stream\",\"id\":\"%s\",\"server\":false,\"addr\":{\"type\":\"unix\",\"path\":"
                 "\"%s\"}}",
                 res->netdev_id, path);
        return 0;
}

int binding_passt(const net_request *req, net_result *res, kv_error *err)
{
        if (!req->run_dir)
                return kv_error_set(err, EINVAL, "passt needs a run directory for its socket");
        char log_path[256];
        if (render_passt_netdev(req, res) < 0)
                return kv_error_set(err, ENAMETOOLONG, "passt socket path in %s is too long", req->run_dir);
        snprintf(log_path, sizeof(log_path), "%s/passt-%s.log", req->run_dir, req->iface_name);
        unlink(res->passt_socket);
        pid_t pid = fork();
        if (pid < 0)
                return kv_error_errno(err, errno, "fork passt");
        if (pid == 0)
                exec_passt(req, res->passt_socket, log_path);
        res->passt_pid = pid;
        int r = wait_listening(pid, res->passt_socket, log_path, err);
        if (r < 0) {
                if (r != -ECHILD)
                        kill(pid, SIGKILL), waitpid(pid, NULL, 0);
                res->passt_pid = 0;
                return r;
        }
        log_info("net: passt %d serving %s", (int)pid, res->passt_socket);
        return 0;
}
