/* migration: the live half of live migration — target prepare/finish, source start/poll/cancel, local
 * disks mirrored to the target's NBD exports (notes §6, every step in the verified order). */
#include "migration.h"
#include "clock.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "qmp-helpers.h"
#include "strv.h"

#define MIRROR_READY_TIMEOUT_MS 120000
#define MIRROR_FINISH_TIMEOUT_MS 30000

static int set_caps_and_params(qmp *q, const migration_config *c, bool source, migration_params *p,
                               kv_error *err)
{
        migration_params_compute(c, p);
        cJSON *a = cJSON_CreateObject();
        cJSON_AddItemToObject(a, "capabilities", migration_caps_json(p, source));
        int r = lo_exec(q, "migrate-set-capabilities", a, NULL, err);
        if (r >= 0)
                r = lo_exec(q, "migrate-set-parameters", migration_params_json(p, source), NULL, err);
        return r;
}

static int push_writable(const cJSON *block, const cJSON *inserted, const char *node, void *ud, kv_error *err)
{
        if (cJSON_IsTrue(cJSON_GetObjectItem(inserted, "ro")) || strv_push(ud, node) >= 0)
                return 0;
        return kv_error_set(err, ENOMEM, "out of memory");
}

/* Writable disk nodes attached to devices: the disks a non-shared-storage migration must copy. */
static int writable_nodes(qmp *q, strv *out, kv_error *err)
{
        return lo_for_each_block_node(q, push_writable, out, err);
}

static cJSON *inet_addr(const char *host, int port, bool flat)
{
        char p[16];
        snprintf(p, sizeof(p), "%d", port);
        cJSON *data = jstr(jstr(cJSON_CreateObject(), "host", host), "port", p);
        data = jstr(data, "type", "inet");
        if (flat)
                return data;
        cJSON *a = jstr(cJSON_CreateObject(), "type", "inet");
        cJSON_DeleteItemFromObject(data, "type");
        cJSON_AddItemToObject(a, "data", data);
        return a;
}

static int export_disks(qmp *q, const char *host, int port, kv_error *err)
{
        cJSON *a = cJSON_CreateObject();
        cJSON_AddItemToObject(a, "addr", inet_addr(host, port, false));
        int r = lo_exec(q, "nbd-server-start", a, NULL, err);
        strv nodes = {0};
        if (r >= 0)
                r = writable_nodes(q, &nodes, err);
        for (size_t i = 0; r >= 0 && i < nodes.n; i++) {
                char id[160];
                snprintf(id, sizeof(id), "kvexp-%s", nodes.v[i]);
                cJSON *e = jstr(
                    jstr(jstr(jstr(cJSON_CreateObject(), "type", "nbd"), "id", id),
                               "node-name", nodes.v[i]),
                    "name", nodes.v[i]);
                r = lo_exec(q, "block-export-add", jbool(e, "writable", true), NULL, err);
        }
        strv_free(&nodes);
        return r;
}

int migration_target_prepare(qmp *q, const migration_config *c, const char *uri, const char *nbd_host,
                             int nbd_port, kv_error *err)
{
        migration_params p;
        int r = set_caps_and_params(q, c, false, &p, err);
        if (r >= 0 && nbd_port > 0)
                r = export_disks(q, nbd_host ? nbd_host : "127.0.0.1", nbd_port, err);
        if (r >= 0)
                r = lo_exec(q, "migrate-incoming", jstr(cJSON_CreateObject(), "uri", uri), NULL, err);
        return r < 0 ? kv_error_wrap(err, "prepare migration target") : 0;
}

static int query_migrate_status(qmp *q, char *status, size_t size, char *why, size_t why_size, kv_error *err)
{
        _cleanup_json_ cJSON *ret = NULL;
        int r = lo_exec(q, "query-migrate", NULL, &ret, err);
        if (r < 0)
                return r;
        const cJSON *s = cJSON_GetObjectItem(ret, "status"), *e = cJSON_GetObjectItem(ret, "error-desc");
        snprintf(status, size, "%s", cJSON_IsString(s) ? s->valuestring : "none");
        if (why)
                snprintf(why, why_size, "%s", cJSON_IsString(e) ? e->valuestring : "");
        return 0;
}

/* block-export-del in "safe" mode fails while a client (the source's mirror) is connected. */
int migration_target_unexport(qmp *q, bool force, kv_error *err)
{
        _cleanup_json_ cJSON *ret = NULL;
        int r = lo_exec(q, "query-block-exports", NULL, &ret, err);
        if (r < 0)
                return r;
        int left = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, ret)
        {
                const cJSON *id = cJSON_GetObjectItem(e, "id");
                if (!cJSON_IsString(id) || strncmp(id->valuestring, "kvexp-", 6) ||
                    cJSON_IsTrue(cJSON_GetObjectItem(e, "shutting-down")))
                        continue;
                kv_error busy = {0};
                cJSON *a = jstr(cJSON_CreateObject(), "id", id->valuestring);
                if (lo_exec(q, "block-export-del", jstr(a, "mode", force ? "hard" : "safe"), NULL, &busy) < 0)
                        left++;
        }
        if (left == 0) {
                kv_error ignored = {0};
                lo_exec(q, "nbd-server-stop", NULL, NULL, &ignored); /* not started without local disks */
        }
        return left;
}

static void unexport_disks(qmp *q)
{
        kv_error ignored = {0};
        migration_target_unexport(q, true, &ignored);
}

int migration_target_finish(qmp *q, int timeout_ms, kv_error *err)
{
        int64_t deadline = kv_now_ms() + timeout_ms;
        char status[32], why[256];
        for (;;) {
                int r = query_migrate_status(q, status, sizeof(status), why, sizeof(why), err);
                if (r < 0)
                        return kv_error_wrap(err, "finish migration target");
                if (!strcmp(status, "completed"))
                        break;
                if (!strcmp(status, "failed") || !strcmp(status, "cancelled"))
                        return kv_error_set(err, EIO, "incoming migration %s%s%s", status, why[0] ? ": " : "",
                                            why);
                if (kv_now_ms() > deadline)
                        return kv_error_set(err, ETIMEDOUT, "incoming migration still %s after %d ms", status,
                                            timeout_ms);
                _cleanup_json_ cJSON *ev = NULL;
                kv_error ignored = {0};
                qmp_wait_event(q, "MIGRATION", NULL, NULL, 100, &ev, &ignored);
        }
        unexport_disks(q);
        return migration_target_resume(q, err);
}

int migration_target_resume(qmp *q, kv_error *err)
{
        _cleanup_json_ cJSON *st = NULL;
        int r = lo_exec(q, "query-status", NULL, &st, err);
        if (r >= 0 && !cJSON_IsTrue(cJSON_GetObjectItem(st, "running")))
                r = lo_exec(q, "cont", NULL, NULL, err);
        return r < 0 ? kv_error_wrap(err, "finish migration target") : 0;
}

static int mirror_start(qmp *q, const char *node, const char *host, int port, kv_error *err)
{
        char tgt[160], job[160];
        snprintf(tgt, sizeof(tgt), "kvmig-%s", node);
        snprintf(job, sizeof(job), "kvmir-%s", node);
        cJSON *nbd = jstr(
            jstr(jstr(cJSON_CreateObject(), "driver", "nbd"), "node-name", tgt), "export", node);
        cJSON_AddItemToObject(nbd, "server", inet_addr(host, port, true));
        int r = lo_exec(q, "blockdev-add", nbd, NULL, err);
        if (r < 0)
                return r;
        lo_job_dismiss_stale(q, job);
        cJSON *m = jstr(jstr(jstr(cJSON_CreateObject(), "job-id", job), "device", node),
                              "target", tgt);
        /* write-blocking: guest writes reach the target before they complete, so READY stays in sync. */
        m = jbool(jstr(jstr(m, "sync", "full"), "copy-mode", "write-blocking"), "auto-dismiss",
                    false);
        return lo_exec(q, "blockdev-mirror", m, NULL, err);
}

/* block-job-cancel at READY finishes copying without pivoting (BLOCK_JOB_COMPLETED); before READY it
 * cancels. Either way the job concludes, is dismissed, and the NBD client node goes. */
static void mirrors_stop(qmp *q, migration_state *st)
{
        for (size_t i = 0; i < st->n_mirrors; i++) {
                char tgt[160], job[160];
                kv_error e = {0};
                snprintf(tgt, sizeof(tgt), "kvmig-%s", st->mirrors[i]);
                snprintf(job, sizeof(job), "kvmir-%s", st->mirrors[i]);
                if (lo_exec(q, "block-job-cancel", jstr(cJSON_CreateObject(), "device", job), NULL,
                            &e) >= 0)
                        lo_job_finish(q, job, MIRROR_FINISH_TIMEOUT_MS, &e);
                lo_exec(q, "blockdev-del", jstr(cJSON_CreateObject(), "node-name", tgt), NULL, &e);
                free(st->mirrors[i]);
        }
        free(st->mirrors);
        st->mirrors = NULL;
        st->n_mirrors = 0;
}

static int mirrors_start(qmp *q, const char *host, int port, migration_state *st, kv_error *err)
{
        strv nodes = {0};
        int r = writable_nodes(q, &nodes, err);
        for (size_t i = 0; r >= 0 && i < nodes.n; i++) {
                r = mirror_start(q, nodes.v[i], host, port, err);
                if (r < 0)
                        break;
                char **m = realloc(st->mirrors, (st->n_mirrors + 1) * sizeof(*m));
                if (!m) {
                        r = kv_error_set(err, ENOMEM, "out of memory");
                        break;
                }
                st->mirrors = m;
                st->mirrors[st->n_mirrors++] = TAKE_PTR(nodes.v[i]);
        }
        for (size_t i = 0; r >= 0 && i < st->n_mirrors; i++) {
                char job[160];
                snprintf(job, sizeof(job), "kvmir-%s", st->mirrors[i]);
                _cleanup_json_ cJSON *ev = NULL;
                r = qmp_wait_event(q, "BLOCK_JOB_READY", "device", job, MIRROR_READY_TIMEOUT_MS, &ev, err);
        }
        strv_free(&nodes);
        return r;
}

int migration_start(qmp *q, const migration_config *c, const char *uri, const char *nbd_host, int nbd_port,
                    migration_state *st, kv_error *err)
{
        *st = (migration_state){.best_remaining = UINT64_MAX};
        snprintf(st->mode, sizeof(st->mode), "PreCopy");
        snprintf(st->target_address, sizeof(st->target_address), "%s", uri);
        if (gethostname(st->source_node, sizeof(st->source_node) - 1) < 0)
                st->source_node[0] = '\0';
        rfc3339_now(st->start, sizeof(st->start));
        st->start_ms = st->last_progress_ms = kv_now_ms();
        int r = set_caps_and_params(q, c, true, &st->params, err);
        if (r >= 0 && nbd_port > 0)
                r = mirrors_start(q, nbd_host ? nbd_host : "127.0.0.1", nbd_port, st, err);
        if (r >= 0)
                r = lo_exec(q, "migrate", jstr(cJSON_CreateObject(), "uri", uri), NULL, err);
        if (r < 0) {
                mirrors_stop(q, st);
                st->failed = st->finished = true;
                snprintf(st->failure_reason, sizeof(st->failure_reason), "%s", err->msg);
                rfc3339_now(st->end, sizeof(st->end));
                return kv_error_wrap(err, "start migration");
        }
        return 0;
}

static uint64_t jnum_u64(const cJSON *o, const char *key)
{
        const cJSON *v = cJSON_GetObjectItem(o, key);
        return cJSON_IsNumber(v) ? (uint64_t)v->valuedouble : 0;
}

static void finish(qmp *q, migration_state *st, bool ok, const char *why)
{
        mirrors_stop(q, st);
        st->finished = true;
        st->completed = ok;
        st->failed = !ok;
        if (st->abort_requested)
                snprintf(st->abort_status, sizeof(st->abort_status), "%s", ok ? "Failed" : "Succeeded");
        if (!ok && why && !st->failure_reason[0])
                snprintf(st->failure_reason, sizeof(st->failure_reason), "%s", why);
        rfc3339_now(st->end, sizeof(st->end));
}

static void abort_with(qmp *q, migration_state *st, const char *why)
{
        kv_error ignored = {0};
        snprintf(st->failure_reason, sizeof(st->failure_reason), "%s", why);
        lo_exec(q, "migrate_cancel", NULL, NULL, &ignored);
}

/* KubeVirt's two guards: no progress for progressTimeout → abort; past completionTimeoutPerGiB →
 * post-copy if allowed, else abort. */
static int check_timeouts(qmp *q, migration_state *st, int64_t now, kv_error *err)
{
        if (st->ram_remaining < st->best_remaining) {
                st->best_remaining = st->ram_remaining;
                st->last_progress_ms = now;
        }
        char why[160];
        if (!st->postcopy_started &&
            now - st->last_progress_ms > (int64_t)st->params.progress_timeout * 1000) {
                snprintf(why, sizeof(why), "no progress for %u s (progressTimeout)",
                         st->params.progress_timeout);
                abort_with(q, st, why);
                return 0;
        }
        uint64_t limit = migration_completion_timeout_ms(&st->params, st->ram_total + st->disk_bytes);
        if (st->postcopy_started || (uint64_t)(now - st->start_ms) <= limit)
                return 0;
        if (!st->params.postcopy) {
                snprintf(why, sizeof(why), "not completed within %llu s (completionTimeoutPerGiB)",
                         (unsigned long long)(limit / 1000));
                abort_with(q, st, why);
                return 0;
        }
        st->postcopy_started = true;
        snprintf(st->mode, sizeof(st->mode), "PostCopy");
        return lo_exec(q, "migrate-start-postcopy", NULL, NULL, err);
}

/* QEMU 7.2's migrate_cancel shuts only the main channel down: a multifd channel blocked in a send can keep
 * the migration "cancelling" for good (seen in CI). yank shuts every channel of the migration down; it fails
 * harmlessly when the migration already let go of them. A cancel during setup can come before the multifd
 * channels exist, so the poll yanks again while the migration stays "cancelling". */
static void yank_channels(qmp *q, migration_state *st)
{
        cJSON *inst = cJSON_CreateObject();
        cJSON_AddItemToArray(cJSON_AddArrayToObject(inst, "instances"),
                             jstr(cJSON_CreateObject(), "type", "migration"));
        kv_error ignored = {0};
        if (lo_exec(q, "yank", inst, NULL, &ignored) < 0)
                log_debug("yank after migrate_cancel: %s", ignored.msg);
        st->last_yank_ms = kv_now_ms();
}

int migration_poll(qmp *q, migration_state *st, kv_error *err)
{
        if (st->finished)
                return 1;
        _cleanup_json_ cJSON *ret = NULL;
        int r = lo_exec(q, "query-migrate", NULL, &ret, err);
        return r < 0 ? r : migration_poll_reply(q, ret, st, err);
}

int migration_poll_reply(qmp *q, const cJSON *ret, migration_state *st, kv_error *err)
{
        if (st->finished)
                return 1;
        const cJSON *s = cJSON_GetObjectItem(ret, "status"), *ram = cJSON_GetObjectItem(ret, "ram");
        snprintf(st->qemu_status, sizeof(st->qemu_status), "%s", cJSON_IsString(s) ? s->valuestring : "none");
        st->ram_total = jnum_u64(ram, "total");
        st->ram_remaining = jnum_u64(ram, "remaining");
        st->ram_transferred = jnum_u64(ram, "transferred");
        st->total_time_ms = (int64_t)jnum_u64(ret, "total-time");
        st->downtime_ms = (int64_t)jnum_u64(ret, "downtime");
        if (!strcmp(st->qemu_status, "completed")) {
                if (st->total_time_ms == 0 && kv_now_ms() - st->start_ms < 600000)
                        return 0; /* the figures land a few ms after the event (notes §6) */
                finish(q, st, true, NULL);
                return 1;
        }
        if (!strcmp(st->qemu_status, "failed") || !strcmp(st->qemu_status, "cancelled")) {
                const cJSON *e = cJSON_GetObjectItem(ret, "error-desc");
                finish(q, st, false, cJSON_IsString(e) ? e->valuestring : st->qemu_status);
                return 1;
        }
        if (!strcmp(st->qemu_status, "postcopy-active"))
                snprintf(st->mode, sizeof(st->mode), "PostCopy");
        if (st->abort_requested && !strcmp(st->qemu_status, "cancelling") && kv_now_ms() - st->last_yank_ms >= 500)
                yank_channels(q, st);
        if (!strcmp(st->qemu_status, "active"))
                return check_timeouts(q, st, kv_now_ms(), err);
        return 0;
}

int migration_cancel(qmp *q, migration_state *st, kv_error *err)
{
        if (st->finished)
                return kv_error_set(err, EALREADY, "the migration already %s",
                                    st->completed ? "completed" : "failed");
        if (st->postcopy_started)
                return kv_error_set(
                    err, EBUSY, "a post-copy migration cannot be cancelled: the guest runs on the target");
        st->abort_requested = true;
        int r = lo_exec(q, "migrate_cancel", NULL, NULL, err);
        if (r < 0)
                return r;
        yank_channels(q, st);
        return 0;
}

int migration_run(qmp *q, const migration_config *c, const char *uri, const char *nbd_host, int nbd_port,
                  int timeout_ms, migration_state *st, kv_error *err)
{
        int r = migration_start(q, c, uri, nbd_host, nbd_port, st, err);
        if (r < 0)
                return r;
        int64_t deadline = kv_now_ms() + timeout_ms;
        while ((r = migration_poll(q, st, err)) == 0) {
                if (kv_now_ms() > deadline && !st->abort_requested && !st->postcopy_started) {
                        kv_error ignored = {0};
                        snprintf(st->failure_reason, sizeof(st->failure_reason), "timed out after %d ms",
                                 timeout_ms);
                        migration_cancel(q, st, &ignored);
                }
                _cleanup_json_ cJSON *ev = NULL;
                kv_error ignored = {0};
                qmp_wait_event(q, "MIGRATION", NULL, NULL, 50, &ev, &ignored);
        }
        if (r < 0)
                return r;
        return st->completed ? 0 : kv_error_set(err, EIO, "migration failed: %s", st->failure_reason);
}

void migration_state_free(migration_state *st)
{
        for (size_t i = 0; i < st->n_mirrors; i++)
                free(st->mirrors[i]);
        free(st->mirrors);
        st->mirrors = NULL;
        st->n_mirrors = 0;
}

static void add_str_if(cJSON *o, const char *key, const char *v)
{
        if (v[0])
                cJSON_AddStringToObject(o, key, v);
}

cJSON *migration_state_to_json(const migration_state *st)
{
        cJSON *o = cJSON_CreateObject();
        add_str_if(o, "migrationUid", st->uid);
        add_str_if(o, "startTimestamp", st->start);
        add_str_if(o, "endTimestamp", st->end);
        add_str_if(o, "targetNodeAddress", st->target_address);
        add_str_if(o, "sourceNode", st->source_node);
        add_str_if(o, "targetNode", st->target_node);
        add_str_if(o, "mode", st->mode);
        cJSON_AddBoolToObject(o, "completed", st->completed);
        cJSON_AddBoolToObject(o, "failed", st->failed);
        cJSON_AddBoolToObject(o, "abortRequested", st->abort_requested);
        add_str_if(o, "abortStatus", st->abort_status);
        add_str_if(o, "failureReason", st->failure_reason);
        /* kvlite extension: what virt-handler's domain stats would give KubeVirt. */
        cJSON *p = cJSON_AddObjectToObject(o, "kvliteProgress");
        cJSON_AddStringToObject(p, "qemuStatus", st->qemu_status);
        cJSON_AddNumberToObject(p, "ramTotal", (double)st->ram_total);
        cJSON_AddNumberToObject(p, "ramRemaining", (double)st->ram_remaining);
        cJSON_AddNumberToObject(p, "ramTransferred", (double)st->ram_transferred);
        cJSON_AddNumberToObject(p, "totalTimeMs", (double)st->total_time_ms);
        cJSON_AddNumberToObject(p, "downtimeMs", (double)st->downtime_ms);
        cJSON_AddBoolToObject(p, "multifd", st->params.multifd);
        cJSON_AddNumberToObject(p, "multifdChannels", st->params.channels);
        cJSON_AddBoolToObject(p, "autoConverge", st->params.auto_converge);
        return o;
}
