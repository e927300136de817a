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
#include "qmp-seq.h"
#include "strv.h"

#define MIRROR_READY_TIMEOUT_MS 120000
#define MIRROR_FINISH_TIMEOUT_MS 30000

/* The two commands that set one side's capabilities and parameters (p computed from the config). */
static lo_next caps_cmd(const migration_params *p, bool source)
{
        cJSON *a = cJSON_CreateObject();
        cJSON_AddItemToObject(a, "capabilities", migration_caps_json(p, source));
        return (lo_next){.command = "migrate-set-capabilities", .args = a};
}

static lo_next params_cmd(const migration_params *p, bool source)
{
        return (lo_next){.command = "migrate-set-parameters", .args = migration_params_json(p, source)};
}

/* An image from an fd set: a claim virt-handler handed over (hotplug-attach), which the other end's
 * attachment Pod mounts too. The same file on both ends: not copied, and QEMU's image locks would refuse
 * the target's export while the source holds it (the target activates it when the migration completes). */
static bool shared_claim(const cJSON *inserted)
{
        const char *file = cJSON_GetStringValue(cJSON_GetObjectItem(inserted, "file"));
        return file && !strncmp(file, "/dev/fdset/", strlen("/dev/fdset/"));
}

/* Collects the writable disk nodes attached to devices: the disks a non-shared-storage migration copies. */
static int push_writable(const cJSON *block, const cJSON *inserted, const char *node, void *ud, kv_error *err)
{
        if (cJSON_IsTrue(cJSON_GetObjectItem(inserted, "ro")) || shared_claim(inserted) ||
            strv_push(ud, node) >= 0)
                return 0;
        return kv_error_set(err, ENOMEM, "out of memory");
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

/* ---- target: capabilities and parameters, with nbd_port > 0 an NBD server exporting every writable
 * disk node for the source's mirrors, then migrate-incoming ------------------------------------------- */

enum { PREP_CAPS, PREP_PARAMS, PREP_NBD, PREP_BLOCKS, PREP_LISTED, PREP_EXPORTING, PREP_DONE };

void migration_prepare_init(migration_prepare_seq *s, const migration_config *c, const char *uri,
                            const char *nbd_host, int nbd_port)
{
        *s = (migration_prepare_seq){.nbd_port = nbd_port};
        migration_params_compute(c, &s->params);
        snprintf(s->uri, sizeof(s->uri), "%s", uri);
        snprintf(s->nbd_host, sizeof(s->nbd_host), "%s", nbd_host ? nbd_host : "127.0.0.1");
}

void migration_prepare_seq_free(migration_prepare_seq *s)
{
        strv_free(&s->nodes);
}

static int prep_incoming(migration_prepare_seq *s, lo_next *n)
{
        s->step = PREP_DONE;
        *n = (lo_next){.command = "migrate-incoming", .args = jstr(cJSON_CreateObject(), "uri", s->uri)};
        return LO_SEQ_NEXT;
}

static int prep_export_next(migration_prepare_seq *s, lo_next *n)
{
        if (s->i >= s->nodes.n)
                return prep_incoming(s, n);
        const char *node = s->nodes.v[s->i++];
        char id[160];
        snprintf(id, sizeof(id), "kvexp-%s", node);
        cJSON *e = jstr(jstr(jstr(jstr(cJSON_CreateObject(), "type", "nbd"), "id", id), "node-name", node),
                        "name", node);
        s->step = PREP_EXPORTING;
        *n = (lo_next){.command = "block-export-add", .args = jbool(e, "writable", true)};
        return LO_SEQ_NEXT;
}

static int prepare_step(migration_prepare_seq *s, const cJSON *ret, lo_next *n, kv_error *err)
{
        switch (s->step) {
        case PREP_CAPS:
                s->step = PREP_PARAMS;
                *n = caps_cmd(&s->params, false);
                return LO_SEQ_NEXT;
        case PREP_PARAMS:
                s->step = PREP_NBD;
                *n = params_cmd(&s->params, false);
                return LO_SEQ_NEXT;
        case PREP_NBD: {
                if (s->nbd_port <= 0)
                        return prep_incoming(s, n);
                cJSON *a = cJSON_CreateObject();
                cJSON_AddItemToObject(a, "addr", inet_addr(s->nbd_host, s->nbd_port, false));
                s->step = PREP_BLOCKS;
                *n = (lo_next){.command = "nbd-server-start", .args = a};
                return LO_SEQ_NEXT;
        }
        case PREP_BLOCKS:
                s->step = PREP_LISTED;
                *n = (lo_next){.command = "query-block"};
                return LO_SEQ_NEXT;
        case PREP_LISTED: {
                int r = lo_walk_block_nodes(ret, push_writable, &s->nodes, err);
                return r < 0 ? r : prep_export_next(s, n);
        }
        case PREP_EXPORTING:
                return prep_export_next(s, n);
        case PREP_DONE:
                return LO_SEQ_DONE;
        }
        return kv_error_set(err, EINVAL, "bad step %d", s->step);
}

/* Every command is sent may_fail so that its failure, too, is named "prepare migration target". */
int migration_prepare_step(void *ctx, const cJSON *ret, const kv_error *qerr, lo_next *n, kv_error *err)
{
        if (qerr)
                *err = *qerr;
        int r = qerr ? -qerr->code : prepare_step(ctx, ret, n, err);
        n->may_fail = true;
        return r < 0 ? kv_error_wrap(err, "prepare migration target") : r;
}

int migration_target_prepare(qmp *q, const migration_config *c, const char *uri, const char *nbd_host,
                             int nbd_port, kv_error *err)
{
        migration_prepare_seq s;
        migration_prepare_init(&s, c, uri, nbd_host, nbd_port);
        int r = lo_seq_run(q, migration_prepare_step, &s, err);
        migration_prepare_seq_free(&s);
        return r;
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

/* ---- target release: the NBD exports the source no longer uses removed (block-export-del in "safe" mode
 * fails while a client, the source's mirror, is connected; "hard" with force), the NBD server stopped
 * once none is left, then (resume) `cont` unless the guest already runs ------------------------------ */

enum { REL_QUERY, REL_LISTED, REL_DELETING, REL_STOPPING, REL_RESUME, REL_STATUS, REL_CONT };

void migration_release_init(migration_release_seq *s, bool force, bool unexport, bool resume)
{
        *s = (migration_release_seq){
            .force = force, .resume = resume, .step = unexport ? REL_QUERY : REL_RESUME};
}

static int rel_resume(migration_release_seq *s, lo_next *n)
{
        if (!s->resume || s->left > 0)
                return LO_SEQ_DONE;
        s->step = REL_STATUS;
        *n = (lo_next){.command = "query-status"};
        return LO_SEQ_NEXT;
}

static int rel_delete_next(migration_release_seq *s, lo_next *n)
{
        cJSON *id = cJSON_DetachItemFromArray(s->ids, 0);
        if (id) {
                cJSON *a = jstr(cJSON_CreateObject(), "id", id->valuestring);
                cJSON_Delete(id);
                s->step = REL_DELETING;
                *n = (lo_next){.command = "block-export-del",
                               .args = jstr(a, "mode", s->force ? "hard" : "safe"),
                               .may_fail = true};
                return LO_SEQ_NEXT;
        }
        if (s->left > 0)
                return LO_SEQ_DONE;
        s->step = REL_STOPPING;
        /* not started without local disks: its failure does not matter */
        *n = (lo_next){.command = "nbd-server-stop", .may_fail = true};
        return LO_SEQ_NEXT;
}

static int rel_listed(migration_release_seq *s, const cJSON *exports, lo_next *n)
{
        cJSON_Delete(s->ids);
        s->ids = cJSON_CreateArray();
        const cJSON *e;
        cJSON_ArrayForEach(e, exports)
        {
                const cJSON *id = cJSON_GetObjectItem(e, "id");
                if (cJSON_IsString(id) && !strncmp(id->valuestring, "kvexp-", 6) &&
                    !cJSON_IsTrue(cJSON_GetObjectItem(e, "shutting-down")))
                        cJSON_AddItemToArray(s->ids, cJSON_CreateString(id->valuestring));
        }
        return rel_delete_next(s, n);
}

static int release_step(migration_release_seq *s, const cJSON *ret, const kv_error *qerr, lo_next *n,
                        kv_error *err)
{
        switch (s->step) {
        case REL_QUERY:
                s->step = REL_LISTED;
                *n = (lo_next){.command = "query-block-exports"};
                return LO_SEQ_NEXT;
        case REL_LISTED:
                return rel_listed(s, ret, n);
        case REL_DELETING:
                if (qerr)
                        s->left++;
                return rel_delete_next(s, n);
        case REL_STOPPING:
        case REL_RESUME:
                return rel_resume(s, n);
        case REL_STATUS:
                if (cJSON_IsTrue(cJSON_GetObjectItem(ret, "running")))
                        return LO_SEQ_DONE;
                s->step = REL_CONT;
                *n = (lo_next){.command = "cont"};
                return LO_SEQ_NEXT;
        case REL_CONT:
                return LO_SEQ_DONE;
        }
        return kv_error_set(err, EINVAL, "bad step %d", s->step);
}

/* Every command is sent may_fail: a failure the step does not expect (block-export-del: the export is in
 * use; nbd-server-stop: none was started) is named "finish migration target". */
int migration_release_step(void *ctx, const cJSON *ret, const kv_error *qerr, lo_next *n, kv_error *err)
{
        migration_release_seq *s = ctx;
        bool expected = s->step == REL_DELETING || s->step == REL_STOPPING;
        if (qerr && !expected)
                *err = *qerr;
        int r = qerr && !expected ? -qerr->code : release_step(s, ret, qerr, n, err);
        n->may_fail = true;
        if (r != LO_SEQ_NEXT) {
                cJSON_Delete(s->ids);
                s->ids = NULL;
        }
        return r < 0 ? kv_error_wrap(err, "finish migration target") : r;
}

static int run_release(qmp *q, bool force, bool unexport, bool resume, kv_error *err)
{
        migration_release_seq s;
        migration_release_init(&s, force, unexport, resume);
        int r = lo_seq_run(q, migration_release_step, &s, err);
        cJSON_Delete(s.ids);
        return r < 0 ? r : s.left;
}

int migration_target_unexport(qmp *q, bool force, kv_error *err)
{
        return run_release(q, force, true, false, err);
}

int migration_target_resume(qmp *q, kv_error *err)
{
        int r = run_release(q, false, false, true, err);
        return r < 0 ? r : 0;
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
        return run_release(q, true, true, true, err) < 0 ? -err->code : 0;
}

static void mirror_names(const char *node, char *tgt, size_t tsize, char *job, size_t jsize)
{
        snprintf(tgt, tsize, "kvmig-%s", node);
        snprintf(job, jsize, "kvmir-%s", node);
}

/* ---- stopping the mirrors: block-job-cancel at READY finishes copying without pivoting
 * (BLOCK_JOB_COMPLETED); before READY it cancels. Either way the job concludes, is dismissed, and the NBD
 * client node goes. Failures are ignored: every mirror gets its turn. -------------------------------- */

enum { STOP_CANCEL, STOP_CANCELLING, STOP_JOB, STOP_DELETING };

void migration_stop_init(migration_stop_seq *s, migration_state *st)
{
        *s = (migration_stop_seq){.st = st};
}

static int stop_next_mirror(migration_stop_seq *s, lo_next *n)
{
        migration_state *st = s->st;
        if (s->i >= st->n_mirrors) {
                migration_state_free(st);
                return LO_SEQ_DONE;
        }
        char tgt[160], job[160];
        mirror_names(st->mirrors[s->i], tgt, sizeof(tgt), job, sizeof(job));
        s->step = STOP_CANCELLING;
        *n = (lo_next){.command = "block-job-cancel",
                       .args = jstr(cJSON_CreateObject(), "device", job),
                       .may_fail = true};
        return LO_SEQ_NEXT;
}

static int stop_delete(migration_stop_seq *s, lo_next *n)
{
        char tgt[160], job[160];
        mirror_names(s->st->mirrors[s->i], tgt, sizeof(tgt), job, sizeof(job));
        s->step = STOP_DELETING;
        *n = (lo_next){.command = "blockdev-del",
                       .args = jstr(cJSON_CreateObject(), "node-name", tgt),
                       .may_fail = true};
        return LO_SEQ_NEXT;
}

int migration_stop_step(void *ctx, const cJSON *ret, const kv_error *qerr, lo_next *n, kv_error *err)
{
        migration_stop_seq *s = ctx;
        kv_error ignored = {0};
        switch (s->step) {
        case STOP_CANCEL:
                return stop_next_mirror(s, n);
        case STOP_CANCELLING: {
                if (qerr)
                        return stop_delete(s, n);
                char tgt[160], job[160];
                mirror_names(s->st->mirrors[s->i], tgt, sizeof(tgt), job, sizeof(job));
                lo_job_seq_init(&s->job, job, MIRROR_FINISH_TIMEOUT_MS);
                s->step = STOP_JOB;
        }
                /* fall through */
        case STOP_JOB:
                if (lo_job_step(&s->job, ret, qerr, n, &ignored) == LO_SEQ_NEXT)
                        return LO_SEQ_NEXT;
                return stop_delete(s, n);
        case STOP_DELETING:
                s->i++;
                return stop_next_mirror(s, n);
        }
        return kv_error_set(err, EINVAL, "stop mirrors: bad step %d", s->step);
}

static void mirrors_stop(qmp *q, migration_state *st)
{
        migration_stop_seq s;
        kv_error ignored = {0};
        migration_stop_init(&s, st);
        if (lo_seq_run(q, migration_stop_step, &s, &ignored) < 0)
                migration_state_free(st);
}

/* ---- starting: capabilities and parameters, the local disks mirrored to the target's NBD exports
 * until every mirror is READY, then `migrate` ------------------------------------------------------ */

enum {
        START_CAPS,
        START_PARAMS,
        START_BLOCKS,
        START_LISTING,
        START_DISMISSING,
        START_ADDING,
        START_MIRRORING,
        START_READY,
        START_MIGRATING
};

void migration_start_init(migration_start_seq *s, const migration_config *c, const char *uri,
                          const char *nbd_host, int nbd_port, migration_state *st)
{
        *s = (migration_start_seq){.c = *c, .nbd_port = nbd_port, .st = st};
        snprintf(s->uri, sizeof(s->uri), "%s", uri);
        snprintf(s->nbd_host, sizeof(s->nbd_host), "%s", nbd_host ? nbd_host : "127.0.0.1");
        *st = (migration_state){.best_remaining = UINT64_MAX};
        snprintf(st->mode, sizeof(st->mode), "PreCopy");
        snprintf(st->target_address, sizeof(st->target_address), "%s", uri);
        if (gethostname(st->source_node, sizeof(st->source_node) - 1) < 0)
                st->source_node[0] = '\0';
        rfc3339_now(st->start, sizeof(st->start));
        st->start_ms = st->last_progress_ms = kv_now_ms();
        migration_params_compute(c, &st->params);
}

void migration_start_seq_free(migration_start_seq *s)
{
        strv_free(&s->nodes);
}

static const char *next_node(migration_start_seq *s)
{
        return s->nodes.v[s->i];
}

static int ask_ready(migration_start_seq *s, lo_next *n)
{
        s->step = START_READY;
        *n = (lo_next){.command = "query-block-jobs"};
        return LO_SEQ_NEXT;
}

static int start_next_mirror(migration_start_seq *s, lo_next *n)
{
        if (s->i >= s->nodes.n) {
                s->ready_deadline = kv_now_ms() + MIRROR_READY_TIMEOUT_MS;
                return ask_ready(s, n);
        }
        char tgt[160], job[160];
        mirror_names(next_node(s), tgt, sizeof(tgt), job, sizeof(job));
        /* A concluded job of ours left by an earlier crash would block the id. */
        s->step = START_DISMISSING;
        *n = (lo_next){
            .command = "job-dismiss", .args = jstr(cJSON_CreateObject(), "id", job), .may_fail = true};
        return LO_SEQ_NEXT;
}

static int start_mirror_target(migration_start_seq *s, lo_next *n)
{
        char tgt[160], job[160];
        mirror_names(next_node(s), tgt, sizeof(tgt), job, sizeof(job));
        cJSON *nbd =
            jstr(jstr(jstr(cJSON_CreateObject(), "driver", "nbd"), "node-name", tgt), "export", next_node(s));
        cJSON_AddItemToObject(nbd, "server", inet_addr(s->nbd_host, s->nbd_port, true));
        s->step = START_ADDING;
        *n = (lo_next){.command = "blockdev-add", .args = nbd};
        return LO_SEQ_NEXT;
}

static int start_mirror_job(migration_start_seq *s, lo_next *n)
{
        char tgt[160], job[160];
        mirror_names(next_node(s), tgt, sizeof(tgt), job, sizeof(job));
        cJSON *m =
            jstr(jstr(jstr(cJSON_CreateObject(), "job-id", job), "device", next_node(s)), "target", tgt);
        /* write-blocking: guest writes reach the target before they complete, so READY stays in sync. */
        m = jbool(jstr(jstr(m, "sync", "full"), "copy-mode", "write-blocking"), "auto-dismiss", false);
        s->step = START_MIRRORING;
        *n = (lo_next){.command = "blockdev-mirror", .args = m};
        return LO_SEQ_NEXT;
}

static int start_mirror_started(migration_start_seq *s, lo_next *n, kv_error *err)
{
        migration_state *st = s->st;
        char **m = realloc(st->mirrors, (st->n_mirrors + 1) * sizeof(*m));
        if (!m)
                return kv_error_set(err, ENOMEM, "out of memory");
        st->mirrors = m;
        st->mirrors[st->n_mirrors++] = TAKE_PTR(s->nodes.v[s->i]);
        s->i++;
        return start_next_mirror(s, n);
}

static const cJSON *find_block_job(const cJSON *jobs, const char *id)
{
        const cJSON *j;
        cJSON_ArrayForEach(j, jobs)
        {
                const char *device = cJSON_GetStringValue(cJSON_GetObjectItem(j, "device"));
                if (device && !strcmp(device, id))
                        return j;
        }
        return NULL;
}

/* 1 when every mirror is READY, 0 while some copy, <0 when one ended (or vanished) before. */
static int mirrors_ready(const migration_state *st, const cJSON *jobs, kv_error *err)
{
        int ready = 1;
        for (size_t i = 0; i < st->n_mirrors; i++) {
                char tgt[160], job[160];
                mirror_names(st->mirrors[i], tgt, sizeof(tgt), job, sizeof(job));
                const cJSON *j = find_block_job(jobs, job);
                const char *status = j ? cJSON_GetStringValue(cJSON_GetObjectItem(j, "status")) : NULL;
                const char *e = j ? cJSON_GetStringValue(cJSON_GetObjectItem(j, "error")) : NULL;
                if (!j || (status && (!strcmp(status, "concluded") || !strcmp(status, "null"))))
                        return kv_error_set(err, EIO, "mirror %s ended before it was ready%s%s", job,
                                            e ? ": " : "", e ? e : "");
                if (!cJSON_IsTrue(cJSON_GetObjectItem(j, "ready")))
                        ready = 0;
        }
        return ready;
}

static int start_on_jobs(migration_start_seq *s, const cJSON *jobs, lo_next *n, kv_error *err)
{
        int r = mirrors_ready(s->st, jobs, err);
        if (r < 0)
                return r;
        if (r > 0) {
                s->step = START_MIGRATING;
                *n = (lo_next){.command = "migrate", .args = jstr(cJSON_CreateObject(), "uri", s->uri)};
                return LO_SEQ_NEXT;
        }
        int64_t left = s->ready_deadline - kv_now_ms();
        if (left <= 0)
                return kv_error_set(err, ETIMEDOUT, "the disk mirrors were not ready after %d ms",
                                    MIRROR_READY_TIMEOUT_MS);
        /* Woken by BLOCK_JOB_READY; query-block-jobs decides. */
        *n = (lo_next){.wait_ms = left < 500 ? (int)left : 500, .event = "BLOCK_JOB_READY"};
        return LO_SEQ_NEXT;
}

int migration_start_step(void *ctx, const cJSON *ret, const kv_error *qerr, lo_next *n, kv_error *err)
{
        migration_start_seq *s = ctx;
        switch (s->step) {
        case START_CAPS:
                s->step = START_PARAMS;
                *n = caps_cmd(&s->st->params, true);
                return LO_SEQ_NEXT;
        case START_PARAMS:
                s->step = START_BLOCKS;
                *n = params_cmd(&s->st->params, true);
                return LO_SEQ_NEXT;
        case START_BLOCKS:
                if (s->nbd_port <= 0) {
                        s->step = START_MIGRATING;
                        *n = (lo_next){.command = "migrate",
                                       .args = jstr(cJSON_CreateObject(), "uri", s->uri)};
                        return LO_SEQ_NEXT;
                }
                s->step = START_LISTING;
                *n = (lo_next){.command = "query-block"};
                return LO_SEQ_NEXT;
        case START_LISTING: {
                int r = lo_walk_block_nodes(ret, push_writable, &s->nodes, err);
                return r < 0 ? r : start_next_mirror(s, n);
        }
        case START_DISMISSING:
                return start_mirror_target(s, n);
        case START_ADDING:
                return start_mirror_job(s, n);
        case START_MIRRORING:
                return start_mirror_started(s, n, err);
        case START_READY:
                return ret ? start_on_jobs(s, ret, n, err) : ask_ready(s, n);
        case START_MIGRATING:
                return LO_SEQ_DONE;
        }
        return kv_error_set(err, EINVAL, "start migration: bad step %d", s->step);
}

int migration_start_failed(migration_state *st, kv_error *err)
{
        st->failed = st->finished = true;
        snprintf(st->failure_reason, sizeof(st->failure_reason), "%s", err->msg);
        rfc3339_now(st->end, sizeof(st->end));
        return kv_error_wrap(err, "start migration");
}

int migration_start(qmp *q, const migration_config *c, const char *uri, const char *nbd_host, int nbd_port,
                    migration_state *st, kv_error *err)
{
        migration_start_seq s;
        migration_start_init(&s, c, uri, nbd_host, nbd_port, st);
        int r = lo_seq_run(q, migration_start_step, &s, err);
        migration_start_seq_free(&s);
        if (r < 0) {
                mirrors_stop(q, st);
                return migration_start_failed(st, err);
        }
        return 0;
}

static uint64_t jnum_u64(const cJSON *o, const char *key)
{
        const cJSON *v = cJSON_GetObjectItem(o, key);
        return cJSON_IsNumber(v) ? (uint64_t)v->valuedouble : 0;
}

static void finish(migration_state *st, bool ok, const char *why)
{
        st->finished = true;
        st->completed = ok;
        st->failed = !ok;
        if (st->abort_requested)
                snprintf(st->abort_status, sizeof(st->abort_status), "%s", ok ? "Failed" : "Succeeded");
        if (!ok && why && !st->failure_reason[0])
                snprintf(st->failure_reason, sizeof(st->failure_reason), "%s", why);
        rfc3339_now(st->end, sizeof(st->end));
}

/* QEMU 7.2's migrate_cancel shuts only the main channel down: a multifd channel blocked in a send can keep
 * the migration "cancelling" for good (seen in CI). yank shuts every channel of the migration down; it fails
 * harmlessly when the migration already let go of them. A cancel during setup can come before the multifd
 * channels exist, so the poll yanks again while the migration stays "cancelling". */
static lo_next yank_cmd(migration_state *st)
{
        cJSON *inst = cJSON_CreateObject();
        cJSON_AddItemToArray(cJSON_AddArrayToObject(inst, "instances"),
                             jstr(cJSON_CreateObject(), "type", "migration"));
        st->last_yank_ms = kv_now_ms();
        return (lo_next){.command = "yank", .args = inst, .may_fail = true};
}

enum { POLL_QUERY, POLL_REPLY, POLL_STOPPING, POLL_SENT };

void migration_poll_init(migration_poll_seq *s, migration_state *st)
{
        *s = (migration_poll_seq){.st = st};
}

static int poll_send(migration_poll_seq *s, lo_next cmd, lo_next *n)
{
        s->step = POLL_SENT;
        *n = cmd;
        return LO_SEQ_NEXT;
}

/* The end: the mirrors stopped first (completed or not), then the state says how it ended. */
static int poll_finish(migration_poll_seq *s, bool ok, const char *why, lo_next *n, kv_error *err)
{
        s->ok = ok;
        snprintf(s->why, sizeof(s->why), "%s", why ? why : "");
        s->step = POLL_STOPPING;
        migration_stop_init(&s->stop, s->st);
        return migration_poll_step(s, NULL, NULL, n, err);
}

/* KubeVirt's two guards: no progress for progressTimeout → abort; past completionTimeoutPerGiB →
 * post-copy if allowed, else abort. */
static int check_timeouts(migration_poll_seq *s, int64_t now, lo_next *n)
{
        migration_state *st = s->st;
        if (st->ram_remaining < st->best_remaining) {
                st->best_remaining = st->ram_remaining;
                st->last_progress_ms = now;
        }
        if (!st->postcopy_started &&
            now - st->last_progress_ms > (int64_t)st->params.progress_timeout * 1000) {
                snprintf(st->failure_reason, sizeof(st->failure_reason),
                         "no progress for %u s (progressTimeout)", st->params.progress_timeout);
                return poll_send(s, (lo_next){.command = "migrate_cancel", .may_fail = true}, n);
        }
        uint64_t limit = migration_completion_timeout_ms(&st->params, st->ram_total + st->disk_bytes);
        if (st->postcopy_started || (uint64_t)(now - st->start_ms) <= limit)
                return LO_SEQ_DONE;
        if (!st->params.postcopy) {
                snprintf(st->failure_reason, sizeof(st->failure_reason),
                         "not completed within %llu s (completionTimeoutPerGiB)",
                         (unsigned long long)(limit / 1000));
                return poll_send(s, (lo_next){.command = "migrate_cancel", .may_fail = true}, n);
        }
        st->postcopy_started = true;
        snprintf(st->mode, sizeof(st->mode), "PostCopy");
        return poll_send(s, (lo_next){.command = "migrate-start-postcopy"}, n);
}

/* A deferred cancel goes once QEMU left "setup" and, when "active", has been so for a moment; or after
 * MIGRATION_CANCEL_SETUP_WAIT_MS in any case. */
static bool deferred_cancel_due(const migration_state *st, int64_t now)
{
        if (now - st->cancel_requested_ms >= MIGRATION_CANCEL_SETUP_WAIT_MS)
                return true;
        if (!strcmp(st->qemu_status, "active"))
                return now - st->active_since_ms >= MIGRATION_CANCEL_ACTIVE_SETTLE_MS;
        return strcmp(st->qemu_status, "setup") != 0;
}

static int poll_reply(migration_poll_seq *s, const cJSON *ret, lo_next *n, kv_error *err)
{
        migration_state *st = s->st;
        const cJSON *status = cJSON_GetObjectItem(ret, "status"), *ram = cJSON_GetObjectItem(ret, "ram");
        snprintf(st->qemu_status, sizeof(st->qemu_status), "%s",
                 cJSON_IsString(status) ? status->valuestring : "none");
        st->ram_total = jnum_u64(ram, "total");
        st->ram_remaining = jnum_u64(ram, "remaining");
        st->ram_transferred = jnum_u64(ram, "transferred");
        if (!strcmp(st->qemu_status, "active") && !st->active_since_ms)
                st->active_since_ms = kv_now_ms();
        st->total_time_ms = (int64_t)jnum_u64(ret, "total-time");
        st->downtime_ms = (int64_t)jnum_u64(ret, "downtime");
        if (!strcmp(st->qemu_status, "completed")) {
                if (st->total_time_ms == 0 && kv_now_ms() - st->start_ms < 600000)
                        return LO_SEQ_DONE; /* the figures land a few ms after the event (notes §6) */
                return poll_finish(s, true, NULL, n, err);
        }
        if (!strcmp(st->qemu_status, "failed") || !strcmp(st->qemu_status, "cancelled")) {
                const cJSON *e = cJSON_GetObjectItem(ret, "error-desc");
                return poll_finish(s, false, cJSON_IsString(e) ? e->valuestring : st->qemu_status, n, err);
        }
        if (!strcmp(st->qemu_status, "postcopy-active"))
                snprintf(st->mode, sizeof(st->mode), "PostCopy");
        if (st->cancel_deferred && deferred_cancel_due(st, kv_now_ms())) {
                st->cancel_deferred = false;
                return poll_send(s, (lo_next){.command = "migrate_cancel", .may_fail = true}, n);
        }
        if (st->cancel_deferred)
                return LO_SEQ_DONE; /* cancelled already: no timeout, no post-copy switch */
        if (st->abort_requested && !strcmp(st->qemu_status, "cancelling") &&
            kv_now_ms() - st->last_yank_ms >= 500)
                return poll_send(s, yank_cmd(st), n);
        if (!strcmp(st->qemu_status, "active"))
                return check_timeouts(s, kv_now_ms(), n);
        return LO_SEQ_DONE;
}

int migration_poll_step(void *ctx, const cJSON *ret, const kv_error *qerr, lo_next *n, kv_error *err)
{
        migration_poll_seq *s = ctx;
        if (s->st->finished && s->step != POLL_STOPPING) {
                s->finished = true;
                return LO_SEQ_DONE;
        }
        switch (s->step) {
        case POLL_QUERY:
                s->step = POLL_REPLY;
                *n = (lo_next){.command = "query-migrate"};
                return LO_SEQ_NEXT;
        case POLL_REPLY:
                return poll_reply(s, ret, n, err);
        case POLL_STOPPING: {
                kv_error ignored = {0};
                if (migration_stop_step(&s->stop, ret, qerr, n, &ignored) == LO_SEQ_NEXT)
                        return LO_SEQ_NEXT;
                finish(s->st, s->ok, s->why[0] ? s->why : NULL);
                s->finished = true;
                return LO_SEQ_DONE;
        }
        case POLL_SENT:
                return LO_SEQ_DONE;
        }
        return kv_error_set(err, EINVAL, "migration poll: bad step %d", s->step);
}

int migration_poll(qmp *q, migration_state *st, kv_error *err)
{
        migration_poll_seq s;
        migration_poll_init(&s, st);
        int r = lo_seq_run(q, migration_poll_step, &s, err);
        return r < 0 ? r : s.finished;
}

int migration_cancel_check(const migration_state *st, kv_error *err)
{
        if (st->finished)
                return kv_error_set(err, EALREADY, "the migration already %s",
                                    st->completed ? "completed" : "failed");
        if (st->postcopy_started)
                return kv_error_set(
                    err, EBUSY, "a post-copy migration cannot be cancelled: the guest runs on the target");
        return 0;
}

enum { CANCEL_BEGIN, CANCEL_QUERIED, CANCEL_SENT, CANCEL_YANKED };

int migration_cancel_step(void *ctx, const cJSON *ret, const kv_error *qerr, lo_next *n, kv_error *err)
{
        migration_cancel_seq *s = ctx;
        switch (s->step) {
        case CANCEL_BEGIN:
                if (migration_cancel_check(s->st, err) < 0)
                        return -err->code;
                s->st->abort_requested = true;
                s->step = CANCEL_QUERIED;
                *n = (lo_next){.command = "query-migrate"};
                return LO_SEQ_NEXT;
        case CANCEL_QUERIED:
                if (!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(ret, "status")) ?: "", "setup")) {
                        s->st->cancel_deferred = true, s->st->cancel_requested_ms = kv_now_ms();
                        log_info("migrate-cancel during the migration's setup: sent once it is set up");
                        return LO_SEQ_DONE;
                }
                s->step = CANCEL_SENT;
                *n = (lo_next){.command = "migrate_cancel"};
                return LO_SEQ_NEXT;
        case CANCEL_SENT:
                s->step = CANCEL_YANKED;
                *n = yank_cmd(s->st);
                return LO_SEQ_NEXT;
        }
        if (qerr)
                log_debug("yank after migrate_cancel: %s", qerr->msg);
        return LO_SEQ_DONE;
}

int migration_cancel(qmp *q, migration_state *st, kv_error *err)
{
        migration_cancel_seq s = {.st = st};
        return lo_seq_run(q, migration_cancel_step, &s, err);
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
