/* The supervision loop: spawn QEMU at -S, negotiate QMP, cont, then react to QMP events, signals,
 * timers and control clients until QEMU is gone; QEMU's end decides the phase (see
 * docs/launcher-supervisor.md "Exit"). */
#include "supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"
#include "console.h"
#include "control-server.h"
#include "jsonesc.h"
#include "liveops-control.h"
#include "log.h"
#include "memtrim.h"
#include "metrics.h"
#include "macro.h"
#include "cpumem.h"
#include "credsync.h"
#include "podnet.h"
#include "probes.h"
#include "qemu-process.h"
#include "sandbox.h"
#include "fdio.h"
#include "unixsock.h"

#define QMP_HANDSHAKE_TIMEOUT_MS 30000
#define QMP_COMMAND_TIMEOUT_MS 10000
#define QUIT_TIMEOUT_S 5
#define QMP_GONE_KILL_S 5
#define POWERDOWN_REPEAT_MS 5000
#define TRIM_AFTER_MS 2000 /* quiet after a control command before kv_memtrim */

static void publish(supervisor *s)
{
        kv_error err = {0};
        if (status_write(s->st, &err) < 0)
                log_warning("status file: %s", err.msg);
}

void supervisor_publish(supervisor *s)
{
        publish(s);
}

static void on_stop_timer(loop_timer *t, void *data);

/* The one timer of the stop escalation: the next power button press, quit, or SIGKILL. */
static void arm_timer_ms(supervisor *s, int64_t ms)
{
        loop_timer_arm(s->loop, &s->stop_timer, ms, on_stop_timer, s);
}

static void arm_timer(supervisor *s, int seconds)
{
        arm_timer_ms(s, (int64_t)seconds * 1000);
}

static void kill_qemu(supervisor *s)
{
        if (s->qemu_pid > 0) {
                log_warning("sending SIGKILL to qemu (pid %d)", (int)s->qemu_pid);
                kill(s->qemu_pid, SIGKILL);
        }
}

/* ---- QMP --------------------------------------------------------------------------------------- */

void supervisor_qmp_rearm(supervisor *s)
{
        if (!s->qmp)
                return;
        uint32_t want = qmp_wanted_events(s->qmp);
        if (want != s->qmp_events && loop_modify(s->loop, s->qmp_src, want) == 0)
                s->qmp_events = want;
}

static void qmp_drop(supervisor *s)
{
        if (!s->qmp)
                return;
        loop_remove(s->loop, s->qmp_src);
        s->qmp_src = NULL;
        qmp *q = TAKE_PTR(s->qmp);
        qmp_free(q);
}

static void log_qmp_reply(qmp *q, const cJSON *ret, const kv_error *err, void *userdata)
{
        if (err)
                log_warning("qmp %s: %s", (const char *)userdata, err->msg);
}

/* args consumed. */
static int qmp_send_args_logged(supervisor *s, const char *command, cJSON *args)
{
        kv_error err = {0};
        if (!s->qmp || qmp_send(s->qmp, command, args, -1, QMP_COMMAND_TIMEOUT_MS, log_qmp_reply,
                                (void *)command, &err) < 0) {
                if (!s->qmp)
                        cJSON_Delete(args);
                log_warning("qmp %s: %s", command, s->qmp ? err.msg : "QMP is not connected");
                return -1;
        }
        supervisor_qmp_rearm(s);
        return 0;
}

static void qmp_send_logged(supervisor *s, const char *command)
{
        qmp_send_args_logged(s, command, NULL);
}

/* QMP set-action: what QEMU does when the guest powers off ("pause" keeps it for a reset, "poweroff" exits).
 */
static int set_shutdown_action(supervisor *s, const char *action)
{
        cJSON *args = cJSON_CreateObject();
        cJSON_AddStringToObject(args, "shutdown", action);
        return qmp_send_args_logged(s, "set-action", args);
}

int supervisor_soft_reboot(supervisor *s, kv_error *err)
{
        if (!s->qmp)
                return kv_error_set(err, ENOTCONN, "soft reboot: QMP is not connected");
        if (s->stop_requested || s->stage != STOP_NONE)
                return kv_error_set(err, EBUSY, "soft reboot: the VM is stopping");
        if (set_shutdown_action(s, "pause") < 0)
                return kv_error_set(err, EIO, "soft reboot: set-action failed");
        s->soft_reboot = true;
        qmp_send_logged(s, "system_powerdown");
        log_info("soft reboot: ACPI power button; the guest's power-off becomes a reset");
        return 0;
}

/* The guest powered off after a soft reboot's power button: QEMU paused it (set-action); reset and run it. */
static void soft_reboot_finish(supervisor *s)
{
        s->soft_reboot = false;
        s->shutdown_reason[0] = '\0';
        s->shutdown_guest = false;
        qmp_send_logged(s, "system_reset");
        qmp_send_logged(s, "cont");
        set_shutdown_action(s, "poweroff");
        log_info("soft reboot: guest powered off, reset");
}

static void set_paused(supervisor *s, bool paused, const char *reason)
{
        snprintf(s->st->qemu_status, sizeof(s->st->qemu_status), "%s", paused ? "paused" : "running");
        status_set_condition(s->st, COND_PAUSED, paused, true, reason, paused ? "The VMI is paused" : NULL);
        publish(s);
}

/* ---- Ready: the guest runs, is not paused, and passes its readiness probe if it has one ------------ */

static void update_ready(supervisor *s)
{
        const char *why = NULL;
        if (s->st->phase != PHASE_RUNNING || s->stage != STOP_NONE)
                return;
        if (probes_ready(s->probes, &why))
                status_set_condition(s->st, COND_READY, true, true, "", "");
        else
                status_set_condition(s->st, COND_READY, true, false, "GuestNotReady", why);
}

static void on_readiness_changed(void *ctx)
{
        update_ready(ctx);
        publish(ctx);
}

static void escalate(supervisor *s);

/* KubeVirt: a failed liveness probe kills the virt-launcher Pod and the VMI is Failed (a VM with
 * runStrategy Always then starts a new one). */
static void on_liveness_failed(void *ctx, const char *why)
{
        supervisor *s = ctx;
        snprintf(s->fail_reason, sizeof(s->fail_reason), "%s", why);
        status_set_condition(s->st, COND_READY, true, false, "LivenessProbeFailed", why);
        publish(s);
        s->stop_requested = true;
        if (s->stage < STOP_QUIT)
                escalate(s);
}

static void probes_begin(supervisor *s)
{
        if (s->probes)
                return;
        probes_host h = {.loop = s->loop,
                         .agent = s->agent,
                         .v = *s->cfg->vmi,
                         .guest_ip = s->cfg->net && s->cfg->net->binding ? s->cfg->net->guest_ip : NULL,
                         .ctx = s,
                         .readiness_changed = on_readiness_changed,
                         .liveness_failed = on_liveness_failed};
        if (probes_start(&h, &s->probes) < 0)
                log_warning("probes: out of memory");
}

static void on_qmp_event(qmp *q, const cJSON *event, void *userdata)
{
        supervisor *s = userdata;
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(event, "event"));
        const cJSON *data = cJSON_GetObjectItemCaseSensitive(event, "data");
        if (!name)
                return;
        if (strcmp(name, "SHUTDOWN") == 0) {
                const char *reason = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(data, "reason"));
                s->shutdown_guest = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(data, "guest"));
                snprintf(s->shutdown_reason, sizeof(s->shutdown_reason), "%s", reason ? reason : "unknown");
                log_info("qemu: SHUTDOWN (guest: %s, reason: %s)", s->shutdown_guest ? "true" : "false",
                         s->shutdown_reason);
                if (s->soft_reboot && s->shutdown_guest && !s->stop_requested && !s->fail_reason[0])
                        soft_reboot_finish(s);
        } else if (strcmp(name, "GUEST_PANICKED") == 0) {
                /* A panic device told QEMU the guest crashed (QEMU then powers it off): KubeVirt's VMI
                 * goes Failed, not Succeeded as after a guest's own poweroff. */
                const char *action = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(data, "action"));
                log_error("qemu: GUEST_PANICKED (action: %s)", action ? action : "?");
                snprintf(s->fail_reason, sizeof(s->fail_reason), "guest panicked (panic device)");
        } else if (strcmp(name, "STOP") == 0 && !s->shutdown_reason[0] && s->st->phase == PHASE_RUNNING) {
                set_paused(s, true, "PausedByUser");
        } else if (strcmp(name, "RESUME") == 0 && s->st->phase == PHASE_RUNNING) {
                /* Also the first boot of a startStrategy: Paused guest. */
                probes_begin(s);
                update_ready(s);
                set_paused(s, false, NULL);
        } else if (strcmp(name, "MIGRATION") == 0 || strcmp(name, "JOB_STATUS_CHANGE") == 0) {
                const char *mstatus = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(data, "status"));
                log_info("qemu: %s %s", name, mstatus ? mstatus : "?");
        } else {
                log_info("qemu: %s", name);
        }
        liveops_on_qmp_event(s->liveops, name, data);
}

static void on_qmp_io(loop_source *src, int fd, uint32_t events, void *data)
{
        supervisor *s = data;
        kv_error err = {0};
        if (qmp_handle_io(s->qmp, events, &err) < 0) {
                log_info("qmp connection closed: %s", err.msg[0] ? err.msg : "EOF");
                qmp_drop(s);
                if (s->qemu_pid > 0 && s->stage < STOP_QUIT) {
                        /* QEMU normally exits right after closing its monitor; make sure of it. */
                        s->stage = STOP_QUIT;
                        arm_timer(s, QMP_GONE_KILL_S);
                }
                return;
        }
        supervisor_qmp_rearm(s);
}

/* ---- stop escalation: system_powerdown → (grace) → quit → (5 s) → SIGKILL ---------------------- */

static void escalate(supervisor *s)
{
        switch (s->stage) {
        case STOP_NONE:
        case STOP_POWERDOWN:
                if (s->qmp) {
                        log_info("asking qemu to quit");
                        s->stage = STOP_QUIT;
                        qmp_send_logged(s, "quit");
                        arm_timer(s, QUIT_TIMEOUT_S);
                        break;
                }
                __attribute__((fallthrough)); /* no monitor to ask */
        case STOP_QUIT:
        case STOP_KILL:
                s->stage = STOP_KILL;
                kill_qemu(s);
                break;
        }
}

static int64_t grace_left_ms(const supervisor *s)
{
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        int64_t elapsed =
            (now.tv_sec - s->stop_time.tv_sec) * 1000 + (now.tv_nsec - s->stop_time.tv_nsec) / 1000000;
        return (int64_t)s->cfg->grace_seconds * 1000 - elapsed;
}

/* The button is pressed again every few seconds of the grace period: a press that came while the guest
 * was still booting (before its ACPI daemon ran) is lost, and the guest would otherwise sit out the
 * whole period. Pressing again is harmless to a guest already shutting down. */
static void press_power_button(supervisor *s)
{
        int64_t left = grace_left_ms(s);
        qmp_send_logged(s, "system_powerdown");
        arm_timer_ms(s, left < POWERDOWN_REPEAT_MS ? left : POWERDOWN_REPEAT_MS);
}

void supervisor_request_stop(supervisor *s, const char *why)
{
        if (s->qemu_pid <= 0)
                return;
        s->stop_requested = true;
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (s->stage != STOP_NONE) {
                /* A deliberate second Ctrl-C escalates; the same signal delivered twice at once (timeout(1)
                 * signals the child and its process group) must not skip the grace period. */
                if (now.tv_sec - s->stop_time.tv_sec >= 1) {
                        log_info("%s again: escalating", why);
                        escalate(s);
                }
                return;
        }
        s->stop_time = now;
        int grace = s->cfg->grace_seconds;
        if (!s->qmp || grace <= 0) {
                log_info("%s: no grace period", why);
                escalate(s);
                return;
        }
        log_info("%s: pressing the ACPI power button, grace period %d s", why, grace);
        s->stage = STOP_POWERDOWN;
        press_power_button(s);
}

static void on_stop_timer(loop_timer *t, void *data)
{
        supervisor *s = data;
        if (s->stage == STOP_POWERDOWN && grace_left_ms(s) > 0) {
                log_debug("pressing the ACPI power button again");
                press_power_button(s);
                return;
        }
        if (s->stage == STOP_POWERDOWN)
                log_warning("the guest did not power off within %d s", s->cfg->grace_seconds);
        escalate(s);
}

/* ---- QEMU's stderr: logged line by line, the last line kept as the failure reason --------------- */

static void stderr_line(supervisor *s, const char *line)
{
        if (!*line)
                return;
        log_warning("qemu: %s", line);
        snprintf(s->stderr_last, sizeof(s->stderr_last), "%s", line);
}

/* Logs complete lines; with flush (EOF) or a full buffer, the unterminated rest too. */
static void stderr_take_lines(supervisor *s, bool flush)
{
        size_t off = 0;
        char *nl;
        while ((nl = memchr(s->stderr_buf + off, '\n', s->stderr_len - off))) {
                *nl = '\0';
                stderr_line(s, s->stderr_buf + off);
                off = (size_t)(nl - s->stderr_buf) + 1;
        }
        if (off < s->stderr_len && (flush || s->stderr_len == sizeof(s->stderr_buf) - 1)) {
                s->stderr_buf[s->stderr_len] = '\0';
                stderr_line(s, s->stderr_buf + off);
                off = s->stderr_len;
        }
        memmove(s->stderr_buf, s->stderr_buf + off, s->stderr_len - off);
        s->stderr_len -= off;
}

/* 1: read some, 0: nothing now, -1: closed (EOF or error; the fd is gone). */
static int stderr_read(supervisor *s)
{
        if (s->stderr_fd < 0)
                return -1;
        ssize_t n =
            read(s->stderr_fd, s->stderr_buf + s->stderr_len, sizeof(s->stderr_buf) - 1 - s->stderr_len);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return 0;
        if (n <= 0) {
                stderr_take_lines(s, true);
                loop_remove(s->loop, s->stderr_src);
                s->stderr_src = NULL;
                close(s->stderr_fd);
                s->stderr_fd = -1;
                return -1;
        }
        s->stderr_len += (size_t)n;
        stderr_take_lines(s, false);
        return 1;
}

static void on_stderr(loop_source *src, int fd, uint32_t events, void *data)
{
        stderr_read(data);
}

/* ---- QEMU's end ------------------------------------------------------------------------------- */

/* Everything QEMU said before dying is already in the sockets: read it before judging. */
static void drain_after_exit(supervisor *s)
{
        for (int i = 0; s->qmp && i < 1000; i++) {
                kv_error err = {0};
                if (qmp_handle_io(s->qmp, EPOLLIN, &err) < 0)
                        qmp_drop(s);
        }
        while (stderr_read(s) > 0) /* stops at EOF, or if something else still holds the pipe */
                ;
}

static void decide_phase(supervisor *s)
{
        char how[128], reason[512];
        wait_status_describe(s->qemu_wstatus, how, sizeof(how));
        bool clean_exit = WIFEXITED(s->qemu_wstatus) && WEXITSTATUS(s->qemu_wstatus) == 0;
        if (s->fail_reason[0]) {
                snprintf(reason, sizeof(reason), "%s", s->fail_reason);
                status_set_phase(s->st, PHASE_FAILED, reason);
        } else if (clean_exit && s->end_reason[0]) {
                snprintf(reason, sizeof(reason), "%s", s->end_reason);
                status_set_phase(s->st, PHASE_SUCCEEDED, reason);
        } else if (clean_exit && s->shutdown_reason[0]) {
                snprintf(reason, sizeof(reason), "%s",
                         s->shutdown_guest ? "guest powered off" : s->shutdown_reason);
                if (s->stop_requested && !s->shutdown_guest)
                        snprintf(reason, sizeof(reason), "stopped on request (%s)", s->shutdown_reason);
                status_set_phase(s->st, PHASE_SUCCEEDED, reason);
        } else if (s->stop_requested && s->stage >= STOP_QUIT) {
                snprintf(reason, sizeof(reason), "stopped on request: qemu %s", how);
                status_set_phase(s->st, PHASE_SUCCEEDED, reason);
        } else {
                snprintf(reason, sizeof(reason), "qemu %s%s%s", how, s->stderr_last[0] ? ": " : "",
                         s->stderr_last);
                status_set_phase(s->st, PHASE_FAILED, reason);
        }
        s->st->exit_code = s->st->phase == PHASE_SUCCEEDED ? EXIT_SUCCEEDED : EXIT_FAILED;
        s->st->qemu_status[0] = '\0';
        status_set_condition(s->st, COND_READY, true, false, "Terminated", reason);
        status_set_condition(s->st, COND_PAUSED, false, false, NULL, NULL);
}

static void reap(supervisor *s)
{
        int wstatus;
        pid_t pid;
        while ((pid = waitpid(-1, &wstatus, WNOHANG)) > 0) {
                if (pid != s->qemu_pid) {
                        podnet_reaped(s->cfg->net, pid, wstatus);
                        continue;
                }
                s->qemu_pid = 0;
                s->qemu_wstatus = wstatus;
                drain_after_exit(s);
                decide_phase(s);
                s->done = true;
        }
}

static void on_signal(loop_source *src, int fd, uint32_t events, void *data)
{
        supervisor *s = data;
        struct signalfd_siginfo si;
        while (read(fd, &si, sizeof(si)) == sizeof(si)) {
                if (si.ssi_signo == SIGCHLD)
                        reap(s);
                else {
                        char why[64];
                        snprintf(why, sizeof(why), "received SIG%s", sigabbrev_np((int)si.ssi_signo));
                        supervisor_request_stop(s, why);
                }
        }
}

/* ---- the live operations' view of the supervisor (liveops_host) ---------------------------------- */

static qmp *host_qmp(void *ctx)
{
        return ((supervisor *)ctx)->qmp;
}

static bool host_stopping(void *ctx)
{
        return ((supervisor *)ctx)->stage != STOP_NONE;
}

static void host_publish(void *ctx)
{
        publish(ctx);
}

static void host_qmp_rearm(void *ctx)
{
        supervisor_qmp_rearm(ctx);
}

static void host_request_stop(void *ctx, const char *why)
{
        supervisor_request_stop(ctx, why);
}

static void host_fail(void *ctx, const char *why)
{
        supervisor *s = ctx;
        snprintf(s->fail_reason, sizeof(s->fail_reason), "%s", why);
        supervisor_request_stop(s, why);
}

static void host_set_end_reason(void *ctx, const char *reason)
{
        supervisor *s = ctx;
        snprintf(s->end_reason, sizeof(s->end_reason), "%s", reason);
}

static unsigned host_agent_command(void *ctx, const char *execute, int timeout_ms,
                                   void (*cb)(const cJSON *ret, const char *why, void *data), void *data)
{
        supervisor *s = ctx;
        if (!s->agent || !agent_connected(s->agent))
                return 0;
        return agent_command(s->agent, execute, NULL, timeout_ms, cb, data);
}

static void host_agent_cancel(void *ctx, unsigned handle)
{
        supervisor *s = ctx;
        if (s->agent)
                agent_cancel(s->agent, handle);
}

static int liveops_start(supervisor *s)
{
        const sup_config *cfg = s->cfg;
        liveops_host h = {.ctx = s,
                          .loop = s->loop,
                          .st = s->st,
                          .incoming = cfg->incoming,
                          .incoming_config = cfg->incoming_config,
                          .incoming_nbd_host = cfg->incoming_nbd_host,
                          .incoming_nbd_port = cfg->incoming_nbd_port,
                          .vmi = cfg->vmi,
                          .paths = cfg->paths,
                          .qmp = host_qmp,
                          .stopping = host_stopping,
                          .publish = host_publish,
                          .qmp_rearm = host_qmp_rearm,
                          .request_stop = host_request_stop,
                          .fail = host_fail,
                          .set_end_reason = host_set_end_reason,
                          .agent_command = host_agent_command,
                          .agent_cancel = host_agent_cancel};
        return liveops_new(&h, &s->liveops);
}

/* ---- start-up ---------------------------------------------------------------------------------- */

static int setup_fds(supervisor *s, kv_error *err)
{
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        sigaddset(&mask, SIGCHLD);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return kv_error_errno(err, errno, "sigprocmask");
        signal(SIGPIPE, SIG_IGN);
        s->sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
        if (s->sigfd < 0)
                return kv_error_errno(err, errno, "signalfd");
        int r = loop_new(&s->loop);
        if (r < 0)
                return kv_error_errno(err, -r, "epoll");
        if ((r = liveops_start(s)) < 0)
                return kv_error_errno(err, -r, "live operations");
        if ((r = loop_add(s->loop, s->sigfd, EPOLLIN, on_signal, s, NULL)) < 0)
                return kv_error_errno(err, -r, "epoll add");
        for (size_t i = 0; i < s->cfg->n_net_secondary; i++)
                if ((r = podnet_watch(s->loop, &s->cfg->net_secondary[i], err)) < 0)
                        return r;
        return podnet_watch(s->loop, s->cfg->net, err);
}

static int spawn(supervisor *s, int *qmp_fd, kv_error *err)
{
        int pair[2], errpipe[2], agent_pair[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0)
                return kv_error_errno(err, errno, "socketpair");
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, agent_pair) < 0) {
                close(pair[0]);
                close(pair[1]);
                return kv_error_errno(err, errno, "socketpair");
        }
        if (pipe2(errpipe, O_CLOEXEC) < 0) {
                close(pair[0]);
                close(pair[1]);
                close(agent_pair[0]);
                close(agent_pair[1]);
                return kv_error_errno(err, errno, "pipe");
        }
        const sup_config *cfg = s->cfg;
        /* Slot CHILD_FD_SERIAL is filled (with the monitor's end again, unused there) when macvtap fds
         * follow it and there is no serial console. */
        int fds[CHILD_FD_NET_BASE - 3 + NET_MAX_SECONDARY] = {
            pair[1], cfg->qmp_public_fd, agent_pair[1],
            cfg->serial_listen_fd >= 0 ? cfg->serial_listen_fd : pair[1]};
        int nfds = cfg->serial_listen_fd >= 0 ? 4 : 3;
        for (size_t i = 0; i < cfg->n_net_secondary; i++)
                if (cfg->net_secondary[i].macvtap_fd > 0)
                        fds[CHILD_FD_NET_BASE - 3 + i] = cfg->net_secondary[i].macvtap_fd,
                                                    nfds = CHILD_FD_NET_BASE - 3 + (int)i + 1;
        for (int i = CHILD_FD_NET_BASE - 3; i < nfds; i++)
                if (fds[i] <= 0)
                        fds[i] = pair[1];
        qemu_spawn_req req = {
            .path = cfg->qemu_path, .argv = cfg->argv, .fds = fds, .nfds = nfds, .stderr_fd = errpipe[1]};
        int r = qemu_spawn(&req, &s->qemu_pid, err);
        close(pair[1]);
        close(errpipe[1]);
        close(agent_pair[1]);
        if (r < 0) {
                close(pair[0]);
                close(errpipe[0]);
                close(agent_pair[0]);
                return r;
        }
        *qmp_fd = pair[0];
        if ((r = agent_new(s->loop, agent_pair[0], s->st, host_publish, s, &s->agent)) < 0)
                return kv_error_errno(err, -r, "guest agent channel");
        if ((r = credsync_start(s->loop, s->agent, s->st, (const vmi *const *)s->cfg->vmi, s->cfg->paths,
                                host_publish, s, &s->credsync)) < 0)
                return kv_error_errno(err, -r, "access credentials");
        s->stderr_fd = errpipe[0];
        fd_set_nonblock(s->stderr_fd);
        r = loop_add(s->loop, s->stderr_fd, EPOLLIN, on_stderr, s, &s->stderr_src);
        if (r < 0)
                return kv_error_errno(err, -r, "epoll add");
        s->st->qemu_pid = s->qemu_pid;
        status_set_phase(s->st, PHASE_SCHEDULED, NULL);
        publish(s);
        log_info("qemu started (pid %d)", (int)s->qemu_pid);
        return 0;
}

static int qmp_attach(supervisor *s, int fd, kv_error *err)
{
        int r = qmp_new_from_fd(&s->qmp, fd, err);
        if (r < 0) {
                close(fd);
                return r;
        }
        r = qmp_handshake(s->qmp, QMP_HANDSHAKE_TIMEOUT_MS, err);
        if (r < 0)
                return kv_error_wrap(err, "QMP handshake");
        qmp_set_event_handler(s->qmp, on_qmp_event, s);
        s->qmp_events = qmp_wanted_events(s->qmp);
        r = loop_add(s->loop, qmp_fd(s->qmp), s->qmp_events, on_qmp_io, s, &s->qmp_src);
        if (r < 0)
                return kv_error_errno(err, -r, "epoll add qmp");
        return 0;
}

static int confine(supervisor *s, kv_error *err)
{
        if (!s->cfg->sandbox)
                return 0;
        int r = caps_drop_all(err);
        if (r >= 0)
                r = sandbox_seccomp(probes_need_socket(*s->cfg->vmi), err);
        if (r >= 0)
                log_info("launcher confined: capabilities dropped, seccomp allowlist installed");
        return r;
}

static int boot(supervisor *s, kv_error *err)
{
        if (s->cfg->incoming) {
                log_info("migration target: the guest stays paused until the incoming migration completed");
                snprintf(s->st->qemu_status, sizeof(s->st->qemu_status), "inmigrate");
                status_set_condition(s->st, COND_READY, true, false, "MigrationTarget",
                                     "waiting for an incoming migration");
                publish(s);
                return liveops_target_boot(s->liveops, err);
        }
        int r = podnet_apply_link_states(*s->cfg->vmi, s->cfg->n_net_secondary, s->qmp, err);
        if (r < 0)
                return r;
        if (s->cfg->start_paused) {
                log_info("startStrategy Paused: leaving the guest paused");
                status_set_phase(s->st, PHASE_RUNNING, NULL);
                set_paused(s, true, "PausedByUser");
                return 0;
        }
        r = qmp_execute(s->qmp, "cont", NULL, QMP_COMMAND_TIMEOUT_MS, NULL, err);
        if (r < 0)
                return kv_error_wrap(err, "QMP cont");
        status_set_phase(s->st, PHASE_RUNNING, NULL);
        snprintf(s->st->qemu_status, sizeof(s->st->qemu_status), "running");
        probes_begin(s);
        update_ready(s);
        publish(s);
        log_info("guest running");
        return 0;
}

static int start(supervisor *s, kv_error *err)
{
        int qfd = -1;
        int r = metrics_new(s->cfg->run_dir, *s->cfg->vmi, &s->metrics, err);
        if (r >= 0)
                r = spawn(s, &qfd, err);
        if (r < 0)
                return r;
        if (s->cfg->serial_listen_fd >= 0) {
                char path[4200];
                snprintf(path, sizeof(path), "%s/serial.sock", s->cfg->run_dir);
                if ((r = console_start(s, path, err)) < 0)
                        return kv_error_wrap(err, "serial console");
        }
        /* QEMU's threads are pinned before the sandbox forbids sched_setaffinity */
        if ((r = qmp_attach(s, qfd, err)) < 0 ||
            (r = metrics_attach(s->metrics, s->loop, s->qemu_pid, err)) < 0 ||
            (s->cfg->cpus && (r = cpumem_pin(*s->cfg->vmi, s->cfg->cpus, s->qmp, s->qemu_pid, err)) < 0) ||
            (r = confine(s, err)) < 0 || (r = boot(s, err)) < 0)
                return r;
        return control_start(s) < 0 ? kv_error_set(err, EIO, "control socket") : 0;
}

/* QEMU that closed its monitor during start-up is usually exiting with an error on stderr: give it a
 * moment to do so (its own exit status says more than our SIGKILL would). */
static void reap_failed_start(supervisor *s)
{
        bool reaped = false;
        for (int i = 0; i < 50 && !reaped; i++) {
                reaped = waitpid(s->qemu_pid, &s->qemu_wstatus, WNOHANG) == s->qemu_pid;
                if (!reaped)
                        usleep(10000);
        }
        if (!reaped) {
                kill(s->qemu_pid, SIGKILL);
                waitpid(s->qemu_pid, &s->qemu_wstatus, 0);
        }
        s->qemu_pid = 0;
        drain_after_exit(s);
}

/* Start-up failed: make sure QEMU is gone and say why, preferring QEMU's own words. */
static void fail_start(supervisor *s, const kv_error *err)
{
        char reason[1400];
        if (s->qemu_pid > 0) {
                reap_failed_start(s);
                char how[128];
                wait_status_describe(s->qemu_wstatus, how, sizeof(how));
                snprintf(reason, sizeof(reason), "qemu failed to start: %s (qemu %s)",
                         s->stderr_last[0] ? s->stderr_last : err->msg, how);
        } else
                snprintf(reason, sizeof(reason), "qemu failed to start: %s", err->msg);
        status_set_phase(s->st, PHASE_FAILED, reason);
        s->st->exit_code = EXIT_FAILED;
        status_set_condition(s->st, COND_READY, true, false, "FailedToStart", s->st->reason);
}

static void log_final(const supervisor *s)
{
        char extra[1400], esc[1100];
        json_escape(s->st->reason, esc, sizeof(esc));
        snprintf(extra, sizeof(extra), "\"phase\":\"%s\",\"reason\":\"%s\",\"exitCode\":%d",
                 phase_name(s->st->phase), esc, s->st->exit_code);
        kv_log_kv(s->st->phase == PHASE_SUCCEEDED ? KV_LOG_INFO : KV_LOG_ERROR, extra,
                  "launcher finished: %s", phase_name(s->st->phase));
}

static void on_trim_timer(loop_timer *t, void *data)
{
        (void)t;
        (void)data;
        kv_memtrim();
}

void supervisor_trim_soon(supervisor *s)
{
        loop_timer_arm(s->loop, &s->trim_timer, TRIM_AFTER_MS, on_trim_timer, s);
}

static void teardown(supervisor *s)
{
        control_stop(s);
        console_stop(s);
        qmp_drop(s); /* first: its pending callbacks may still end a live operation */
        liveops_free(s->liveops);
        probes_free(s->probes); /* before the agent: it cancels its commands there */
        credsync_free(s->credsync);
        agent_free(s->agent);
        metrics_free(s->metrics);
        if (s->stderr_fd >= 0)
                close(s->stderr_fd);
        if (s->sigfd >= 0)
                close(s->sigfd);
        loop_free(s->loop);
}

int supervisor_run(const sup_config *cfg, status *st)
{
        supervisor s = {.st = st,
                        .cfg = cfg,
                        .sigfd = -1,
                        .stderr_fd = -1,
                        .serial_fd = -1,
                        .control_fd = cfg->control_fd};
        kv_error err = {0};
        int r = setup_fds(&s, &err);
        if (r >= 0)
                r = start(&s, &err);
        if (r < 0) {
                log_error("%s", err.msg);
                fail_start(&s, &err);
        } else
                kv_memtrim(); /* the start-up's heap and deep stack (the VMI, the Pod network) */
        while (r >= 0 && !s.done) {
                int timeout = s.qmp ? qmp_next_timeout_ms(s.qmp) : -1;
                if (loop_run_once(s.loop, timeout) < 0) {
                        log_error("epoll: %m");
                        kill_qemu(&s);
                        break;
                }
                if (s.qmp) {
                        qmp_handle_timeouts(s.qmp);
                        supervisor_qmp_rearm(&s);
                }
        }
        publish(&s);
        log_final(&s);
        teardown(&s);
        return st->exit_code >= 0 ? st->exit_code : EXIT_FAILED;
}
