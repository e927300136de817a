/* Unit tests for the supervisor's pure pieces: the console ring, the status document and its atomic
 * write, the unix socket helpers, the loop's timers. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#include "loop.h"
#include "macro.h"
#include "ring.h"
#include "status.h"
#include "unixsock.h"

static void collect(const ring *r, char *out)
{
        const char *a, *b;
        size_t alen, blen;
        ring_spans(r, &a, &alen, &b, &blen);
        memcpy(out, a, alen);
        memcpy(out + alen, b, blen);
        out[alen + blen] = '\0';
}

static void test_ring(void)
{
        static ring r;
        static char out[RING_SIZE + 1];
        ring_append(&r, "hello ", 6);
        ring_append(&r, "world", 5);
        collect(&r, out);
        assert(strcmp(out, "hello world") == 0);

        /* wrap: fill with a pattern larger than the ring; only the newest RING_SIZE bytes remain */
        static char big[RING_SIZE + 100];
        for (size_t i = 0; i < sizeof(big); i++)
                big[i] = (char)('a' + i % 26);
        ring_append(&r, big, 1000);
        ring_append(&r, big + 1000, sizeof(big) - 1000);
        assert(r.len == RING_SIZE);
        collect(&r, out);
        assert(memcmp(out, big + 100, RING_SIZE) == 0);

        /* one write larger than the ring */
        static ring r2;
        ring_append(&r2, "x", 1);
        ring_append(&r2, big, sizeof(big));
        collect(&r2, out);
        assert(memcmp(out, big + 100, RING_SIZE) == 0);
}

static void test_status(void)
{
        char dir[] = "/tmp/test-status-XXXXXX";
        assert(mkdtemp(dir));
        char path[100];
        snprintf(path, sizeof(path), "%s/status.json", dir);
        status st;
        status_init(&st, path);
        snprintf(st.name, sizeof(st.name), "vm\"1");
        snprintf(st.accel, sizeof(st.accel), "tcg");
        status_set_condition(&st, COND_SOFTWARE_EMULATION, true, true, "KVMUnusable", "slow");
        status_set_condition(&st, COND_READY, true, true, "", "");
        status_set_phase(&st, PHASE_RUNNING, NULL);
        kv_error err = {0};
        assert(status_write(&st, &err) == 0);

        FILE *f = fopen(path, "r");
        assert(f);
        char buf[4096];
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        assert(buf[n - 1] == '\n');
        cJSON *o = cJSON_Parse(buf);
        assert(o);
        assert(strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(o, "phase")), "Running") == 0);
        assert(strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "vmi"), "name")),
                      "vm\"1") == 0);
        cJSON *conds = cJSON_GetObjectItem(o, "conditions");
        assert(cJSON_GetArraySize(conds) == 2);
        cJSON *ready = cJSON_GetArrayItem(conds, 0);
        assert(strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(ready, "type")), "Ready") == 0);
        assert(strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(ready, "status")), "True") == 0);
        assert(cJSON_IsNull(cJSON_GetObjectItem(ready, "lastProbeTime")));
        assert(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "timestamps"), "running")));
        cJSON_Delete(o);

        /* clearing a condition removes it; a final phase stamps "finished" */
        status_set_condition(&st, COND_READY, false, false, NULL, NULL);
        status_set_phase(&st, PHASE_FAILED, "qemu killed by signal 9 (SIGKILL)");
        o = status_to_json(&st);
        assert(cJSON_GetArraySize(cJSON_GetObjectItem(o, "conditions")) == 1);
        assert(strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(o, "phase")), "Failed") == 0);
        assert(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "timestamps"), "finished")));
        cJSON_Delete(o);

        /* snapshot operations: the last STATUS_MAX_SNAPSHOT_OPS, newest last; rendered only when present */
        o = status_to_json(&st);
        assert(!cJSON_GetObjectItem(o, "snapshotOperations") && !cJSON_GetObjectItem(o, "snapshots"));
        cJSON_Delete(o);
        for (int i = 0; i < STATUS_MAX_SNAPSHOT_OPS + 3; i++)
                status_append_bounded(&st.snapshot_operations, cJSON_CreateNumber(i),
                                      STATUS_MAX_SNAPSHOT_OPS);
        status_set_json(&st.snapshots, cJSON_CreateArray());
        o = status_to_json(&st);
        cJSON *ops = cJSON_GetObjectItem(o, "snapshotOperations");
        assert(cJSON_GetArraySize(ops) == STATUS_MAX_SNAPSHOT_OPS);
        assert(cJSON_GetArrayItem(ops, 0)->valueint == 3);
        assert(cJSON_GetArrayItem(ops, STATUS_MAX_SNAPSHOT_OPS - 1)->valueint == STATUS_MAX_SNAPSHOT_OPS + 2);
        assert(cJSON_IsArray(cJSON_GetObjectItem(o, "snapshots")));
        cJSON_Delete(o);
        char when[40];
        rfc3339_at(86400 + 61, when, sizeof(when));
        assert(!strcmp(when, "1970-01-02T00:01:01Z"));

        unlink(path);
        rmdir(dir);
        status_fini(&st);
}

static void test_unix_socket(void)
{
        char dir[] = "/tmp/test-unixsock-XXXXXX";
        assert(mkdtemp(dir));
        char path[100];
        snprintf(path, sizeof(path), "%s/a,b.sock", dir);
        kv_error err = {0};
        _cleanup_close_ int l = unix_listen(path, 0600, &err);
        assert(l >= 0);
        struct stat sb;
        assert(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0600);
        _cleanup_close_ int c = unix_connect(path, &err);
        assert(c >= 0);
        assert(unix_peer_allowed(c));
        /* a stale socket file is replaced */
        _cleanup_close_ int l2 = unix_listen(path, 0600, &err);
        assert(l2 >= 0);
        char longpath[200];
        memset(longpath, 'x', sizeof(longpath) - 1);
        longpath[0] = '/';
        longpath[sizeof(longpath) - 1] = '\0';
        assert(unix_listen(longpath, 0600, &err) == -ENAMETOOLONG);
        assert(strstr(err.msg, "longer than"));
        unlink(path);
        rmdir(dir);
}

/* Timers record the order they fired in; the loop's fds are a pipe, to see timers and fds mix. */
typedef struct timer_probe {
        loop *l;
        char order[16];
        int fired;
        loop_timer rearm_target; /* re-armed from a callback */
} timer_probe;

static void note(timer_probe *p, char c)
{
        p->order[p->fired++] = c;
}

static void on_a(loop_timer *t, void *data)
{
        note(data, 'a');
}

static void on_b(loop_timer *t, void *data)
{
        note(data, 'b');
}

static void on_c(loop_timer *t, void *data)
{
        note(data, 'c');
}

/* Re-arms itself with delay 0: must fire once per loop iteration, not spin inside one. */
static void on_again(loop_timer *t, void *data)
{
        timer_probe *p = data;
        note(p, 'r');
        loop_timer_arm(p->l, t, 0, on_again, p);
}

static void on_pipe(loop_source *src, int fd, uint32_t events, void *data)
{
        char buf[8];
        assert(read(fd, buf, sizeof(buf)) == 1);
        note(data, 'p');
}

static void test_loop_timers(void)
{
        timer_probe p = {0};
        assert(loop_new(&p.l) == 0);
        assert(loop_next_timer_ms(p.l) == -1);
        loop_timer a = {0}, b = {0}, c = {0};
        loop_timer_arm(p.l, &c, 60, on_c, &p);
        loop_timer_arm(p.l, &a, 20, on_a, &p);
        loop_timer_arm(p.l, &b, 40, on_b, &p);
        int next = loop_next_timer_ms(p.l);
        assert(next > 0 && next <= 20);
        loop_timer_disarm(p.l, &b);
        loop_timer_disarm(p.l, &b); /* twice: harmless */
        assert(!b.armed);
        /* the earliest timer bounds the wait although the caller would wait forever */
        int64_t t0 = loop_now_ms();
        while (p.fired < 2)
                assert(loop_run_once(p.l, -1) >= 0);
        assert(!strcmp(p.order, "ac"));
        assert(loop_now_ms() - t0 >= 60);
        assert(!a.armed && !c.armed && loop_next_timer_ms(p.l) == -1);

        /* re-arming moves a timer; equal due times keep arming order */
        p = (timer_probe){.l = p.l};
        loop_timer_arm(p.l, &a, 10000, on_a, &p);
        loop_timer_arm(p.l, &b, 0, on_b, &p);
        loop_timer_arm(p.l, &c, 0, on_c, &p);
        loop_timer_arm(p.l, &a, 0, on_a, &p);
        assert(loop_run_once(p.l, 1000) == 0);
        assert(!strcmp(p.order, "bca"));

        /* a self re-arming 0 ms timer lets the fds in between: one firing per iteration */
        int pfd[2];
        assert(pipe(pfd) == 0);
        assert(loop_add(p.l, pfd[0], EPOLLIN, on_pipe, &p, NULL) == 0);
        p = (timer_probe){.l = p.l};
        loop_timer_arm(p.l, &p.rearm_target, 0, on_again, &p);
        assert(loop_run_once(p.l, 1000) == 0);
        assert(write(pfd[1], "x", 1) == 1);
        assert(loop_run_once(p.l, 1000) == 1);
        assert(!strcmp(p.order, "rpr"));
        loop_timer_disarm(p.l, &p.rearm_target);
        assert(loop_next_timer_ms(p.l) == -1);
        close(pfd[1]);
        loop_free(p.l);
        close(pfd[0]);
}

int main(void)
{
        test_loop_timers();
        test_ring();
        test_status();
        test_unix_socket();
        printf("ok\n");
        return 0;
}
