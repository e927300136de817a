/* Migration view of a VMI: active Pod and status.migrationState from the Pods; see vmimigration.h. */
#include "vmimigration.h"
#include "api.h"
#include "netspec.h"
#include "podrender.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

cJSON *pod_launcher_status(const cJSON *pod)
{
        const cJSON *ann = kube_obj(pod, "metadata.annotations");
        const cJSON *ls = cJSON_GetObjectItemCaseSensitive(ann, POD_ANNOTATION_LAUNCHER_STATUS);
        return cJSON_IsString(ls) ? cJSON_Parse(ls->valuestring) : NULL;
}

const char *pod_migration_uid(const cJSON *pod)
{
        const cJSON *v =
            cJSON_GetObjectItemCaseSensitive(kube_obj(pod, "metadata.labels"), POD_LABEL_MIGRATION_JOB);
        return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool is_final(const char *phase)
{
        return phase && (!strcmp(phase, "Succeeded") || !strcmp(phase, "Failed"));
}

bool pod_is_final(const cJSON *pod)
{
        return is_final(kube_str(pod, "status.phase"));
}

const char *vmi_volume_hotplug_claim(const cJSON *vol)
{
        const cJSON *pvc = cJSON_GetObjectItemCaseSensitive(vol, "persistentVolumeClaim");
        const cJSON *dv = cJSON_GetObjectItemCaseSensitive(vol, "dataVolume");
        if (pvc && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(pvc, "hotpluggable")))
                return kube_str(pvc, "claimName");
        if (dv && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(dv, "hotpluggable")))
                return kube_str(dv, "name");
        return NULL;
}

/* A hot-plugged volume (volumeStatus entry vs) follows a migration when it is a claim, which an attachment
 * Pod mounts on the target's node too, and is Ready: the target plugs the same device before it takes the
 * stream. Anything else would leave the target without a device the source has. */
static bool hotplug_blocker(const cJSON *vmi, const cJSON *vs, migration_blocker *b)
{
        const char *name = kube_str(vs, "name") ?: "?", *phase = kube_str(vs, "phase") ?: "";
        const cJSON *v, *vol = NULL;
        if (!kube_obj(vs, "hotplugVolume"))
                return false;
        cJSON_ArrayForEach(v, kube_obj(vmi, "spec.volumes"))
        {
                if (!strcmp(kube_str(v, "name") ?: "", name))
                        vol = v;
        }
        b->reason = "HotplugNotLiveMigratable";
        if (!vmi_volume_hotplug_claim(vol))
                snprintf(b->message, sizeof(b->message),
                         "volume %s is hot-plugged and not a hotpluggable claim: only claims are attached on "
                         "the migration target; unplug it (virtctl removevolume) first",
                         name);
        else if (strcmp(phase, "Ready"))
                snprintf(b->message, sizeof(b->message),
                         "hot-plugged volume %s is not Ready (phase %s): migrate once its hot-plug finished",
                         name, *phase ? phase : "none");
        else
                return false;
        return true;
}

bool vmi_migratable(const cJSON *vmi, const cJSON *volume_status, migration_blocker *b)
{
        net_request net;
        kv_error ignored = {0};
        const char *allow = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
            kube_obj(vmi, "metadata.annotations"), NET_ALLOW_POD_BRIDGE_MIGRATION_ANNOTATION));
        const char *why = net_request_from_vmi(kube_obj(vmi, "spec"), &net, &ignored) < 0
                              ? NULL /* a VMI that cannot run is refused for that */
                              : net_migration_blocker(&net, allow && strcasecmp(allow, "false"));
        if (why) {
                b->reason = "InterfaceNotLiveMigratable";
                snprintf(b->message, sizeof(b->message), "%s", why);
                return false;
        }
        const cJSON *vs;
        cJSON_ArrayForEach(vs, volume_status)
        {
                if (hotplug_blocker(vmi, vs, b))
                        return false;
        }
        return true;
}

bool migration_in_flight(const cJSON *ms)
{
        return cJSON_IsObject(ms) && kube_str(ms, "migrationUid") &&
               !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ms, "completed")) &&
               !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ms, "failed"));
}

static const cJSON *pod_named(const cJSON *pods, const char *name)
{
        const cJSON *p;
        cJSON_ArrayForEach(p, pods)
        {
                const char *n = kube_str(p, "metadata.name");
                if (name && n && !strcmp(n, name))
                        return p;
        }
        return NULL;
}

/* Outside migrations: the VMI's own Pod, never a migration target; one not being deleted first. */
static const cJSON *plain_pod(const cJSON *pods)
{
        const cJSON *p, *any = NULL;
        cJSON_ArrayForEach(p, pods)
        {
                if (pod_migration_uid(p))
                        continue;
                if (!kube_obj(p, "metadata.deletionTimestamp"))
                        return p;
                any = any ? any : p;
        }
        return any;
}

/* RFC 3339 timestamps compared to the second (the launcher may add fractions). */
static bool not_before(const char *a, const char *b)
{
        return a && b && strncmp(a, b, 19) >= 0;
}

static void set_bool(cJSON *o, const char *key, bool v)
{
        cJSON_DeleteItemFromObjectCaseSensitive(o, key);
        cJSON_AddBoolToObject(o, key, v);
}

static void set_str(cJSON *o, const char *key, const char *v)
{
        cJSON_DeleteItemFromObjectCaseSensitive(o, key);
        if (v)
                cJSON_AddStringToObject(o, key, v);
}

/* The launcher's migrationState when it belongs to this migration (started at or after ours). */
static const cJSON *launcher_ms(const cJSON *ls, const cJSON *ms)
{
        const cJSON *lms = cJSON_GetObjectItemCaseSensitive(ls, "migrationState");
        return cJSON_IsObject(lms) &&
                       not_before(kube_str(lms, "startTimestamp"), kube_str(ms, "startTimestamp"))
                   ? lms
                   : NULL;
}

/* The source's guest is gone from the source: it migrated away (completed, or ended with reason migrated). */
static bool handed_over(const cJSON *src, const cJSON *sls, const cJSON *ms)
{
        if (cJSON_IsTrue(kube_obj(launcher_ms(sls, ms), "completed")))
                return true;
        const char *reason = kube_str(sls, "reason");
        return pod_is_final(src) && reason && !strcasecmp(reason, "migrated");
}

static const char *pod_end_reason(const cJSON *pod, const cJSON *ls)
{
        const char *r = kube_str(ls, "reason");
        if (r && *r)
                return r;
        const cJSON *cs = cJSON_GetArrayItem(kube_obj(pod, "status.containerStatuses"), 0);
        r = kube_str(cs, "state.terminated.message");
        return r ? r : kube_str(pod, "status.phase");
}

#define ABORTED_REASON "aborted: the VirtualMachineInstanceMigration was deleted"

/* A migration ended after its VMIM was deleted (abortRequested) failed because of that, whichever end the
 * controller saw first: the target's QEMU fails as soon as the source cuts the stream, often before the
 * source's report. What the source reported is added once it is there. */
static void aborted_reason(const cJSON *lms, char *buf, size_t size)
{
        const char *r = cJSON_IsTrue(kube_obj(lms, "failed")) ? kube_str(lms, "failureReason") : NULL;
        snprintf(buf, size, ABORTED_REASON "%s%s", r && *r ? "; source: " : "", r && *r ? r : "");
}

/* Why this migration failed, or false when it has not (yet). */
static bool failure(const cJSON *ms, const cJSON *src, const cJSON *sls, const cJSON *tgt, const cJSON *tls,
                    char *buf, size_t size)
{
        const char *tname = kube_str(ms, "targetPod");
        const cJSON *lms = launcher_ms(sls, ms);
        /* not when the source handed over anyway (a post-copy cannot be cancelled): then the guest is lost */
        bool aborted = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ms, "abortRequested")) &&
                       !(src && handed_over(src, sls, ms));
        if (aborted &&
            (cJSON_IsTrue(kube_obj(lms, "failed")) || !tgt || kube_obj(tgt, "metadata.deletionTimestamp") ||
             pod_is_final(tgt) || is_final(kube_str(tls, "phase"))))
                aborted_reason(lms, buf, size);
        else if (cJSON_IsTrue(kube_obj(lms, "failed"))) {
                const char *r = kube_str(lms, "failureReason");
                snprintf(buf, size, "source: %s", r && *r ? r : "migration failed");
        } else if (!tgt)
                snprintf(buf, size, "target Pod %s disappeared", tname ? tname : "");
        else if (kube_obj(tgt, "metadata.deletionTimestamp"))
                snprintf(buf, size, "target Pod %s is being deleted", tname);
        else if (pod_is_final(tgt) || is_final(kube_str(tls, "phase")))
                snprintf(buf, size, "target Pod %s ended: %s", tname, pod_end_reason(tgt, tls) ?: "Failed");
        else if (!src)
                snprintf(buf, size, "source Pod %s disappeared", kube_str(ms, "sourcePod") ?: "");
        else if (pod_is_final(src) && !handed_over(src, sls, ms))
                snprintf(buf, size, "source Pod ended: %s", pod_end_reason(src, sls) ?: "Failed");
        else
                return false;
        return true;
}

static bool target_completed(const cJSON *tls)
{
        const char *phase = kube_str(tls, "phase");
        return phase && !strcmp(phase, "Running") && cJSON_IsTrue(kube_obj(tls, "migrationState.completed"));
}

/* What the launchers report that KubeVirt's migrationState carries too. */
static void merge_progress(cJSON *st, const cJSON *lms)
{
        const char *keys[] = {"mode", "abortStatus"};
        for (size_t i = 0; lms && i < sizeof(keys) / sizeof(keys[0]); i++)
                if (kube_str(lms, keys[i]))
                        set_str(st, keys[i], kube_str(lms, keys[i]));
}

/* An aborted migration failed on the target's end before the source reported: its report (failureReason,
 * abortStatus) is added when it arrives. */
static void late_source_report(const cJSON *ms, const cJSON *sls, vmi_migration_view *v)
{
        const cJSON *lms = launcher_ms(sls, ms);
        if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ms, "abortRequested")) ||
            !cJSON_IsTrue(kube_obj(lms, "failed")))
                return;
        aborted_reason(lms, v->reason, sizeof(v->reason));
        set_str(v->state, "failureReason", v->reason);
        merge_progress(v->state, lms);
}

static void observe_in_flight(const cJSON *ms, const cJSON *pods, const char *now, vmi_migration_view *v)
{
        const cJSON *src = pod_named(pods, kube_str(ms, "sourcePod")),
                    *tgt = pod_named(pods, kube_str(ms, "targetPod"));
        cJSON *sls = pod_launcher_status(src), *tls = pod_launcher_status(tgt);
        const cJSON *slms = launcher_ms(sls, ms);
        merge_progress(v->state, slms);
        v->active = src;
        if (tgt && target_completed(tls)) {
                const char *end = kube_str(tls, "migrationState.endTimestamp");
                set_bool(v->state, "completed", true);
                set_str(v->state, "endTimestamp", end ? end : now);
                v->active = tgt;
        } else if (failure(ms, src, sls, tgt, tls, v->reason, sizeof(v->reason))) {
                set_bool(v->state, "failed", true);
                set_str(v->state, "failureReason", v->reason);
                set_str(v->state, "endTimestamp", now);
                v->lost = src && handed_over(src, sls, ms);
        } else
                v->hold = src && handed_over(src, sls, ms);
        cJSON_Delete(sls);
        cJSON_Delete(tls);
}

void vmi_migration_observe(const cJSON *vmi, const cJSON *pods, const char *now, vmi_migration_view *v)
{
        memset(v, 0, sizeof(*v));
        const cJSON *ms = kube_obj(vmi, "status.migrationState");
        if (!cJSON_IsObject(ms) || !kube_str(ms, "migrationUid")) {
                v->active = plain_pod(pods);
                v->state = cJSON_IsObject(ms) ? cJSON_Duplicate(ms, 1) : NULL;
                return;
        }
        v->state = cJSON_Duplicate(ms, 1);
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ms, "completed")))
                v->active = pod_named(pods, kube_str(ms, "targetPod"));
        else if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ms, "failed"))) {
                const cJSON *src = pod_named(pods, kube_str(ms, "sourcePod"));
                cJSON *sls = pod_launcher_status(src);
                v->active = src;
                v->lost = src && handed_over(src, sls, ms);
                snprintf(v->reason, sizeof(v->reason), "%s",
                         kube_str(ms, "failureReason") ?: "migration failed");
                late_source_report(ms, sls, v);
                cJSON_Delete(sls);
        } else
                observe_in_flight(ms, pods, now, v);
}

void vmi_migration_view_free(vmi_migration_view *v)
{
        cJSON_Delete(v->state);
        v->state = NULL;
}
