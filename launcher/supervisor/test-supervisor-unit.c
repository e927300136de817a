/* Unit tests for the supervisor's pure pieces: the console ring, the status document and its atomic
 * write, the unix socket helpers, the reporter's forwarding decisions (vmifwd). */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* What the reporter's informer stores: fwd_prune keeps every field fwd_next reads, so a pruned VMI decides
 * the same. */
static void test_fwd_prune(void)
{
        cJSON *vmi = cJSON_Parse(
            "{\"metadata\":{\"name\":\"v\",\"managedFields\":[1],\"annotations\":{\"k\":\"x\","
            "\"kubectl.kubernetes.io/last-applied-configuration\":\"{}\"}},\"spec\":{\"a\":1},\"status\":"
            "{\"phase\":\"Running\",\"conditions\":[{}],\"migrationState\":{\"migrationUid\":\"u\"}}}");
        fwd_prune(vmi);
        _cleanup_free_ char *text = cJSON_PrintUnformatted(vmi);
        assert(!strcmp(text, "{\"metadata\":{\"name\":\"v\",\"annotations\":{\"k\":\"x\"}},"
                             "\"spec\":{\"a\":1},\"status\":{\"migrationState\":{\"migrationUid\":\"u\"}}}"));
        cJSON_Delete(vmi);
        vmi = cJSON_Parse("{\"metadata\":{\"name\":\"v\"},\"status\":{\"phase\":\"Pending\"}}");
        fwd_prune(vmi);
        _cleanup_free_ char *bare = cJSON_PrintUnformatted(vmi);
        assert(!strcmp(bare, "{\"metadata\":{\"name\":\"v\"}}"));
        cJSON_Delete(vmi);
        fwd_prune(NULL);
}

int main(void)
{
        test_fwd();
        test_fwd_migration_config();
        test_fwd_prune();
        test_ring();
        test_status();
        test_unix_socket();
        printf("ok\n");
        return 0;
}
