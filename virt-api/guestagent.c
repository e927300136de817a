/* guestagent: KubeVirt's guest agent subresources of a VMI, answered from what the launcher's guest agent
 * client reported: status.guestOSInfo and the interfaces on the VMI; the rest (agent version, supported
 * commands, host name, time zone, users, filesystems) in the launcher's status on its Pod (the annotation
 * kvlite.io/launcher-status, its guestAgentInfo). 409 while no agent is connected, as KubeVirt. */
#include <stdio.h>
#include <string.h>

#include "json.h"
#include "kvlite-annotations.h"
#include "macro.h"
#include "subres-internal.h"

/* The connected VMI, or the reply. */
static int agent_vmi(kube_client *api, const target *t, cJSON **vmi, subres_reply *r)
{
        if (subres_running_vmi(api, t, vmi, r) < 0)
                return -1;
        if (!subres_vmi_condition(*vmi, "AgentConnected"))
                return subres_conflict(r, t, false, "VMI does not have guest agent connected");
        return 0;
}

/* The guestAgentInfo the VMI's launcher (its Pod on the VMI's node) reported; an empty object if none. */
static cJSON *launcher_agent_info(kube_client *api, const cJSON *vmi)
{
        _cleanup_json_ cJSON *pods = NULL;
        kv_error err = {0};
        char sel[128];
        snprintf(sel, sizeof(sel), "kubevirt.io/created-by=%s", kube_str(vmi, "metadata.uid") ?: "");
        if (kube_list(api, &kube_pod, kube_str(vmi, "metadata.namespace"), sel, &pods, &err) < 0)
                return cJSON_CreateObject();
        const char *node = kube_str(vmi, "status.nodeName") ?: "";
        const cJSON *pod;
        cJSON_ArrayForEach(pod, cJSON_GetObjectItemCaseSensitive(pods, "items"))
        {
                const char *ann = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
                    kube_obj(pod, "metadata.annotations"), KVLITE_ANN_LAUNCHER_STATUS));
                if (!ann || strcmp(kube_str(pod, "spec.nodeName") ?: "", node))
                        continue;
                _cleanup_json_ cJSON *st = cJSON_Parse(ann);
                cJSON *info = cJSON_DetachItemFromObjectCaseSensitive(st, "guestAgentInfo");
                if (cJSON_IsObject(info))
                        return info;
                cJSON_Delete(info);
        }
        return cJSON_CreateObject();
}

static int reply_json(subres_reply *r, const cJSON *body)
{
        r->code = 200;
        r->body = cJSON_PrintUnformatted(body);
        return r->body ? 0 : subres_fail(r, 500, "out of memory");
}

/* KubeVirt's VirtualMachineInstanceGuestAgentInfo; kvlite adds the guest's interfaces. */
int subres_guestosinfo(kube_client *api, const target *t, subres_reply *r)
{
        _cleanup_json_ cJSON *vmi = NULL;
        if (agent_vmi(api, t, &vmi, r) < 0)
                return -1;
        _cleanup_json_ cJSON *info = launcher_agent_info(api, vmi);
        const cJSON *os = kube_obj(vmi, "status.guestOSInfo"), *i;
        cJSON_AddItemToObject(info, "os", os ? cJSON_Duplicate(os, 1) : cJSON_CreateObject());
        const char *frozen = kube_str(vmi, "status.fsFreezeStatus");
        if (frozen)
                cJSON_AddStringToObject(info, "fsFreezeStatus", frozen);
        cJSON *ifaces = cJSON_AddArrayToObject(info, "interfaces");
        cJSON_ArrayForEach(i, kube_obj(vmi, "status.interfaces"))
        {
                if (kube_str(i, "interfaceName"))
                        cJSON_AddItemToArray(ifaces, cJSON_Duplicate(i, 1));
        }
        return reply_json(r, info);
}

/* A KubeVirt list ({metadata: {}, items}) of what info holds at path (an array; absent: empty). */
static int list_reply(kube_client *api, const target *t, subres_reply *r, const char *path)
{
        _cleanup_json_ cJSON *vmi = NULL;
        if (agent_vmi(api, t, &vmi, r) < 0)
                return -1;
        _cleanup_json_ cJSON *info = launcher_agent_info(api, vmi), *list = cJSON_CreateObject();
        const cJSON *items = kube_obj(info, path);
        cJSON_AddObjectToObject(list, "metadata");
        cJSON_AddItemToObject(list, "items",
                              cJSON_IsArray(items) ? cJSON_Duplicate(items, 1) : cJSON_CreateArray());
        return reply_json(r, list);
}

int subres_userlist(kube_client *api, const target *t, subres_reply *r)
{
        return list_reply(api, t, r, "userList");
}

int subres_filesystemlist(kube_client *api, const target *t, subres_reply *r)
{
        return list_reply(api, t, r, "fsInfo.disks");
}
