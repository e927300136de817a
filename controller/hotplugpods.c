/* Hot-plugged claims in a cluster (docs/hotplug-volumes.md): a claim added to a running VMI
 * (`virtctl addvolume`) is not in its launcher Pod's mount namespace, so an attachment Pod (hp-volume-*, as
 * KubeVirt's) mounts it on the launcher's node and virt-handler hands its image to the launcher. One Pod per
 * volume, owned by the launcher Pod; this file keeps that set equal to the VMI's spec. */
#include <errno.h>
#include <string.h>

#include "api.h"
#include "controller.h"
#include "json.h"
#include "log.h"
#include "macro.h"
#include "vmimigration.h"

#define HP_HOLD_COMMAND "/bin/sleep" /* in the launcher image (debian:12-slim); a no-op that waits */

static const char *label_of(const cJSON *obj, const char *key)
{
        return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(kube_obj(obj, "metadata.labels"), key));
}

/* The launcher Pod mounted volume `name` when it was created (podrender.c names it vol-<name>; the cache
 * keeps the names of its claim volumes). */
static bool launcher_mounts(const cJSON *launcher, const char *name)
{
        const cJSON *v;
        cJSON_ArrayForEach(v, kube_obj(launcher, "spec.volumes"))
        {
                const char *n = kube_str(v, "name");
                if (n && !strncmp(n, "vol-", 4) && !strcmp(n + 4, name))
                        return true;
        }
        return false;
}

static cJSON *render_attachment_pod(const cJSON *vmi, const cJSON *launcher, const char *volume,
                                    const char *claim, const char *image)
{
        cJSON *pod = jstr(jstr(cJSON_CreateObject(), "apiVersion", "v1"), "kind", "Pod");
        cJSON *md = cJSON_AddObjectToObject(pod, "metadata");
        md = jstr(jstr(md, "generateName", "hp-volume-"), "namespace", kube_str(vmi, "metadata.namespace"));
        cJSON *labels = cJSON_AddObjectToObject(md, "labels");
        labels = jstr(jstr(labels, POD_LABEL_APP, HP_POD_APP), HP_LABEL_VMI, kube_str(vmi, "metadata.name"));
        labels = jstr(jstr(labels, HP_LABEL_VMI_UID, kube_str(vmi, "metadata.uid")), HP_LABEL_VOLUME, volume);
        cJSON_AddItemToArray(cJSON_AddArrayToObject(md, "ownerReferences"),
                             kube_controller_ref("v1", "Pod", kube_str(launcher, "metadata.name"),
                                                 kube_str(launcher, "metadata.uid")));
        cJSON *spec = cJSON_AddObjectToObject(pod, "spec");
        spec = jstr(spec, "nodeName", kube_str(launcher, "spec.nodeName"));
        spec = jnum(jstr(spec, "restartPolicy", "Never"), "terminationGracePeriodSeconds", 0);
        cJSON *ctr = jstr(jstr(cJSON_CreateObject(), "name", "hotplug-disk"), "image", image);
        cJSON *cmd = cJSON_AddArrayToObject(ctr, "command");
        cJSON_AddItemToArray(cmd, cJSON_CreateString(HP_HOLD_COMMAND));
        cJSON_AddItemToArray(cmd, cJSON_CreateString("infinity"));
        cJSON *mount =
            jstr(jstr(cJSON_CreateObject(), "name", volume), "mountPath", "/var/run/kvlite/hotplug");
        cJSON_AddItemToArray(cJSON_AddArrayToObject(ctr, "volumeMounts"), mount);
        cJSON_AddItemToArray(cJSON_AddArrayToObject(spec, "containers"), ctr);
        cJSON *vol = jstr(cJSON_CreateObject(), "name", volume);
        cJSON_AddItemToObject(vol, "persistentVolumeClaim", jstr(cJSON_CreateObject(), "claimName", claim));
        cJSON_AddItemToArray(cJSON_AddArrayToObject(spec, "volumes"), vol);
        return pod;
}

size_t hotplug_unmounted(const cJSON *vmi, const cJSON *launcher, const char **names, size_t max)
{
        size_t n = 0;
        const cJSON *v;
        cJSON_ArrayForEach(v, kube_obj(vmi, "spec.volumes"))
        {
                const char *name = kube_str(v, "name");
                if (n + 1 < max && name && vmi_volume_hotplug_claim(v) && !launcher_mounts(launcher, name))
                        names[n++] = name;
        }
        if (max)
                names[n] = NULL;
        return n;
}

/* The launcher among `launchers` that owns attachment Pod `pod`, or NULL. */
static const cJSON *owner_in(const cJSON *pod, const cJSON *const *launchers, size_t n)
{
        const cJSON *o = cJSON_GetArrayItem(kube_obj(pod, "metadata.ownerReferences"), 0);
        for (size_t i = 0; o && i < n; i++)
                if (!strcmp(kube_str(o, "uid") ?: "", kube_str(launchers[i], "metadata.uid") ?: "-"))
                        return launchers[i];
        return NULL;
}

/* Whether the VMI's spec wants an attachment Pod for `pod`'s volume under its owner launcher. */
static bool wanted(const cJSON *vmi, const cJSON *const *launchers, size_t n, const cJSON *pod)
{
        const char *vol = label_of(pod, HP_LABEL_VOLUME);
        const cJSON *launcher = owner_in(pod, launchers, n), *v;
        if (!launcher || !vol)
                return false;
        cJSON_ArrayForEach(v, kube_obj(vmi, "spec.volumes"))
        {
                const char *name = kube_str(v, "name");
                if (name && !strcmp(name, vol) && vmi_volume_hotplug_claim(v) &&
                    !launcher_mounts(launcher, name))
                        return true;
        }
        return false;
}

static bool have_pod_for(const cJSON *pods, const cJSON *launcher, const char *volume)
{
        const cJSON *p;
        cJSON_ArrayForEach(p, pods)
        {
                const char *v = label_of(p, HP_LABEL_VOLUME);
                if (v && !strcmp(v, volume) && owner_in(p, &launcher, 1))
                        return true;
        }
        return false;
}

static int create_attachment(controller *c, kube_client *api, const cJSON *vmi, const cJSON *launcher,
                             const char *volume, const char *claim, kv_error *err)
{
        const char *ns = kube_str(vmi, "metadata.namespace");
        char sel[400];
        _cleanup_json_ cJSON *list = NULL, *pod = NULL, *created = NULL;
        /* the cache may be behind a create of a previous pass: ask the API first */
        snprintf(sel, sizeof(sel), HP_LABEL_VMI_UID "=%s," HP_LABEL_VOLUME "=%s",
                 kube_str(vmi, "metadata.uid"), volume);
        c->api_lookups++;
        int r = kube_list(api, &kube_pod, ns, sel, &list, err);
        if (r < 0)
                return r;
        if (have_pod_for(cJSON_GetObjectItemCaseSensitive(list, "items"), launcher, volume))
                return 0;
        pod = render_attachment_pod(vmi, launcher, volume, claim, c->opts.pod.launcher_image);
        if ((r = kube_create(api, &kube_pod, ns, pod, &created, err)) < 0)
                return r;
        log_info("VMI %s/%s: attachment Pod %s for hot-plugged volume %s (claim %s)", ns,
                 kube_str(vmi, "metadata.name"), kube_str(created, "metadata.name"), volume, claim);
        return 0;
}

/* The attachment Pods of one launcher Pod: one per hot-plugged claim it did not mount. */
static int attach_to(controller *c, kube_client *api, const cJSON *vmi, const cJSON *launcher,
                     const cJSON *have, kv_error *err)
{
        const cJSON *v;
        cJSON_ArrayForEach(v, kube_obj(vmi, "spec.volumes"))
        {
                const char *name = kube_str(v, "name"), *claim = vmi_volume_hotplug_claim(v);
                if (!name || !claim || launcher_mounts(launcher, name) || have_pod_for(have, launcher, name))
                        continue;
                int r = create_attachment(c, api, vmi, launcher, name, claim, err);
                if (r < 0)
                        return r;
        }
        return 0;
}

int reconcile_hotplug_pods(controller *c, kube_client *api, const cJSON *vmi, const cJSON *const *launchers,
                           size_t n, kv_error *err)
{
        const char *ns = kube_str(vmi, "metadata.namespace");
        _cleanup_json_ cJSON *have = kube_store_by_index(&c->attachers.store, kube_str(vmi, "metadata.uid"));
        const cJSON *p;
        int r;
        if (!have)
                return kv_error_errno(err, ENOMEM, "attachment pods");
        cJSON_ArrayForEach(p, have)
        {
                if (kube_obj(p, "metadata.deletionTimestamp") || wanted(vmi, launchers, n, p))
                        continue;
                r = kube_delete(api, &kube_pod, ns, kube_str(p, "metadata.name"), kube_str(p, "metadata.uid"),
                                NULL, "Background", err);
                if (r < 0 && r != -KUBE_ENOTFOUND && r != -KUBE_ECONFLICT)
                        return r;
                log_info("VMI %s/%s: attachment Pod %s deleted", ns, kube_str(vmi, "metadata.name"),
                         kube_str(p, "metadata.name"));
        }
        for (size_t i = 0; i < n; i++)
                if ((r = attach_to(c, api, vmi, launchers[i], have, err)) < 0)
                        return r;
        return 0;
}
