/* libqmp against hostile fake peers (forked processes serving a unix or TCP socket): garbage, half
 * lines, 10 MiB lines, closing or resetting mid-reply, silence (timeouts), stray replies, event floods.
 * Every case must end in a clean error code and message: no crash, no hang, no leak (ASan). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "macro.h"
#include "test-util.h"
#include "qmp.h"

#define GREETING                                                                                             \
        "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}}, \"capabilities\": " \
        "[]}}\r\n"
#define TEN_MIB (10u * 1024 * 1024)

typedef void (*peer_fn)(int conn);

static char sock_path[108];

/* --- the peer side (runs in the child) -------------------------------------------------------------- */

static void peer_send(int c, const void *buf, size_t len)
{
        const char *p = buf;
        while (len > 0) {
                ssize_t n = send(c, p, len, MSG_NOSIGNAL);
                if (n <= 0)
                        return; /* the client hung up on us: expected in several cases */
                p += n;
                len -= (size_t)n;
        }
}

static void peer_str(int c, const char *s)
{
        peer_send(c, s, strlen(s));
}

/* Read one command (a JSON object: libqmp sends no newline) and return its id (-1 on EOF). */
static long peer_read_id(int c)
{
        char line[65536];
        size_t n = 0;
        int depth = 0;
        bool in_string = false, escaped = false;
        while (n < sizeof(line) - 1 && recv(c, line + n, 1, 0) == 1) {
                char ch = line[n++];
                if (in_string) {
                        in_string = escaped || ch != '"';
                        escaped = !escaped && ch == '\\';
                } else if (ch == '"')
                        in_string = true;
                else if ((depth += (ch == '{') - (ch == '}')) == 0 && ch == '}')
                        break;
        }
        line[n] = '\0';
        cJSON *cmd = cJSON_Parse(line);
        long id = cmd ? (long)cJSON_GetNumberValue(cJSON_GetObjectItem(cmd, "id")) : -1;
        cJSON_Delete(cmd);
        return id;
}

static void peer_reply(int c, long id, const char *ret)
{
        char buf[512];
        snprintf(buf, sizeof(buf), "{\"return\": %s, \"id\": %ld}\n", ret, id);
        peer_str(c, buf);
}

static void peer_greet(int c)
{
        peer_str(c, GREETING);
        peer_reply(c, peer_read_id(c), "{}");
}

static void peer_garbage(int c)
{
        peer_str(c, "this is not QMP\n");
}

static void peer_half_greeting(int c)
{
        peer_str(c, "{\"QMP\": {\"vers");
}

static void peer_reply_first(int c)
{
        peer_str(c, "{\"return\": {}, \"id\": 1}\n" GREETING);
}

static void peer_silent_then_late(int c)
{
        peer_greet(c);
        long first = peer_read_id(c);  /* never answered in time */
        long second = peer_read_id(c); /* sent after the first timed out */
        char ret[32];
        peer_reply(c, first, "\"late\"");
        snprintf(ret, sizeof(ret), "[\"second\", %ld]", second); /* tell the client the wire id it used */
        peer_reply(c, second, ret);
        long third = peer_read_id(c);
        snprintf(ret, sizeof(ret), "[\"third\", %ld]", third);
        peer_reply(c, third, ret);
        peer_read_id(c);
}

static void peer_big_line(int c, bool valid)
{
        peer_greet(c);
        long id = peer_read_id(c);
        char head[64];
        snprintf(head, sizeof(head), valid ? "{\"id\": %ld, \"return\": \"" : "%ld", id);
        char *big = malloc(TEN_MIB);
        memset(big, 'x', TEN_MIB);
        peer_str(c, head);
        peer_send(c, big, TEN_MIB);
        peer_str(c, valid ? "\"}\n" : "\n");
        free(big);
        peer_read_id(c);
}

static void peer_big_garbage(int c)
{
        peer_big_line(c, false);
}

static void peer_big_valid(int c)
{
        peer_big_line(c, true);
}

static void peer_close_mid_reply(int c)
{
        peer_greet(c);
        peer_read_id(c);
        peer_str(c, "{\"return\": {\"sta");
}

static void peer_reset(int c)
{
        peer_greet(c);
        peer_read_id(c);
        /* unread data + SO_LINGER 0 makes close() send an RST */
        struct linger l = {.l_onoff = 1, .l_linger = 0};
        setsockopt(c, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
}

static void peer_noise_then_reply(int c)
{
        peer_greet(c);
        long id = peer_read_id(c);
        peer_str(c, "{\"event\": \"X\", \"timestamp\": {\"seconds\": 1, \"microseconds\": 0}}\n");
        peer_reply(c, id + 1000, "\"stray\"");
        peer_str(c, "{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error\"}}\n");
        peer_str(c, "{\"event\": \"DEVICE_DELETED\", \"data\": {\"path\": "
                    "\"/machine/peripheral/vdisk1/virtio-backend\"}}\n");
        peer_str(c, "{\"event\": \"DEVICE_DELETED\", \"data\": {\"device\": \"other\"}}\r\n\r\n");
        peer_str(c, "{\"event\": \"DEVICE_DELETED\", \"data\": {\"device\": \"vdisk1\"}}\n");
        peer_reply(c, id, "{}");
        id = peer_read_id(c);
        peer_str(c, "{\"id\": ");
        char buf[256];
        snprintf(buf, sizeof(buf),
                 "%ld, \"error\": {\"class\": \"DeviceNotFound\", \"desc\": \"Device 'x' not found\"}}\n",
                 id);
        peer_str(c, buf);
        peer_read_id(c);
}

static void peer_close_after_reading(int c)
{
        peer_greet(c);
        for (int i = 0; i < 3; i++)
                peer_read_id(c);
}

static void peer_flood(int c)
{
        peer_greet(c);
        long id = peer_read_id(c);
        for (int i = 0; i < 5000; i++)
                peer_str(c, "{\"event\": \"FLOOD\"}\n");
        peer_reply(c, id, "{}");
        peer_read_id(c);
}

/* Receives the command together with an fd and tells whether one came. */
static void peer_fd(int c)
{
        peer_greet(c);
        char line[4096], control[CMSG_SPACE(sizeof(int))];
        struct iovec iov = {.iov_base = line, .iov_len = sizeof(line) - 1};
        struct msghdr mh = {
            .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof(control)};
        ssize_t n = recvmsg(c, &mh, 0);
        struct cmsghdr *cm = n > 0 ? CMSG_FIRSTHDR(&mh) : NULL;
        bool got = cm && cm->cmsg_type == SCM_RIGHTS;
        char buf[128];
        if (got) {
                int fd;
                memcpy(&fd, CMSG_DATA(cm), sizeof(fd));
                got = write(fd, "via-scm", 7) == 7;
                close(fd);
        }
        line[n > 0 ? n : 0] = '\0';
        cJSON *cmd = cJSON_Parse(line);
        snprintf(buf, sizeof(buf), "{\"got_fd\": %s}", got ? "true" : "false");
        peer_reply(c, (long)cJSON_GetNumberValue(cJSON_GetObjectItem(cmd, "id")), buf);
        cJSON_Delete(cmd);
        peer_read_id(c);
}

static pid_t peer_spawn(int listener, peer_fn fn)
{
        pid_t pid = fork();
        if (pid == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                alarm(30);
                int c = accept(listener, NULL, NULL);
                close(listener);
                fn(c);
                close(c);
                _exit(0); /* no atexit/LSan in the child: it is a throwaway */
        }
        close(listener);
        return pid;
}

static pid_t peer_start_unix(peer_fn fn)
{
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        snprintf(sock_path, sizeof(sock_path), "/tmp/kvqmp-hostile-%d.sock", (int)getpid());
        memcpy(sun.sun_path, sock_path, strlen(sock_path) + 1);
        unlink(sock_path);
        int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (bind(s, (struct sockaddr *)&sun, sizeof(sun)) < 0 || listen(s, 1) < 0)
                abort();
        return peer_spawn(s, fn);
}

static void peer_end(pid_t pid)
{
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        unlink(sock_path);
}

/* --- the client side ------------------------------------------------------------------------------- */

static qmp *client(kv_error *err)
{
        qmp *q = NULL;
        if (qmp_connect_unix(&q, sock_path, 5000, err) < 0)
                return NULL;
        return q;
}

/* Connect, negotiate, run one command; returns its result code and leaves err filled. */
static int one_command(peer_fn fn, size_t max_line, kv_error *err, cJSON **ret)
{
        pid_t pid = peer_start_unix(fn);
        qmp *q = client(err);
        int r = -EIO;
        if (q) {
                if (max_line)
                        qmp_set_max_line(q, max_line);
                r = qmp_handshake(q, 5000, err);
                if (r == 0)
                        r = qmp_execute(q, "query-status", NULL, 5000, ret, err);
        }
        qmp_free(q);
        peer_end(pid);
        return r;
}

static void test_greeting_failures(void)
{
        kv_error err = {0};
        CHECK(one_command(peer_garbage, 0, &err, NULL) == -EPROTO);
        CHECK(strstr(err.msg, "invalid JSON") != NULL);
        CHECK(one_command(peer_half_greeting, 0, &err, NULL) == -ECONNRESET);
        CHECK(strstr(err.msg, "middle of a message") != NULL);
        CHECK(one_command(peer_reply_first, 0, &err, NULL) == -EPROTO);
        CHECK(strstr(err.msg, "greeting") != NULL);
}

static void test_big_lines(void)
{
        kv_error err = {0};
        cJSON *ret = NULL;
        CHECK(one_command(peer_big_garbage, 0, &err, NULL) == -EPROTO);
        CHECK(one_command(peer_big_garbage, 1024 * 1024, &err, NULL) == -E2BIG);
        CHECK(strstr(err.msg, "exceeds 1048576 bytes") != NULL);
        /* a large but valid reply within the limit is fine */
        CHECK(one_command(peer_big_valid, 0, &err, &ret) == 0);
        CHECK(cJSON_IsString(ret) && strlen(ret->valuestring) == TEN_MIB);
        cJSON_Delete(ret);
}

static void test_disconnects(void)
{
        kv_error err = {0};
        CHECK(one_command(peer_close_mid_reply, 0, &err, NULL) == -ECONNRESET);
        CHECK(strstr(err.msg, "middle of a message") != NULL);
        CHECK(one_command(peer_reset, 0, &err, NULL) == -ECONNRESET);
}

static void test_timeout_then_late_reply(void)
{
        pid_t pid = peer_start_unix(peer_silent_then_late);
        kv_error err = {0};
        cJSON *ret = NULL;
        qmp *q = client(&err);
        CHECK(q && qmp_handshake(q, 5000, &err) == 0);
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        CHECK(qmp_execute(q, "query-status", NULL, 200, NULL, &err) == -ETIMEDOUT);
        clock_gettime(CLOCK_MONOTONIC, &b);
        long ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
        CHECK(ms >= 190 && ms < 2000);
        CHECK(strstr(err.msg, "timed out after 200 ms") != NULL);
        /* The late reply to the first command is ignored; the second gets its own. While the first's reply
         * may still come, its wire id 0 is not reused (the second goes out as 1); once that late reply is
         * in, 0 is free again, so the third goes out as 0. */
        CHECK(qmp_execute(q, "query-status", NULL, 5000, &ret, &err) == 0);
        CHECK(cJSON_IsArray(ret) && !strcmp(cJSON_GetArrayItem(ret, 0)->valuestring, "second"));
        CHECK(cJSON_GetNumberValue(cJSON_GetArrayItem(ret, 1)) == 1);
        cJSON_Delete(ret);
        CHECK(qmp_execute(q, "query-status", NULL, 5000, &ret, &err) == 0);
        CHECK(cJSON_IsArray(ret) && !strcmp(cJSON_GetArrayItem(ret, 0)->valuestring, "third"));
        CHECK(cJSON_GetNumberValue(cJSON_GetArrayItem(ret, 1)) == 0);
        cJSON_Delete(ret);
        qmp_free(q);
        peer_end(pid);
}

static void test_noise(void)
{
        pid_t pid = peer_start_unix(peer_noise_then_reply);
        kv_error err = {0};
        cJSON *ev = NULL;
        qmp *q = client(&err);
        CHECK(q && qmp_handshake(q, 5000, &err) == 0);
        CHECK(qmp_execute(q, "device_del", cJSON_Parse("{\"id\":\"vdisk1\"}"), 5000, NULL, &err) == 0);
        CHECK(qmp_wait_event(q, "DEVICE_DELETED", "device", "vdisk1", 1000, &ev, &err) == 0);
        CHECK(ev &&
              !strcmp(cJSON_GetObjectItem(cJSON_GetObjectItem(ev, "data"), "device")->valuestring, "vdisk1"));
        cJSON_Delete(ev);
        /* the rest stayed queued, in order */
        const char *expect[] = {"X", "DEVICE_DELETED", "DEVICE_DELETED"};
        for (size_t i = 0; i < ARRAY_SIZE(expect); i++) {
                ev = qmp_event_pop(q);
                CHECK(ev && !strcmp(cJSON_GetObjectItem(ev, "event")->valuestring, expect[i]));
                cJSON_Delete(ev);
        }
        CHECK(qmp_event_pop(q) == NULL);
        CHECK(qmp_execute(q, "device_del", NULL, 5000, NULL, &err) == -EREMOTEIO);
        CHECK(qmp_error_class(&err) && !strcmp(qmp_error_class(&err), "DeviceNotFound"));
        CHECK(!strcmp(qmp_error_desc(&err), "Device 'x' not found"));
        qmp_free(q);
        peer_end(pid);
}

static int callbacks, reset_errors, cancelled;

static void count_cb(qmp *q, const cJSON *ret, const kv_error *err, void *ud)
{
        callbacks++;
        if (err && err->code == ECONNRESET)
                reset_errors++;
        if (err && err->code == ECANCELED)
                cancelled++;
}

static void test_pending_on_disconnect(void)
{
        pid_t pid = peer_start_unix(peer_close_after_reading);
        kv_error err = {0};
        qmp *q = client(&err);
        CHECK(q && qmp_handshake(q, 5000, &err) == 0);
        for (int i = 0; i < 3; i++)
                CHECK(qmp_send(q, "query-status", NULL, -1, 0, count_cb, NULL, &err) > 0);
        CHECK(qmp_wait_event_async(q, "NEVER", NULL, NULL, 0, (qmp_event_wait_cb)count_cb, NULL, &err) > 0);
        /* the peer closes after reading all three: every callback hears about it exactly once */
        int r = qmp_wait_event(q, "NEVER2", NULL, NULL, 5000, NULL, &err);
        CHECK(r == -ECONNRESET);
        CHECK(callbacks == 4 && reset_errors == 4);
        CHECK(qmp_send(q, "x", NULL, -1, 0, count_cb, NULL, &err) == -ECONNRESET);
        CHECK(qmp_handle_io(q, 1, &err) == -ECONNRESET);
        CHECK(callbacks == 4);
        qmp_free(q);
        peer_end(pid);
}

static void test_free_with_pending(void)
{
        pid_t pid = peer_start_unix(peer_close_after_reading);
        kv_error err = {0};
        qmp *q = client(&err);
        CHECK(q && qmp_handshake(q, 5000, &err) == 0);
        callbacks = cancelled = 0;
        CHECK(qmp_send(q, "query-status", NULL, -1, 0, count_cb, NULL, &err) > 0);
        qmp_free(q);
        CHECK(callbacks == 1 && cancelled == 1);
        peer_end(pid);
}

static void test_flood(void)
{
        pid_t pid = peer_start_unix(peer_flood);
        kv_error err = {0};
        qmp *q = client(&err);
        CHECK(q && qmp_handshake(q, 5000, &err) == 0);
        CHECK(qmp_execute(q, "query-status", NULL, 5000, NULL, &err) == 0);
        CHECK(qmp_events_dropped(q) == 5000 - 4096);
        qmp_free(q);
        peer_end(pid);
}

static void test_fd_to_peer(void)
{
        pid_t pid = peer_start_unix(peer_fd);
        kv_error err = {0};
        cJSON *ret = NULL;
        int p[2];
        CHECK(pipe(p) == 0);
        qmp *q = client(&err);
        CHECK(q && qmp_handshake(q, 5000, &err) == 0);
        CHECK(qmp_execute_with_fd(q, "getfd", cJSON_Parse("{\"fdname\":\"x\"}"), p[1], 5000, &ret, &err) ==
              0);
        CHECK(cJSON_IsTrue(cJSON_GetObjectItem(ret, "got_fd")));
        char buf[8] = {0};
        CHECK(read(p[0], buf, 7) == 7 && !strcmp(buf, "via-scm"));
        cJSON_Delete(ret);
        close(p[0]);
        close(p[1]);
        qmp_free(q);
        peer_end(pid);
}

static void test_tcp(void)
{
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t sl = sizeof(sin);
        int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        CHECK(bind(s, (struct sockaddr *)&sin, sizeof(sin)) == 0 && listen(s, 1) == 0);
        getsockname(s, (struct sockaddr *)&sin, &sl);
        pid_t pid = peer_spawn(s, peer_silent_then_late);
        kv_error err = {0};
        qmp *q = NULL;
        CHECK(qmp_connect_tcp(&q, "127.0.0.1", ntohs(sin.sin_port), 5000, &err) == 0);
        CHECK(q && qmp_handshake(q, 5000, &err) == 0);
        CHECK(q && qmp_execute(q, "a", NULL, 100, NULL, &err) == -ETIMEDOUT);
        qmp_free(q);
        peer_end(pid);
        /* nothing listens there any more: a single attempt fails at once */
        CHECK(qmp_connect_tcp(&q, "127.0.0.1", ntohs(sin.sin_port), 0, &err) == -ECONNREFUSED);
        CHECK(qmp_connect_unix(&q, "/nonexistent/qmp.sock", 0, &err) == -ENOENT);
        CHECK(strstr(err.msg, "/nonexistent/qmp.sock") != NULL);
}

int main(void)
{
        test_greeting_failures();
        test_big_lines();
        test_disconnects();
        test_timeout_then_late_reply();
        test_noise();
        test_pending_on_disconnect();
        test_free_with_pending();
        test_flood();
        test_fd_to_peer();
        test_tcp();
        return test_exit();
}
