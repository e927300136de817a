/* Unit tests for the supervisor's pure pieces: the console ring, the status document and its atomic
 * write, the unix socket helpers, the reporter's forwarding decisions (vmifwd), the loop's timers. */
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
#include "vmifwd.h"

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

/* Decides on vmi_json with the launcher's status launcher_json; returns the request's kind and prints
 * the request (without id) into out. */
static fwd_kind decide(fwd_state *st, const char *vmi_json, const char *launcher_json, char *out, size_t size,
                       bool commit)
{
        cJSON *v = vmi_json ? cJSON_Parse(vmi_json) : NULL, *l = launcher_json ? cJSON_Parse(launcher_json) : NULL;
        fwd_request req;
        out[0] = '\0';
        int r = fwd_next(st, v, l, "pod-a", &req);
        cJSON_Delete(v);
        cJSON_Delete(l);
        if (r <= 0)
                return FWD_NONE;
        _cleanup_free_ char *text = cJSON_PrintUnformatted(req.req);
        snprintf(out, size, "%s", text);
        fwd_kind kind = req.kind;
        if (commit)
                fwd_commit(st, &req);
        fwd_request_free(&req);
        return kind;
}

static void test_fwd(void)
{
        fwd_state st = {0};
        char out[4096];
        const char *running = "{\"phase\":\"Running\"}";
        const char *vmi = "{\"metadata\":{\"name\":\"v\",\"managedFields\":[1]},\"spec\":{\"a\":1,\"b\":2},"
                          "\"status\":{\"phase\":\"Running\"}}";
        /* nothing before the launcher runs (a migration target is Scheduled), nor without a VMI */
        assert(decide(&st, vmi, "{\"phase\":\"Scheduled\"}", out, sizeof(out), true) == FWD_NONE);
        assert(decide(&st, vmi, NULL, out, sizeof(out), true) == FWD_NONE);
        assert(decide(&st, NULL, running, out, sizeof(out), true) == FWD_NONE);
        assert(decide(&st, "[1]", running, out, sizeof(out), true) == FWD_NONE);
        /* the first spec goes (the launcher diffs it against its boot spec), without status/managedFields */
        assert(decide(&st, vmi, running, out, sizeof(out), true) == FWD_APPLY);
        assert(!strcmp(out, "{\"cmd\":\"apply\",\"args\":{\"vmi\":{\"metadata\":{\"name\":\"v\"},"
                            "\"spec\":{\"a\":1,\"b\":2}}}}"));
        /* the same spec, in another key order, is not sent again; a changed one is */
        assert(decide(&st, "{\"spec\":{\"b\":2,\"a\":1}}", running, out, sizeof(out), true) == FWD_NONE);
        assert(decide(&st, "{\"spec\":{\"a\":1,\"b\":3}}", running, out, sizeof(out), false) == FWD_APPLY);
        assert(decide(&st, "{\"spec\":{\"a\":1,\"b\":3}}", running, out, sizeof(out), true) == FWD_APPLY);
        assert(decide(&st, "{\"spec\":{\"a\":1,\"b\":3}}", running, out, sizeof(out), true) == FWD_NONE);

        /* migration start: ours (sourcePod), with an address, not ended; once per migrationUid */
        const char *mig = "{\"spec\":{\"a\":1,\"b\":3},\"status\":{\"migrationState\":{\"migrationUid\":\"u1\","
                          "\"sourcePod\":\"pod-a\",\"targetNodeAddress\":\"10.1.2.3\"}}}";
        assert(decide(&st, mig, running, out, sizeof(out), true) == FWD_MIGRATE);
        assert(!strcmp(out, "{\"cmd\":\"migrate\",\"args\":{\"uri\":\"tcp:10.1.2.3:49152\",\"nbdHost\":"
                            "\"10.1.2.3\",\"nbdPort\":49153,\"migrationUid\":\"u1\"}}"));
        assert(decide(&st, mig, running, out, sizeof(out), true) == FWD_NONE);
        /* the launcher's status names the uid (a restarted reporter): not again either */
        fwd_state fresh = {.spec = cJSON_Parse("{\"a\":1,\"b\":3}")};
        const char *lmig = "{\"phase\":\"Running\",\"migrationState\":{\"migrationUid\":\"u1\"}}";
        assert(decide(&fresh, mig, lmig, out, sizeof(out), true) == FWD_NONE);
        /* ... and, while it runs, no apply: a spec change waits for the end */
        assert(decide(&fresh, "{\"spec\":{\"c\":1}}", lmig, out, sizeof(out), true) == FWD_NONE);
        fwd_state_free(&fresh);
        const char *other_pod = "{\"status\":{\"migrationState\":{\"migrationUid\":\"u2\",\"sourcePod\":\"pod-b\","
                                "\"targetNodeAddress\":\"10.1.2.3\"}},\"spec\":{\"a\":1,\"b\":3}}";
        assert(decide(&st, other_pod, running, out, sizeof(out), true) == FWD_NONE);
        const char *bad[] = {
            "{\"status\":{\"migrationState\":{\"migrationUid\":\"u3\",\"sourcePod\":\"pod-a\"}}}",
            "{\"status\":{\"migrationState\":{\"migrationUid\":\"u3\",\"sourcePod\":\"pod-a\",\"targetNodeAddress\":"
            "\"1.2.3.4,x=y\"}}}",
            "{\"status\":{\"migrationState\":{\"migrationUid\":3,\"sourcePod\":\"pod-a\",\"targetNodeAddress\":\"h\"}}}",
            "{\"status\":{\"migrationState\":{\"migrationUid\":\"u3\",\"sourcePod\":\"pod-a\",\"targetNodeAddress\":"
            "\"h\",\"completed\":true}}}",
            "{\"status\":{\"migrationState\":{\"migrationUid\":\"u3\",\"sourcePod\":\"pod-a\",\"targetNodeAddress\":"
            "\"h\",\"abortRequested\":true}}}",
            "{\"status\":{\"migrationState\":[]}}",
            "{\"status\":7}",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                assert(decide(&st, bad[i], running, out, sizeof(out), false) == FWD_NONE);
        /* IPv6: brackets in the URI only */
        const char *v6 = "{\"status\":{\"migrationState\":{\"migrationUid\":\"u4\",\"sourcePod\":\"pod-a\","
                         "\"targetNodeAddress\":\"fd00::5\"}}}";
        assert(decide(&st, v6, running, out, sizeof(out), false) == FWD_MIGRATE);
        assert(strstr(out, "\"uri\":\"tcp:[fd00::5]:49152\",\"nbdHost\":\"fd00::5\""));

        /* abort: for the migration the launcher runs, once */
        const char *abort = "{\"status\":{\"migrationState\":{\"migrationUid\":\"u1\",\"sourcePod\":\"pod-a\","
                            "\"targetNodeAddress\":\"10.1.2.3\",\"abortRequested\":true}}}";
        assert(decide(&st, abort, running, out, sizeof(out), true) == FWD_NONE); /* launcher not migrating */
        assert(decide(&st, abort, lmig, out, sizeof(out), true) == FWD_CANCEL);
        assert(!strcmp(out, "{\"cmd\":\"migrate-cancel\"}"));
        assert(decide(&st, abort, lmig, out, sizeof(out), true) == FWD_NONE);
        fwd_state_free(&st);
}

/* The controller's migrationConfiguration (cluster defaults ← MigrationPolicy) goes to the launcher as
 * migrate's args.config, unchanged; one that is not an object is left out. */
static void test_fwd_migration_config(void)
{
        fwd_state st = {0};
        char out[4096];
        const char *running = "{\"phase\":\"Running\"}";
        const char *mig = "{\"status\":{\"migrationState\":{\"migrationUid\":\"u1\",\"sourcePod\":\"pod-a\","
                          "\"targetNodeAddress\":\"10.1.2.3\",\"migrationPolicyName\":\"slow\","
                          "\"migrationConfiguration\":{\"allowAutoConverge\":true,\"allowPostCopy\":false,"
                          "\"bandwidthPerMigration\":1048576,\"completionTimeoutPerGiB\":60,"
                          "\"progressTimeout\":150}}}}";
        assert(decide(&st, mig, running, out, sizeof(out), false) == FWD_MIGRATE);
        assert(!strcmp(out, "{\"cmd\":\"migrate\",\"args\":{\"uri\":\"tcp:10.1.2.3:49152\",\"nbdHost\":"
                            "\"10.1.2.3\",\"nbdPort\":49153,\"migrationUid\":\"u1\",\"config\":{"
                            "\"allowAutoConverge\":true,\"allowPostCopy\":false,\"bandwidthPerMigration\":1048576,"
                            "\"completionTimeoutPerGiB\":60,\"progressTimeout\":150}}}"));
        const char *odd = "{\"status\":{\"migrationState\":{\"migrationUid\":\"u2\",\"sourcePod\":\"pod-a\","
                          "\"targetNodeAddress\":\"h\",\"migrationConfiguration\":\"fast\"}}}";
        assert(decide(&st, odd, running, out, sizeof(out), false) == FWD_MIGRATE);
        assert(!strstr(out, "config"));
        fwd_state_free(&st);
}

/* A VMI whose kvlite.io/snapshot-requests annotation is reqs (JSON text, escaped here), with migrationState ms
 * (NULL: none). */
static char *snap_vmi(const char *reqs, const char *ms)
{
        cJSON *v = cJSON_CreateObject();
        cJSON *ann = cJSON_AddObjectToObject(cJSON_AddObjectToObject(v, "metadata"), "annotations");
        cJSON_AddStringToObject(ann, FWD_SNAPSHOT_ANNOTATION, reqs);
        cJSON_AddItemToObject(v, "spec", cJSON_Parse("{\"a\":1}"));
        if (ms)
                cJSON_AddItemToObject(cJSON_AddObjectToObject(v, "status"), "migrationState", cJSON_Parse(ms));
        char *text = cJSON_PrintUnformatted(v);
        cJSON_Delete(v);
        return text;
}

static void count_skipped(const char *why, void *ud)
{
        (*(int *)ud)++;
        assert(strstr(why, FWD_SNAPSHOT_ANNOTATION "[") && strstr(why, "skipped"));
}

/* docs/cluster-snapshots.md: the first entry not yet reported, in order, one at a time; never during a
 * migration; malformed entries skipped (and logged once). */
static void test_fwd_snapshots(void)
{
        fwd_state st = {.spec = cJSON_Parse("{\"a\":1}")}; /* the spec was forwarded already */
        char out[4096];
        const char *running = "{\"phase\":\"Running\"}";
        const char *reqs = "[{\"id\":\"s1\",\"op\":\"save\",\"tag\":\"t1\"},"
                           "{\"id\":\"r1\",\"op\":\"load\",\"tag\":\"t1\"},"
                           "{\"id\":\"s1-del\",\"op\":\"delete\",\"tag\":\"t1\"}]";
        _cleanup_free_ char *vmi = snap_vmi(reqs, NULL);
        /* not before the launcher runs */
        assert(decide(&st, vmi, "{\"phase\":\"Scheduled\"}", out, sizeof(out), false) == FWD_NONE);
        /* in array order, each once the previous one is answered */
        assert(decide(&st, vmi, running, out, sizeof(out), true) == FWD_SNAPSHOT);
        assert(!strcmp(out, "{\"cmd\":\"snapshot-save\",\"args\":{\"tag\":\"t1\",\"id\":\"s1\"}}"));
        assert(decide(&st, vmi, running, out, sizeof(out), true) == FWD_SNAPSHOT);
        assert(!strcmp(out, "{\"cmd\":\"snapshot-load\",\"args\":{\"tag\":\"t1\",\"id\":\"r1\"}}"));
        assert(decide(&st, vmi, running, out, sizeof(out), true) == FWD_SNAPSHOT);
        assert(!strcmp(out, "{\"cmd\":\"snapshot-delete\",\"args\":{\"tag\":\"t1\",\"id\":\"s1-del\"}}"));
        assert(decide(&st, vmi, running, out, sizeof(out), true) == FWD_NONE);

        /* a restarted reporter goes by the launcher's snapshotOperations: reported ids are never sent again */
        fwd_state fresh = {.spec = cJSON_Parse("{\"a\":1}")};
        const char *reported = "{\"phase\":\"Running\",\"snapshotOperations\":[{\"id\":\"s1\",\"op\":"
                               "\"save\",\"tag\":\"t1\",\"phase\":\"Succeeded\"},{\"id\":\"r1\",\"phase\":"
                               "\"Failed\"}]}";
        assert(decide(&fresh, vmi, reported, out, sizeof(out), false) == FWD_SNAPSHOT);
        assert(strstr(out, "\"id\":\"s1-del\""));

        /* none during a migration: the launcher's, or the VMI's from the controller's hand-over on */
        const char *lmig = "{\"phase\":\"Running\",\"migrationState\":{\"migrationUid\":\"u1\"}}";
        assert(decide(&fresh, vmi, lmig, out, sizeof(out), false) == FWD_NONE);
        _cleanup_free_ char *vmig = snap_vmi(reqs, "{\"migrationUid\":\"u9\",\"sourcePod\":\"pod-b\"}");
        assert(decide(&fresh, vmig, running, out, sizeof(out), false) == FWD_NONE);
        /* ... a finished one does not hold them up */
        _cleanup_free_ char *vdone = snap_vmi(reqs, "{\"migrationUid\":\"u9\",\"completed\":true}");
        assert(decide(&fresh, vdone, running, out, sizeof(out), false) == FWD_SNAPSHOT);
        _cleanup_free_ char *vfail = snap_vmi(reqs, "{\"migrationUid\":\"u9\",\"failed\":true}");
        assert(decide(&fresh, vfail, running, out, sizeof(out), false) == FWD_SNAPSHOT);
        fwd_state_free(&fresh);

        /* malformed entries are skipped, the good one after them goes */
        char longid[FWD_SNAPSHOT_ID_MAX + 2];
        memset(longid, 'i', sizeof(longid) - 1);
        longid[sizeof(longid) - 1] = '\0';
        char bad[2048];
        snprintf(bad, sizeof(bad),
                 "[7,\"x\",{\"op\":\"save\",\"tag\":\"t\"},{\"id\":5,\"op\":\"save\",\"tag\":\"t\"},"
                 "{\"id\":\"\",\"op\":\"save\",\"tag\":\"t\"},{\"id\":\"%s\",\"op\":\"save\",\"tag\":\"t\"},"
                 "{\"id\":\"a\",\"op\":\"revert\",\"tag\":\"t\"},{\"id\":\"b\",\"op\":\"save\"},"
                 "{\"id\":\"c\",\"op\":\"save\",\"tag\":\"a b\"},{\"id\":\"d\",\"op\":\"save\",\"tag\":\"\"},"
                 "{\"id\":\"e\",\"op\":\"save\",\"tag\":\"../x\"},{\"id\":\"f\",\"op\":\"save\",\"tag\":3},"
                 "{\"id\":\"ok\",\"op\":\"save\",\"tag\":\"A-z_0.9\"}]",
                 longid);
        _cleanup_free_ char *vbad = snap_vmi(bad, NULL);
        fwd_state st2 = {.spec = cJSON_Parse("{\"a\":1}")};
        assert(decide(&st2, vbad, running, out, sizeof(out), true) == FWD_SNAPSHOT);
        assert(!strcmp(out, "{\"cmd\":\"snapshot-save\",\"args\":{\"tag\":\"A-z_0.9\",\"id\":\"ok\"}}"));
        assert(decide(&st2, vbad, running, out, sizeof(out), true) == FWD_NONE);
        /* ... and logged once per annotation text */
        cJSON *v = cJSON_Parse(vbad);
        int n = 0;
        fwd_check_snapshot_requests(&st2, v, count_skipped, &n);
        assert(n == 12);
        fwd_check_snapshot_requests(&st2, v, count_skipped, &n);
        assert(n == 12);
        cJSON_Delete(v);
        /* an annotation that is not an array: one line, no request */
        _cleanup_free_ char *vobj = snap_vmi("{\"id\":\"s\",\"op\":\"save\",\"tag\":\"t\"}", NULL);
        assert(decide(&st2, vobj, running, out, sizeof(out), false) == FWD_NONE);
        _cleanup_free_ char *vjunk = snap_vmi("not json", NULL);
        assert(decide(&st2, vjunk, running, out, sizeof(out), false) == FWD_NONE);
        fwd_state_free(&st2);
        fwd_state_free(&st);
}

/* What the reporter's informer stores: fwd_prune keeps every field fwd_next reads, so a pruned VMI decides
 * the same. */
static void test_fwd_prune(void)
{
        cJSON *vmi = cJSON_Parse(
            "{\"metadata\":{\"name\":\"v\",\"managedFields\":[1],\"annotations\":{\"k\":\"x\","
            "\"kvlite.io/snapshot-requests\":\"[]\","
            "\"kubectl.kubernetes.io/last-applied-configuration\":\"{}\"}},\"spec\":{\"a\":1},\"status\":"
            "{\"phase\":\"Running\",\"conditions\":[{}],\"migrationState\":{\"migrationUid\":\"u\"}}}");
        fwd_prune(vmi);
        _cleanup_free_ char *text = cJSON_PrintUnformatted(vmi);
        assert(!strcmp(text, "{\"metadata\":{\"name\":\"v\",\"annotations\":{\"k\":\"x\","
                             "\"kvlite.io/snapshot-requests\":\"[]\"}},"
                             "\"spec\":{\"a\":1},\"status\":{\"migrationState\":{\"migrationUid\":\"u\"}}}"));
        cJSON_Delete(vmi);
        vmi = cJSON_Parse("{\"metadata\":{\"name\":\"v\"},\"status\":{\"phase\":\"Pending\"}}");
        fwd_prune(vmi);
        _cleanup_free_ char *bare = cJSON_PrintUnformatted(vmi);
        assert(!strcmp(bare, "{\"metadata\":{\"name\":\"v\"}}"));
        cJSON_Delete(vmi);
        fwd_prune(NULL);
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
        test_fwd();
        test_fwd_migration_config();
        test_fwd_prune();
        test_fwd_snapshots();
        test_ring();
        test_status();
        test_unix_socket();
        printf("ok\n");
        return 0;
}
