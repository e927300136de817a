/* Unit tests: the VMI diff (vmi-diff.c), the migration parameter computation (migration-params.c), the
 * cancel of a migration still in setup (migration.c) and the backups of raw disks (snapshot.c). */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "migration.h"
#include "snapshot.h"
#include "tcp-drain.h"
#include "vmi-diff.h"

#define BASE_VMI                                                                                             \
        "{\"apiVersion\":\"kubevirt.io/"                                                                     \
        "v1\",\"kind\":\"VirtualMachineInstance\",\"metadata\":{\"name\":\"t\"},"                            \
        "\"spec\":{\"domain\":{\"cpu\":{\"sockets\":%d,\"maxSockets\":4},\"memory\":{\"guest\":\"%s\","      \
        "\"maxGuest\":\"1Gi\"},\"devices\":{\"disks\":[{\"name\":\"root\",\"disk\":{}}%s],"                  \
        "\"interfaces\":[%s]}},"                                                                             \
        "\"networks\":[%s],"                                                                                 \
        "\"volumes\":[{\"name\":\"root\",\"hostDisk\":{\"path\":\"/r.img\",\"type\":\"Disk\"}}%s]}}"

static vmi *load(int sockets, const char *mem, bool extra_disk, bool extra_nic)
{
        char buf[4096];
        snprintf(buf, sizeof(buf), BASE_VMI, sockets, mem,
                 extra_disk ? ",{\"name\":\"data\",\"disk\":{\"bus\":\"scsi\"}}" : "",
                 extra_nic ? "{\"name\":\"second\",\"masquerade\":{}}" : "",
                 extra_nic ? "{\"name\":\"second\",\"pod\":{}}" : "",
                 extra_disk ? ",{\"name\":\"data\",\"hostDisk\":{\"path\":\"/d.img\",\"type\":\"Disk\"}}"
                            : "");
        vmi *v = NULL;
        kv_error err = {0};
        if (vmi_load_json_string(buf, &v, &err) < 0) {
                fprintf(stderr, "load: %s\n", err.msg);
                assert(0);
        }
        return v;
}

static char *plan_of(vmi *o, vmi *n, int *rc, kv_error *err)
{
        liveop_plan p;
        *rc = vmi_diff(o, n, &p, err);
        if (*rc < 0)
                return NULL;
        cJSON *j = liveop_plan_to_json(&p);
        char *s = cJSON_PrintUnformatted(j);
        cJSON_Delete(j);
        liveop_plan_free(&p);
        vmi_free(o);
        vmi_free(n);
        return s;
}

static void expect_plan(vmi *o, vmi *n, const char *want)
{
        int rc;
        kv_error err = {0};
        char *got = plan_of(o, n, &rc, &err);
        if (rc < 0 || strcmp(got, want)) {
                fprintf(stderr, "diff: got %s (%s)\n want %s\n", got ? got : "error", err.msg, want);
                assert(0);
        }
        free(got);
}

static void expect_refused(vmi *o, vmi *n, const char *needle)
{
        int rc;
        kv_error err = {0};
        char *got = plan_of(o, n, &rc, &err);
        if (rc >= 0 || !strstr(err.msg, needle)) {
                fprintf(stderr, "diff: expected refusal with \"%s\", got %s / %s\n", needle, got ? got : "",
                        err.msg);
                assert(0);
        }
        vmi_free(o);
        vmi_free(n);
}

static void test_diff(void)
{
        expect_plan(load(1, "256Mi", false, false), load(1, "256Mi", false, false), "{\"operations\":[]}");
        expect_plan(
            load(1, "256Mi", false, false), load(2, "512Mi", true, true),
            "{\"operations\":[{\"op\":\"unplug-nic\",\"name\":\"default\"},{\"op\":\"hotplug-disk\",\"name\":"
            "\"data\"},{\"op\":\"hotplug-nic\",\"name\":"
            "\"second\"},{\"op\":\"set-cpus\",\"sockets\":2},{\"op\":\"set-memory\",\"bytes\":536870912}]}");
        /* removals come first; no interface listed means KubeVirt's implicit "default" one */
        expect_plan(
            load(2, "512Mi", true, true), load(2, "256Mi", false, false),
            "{\"operations\":[{\"op\":\"unplug-disk\",\"name\":\"data\"},{\"op\":\"unplug-nic\",\"name\":"
            "\"second\"},{\"op\":\"hotplug-nic\",\"name\":\"default\"},{\"op\":\"set-memory\",\"bytes\":"
            "268435456}]}");
        expect_refused(load(2, "256Mi", false, false), load(1, "256Mi", false, false), "vCPU hot-unplug");
}

/* A VMI with (or without) a configMap shared over virtiofs as `name`. */
static vmi *load_fs(const char *name)
{
        char buf[1024];
        snprintf(buf, sizeof(buf),
                 "{\"apiVersion\":\"kubevirt.io/v1\",\"kind\":\"VirtualMachineInstance\","
                 "\"metadata\":{\"name\":\"t\"},\"spec\":{\"domain\":{\"memory\":{\"guest\":\"64Mi\"},"
                 "\"devices\":{\"filesystems\":[%s%s%s]}},\"volumes\":[{\"name\":\"%s\","
                 "\"configMap\":{\"name\":\"cm\"}}]}}",
                 name ? "{\"name\":\"" : "", name ? name : "", name ? "\",\"virtiofs\":{}}" : "",
                 name ? name : "other");
        vmi *v = NULL;
        kv_error err = {0};
        if (vmi_load_json_string(buf, &v, &err) < 0) {
                fprintf(stderr, "load: %s\n", err.msg);
                assert(0);
        }
        return v;
}

static void test_diff_filesystems(void)
{
        expect_plan(load_fs("share"), load_fs("share"), "{\"operations\":[]}");
        expect_refused(load_fs("share"), load_fs("renamed"),
                       "spec.domain.devices.filesystems: cannot change");
        expect_refused(load_fs("share"), load_fs(NULL), "spec.domain.devices.filesystems: cannot change");
}

static void test_params(void)
{
        migration_config c = {0};
        migration_params p;
        migration_params_compute(&c, &p);
        assert(p.multifd && p.channels == 8 && !p.postcopy && !p.auto_converge);
        assert(p.max_bandwidth == MIGRATION_UNLIMITED_BW && p.downtime_ms == 300);
        assert(migration_completion_timeout_ms(&p, 256ull << 20) == 150000);
        assert(migration_completion_timeout_ms(&p, (2ull << 30) + 1) == 450000);
        /* the default channel count does not depend on the host (the function is not even told its CPU
         * count): both sides must agree without knowing each other's */
        c.parallel_threads = 1; /* explicit values are kept (QEMU accepts 1), capped at 8 */
        migration_params_compute(&c, &p);
        assert(p.channels == 1);
        c.parallel_threads = 32;
        migration_params_compute(&c, &p);
        assert(p.channels == 8);
        c = (migration_config){.allow_post_copy = true,
                               .allow_auto_converge = true,
                               .bandwidth = 1 << 20,
                               .completion_timeout_per_gib = 2};
        migration_params_compute(&c, &p);
        assert(!p.multifd && p.postcopy && p.auto_converge && p.max_bandwidth == 1 << 20);
        assert(migration_completion_timeout_ms(&p, 1) == 2000);
        cJSON *caps = migration_caps_json(&p, true);
        char *s = cJSON_PrintUnformatted(caps);
        assert(!strcmp(
            s, "[{\"capability\":\"events\",\"state\":true},{\"capability\":\"multifd\",\"state\":false},"
               "{\"capability\":\"postcopy-ram\",\"state\":true},{\"capability\":\"auto-converge\","
               "\"state\":true}]"));
        free(s);
        cJSON_Delete(caps);
        caps = migration_caps_json(&p, false); /* auto-converge is source-only */
        assert(cJSON_GetArraySize(caps) == 3);
        cJSON_Delete(caps);
        c = (migration_config){.parallel_threads = 3};
        migration_params_compute(&c, &p);
        cJSON *tgt = migration_params_json(&p, false);
        s = cJSON_PrintUnformatted(tgt);
        assert(!strcmp(s, "{\"multifd-channels\":3}")); /* the target gets only what must match */
        free(s);
        cJSON_Delete(tgt);
}

static void test_volume_status(void)
{
        cJSON *vs = cJSON_CreateArray();
        volume_status_set(vs, "data", "Pending", NULL, NULL, true);
        volume_status_set(vs, "data", "Ready", "VolumeReady", "attached", true);
        assert(cJSON_GetArraySize(vs) == 1);
        assert(!strcmp(cJSON_GetObjectItem(cJSON_GetArrayItem(vs, 0), "phase")->valuestring, "Ready"));
        volume_status_set(vs, "data", NULL, NULL, NULL, false);
        assert(cJSON_GetArraySize(vs) == 0);
        cJSON_Delete(vs);
}

/* /proc/net/tcp as a migration source sees it: the main channel still holds unacknowledged bytes. */
static void test_tcp_drain(void)
{
        const char *text =
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout "
            "inode\n"
            "   0: 0200F40A:B7DA 0300F40A:C000 01 00001F40:00000000 01:00000014 00000000     0        0 1 1\n"
            "   1: 0200F40A:B7DC 0300F40A:C000 08 00000000:00000000 00:00000000 00000000     0        0 2 1\n"
            "   2: 0200F40A:B7DE 0300F40A:C001 01 00000100:00000000 00:00000000 00000000     0        0 3 1\n"
            "   3: garbage\n";
        assert(tcp_unacked_in(text, 49152) == 0x1F40); /* only the sockets to port 0xC000 */
        assert(tcp_unacked_in(text, 49153) == 0x100);
        assert(tcp_unacked_in(text, 22) == 0 && tcp_unacked_in("", 49152) == 0);
        assert(tcp_uri_port("tcp:10.244.0.3:49152") == 49152 && tcp_uri_port("tcp:[fd00::1]:8000") == 8000);
        assert(tcp_uri_port("unix:/x") == 0 && tcp_uri_port("tcp:h:") == 0 && tcp_uri_port(NULL) == 0);
}

static int dir_of_set3(void *ctx, int fdset)
{
        return fdset == 3 ? *(int *)ctx : -1;
}

/* A hot-plugged disk (fd set 3) whose directory virt-handler handed over: the target made there with openat,
 * opened read-write for add-fd, then the transaction's target is the fd set it went into. */
static void test_backup_hotplugged(const cJSON *blocks, const char *dir)
{
        int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), none = -1, index = -1;
        cJSON *disks = NULL;
        kv_error err = {0};
        assert(dirfd >= 0);
        assert(snapshot_backup_disks(blocks, "t", dir_of_set3, &none, &disks, &err) == -EOPNOTSUPP && !disks);
        assert(snapshot_backup_disks(blocks, "t", dir_of_set3, &dirfd, &disks, &err) == 0);
        const cJSON *d = cJSON_GetArrayItem(disks, 0);
        assert(cJSON_GetArraySize(disks) == 1 && cJSON_GetObjectItem(d, "dirfd")->valueint == dirfd);
        assert(!strcmp(cJSON_GetObjectItem(d, "name")->valuestring, "disk.img" SNAPSHOT_BACKUP_SUFFIX "t"));
        assert(!cJSON_GetObjectItem(d, "target"));
        char path[300];
        struct stat st;
        snprintf(path, sizeof(path), "%s/disk.img" SNAPSHOT_BACKUP_SUFFIX "t", dir);
        assert(snapshot_backup_create(disks, &err) == 0 && stat(path, &st) == 0 && st.st_size == 1);
        int fd = snapshot_backup_open(disks, &index, &err);
        assert(fd >= 0 && index == 0 && (fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDWR);
        close(fd);
        cJSON_AddStringToObject(cJSON_GetArrayItem(disks, 0), "target", "/dev/fdset/7");
        assert(snapshot_backup_open(disks, &index, &err) == -1); /* every target handed over */
        cJSON *tx = snapshot_backup_transaction(disks, "kv-backup-");
        char *txt = cJSON_PrintUnformatted(tx);
        assert(strstr(txt, "\"device\":\"hp\"") && strstr(txt, "\"target\":\"/dev/fdset/7\""));
        free(txt);
        cJSON_Delete(tx);
        assert(snapshot_backup_remove(disks, &err) == 0 && stat(path, &st) < 0);
        cJSON_Delete(disks);
        close(dirfd);
}

/* Which disks a save backs up (writable raw ones, from query-block), the transaction, the target files. */
static void test_backups(void)
{
        char qb[2048], dir[] = "/tmp/kv-backup-XXXXXX";
        assert(mkdtemp(dir));
        snprintf(qb, sizeof(qb),
                 "[{\"device\":\"\",\"inserted\":{\"node-name\":\"ovl\",\"drv\":\"qcow2\",\"ro\":false,"
                 "\"image\":{\"filename\":\"/run/o.qcow2\",\"virtual-size\":1}}},"
                 "{\"inserted\":{\"node-name\":\"cd\",\"drv\":\"raw\",\"ro\":true,"
                 "\"image\":{\"filename\":\"/ci.iso\",\"virtual-size\":1}}},"
                 "{\"inserted\":{\"node-name\":\"pvc\",\"drv\":\"raw\",\"ro\":false,"
                 "\"image\":{\"filename\":\"%s/disk.img\",\"virtual-size\":65536}}}]",
                 dir);
        cJSON *blocks = cJSON_Parse(qb), *disks = NULL;
        kv_error err = {0};
        assert(blocks && snapshot_backup_mode(blocks));
        assert(snapshot_backup_disks(blocks, "u-1", NULL, NULL, &disks, &err) == 0 &&
               cJSON_GetArraySize(disks) == 1);
        char want[256];
        snprintf(want, sizeof(want), "%s/disk.img" SNAPSHOT_BACKUP_SUFFIX "u-1", dir);
        const cJSON *d = cJSON_GetArrayItem(disks, 0);
        assert(!strcmp(cJSON_GetObjectItem(d, "node")->valuestring, "pvc"));
        assert(!strcmp(cJSON_GetObjectItem(d, "target")->valuestring, want));
        cJSON *tx = snapshot_backup_transaction(disks, "kv-backup-");
        char *txt = cJSON_PrintUnformatted(tx);
        assert(strstr(txt, "\"type\":\"drive-backup\"") && strstr(txt, "\"job-id\":\"kv-backup-0\"") &&
               strstr(txt, "\"sync\":\"full\"") && strstr(txt, "\"mode\":\"existing\"") &&
               strstr(txt, "\"completion-mode\":\"grouped\""));
        free(txt);
        cJSON_Delete(tx);
        struct stat st;
        assert(snapshot_backup_create(disks, &err) == 0 && stat(want, &st) == 0 && st.st_size == 65536);
        assert(snapshot_backup_remove(disks, &err) == 0 && stat(want, &st) < 0);
        assert(snapshot_backup_remove(disks, &err) == 0); /* absent: fine */
        cJSON_Delete(disks);
        disks = NULL;
        /* tags that are not file-name safe; a hot-plugged disk (an fd set) */
        assert(snapshot_backup_disks(blocks, "../x", NULL, NULL, &disks, &err) == -EINVAL && !disks);
        assert(snapshot_backup_disks(blocks, "", NULL, NULL, &disks, &err) == -EINVAL);
        cJSON_Delete(blocks);
        blocks = cJSON_Parse("[{\"inserted\":{\"node-name\":\"hp\",\"drv\":\"raw\",\"ro\":false,"
                             "\"image\":{\"filename\":\"/dev/fdset/3\",\"virtual-size\":1}}}]");
        assert(snapshot_backup_disks(blocks, "t", NULL, NULL, &disks, &err) == -EOPNOTSUPP &&
               strstr(err.msg, "hot-plugged disk whose directory virt-handler did not hand over"));
        test_backup_hotplugged(blocks, dir);
        cJSON_Delete(blocks);
        blocks = cJSON_Parse("[{\"inserted\":{\"node-name\":\"ovl\",\"drv\":\"qcow2\",\"ro\":false}}]");
        assert(!snapshot_backup_mode(blocks)); /* every writable disk qcow2: internal snapshots */
        cJSON_Delete(blocks);
        rmdir(dir);
}

/* One step of a QMP sequence with a reply given as JSON text; the command it asks next ("" when done). */
static const char *step(int (*fn)(void *, const cJSON *, const kv_error *, lo_next *, kv_error *), void *ctx,
                        const char *reply)
{
        static char next[64];
        cJSON *ret = reply ? cJSON_Parse(reply) : NULL;
        lo_next n = {0};
        kv_error err = {0};
        int r = fn(ctx, ret, NULL, &n, &err);
        cJSON_Delete(ret);
        assert(r >= 0);
        snprintf(next, sizeof(next), "%s", r == LO_SEQ_NEXT ? n.command : "");
        cJSON_Delete(n.args);
        return next;
}

/* A cancel while QEMU is in "setup" waits for the poll to see the migration set up (QEMU 7.2 can hang
 * cancelling a multifd setup); otherwise migrate_cancel then yank at once. */
static void test_cancel_during_setup(void)
{
        migration_state st = {0};
        migration_cancel_seq c = {.st = &st};
        assert(!strcmp(step(migration_cancel_step, &c, NULL), "query-migrate"));
        assert(!strcmp(step(migration_cancel_step, &c, "{\"status\":\"setup\"}"), ""));
        assert(st.abort_requested && st.cancel_deferred);
        migration_poll_seq p;
        migration_poll_init(&p, &st);
        assert(!strcmp(step(migration_poll_step, &p, NULL), "query-migrate"));
        assert(!strcmp(step(migration_poll_step, &p, "{\"status\":\"setup\"}"), "")); /* still waiting */
        migration_poll_init(&p, &st); /* just active: not yet (its multifd channels may still connect) */
        step(migration_poll_step, &p, NULL);
        assert(!strcmp(step(migration_poll_step, &p, "{\"status\":\"active\",\"ram\":{\"total\":1}}"), ""));
        assert(st.cancel_deferred && st.active_since_ms);
        st.active_since_ms -= MIGRATION_CANCEL_ACTIVE_SETTLE_MS; /* active for a while: sent */
        migration_poll_init(&p, &st);
        step(migration_poll_step, &p, NULL);
        assert(!strcmp(step(migration_poll_step, &p, "{\"status\":\"active\",\"ram\":{\"total\":1}}"),
                       "migrate_cancel"));
        assert(!st.cancel_deferred);
        migration_poll_init(&p, &st); /* then the poll yanks while QEMU says cancelling */
        step(migration_poll_step, &p, NULL);
        assert(!strcmp(step(migration_poll_step, &p, "{\"status\":\"cancelling\"}"), "yank"));
        /* a setup that never ends: cancelled anyway after MIGRATION_CANCEL_SETUP_WAIT_MS */
        migration_state st2 = {.abort_requested = true,
                               .cancel_deferred = true,
                               .cancel_requested_ms = kv_now_ms() - MIGRATION_CANCEL_SETUP_WAIT_MS};
        migration_poll_init(&p, &st2);
        step(migration_poll_step, &p, NULL);
        assert(!strcmp(step(migration_poll_step, &p, "{\"status\":\"setup\"}"), "migrate_cancel"));
        /* an active migration: cancelled at once, then yanked */
        migration_state st3 = {0};
        migration_cancel_seq c3 = {.st = &st3};
        step(migration_cancel_step, &c3, NULL);
        assert(!strcmp(step(migration_cancel_step, &c3, "{\"status\":\"active\"}"), "migrate_cancel"));
        assert(!strcmp(step(migration_cancel_step, &c3, "{}"), "yank"));
        assert(!st3.cancel_deferred);
}

int main(void)
{
        test_cancel_during_setup();
        test_backups();
        test_tcp_drain();
        test_diff();
        test_diff_filesystems();
        test_params();
        test_volume_status();
        printf("liveops unit: ok\n");
        return 0;
}
