/* libFuzzer: the launcher's control protocol as the real server code (launcher/supervisor/control-server.c
 * and its command table) sees it: the input is written by a client over a real unix socket in fuzzer-chosen
 * chunks, served by the real epoll loop; QMP-backed commands go to a fake QEMU that answers each command
 * with success or an error; "console" switches to the raw stream. Only the supervisor's hooks are
 * stubbed (no QEMU process). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "console.h"
#include "control-server.h"
#include "log.h"
#include "supervisor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static int listen_fd = -1;
static struct sockaddr_un listen_addr;
static socklen_t listen_len;
static bool stop_requested;

/* The supervisor hooks control-commands.c calls; the real ones need a QEMU child. */
void supervisor_request_stop(supervisor *s, const char *why)
{
        (void)why;
        stop_requested = true;
        s->stage = STOP_POWERDOWN;
}

int supervisor_soft_reboot(supervisor *s, kv_error *err)
{
        (void)s;
        (void)err;
        return 0; /* the ACPI reboot sequence needs a guest; the verb's parsing and reply are what is fuzzed
                   */
}

static void qmp_on_event(loop_source *src, int fd, uint32_t events, void *data)
{
        supervisor *s = data;
        kv_error err = {0};
        if (s->qmp && qmp_handle_io(s->qmp, events, &err) < 0) {
                loop_remove(s->loop, s->qmp_src);
                s->qmp_src = NULL;
                return;
        }
        if (s->qmp)
                loop_modify(s->loop, s->qmp_src, qmp_wanted_events(s->qmp));
}

void supervisor_publish(supervisor *s)
{
        (void)s; /* the status file is not part of the fuzz build */
}

void supervisor_trim_soon(supervisor *s)
{
        (void)s; /* memory trimming is the supervisor's, not part of the fuzz build */
}

void supervisor_qmp_rearm(supervisor *s)
{
        if (s->qmp && s->qmp_src)
                loop_modify(s->loop, s->qmp_src, qmp_wanted_events(s->qmp));
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
        (void)argc;
        (void)argv;
        kv_log_set_level(KV_LOG_ERROR);
        /* abstract namespace: nothing to clean up on disk */
        listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        listen_addr.sun_family = AF_UNIX;
        int n = snprintf(listen_addr.sun_path + 1, sizeof(listen_addr.sun_path) - 1, "kvlite-fuzz-control-%d",
                         (int)getpid());
        listen_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
        if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&listen_addr, listen_len) < 0 ||
            listen(listen_fd, 8) < 0)
                abort();
        return 0;
}

/* The fake QEMU: every complete command line gets a reply with its id, success or error by id parity. */
static void fake_qemu_answer(int fd)
{
        static char buf[65536];
        static size_t len;
        ssize_t n;
        while ((n = recv(fd, buf + len, sizeof(buf) - len - 1, MSG_DONTWAIT)) > 0) {
                len += (size_t)n;
                char *nl;
                while ((nl = memchr(buf, '\n', len))) {
                        *nl = '\0';
                        cJSON *cmd = cJSON_Parse(buf);
                        const cJSON *id = cJSON_GetObjectItemCaseSensitive(cmd, "id");
                        char reply[256];
                        int m = cJSON_IsNumber(id) && (long long)id->valuedouble % 2
                                    ? snprintf(reply, sizeof(reply),
                                               "{\"error\":{\"class\":\"GenericError\",\"desc\":\"no\"},"
                                               "\"id\":%lld}\n",
                                               (long long)id->valuedouble)
                                    : snprintf(reply, sizeof(reply), "{\"return\":{},\"id\":%lld}\n",
                                               cJSON_IsNumber(id) ? (long long)id->valuedouble : 0LL);
                        cJSON_Delete(cmd);
                        if (send(fd, reply, (size_t)m, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
                                break;
                        size_t used = (size_t)(nl - buf) + 1;
                        memmove(buf, buf + used, len - used);
                        len -= used;
                }
                if (len >= sizeof(buf) - 1)
                        len = 0;
        }
}

static void drain(int fd)
{
        char buf[65536];
        while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
                ;
}

static void pump(supervisor *s, int client, int qemu_peer, int serial_peer)
{
        for (int i = 0; i < 4; i++) {
                loop_run_once(s->loop, 0);
                fake_qemu_answer(qemu_peer);
                drain(serial_peer);
                if (client >= 0)
                        drain(client);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        sup_config cfg = {.run_dir = "/nonexistent", .serial_listen_fd = -1, .control_fd = listen_fd};
        status st;
        status_init(&st, NULL);
        status_set_phase(&st, PHASE_RUNNING, NULL);
        supervisor *s = calloc(1, sizeof(*s));
        int qmp_pair[2] = {-1, -1}, serial_pair[2] = {-1, -1};
        kv_error err = {0};
        if (!s || loop_new(&s->loop) < 0 ||
            socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, qmp_pair) < 0 ||
            socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, serial_pair) < 0)
                abort();
        s->st = &st;
        s->cfg = &cfg;
        s->control_fd = listen_fd;
        s->serial_fd = serial_pair[0];
        ring_append(&s->backlog, "KVGUEST READY\r\n", 15);
        if (qmp_new_from_fd(&s->qmp, qmp_pair[0], &err) < 0 ||
            loop_add(s->loop, qmp_pair[0], qmp_wanted_events(s->qmp), qmp_on_event, s, &s->qmp_src) < 0 ||
            control_start(s) < 0)
                abort();
        stop_requested = false;

        int client = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (client < 0 || connect(client, (struct sockaddr *)&listen_addr, listen_len) < 0)
                abort();
        pump(s, client, qmp_pair[1], serial_pair[1]);
        /* the first byte picks the chunk size, so lines split anywhere */
        size_t step = size ? (size_t)data[0] % 128 + 1 : 1;
        for (size_t off = 1; off < size; off += step) {
                size_t n = off + step > size ? size - off : step;
                if (send(client, data + off, n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 && errno != EAGAIN)
                        break;
                pump(s, client, qmp_pair[1], serial_pair[1]);
        }
        shutdown(client, SHUT_WR);
        pump(s, client, qmp_pair[1], serial_pair[1]);
        close(client);
        pump(s, -1, qmp_pair[1], serial_pair[1]);

        /* teardown in the supervisor's order: clients, QMP (pending requests answered -ECANCELED) */
        control_stop(s);
        if (s->qmp_src)
                loop_remove(s->loop, s->qmp_src);
        qmp_free(s->qmp);
        s->qmp = NULL;
        loop_free(s->loop);
        close(qmp_pair[1]);
        close(serial_pair[0]);
        close(serial_pair[1]);
        status_fini(&st);
        free(s);
        return 0;
}
