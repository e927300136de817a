/* VMI status from its Pod and the launcher's annotation; see vmistatus.h. */
#include "vmistatus.h"
#include "api.h"
#include "macro.h"
#include "podrender.h"
#include "vmimigration.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

const char *vmi_phase(const cJSON *vmi)
{
        const char *p = kube_str(vmi, "status.phase");
        return p ? p : "";
}

int vmi_phase_is_final(const char *phase)
{
        return !strcmp(phase, "Succeeded") || !strcmp(phase, "Failed");
}

static cJSON *current_status(const cJSON *vmi)
{
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(vmi, "status");
        return cJSON_IsObject(st) ? cJSON_Duplicate(st, 1) : cJSON_CreateObject();
}

static void set_str(cJSON *obj, const char *key, const char *val)
{
        cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
        if (val)
                cJSON_AddStringToObject(obj, key, val);
}

static void set_copy(cJSON *obj, const char *key, const cJSON *val)
{
        cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
        if (val)
                cJSON_AddItemToObject(obj, key, cJSON_Duplicate(val, 1));
}

static cJSON *find_condition(const cJSON *conds, const char *type)
{
        cJSON *c;
        cJSON_ArrayForEach(c, conds)
        {
                const char *t = kube_str(c, "type");
                if (t && !strcmp(t, type))
                        return c;
        }
        return NULL;
}

/* Sets a condition, keeping lastTransitionTime when the status did not flip. */
static void set_condition(cJSON *st, const char *type, bool value, const char *reason, const char *message,
                          const char *now)
{
        cJSON *conds = cJSON_GetObjectItemCaseSensitive(st, "conditions");
        if (!cJSON_IsArray(conds)) {
                cJSON_DeleteItemFromObjectCaseSensitive(st, "conditions");
                conds = cJSON_AddArrayToObject(st, "conditions");
        }
        const char *sv = value ? "True" : "False";
        cJSON *c = find_condition(conds, type);
        const char *old = kube_str(c, "status");
        const char *ltt = old && !strcmp(old, sv) ? kube_str(c, "lastTransitionTime") : now;
        cJSON *n = cJSON_CreateObject();
        cJSON_AddStringToObject(n, "type", type);
        cJSON_AddStringToObject(n, "status", sv);
        cJSON_AddNullToObject(n, "lastProbeTime");
        cJSON_AddStringToObject(n, "lastTransitionTime", ltt ? ltt : now);
        if (reason)
                cJSON_AddStringToObject(n, "reason", reason);
        if (message)
                cJSON_AddStringToObject(n, "message", message);
        if (c)
                cJSON_ReplaceItemViaPointer(conds, c, n);
        else
                cJSON_AddItemToArray(conds, n);
}

static void drop_condition(cJSON *st, const char *type)
{
        cJSON *conds = cJSON_GetObjectItemCaseSensitive(st, "conditions");
        cJSON *c = find_condition(conds, type);
        if (c)
                cJSON_Delete(cJSON_DetachItemViaPointer(conds, c));
}

/* KubeVirt's phases in the only order they may take: a phase never goes backwards. */
static int phase_rank(const char *phase)
{
        static const char *const order[] = {"Pending", "Scheduling", "Scheduled", "Running"};
        if (!phase || !*phase)
                return -1;
        if (vmi_phase_is_final(phase))
                return (int)ARRAY_SIZE(order);
        for (size_t i = 0; i < ARRAY_SIZE(order); i++)
                if (!strcmp(order[i], phase))
                        return (int)i;
        return -1;
}

/* Moves the phase forward (recording the transition); a step back is ignored. Returns the phase in force. */
static const char *set_phase(cJSON *st, const char *phase, const char *now)
{
        const char *old = kube_str(st, "phase");
        if (old && (!strcmp(old, phase) || phase_rank(phase) < phase_rank(old)))
                return old;
        set_str(st, "phase", phase);
        cJSON *ts = cJSON_GetObjectItemCaseSensitive(st, "phaseTransitionTimestamps");
        if (!cJSON_IsArray(ts)) {
                cJSON_DeleteItemFromObjectCaseSensitive(st, "phaseTransitionTimestamps");
                ts = cJSON_AddArrayToObject(st, "phaseTransitionTimestamps");
        }
        cJSON *t = cJSON_CreateObject();
        cJSON_AddStringToObject(t, "phase", phase);
        cJSON_AddStringToObject(t, "phaseTransitionTimestamp", now);
        cJSON_AddItemToArray(ts, t);
        return kube_str(st, "phase");
}

/* The phase the Pod alone implies. */
static const char *pod_phase_to_vmi(const cJSON *pod)
{
        const char *p = kube_str(pod, "status.phase");
        if (p && (!strcmp(p, "Succeeded") || !strcmp(p, "Failed") || !strcmp(p, "Running")))
                return p;
        return kube_str(pod, "spec.nodeName") ? "Scheduled" : "Scheduling";
}

/* Running means QEMU runs the guest, which only the launcher knows: a Running Pod whose launcher has not
 * reported yet, or reports the guest not started, is Scheduled; a launcher that reports a final phase wins.
 */
static const char *merge_phase(const char *pod_phase, const char *launcher_phase)
{
        if (vmi_phase_is_final(pod_phase))
                return pod_phase;
        if (launcher_phase && vmi_phase_is_final(launcher_phase))
                return launcher_phase;
        if (!strcmp(pod_phase, "Running") && (!launcher_phase || strcmp(launcher_phase, "Running")))
                return "Scheduled";
        return pod_phase;
}

/* Conditions the launcher drops when they stop holding (the guest agent disconnecting) leave the VMI too. */
static void drop_condition_unless_reported(cJSON *st, const cJSON *ls, const char *type)
{
        if (ls && !find_condition(cJSON_GetObjectItemCaseSensitive(ls, "conditions"), type))
                drop_condition(st, type);
}

static void merge_launcher_conditions(cJSON *st, const cJSON *ls, const char *now)
{
        const cJSON *c;
        /* Paused and AgentConnected are the launcher's alone and it drops them (on unpause, when the agent
         * goes; KubeVirt removes them too): gone there, gone here. */
        drop_condition_unless_reported(st, ls, "Paused");
        drop_condition_unless_reported(st, ls, "AgentConnected");
        cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(ls, "conditions"))
        {
                const char *type = kube_str(c, "type"), *status = kube_str(c, "status");
                if (!type || !status || !strcmp(type, "Ready"))
                        continue; /* Ready is ours: it also depends on the Pod */
                set_condition(st, type, !strcmp(status, "True"), kube_str(c, "reason"),
                              kube_str(c, "message"), now);
        }
}

static void pod_failure_reason(cJSON *st, const cJSON *pod, const cJSON *ls)
{
        const char *reason = kube_str(ls, "reason");
        if (!reason) {
                const cJSON *cs = cJSON_GetArrayItem(kube_obj(pod, "status.containerStatuses"), 0);
                reason = kube_str(cs, "state.terminated.message");
                if (!reason)
                        reason = kube_str(cs, "state.terminated.reason");
        }
        if (!reason)
                reason = kube_str(pod, "status.reason");
        set_str(st, "reason", reason ? reason : "launcher Pod failed");
}

static void set_interfaces(cJSON *st, const cJSON *vmi, const char *ip)
{
        cJSON_DeleteItemFromObjectCaseSensitive(st, "interfaces");
        if (!ip)
                return;
        cJSON *ifs = cJSON_AddArrayToObject(st, "interfaces"), *i = cJSON_CreateObject();
        const char *name =
            kube_str(cJSON_GetArrayItem(kube_obj(vmi, "spec.domain.devices.interfaces"), 0), "name");
        cJSON_AddStringToObject(i, "name", name ? name : "default");
        cJSON_AddStringToObject(i, "ipAddress", ip);
        cJSON *ips = cJSON_AddArrayToObject(i, "ipAddresses");
        cJSON_AddItemToArray(ips, cJSON_CreateString(ip));
        cJSON_AddItemToArray(ifs, i);
}

/* The guest agent's view the launcher reported: each interface's name in the guest and where its data came
 * from ("domain, guest-agent"), and interfaces only the agent knows; the Pod IP stays the address. On a
 * dual-stack Pod the launcher's ipAddresses (Pod IP first, then the IPv6 address its binding serves) win. */
static void merge_launcher_interfaces(cJSON *st, const cJSON *ls)
{
        cJSON *ifs = cJSON_GetObjectItemCaseSensitive(st, "interfaces");
        const cJSON *li;
        if (!cJSON_IsArray(ifs))
                return;
        cJSON_ArrayForEach(li, cJSON_GetObjectItemCaseSensitive(ls, "interfaces"))
        {
                const char *name = kube_str(li, "name");
                cJSON *mine = NULL, *i;
                cJSON_ArrayForEach(i, ifs)
                {
                        if (name && !strcmp(kube_str(i, "name") ?: "", name))
                                mine = i;
                }
                if (!mine) {
                        if (!name && kube_str(li, "interfaceName"))
                                cJSON_AddItemToArray(ifs, cJSON_Duplicate(li, true));
                        continue;
                }
                static const char *const keys[] = {"mac", "interfaceName", "infoSource"};
                for (size_t k = 0; k < ARRAY_SIZE(keys); k++)
                        if (kube_str(li, keys[k]))
                                set_str(mine, keys[k], kube_str(li, keys[k]));
                const cJSON *ips = cJSON_GetObjectItemCaseSensitive(li, "ipAddresses");
                if (cJSON_GetArraySize(ips) > 1 &&
                    !strcmp(kube_str(li, "ipAddress") ?: "", kube_str(mine, "ipAddress") ?: "-"))
                        cJSON_ReplaceItemInObjectCaseSensitive(mine, "ipAddresses",
                                                               cJSON_Duplicate(ips, true));
        }
}

/* The first container (init containers first) the kubelet holds back because its image cannot be pulled. */
static const cJSON *pull_failure(const cJSON *pod)
{
        static const char *const lists[] = {"status.initContainerStatuses", "status.containerStatuses"};
        for (size_t i = 0; i < ARRAY_SIZE(lists); i++) {
                const cJSON *cs;
                cJSON_ArrayForEach(cs, kube_obj(pod, lists[i]))
                {
                        const char *r = kube_str(cs, "state.waiting.reason") ?: "";
                        if (!strcmp(r, "ErrImagePull") || !strcmp(r, "ImagePullBackOff"))
                                return cs;
                }
        }
        return NULL;
}

/* What KubeVirt's VMI controller carries over from the launcher Pod: PodScheduled False (Unschedulable,
 * with the scheduler's message) while it cannot be placed, and Synchronized False with the kubelet's
 * ErrImagePull/ImagePullBackOff while an image cannot be pulled; each goes when the Pod gets past it. The VM
 * shows them as ErrorUnschedulable, ErrImagePull and ImagePullBackOff. */
static void set_pod_conditions(cJSON *st, const cJSON *pod, const char *now)
{
        const cJSON *ps = find_condition(kube_obj(pod, "status.conditions"), "PodScheduled");
        if (ps && !strcmp(kube_str(ps, "status") ?: "", "False") &&
            !strcmp(kube_str(ps, "reason") ?: "", "Unschedulable") && !kube_str(pod, "spec.nodeName"))
                set_condition(st, "PodScheduled", false, "Unschedulable", kube_str(ps, "message"), now);
        else
                drop_condition(st, "PodScheduled");
        const cJSON *pf = pull_failure(pod);
        const cJSON *sync =
            find_condition(cJSON_GetObjectItemCaseSensitive(st, "conditions"), "Synchronized");
        const char *sr = kube_str(sync, "reason") ?: "";
        if (pf)
                set_condition(st, "Synchronized", false, kube_str(pf, "state.waiting.reason"),
                              kube_str(pf, "state.waiting.message"), now);
        else if (!strcmp(sr, "ErrImagePull") || !strcmp(sr, "ImagePullBackOff"))
                drop_condition(st, "Synchronized");
}

/* Ready: the guest runs and the launcher does not say otherwise (its readiness probe, when the VMI has
 * one, has not passed: it reports Ready False with the probe's last failure). */
static void set_ready(cJSON *st, const char *phase, const cJSON *ls, const char *now)
{
        const cJSON *lr = find_condition(cJSON_GetObjectItemCaseSensitive(ls, "conditions"), "Ready");
        if (strcmp(phase, "Running"))
                set_condition(st, "Ready", false, "NotRunning", NULL, now);
        else if (lr && !strcmp(kube_str(lr, "status") ?: "", "False"))
                set_condition(st, "Ready", false, kube_str(lr, "reason") ?: "GuestNotReady",
                              kube_str(lr, "message"), now);
        else
                set_condition(st, "Ready", true, NULL, NULL, now);
}

cJSON *vmi_status_failed(const cJSON *vmi, const char *reason, const char *now)
{
        cJSON *st = current_status(vmi);
        set_phase(st, "Failed", now);
        set_str(st, "reason", reason);
        set_condition(st, "Ready", false, "Failed", NULL, now);
        return st;
}

cJSON *vmi_status_desired(const cJSON *vmi, const cJSON *pod, const char *now)
{
        const char *cur = vmi_phase(vmi);
        if (vmi_phase_is_final(cur))
                return current_status(vmi); /* final phases are sticky */
        if (!pod) {
                if (!strcmp(cur, "Scheduling") || !strcmp(cur, "Scheduled") || !strcmp(cur, "Running"))
                        return vmi_status_failed(vmi, "launcher Pod disappeared", now);
                cJSON *st = current_status(vmi);
                set_phase(st, "Pending", now);
                return st;
        }
        cJSON *st = current_status(vmi), *ls = pod_launcher_status(pod);
        const char *phase = set_phase(st, merge_phase(pod_phase_to_vmi(pod), kube_str(ls, "phase")), now);
        set_str(st, "nodeName", kube_str(pod, "spec.nodeName"));
        set_interfaces(st, vmi, !strcmp(phase, "Running") ? kube_str(pod, "status.podIP") : NULL);
        const char *accel = kube_str(ls, "accel");
        if (accel)
                set_str(st, "accel", accel);
        set_pod_conditions(st, pod, now);
        merge_launcher_conditions(st, ls, now);
        merge_launcher_interfaces(st, ls);
        if (ls) /* hot-plugged volumes: the launcher's list is the whole truth */
                set_copy(st, "volumeStatus", cJSON_GetObjectItemCaseSensitive(ls, "volumeStatus"));
        /* KubeVirt's LiveMigratable: the VMIM reconciler refuses what it says False for */
        migration_blocker b;
        bool migratable = vmi_migratable(vmi, cJSON_GetObjectItemCaseSensitive(st, "volumeStatus"), &b);
        set_condition(st, "LiveMigratable", migratable, migratable ? NULL : b.reason,
                      migratable ? NULL : b.message, now);
        if (ls && cJSON_GetObjectItemCaseSensitive(ls, "guestOSInfo"))
                set_copy(st, "guestOSInfo", cJSON_GetObjectItemCaseSensitive(ls, "guestOSInfo"));
        set_ready(st, phase, ls, now);
        if (!strcmp(phase, "Failed"))
                pod_failure_reason(st, pod, ls);
        cJSON_Delete(ls);
        return st;
}

/* KubeVirt's activePods: uid → node of every Pod still running the guest or about to (source and target
 * during a migration). */
static void set_active_pods(cJSON *st, const cJSON *pods)
{
        cJSON *ap = cJSON_CreateObject();
        const cJSON *p;
        cJSON_ArrayForEach(p, pods)
        {
                const char *uid = kube_str(p, "metadata.uid");
                if (uid && !pod_is_final(p) && !kube_obj(p, "metadata.deletionTimestamp"))
                        cJSON_AddStringToObject(ap, uid, kube_str(p, "spec.nodeName") ?: "");
        }
        cJSON_DeleteItemFromObjectCaseSensitive(st, "activePods");
        if (cJSON_GetArraySize(ap) > 0)
                cJSON_AddItemToObject(st, "activePods", ap);
        else
                cJSON_Delete(ap);
}

cJSON *vmi_status_from_pods(const cJSON *vmi, const cJSON *pods, const char *now)
{
        vmi_migration_view v;
        vmi_migration_observe(vmi, pods, now, &v);
        cJSON *st;
        if (v.lost && !vmi_phase_is_final(vmi_phase(vmi))) {
                char reason[600];
                snprintf(reason, sizeof(reason), "guest lost in migration: %s", v.reason);
                st = vmi_status_failed(vmi, reason, now);
        } else if (v.hold) /* the source is gone, the target not yet reporting: no phase to derive */
                st = current_status(vmi);
        else
                st = vmi_status_desired(vmi, v.active, now);
        if (v.state)
                set_copy(st, "migrationState", v.state);
        if (!vmi_phase_is_final(vmi_phase(vmi)))
                set_active_pods(st, pods);
        /* KubeVirt clears the evacuation mark at the hand-over: the guest has left the node (or ended) */
        const char *evac = kube_str(st, "evacuationNodeName"), *phase = kube_str(st, "phase");
        if (evac && (strcmp(evac, kube_str(st, "nodeName") ?: "") || vmi_phase_is_final(phase ?: "")))
                cJSON_DeleteItemFromObjectCaseSensitive(st, "evacuationNodeName");
        vmi_migration_view_free(&v);
        return st;
}
