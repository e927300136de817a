/* Unit tests for virt-launcher-reporter's forwarding decisions (vmifwd): what a VMI and the launcher's
 * status make the reporter send to the control socket, and what it remembers having sent. */
#include <assert.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "vmifwd.h"

/* Decides on vmi_json with the launcher's status launcher_json; returns the request's kind and prints
 * the request (without id) into out. */
static fwd_kind decide(fwd_state *st, const char *vmi_json, const char *launcher_json, char *out, size_t size,
                       bool commit)
{
        cJSON *v = vmi_json ? cJSON_Parse(vmi_json) : NULL,
              *l = launcher_json ? cJSON_Parse(launcher_json) : NULL;
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
        const char *mig =
            "{\"spec\":{\"a\":1,\"b\":3},\"status\":{\"migrationState\":{\"migrationUid\":\"u1\","
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
        const char *other_pod =
            "{\"status\":{\"migrationState\":{\"migrationUid\":\"u2\",\"sourcePod\":\"pod-b\","
            "\"targetNodeAddress\":\"10.1.2.3\"}},\"spec\":{\"a\":1,\"b\":3}}";
        assert(decide(&st, other_pod, running, out, sizeof(out), true) == FWD_NONE);
        const char *bad[] = {
            "{\"status\":{\"migrationState\":{\"migrationUid\":\"u3\",\"sourcePod\":\"pod-a\"}}}",
            "{\"status\":{\"migrationState\":{\"migrationUid\":\"u3\",\"sourcePod\":\"pod-a\","
            "\"targetNodeAddress\":"
            "\"1.2.3.4,x=y\"}}}",
            "{\"status\":{\"migrationState\":{\"migrationUid\":3,\"sourcePod\":\"pod-a\","
            "\"targetNodeAddress\":\"h\"}}}",
            "{\"status\":{\"migrationState\":{\"migrationUid\":\"u3\",\"sourcePod\":\"pod-a\","
            "\"targetNodeAddress\":"
            "\"h\",\"completed\":true}}}",
            "{\"status\":{\"migrationState\":{\"migrationUid\":\"u3\",\"sourcePod\":\"pod-a\","
            "\"targetNodeAddress\":"
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
        const char *abort =
            "{\"status\":{\"migrationState\":{\"migrationUid\":\"u1\",\"sourcePod\":\"pod-a\","
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
        assert(!strcmp(out,
                       "{\"cmd\":\"migrate\",\"args\":{\"uri\":\"tcp:10.1.2.3:49152\",\"nbdHost\":"
                       "\"10.1.2.3\",\"nbdPort\":49153,\"migrationUid\":\"u1\",\"config\":{"
                       "\"allowAutoConverge\":true,\"allowPostCopy\":false,\"bandwidthPerMigration\":1048576,"
                       "\"completionTimeoutPerGiB\":60,\"progressTimeout\":150}}}"));
        const char *odd = "{\"status\":{\"migrationState\":{\"migrationUid\":\"u2\",\"sourcePod\":\"pod-a\","
                          "\"targetNodeAddress\":\"h\",\"migrationConfiguration\":\"fast\"}}}";
        assert(decide(&st, odd, running, out, sizeof(out), false) == FWD_MIGRATE);
        assert(!strstr(out, "config"));
        fwd_state_free(&st);
}

/* A VMI whose kvlite.io/snapshot-requests annotation is reqs (JSON text, escaped here), with migrationState
 * ms (NULL: none). */
static char *snap_vmi(const char *reqs, const char *ms)
{
        cJSON *v = cJSON_CreateObject();
        cJSON *ann = cJSON_AddObjectToObject(cJSON_AddObjectToObject(v, "metadata"), "annotations");
        cJSON_AddStringToObject(ann, FWD_SNAPSHOT_ANNOTATION, reqs);
        cJSON_AddItemToObject(v, "spec", cJSON_Parse("{\"a\":1}"));
        if (ms)
                cJSON_AddItemToObject(cJSON_AddObjectToObject(v, "status"), "migrationState",
                                      cJSON_Parse(ms));
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

        /* a restarted reporter goes by the launcher's snapshotOperations: reported ids are never sent again
         */
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

/* kvlite.io/paused (virt-api's pause/unpause) against the launcher's Paused condition, each value once. */
static void test_fwd_pause(void)
{
        fwd_state st = {.spec = cJSON_Parse("{\"a\":1}")};
        char out[4096];
        const char *vmi_true =
            "{\"metadata\":{\"annotations\":{\"kvlite.io/paused\":\"true\"}},\"spec\":{\"a\":1}}";
        const char *vmi_false =
            "{\"metadata\":{\"annotations\":{\"kvlite.io/paused\":\"false\"}},\"spec\":{\"a\":1}}";
        const char *vmi_bad =
            "{\"metadata\":{\"annotations\":{\"kvlite.io/paused\":\"yes\"}},\"spec\":{\"a\":1}}";
        const char *running =
            "{\"phase\":\"Running\",\"conditions\":[{\"type\":\"Paused\",\"status\":\"False\"}]}";
        const char *paused =
            "{\"phase\":\"Running\",\"conditions\":[{\"type\":\"Paused\",\"status\":\"True\"}]}";
        assert(decide(&st, vmi_bad, running, out, sizeof(out), false) == FWD_NONE);
        assert(decide(&st, vmi_false, running, out, sizeof(out), false) == FWD_NONE); /* already so */
        assert(decide(&st, vmi_true, "{\"phase\":\"Scheduled\"}", out, sizeof(out), false) == FWD_NONE);
        assert(decide(&st, vmi_true, running, out, sizeof(out), true) == FWD_PAUSE);
        assert(!strcmp(out, "{\"cmd\":\"pause\"}"));
        /* sent once, even before the status shows it */
        assert(decide(&st, vmi_true, running, out, sizeof(out), true) == FWD_NONE);
        assert(decide(&st, vmi_true, paused, out, sizeof(out), true) == FWD_NONE);
        assert(decide(&st, vmi_false, paused, out, sizeof(out), true) == FWD_PAUSE);
        assert(!strcmp(out, "{\"cmd\":\"unpause\"}"));
        assert(decide(&st, vmi_true, running, out, sizeof(out), true) == FWD_PAUSE); /* paused again */
        fwd_state_free(&st);
}

/* kvlite.io/softreboot-request: each id forwarded once, never one the launcher says it did. */
static void test_fwd_softreboot(void)
{
        fwd_state st = {.spec = cJSON_Parse("{\"a\":1}")};
        char out[4096];
        const char *r1 = "{\"metadata\":{\"annotations\":{\"kvlite.io/softreboot-request\":\"r1\"}},"
                         "\"spec\":{\"a\":1}}";
        const char *r2 = "{\"metadata\":{\"annotations\":{\"kvlite.io/softreboot-request\":\"r2\"}},"
                         "\"spec\":{\"a\":1}}";
        const char *running = "{\"phase\":\"Running\"}";
        const char *did_r1 = "{\"phase\":\"Running\",\"softRebootId\":\"r1\"}";
        assert(decide(&st, r1, "{\"phase\":\"Scheduled\"}", out, sizeof(out), false) == FWD_NONE);
        assert(decide(&st, r1, did_r1, out, sizeof(out), false) == FWD_NONE); /* done before a restart */
        assert(decide(&st, r1, running, out, sizeof(out), true) == FWD_SOFTREBOOT);
        assert(!strcmp(out, "{\"cmd\":\"softreboot\",\"args\":{\"id\":\"r1\"}}"));
        assert(decide(&st, r1, running, out, sizeof(out), true) == FWD_NONE);      /* sent once */
        assert(decide(&st, r2, did_r1, out, sizeof(out), true) == FWD_SOFTREBOOT); /* a new request */
        fwd_state_free(&st);
}

/* A refused apply (a hot-plugged claim not attached yet) goes again once the launcher's volumeStatus changes
 * (virt-handler attached it), and only then. */
static void test_fwd_apply_retry(void)
{
        fwd_state st = {0};
        char out[4096];
        const char *vmi = "{\"spec\":{\"volumes\":[{\"name\":\"d\"}]}}";
        const char *before = "{\"phase\":\"Running\"}";
        const char *attached =
            "{\"phase\":\"Running\",\"volumeStatus\":[{\"name\":\"d\",\"phase\":\"AttachedToNode\"}]}";
        assert(decide(&st, vmi, before, out, sizeof(out), true) == FWD_APPLY);
        cJSON *l = cJSON_Parse(before);
        fwd_apply_refused(&st, l);
        cJSON_Delete(l);
        assert(decide(&st, vmi, before, out, sizeof(out), false) == FWD_NONE); /* nothing new: not again */
        assert(decide(&st, vmi, attached, out, sizeof(out), true) == FWD_APPLY);
        /* answered ok: the same spec is not sent again, whatever the volumes say */
        assert(decide(&st, vmi, before, out, sizeof(out), false) == FWD_NONE);
        assert(decide(&st, vmi, attached, out, sizeof(out), false) == FWD_NONE);
        /* refused with a volumeStatus: again when it changes, not while it stays */
        assert(decide(&st, "{\"spec\":{\"x\":1}}", attached, out, sizeof(out), true) == FWD_APPLY);
        l = cJSON_Parse(attached);
        fwd_apply_refused(&st, l);
        cJSON_Delete(l);
        assert(decide(&st, "{\"spec\":{\"x\":1}}", attached, out, sizeof(out), false) == FWD_NONE);
        assert(decide(&st, "{\"spec\":{\"x\":1}}", before, out, sizeof(out), false) == FWD_APPLY);
        fwd_state_free(&st);
}

int main(void)
{
        test_fwd_apply_retry();
        test_fwd_pause();
        test_fwd_softreboot();
        test_fwd();
        test_fwd_migration_config();
        test_fwd_prune();
        test_fwd_snapshots();
        printf("ok\n");
        return 0;
}
