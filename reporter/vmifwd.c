/* vmifwd: the reporter's VMI → control request decisions; see vmifwd.h. */
#include "vmifwd.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl-protocol.h"
#include "macro.h"
#include "migration-ports.h"

static const char *str_at(const cJSON *o, const char *key)
{
        return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, key));
}

static bool true_at(const cJSON *o, const char *key)
{
        return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, key));
}

static bool same(const char *a, const char *b)
{
        return a && b && !strcmp(a, b);
}

/* An IP address or a host name: it lands in a QEMU URI and a QMP inet address. */
static bool address_ok(const char *a)
{
        size_t n = a ? strlen(a) : 0;
        return n > 0 && n < 200 &&
               strspn(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.:-") == n;
}

static int request(fwd_request *out, fwd_kind kind, ctl_verb cmd, cJSON *args, const char *uid)
{
        *out = (fwd_request){.kind = kind, .req = cJSON_CreateObject()};
        cJSON_AddStringToObject(out->req, "cmd", ctl_verb_name(cmd));
        if (args)
                cJSON_AddItemToObject(out->req, "args", args);
        snprintf(out->uid, sizeof(out->uid), "%s", uid ? uid : "");
        return 1;
}

/* ms: the VMI's migrationState. Its migrationConfiguration (what virt-controller resolved from the cluster
 * defaults and the MigrationPolicy) becomes the launcher's config as it is: the controller writes it in the
 * launcher's terms (bandwidthPerMigration a byte count), and the launcher reads only the fields it knows. */
static int migrate_request(const fwd_state *st, fwd_request *out, const cJSON *ms, const char *addr,
                           const char *uid)
{
        char uri[256];
        /* an IPv6 address needs brackets in a URI, not in QMP's inet host */
        snprintf(uri, sizeof(uri), strchr(addr, ':') ? "tcp:[%s]:%d" : "tcp:%s:%d", addr,
                 st->port ? st->port : KV_MIGRATION_PORT);
        cJSON *args = cJSON_CreateObject();
        cJSON_AddStringToObject(args, "uri", uri);
        cJSON_AddStringToObject(args, "nbdHost", addr);
        cJSON_AddNumberToObject(args, "nbdPort", st->nbd_port ? st->nbd_port : KV_MIGRATION_NBD_PORT);
        cJSON_AddStringToObject(args, "migrationUid", uid);
        const cJSON *config = cJSON_GetObjectItemCaseSensitive(ms, "migrationConfiguration");
        if (cJSON_IsObject(config))
                cJSON_AddItemToObject(args, "config", cJSON_Duplicate(config, true));
        return request(out, FWD_MIGRATE, CTL_VERB_MIGRATE, args, uid);
}

/* The VMI as `apply` wants it: what the launcher reads (its status and the API's bookkeeping would only
 * take room in the 64 KiB request line). */
static int apply_request(fwd_request *out, const cJSON *vmi, const cJSON *spec)
{
        cJSON *copy = cJSON_Duplicate(vmi, true);
        cJSON_DeleteItemFromObjectCaseSensitive(copy, "status");
        cJSON_DeleteItemFromObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(copy, "metadata"),
                                                "managedFields");
        cJSON *args = cJSON_CreateObject();
        cJSON_AddItemToObject(args, "vmi", copy);
        request(out, FWD_APPLY, CTL_VERB_APPLY, args, NULL);
        out->spec = cJSON_Duplicate(spec, true);
        return 1;
}

/* ---- snapshot requests (docs/cluster-snapshots.md) ---- */

/* The verb of a snapshot operation ("save" → snapshot-save), -1 for another op. */
static int snapshot_verb(const char *op)
{
        static const struct {
                const char *op;
                ctl_verb verb;
        } verbs[] = {{"save", CTL_VERB_SNAPSHOT_SAVE},
                     {"load", CTL_VERB_SNAPSHOT_LOAD},
                     {"delete", CTL_VERB_SNAPSHOT_DELETE}};
        for (size_t i = 0; op && i < ARRAY_SIZE(verbs); i++)
                if (!strcmp(op, verbs[i].op))
                        return (int)verbs[i].verb;
        return -1;
}

/* A qcow2 snapshot name the controller may ask for (the snapshot's uid). */
static bool tag_ok(const char *t)
{
        size_t n = t ? strlen(t) : 0;
        return n > 0 && n <= FWD_SNAPSHOT_ID_MAX &&
               strspn(t, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

/* NULL when e is a well-formed request, else what is wrong with it. */
static const char *entry_problem(const cJSON *e)
{
        const char *id = str_at(e, "id");
        if (!cJSON_IsObject(e))
                return "not an object";
        if (!id || !*id || strlen(id) > FWD_SNAPSHOT_ID_MAX)
                return "id must be a string of 1-128 bytes";
        if (snapshot_verb(str_at(e, "op")) < 0)
                return "op must be save, load or delete";
        if (!tag_ok(str_at(e, "tag")))
                return "tag must be 1-128 characters of [A-Za-z0-9._-]";
        return NULL;
}

static const char *requests_text(const cJSON *vmi)
{
        const cJSON *md = cJSON_GetObjectItemCaseSensitive(vmi, "metadata");
        return str_at(cJSON_GetObjectItemCaseSensitive(md, "annotations"), FWD_SNAPSHOT_ANNOTATION);
}

/* The launcher's status reports the id (also what a restarted reporter goes by), or it answered it. */
static bool snapshot_done(const fwd_state *st, const cJSON *launcher, const char *id)
{
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(launcher, "snapshotOperations"))
        {
                if (same(str_at(e, "id"), id))
                        return true;
        }
        unsigned n = st->n_snapshots_done < FWD_SNAPSHOT_DONE ? st->n_snapshots_done : FWD_SNAPSHOT_DONE;
        for (unsigned i = 0; i < n; i++)
                if (!strcmp(st->snapshots_done[i], id))
                        return true;
        return false;
}

static int snapshot_request(const fwd_state *st, const cJSON *vmi, const cJSON *launcher, fwd_request *out)
{
        const char *text = requests_text(vmi);
        cJSON *reqs = text ? cJSON_Parse(text) : NULL;
        const cJSON *e, *list = cJSON_IsArray(reqs) ? reqs : NULL; /* an object's members are no entries */
        int r = 0;
        cJSON_ArrayForEach(e, list) /* array order: one at a time */
        {
                const char *id = str_at(e, "id");
                if (entry_problem(e) || snapshot_done(st, launcher, id))
                        continue;
                cJSON *args = cJSON_CreateObject();
                cJSON_AddStringToObject(args, "tag", str_at(e, "tag"));
                cJSON_AddStringToObject(args, "id", id);
                r = request(out, FWD_SNAPSHOT, (ctl_verb)snapshot_verb(str_at(e, "op")), args, id);
                break;
        }
        cJSON_Delete(reqs);
        return r;
}

void fwd_check_snapshot_requests(fwd_state *st, const cJSON *vmi, void (*skipped)(const char *why, void *ud),
                                 void *ud)
{
        const char *text = requests_text(vmi);
        if (text == st->requests_checked || same(text, st->requests_checked))
                return;
        free(st->requests_checked);
        st->requests_checked = text ? strdup(text) : NULL;
        cJSON *reqs = text ? cJSON_Parse(text) : NULL;
        char why[320];
        if (text && !cJSON_IsArray(reqs))
                skipped(FWD_SNAPSHOT_ANNOTATION ": not a JSON array, ignored", ud);
        int i = 0;
        const cJSON *e, *list = cJSON_IsArray(reqs) ? reqs : NULL;
        cJSON_ArrayForEach(e, list)
        {
                const char *problem = entry_problem(e), *id = str_at(e, "id");
                if (problem) {
                        snprintf(why, sizeof(why), "%s[%d]%s%.64s%s: %s: skipped", FWD_SNAPSHOT_ANNOTATION, i,
                                 id ? " (id \"" : "", id ? id : "", id ? "\")" : "", problem);
                        skipped(why, ud);
                }
                i++;
        }
        cJSON_Delete(reqs);
}

/* ---- pause/unpause (virt-api's subresources) ---- */

static bool launcher_paused(const cJSON *launcher)
{
        const cJSON *c;
        cJSON_ArrayForEach(
            c, cJSON_GetObjectItemCaseSensitive(
                   launcher, "conditions")) if (same(str_at(c, "type"),
                                                     "Paused")) return same(str_at(c, "status"), "True");
        return false;
}

/* The annotation's wanted state against the launcher's Paused condition; each wanted value is forwarded
 * once (a pause done by hand with `virt-launcher ctl` is not undone). */
static int pause_request(const fwd_state *st, const cJSON *vmi, const cJSON *launcher, fwd_request *out)
{
        const char *want = str_at(cJSON_GetObjectItemCaseSensitive(
                                      cJSON_GetObjectItemCaseSensitive(vmi, "metadata"), "annotations"),
                                  FWD_PAUSE_ANNOTATION);
        if (!same(want, "true") && !same(want, "false"))
                return 0;
        bool pause = same(want, "true");
        if (pause == launcher_paused(launcher) || same(st->pause_sent, want))
                return 0;
        return request(out, FWD_PAUSE, pause ? CTL_VERB_PAUSE : CTL_VERB_UNPAUSE, NULL, want);
}

/* A softreboot request id neither forwarded nor done (the launcher's softRebootId) yet. */
static int softreboot_request(const fwd_state *st, const cJSON *vmi, const cJSON *launcher, fwd_request *out)
{
        const char *id = str_at(cJSON_GetObjectItemCaseSensitive(
                                    cJSON_GetObjectItemCaseSensitive(vmi, "metadata"), "annotations"),
                                FWD_SOFTREBOOT_ANNOTATION);
        if (!id || !*id || strlen(id) > FWD_SNAPSHOT_ID_MAX || same(str_at(launcher, "softRebootId"), id) ||
            same(st->softreboot_sent, id))
                return 0;
        cJSON *args = cJSON_CreateObject();
        cJSON_AddStringToObject(args, "id", id);
        return request(out, FWD_SOFTREBOOT, CTL_VERB_SOFTREBOOT, args, id);
}

/* A refused apply whose launcher reports other volumes since. */
static bool apply_again(const fwd_state *st, const cJSON *launcher)
{
        const cJSON *vs = cJSON_GetObjectItemCaseSensitive(launcher, "volumeStatus");
        if (!st->apply_refused)
                return false;
        if (!vs || !st->refused_volumes)
                return vs != st->refused_volumes;
        return !cJSON_Compare(vs, st->refused_volumes, true);
}

int fwd_next(const fwd_state *st, const cJSON *vmi, const cJSON *launcher, const char *pod, fwd_request *out)
{
        *out = (fwd_request){0};
        if (!cJSON_IsObject(vmi) || !same(str_at(launcher, "phase"), "Running"))
                return 0; /* a target (Scheduled) or an ending launcher takes none of these */
        const cJSON *ms = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(vmi, "status"),
                                                           "migrationState");
        const cJSON *lms = cJSON_GetObjectItemCaseSensitive(launcher, "migrationState");
        const char *uid = str_at(ms, "migrationUid");
        bool uid_ok = uid && *uid && strlen(uid) < FWD_UID_MAX;
        bool launcher_migrating =
            cJSON_IsObject(lms) && !true_at(lms, "completed") && !true_at(lms, "failed");
        bool launcher_has_uid = uid_ok && same(str_at(lms, "migrationUid"), uid);

        if (uid_ok && true_at(ms, "abortRequested") && launcher_has_uid && launcher_migrating &&
            strcmp(st->cancelled, uid))
                return request(out, FWD_CANCEL, CTL_VERB_MIGRATE_CANCEL, NULL, uid);
        const char *addr = str_at(ms, "targetNodeAddress");
        if (uid_ok && same(str_at(ms, "sourcePod"), pod) && address_ok(addr) && !true_at(ms, "completed") &&
            !true_at(ms, "failed") && !true_at(ms, "abortRequested") && !launcher_has_uid &&
            strcmp(st->migrated, uid))
                return migrate_request(st, out, ms, addr, uid);
        const cJSON *spec = cJSON_GetObjectItemCaseSensitive(vmi, "spec");
        /* No hot-plug under a running migration: the target was started with the spec before it. */
        if (cJSON_IsObject(spec) && !launcher_migrating &&
            (!st->spec || !cJSON_Compare(st->spec, spec, true) || apply_again(st, launcher)))
                return apply_request(out, vmi, spec);
        /* No snapshot under a migration either: the VMI's migrationState counts from the controller's
         * hand-over on, before the launcher's status shows it. */
        bool vmi_migrating = cJSON_IsObject(ms) && !true_at(ms, "completed") && !true_at(ms, "failed");
        if (launcher_migrating || vmi_migrating)
                return 0;
        return pause_request(st, vmi, launcher, out) ?: softreboot_request(st, vmi, launcher, out)
                                                   ?: snapshot_request(st, vmi, launcher, out);
}

void fwd_apply_refused(fwd_state *st, const cJSON *launcher)
{
        const cJSON *vs = cJSON_GetObjectItemCaseSensitive(launcher, "volumeStatus");
        st->apply_refused = true;
        cJSON_Delete(st->refused_volumes);
        st->refused_volumes = vs ? cJSON_Duplicate(vs, true) : NULL;
}

void fwd_commit(fwd_state *st, fwd_request *req)
{
        switch (req->kind) {
        case FWD_APPLY:
                st->apply_refused = false;
                cJSON_Delete(TAKE_PTR(st->refused_volumes));
                cJSON_Delete(st->spec);
                st->spec = req->spec;
                req->spec = NULL;
                break;
        case FWD_MIGRATE:
                snprintf(st->migrated, sizeof(st->migrated), "%s", req->uid);
                break;
        case FWD_CANCEL:
                snprintf(st->cancelled, sizeof(st->cancelled), "%s", req->uid);
                break;
        case FWD_SNAPSHOT:
                snprintf(st->snapshots_done[st->n_snapshots_done++ % FWD_SNAPSHOT_DONE],
                         sizeof(st->snapshots_done[0]), "%s", req->uid);
                break;
        case FWD_PAUSE:
                snprintf(st->pause_sent, sizeof(st->pause_sent), "%s", req->uid);
                break;
        case FWD_SOFTREBOOT:
                snprintf(st->softreboot_sent, sizeof(st->softreboot_sent), "%s", req->uid);
                break;
        case FWD_NONE:
                break;
        }
}

void fwd_prune(cJSON *vmi)
{
        cJSON *md = cJSON_GetObjectItemCaseSensitive(vmi, "metadata");
        cJSON_DeleteItemFromObjectCaseSensitive(md, "managedFields");
        cJSON_DeleteItemFromObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(md, "annotations"),
                                                "kubectl.kubernetes.io/last-applied-configuration");
        /* metadata.annotations stay: kvlite.io/snapshot-requests is read from there.
         * The rest of the status (conditions, interfaces, volume status) churns and is never read. */
        cJSON *ms = cJSON_DetachItemFromObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(vmi, "status"),
                                                            "migrationState");
        cJSON_DeleteItemFromObjectCaseSensitive(vmi, "status");
        if (ms)
                cJSON_AddItemToObject(cJSON_AddObjectToObject(vmi, "status"), "migrationState", ms);
}

void fwd_request_free(fwd_request *req)
{
        cJSON_Delete(req->req);
        cJSON_Delete(req->spec);
        *req = (fwd_request){0};
}

void fwd_state_free(fwd_state *st)
{
        cJSON_Delete(st->spec);
        cJSON_Delete(st->refused_volumes);
        free(st->requests_checked);
        *st = (fwd_state){0};
}
