/* evacuation_migration (pure): when a VMI marked for evacuation gets a migration, what it looks like, and
 * the back-off after failed ones; vmi_status_from_pods clears the mark once the guest has left the node. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "clock.h"
#include "evacuation.h"
#include "test-util.h"
#include "vmistatus.h"

static cJSON *vmi(const char *phase, const char *node, const char *evac, const char *migration_state)
{
        char buf[1024];
        snprintf(buf, sizeof(buf),
                 "{\"metadata\":{\"name\":\"vm1\",\"namespace\":\"ns1\",\"uid\":\"u1\"},\"spec\":{},"
                 "\"status\":{\"phase\":\"%s\",\"nodeName\":\"%s\",\"evacuationNodeName\":\"%s\"%s%s}}",
                 phase, node, evac, migration_state ? ",\"migrationState\":" : "",
                 migration_state ? migration_state : "");
        return cJSON_Parse(buf);
}

static cJSON *vmim(const char *phase, const char *created, bool evacuation)
{
        char buf[512];
        snprintf(buf, sizeof(buf),
                 "{\"metadata\":{\"name\":\"m\",\"creationTimestamp\":\"%s\",\"annotations\":{%s}},"
                 "\"spec\":{\"vmiName\":\"vm1\"},\"status\":{\"phase\":\"%s\"}}",
                 created, evacuation ? "\"kubevirt.io/evacuationMigration\":\"node01\"" : "", phase);
        return cJSON_Parse(buf);
}

static bool wants(const cJSON *v, const cJSON *ms, time_t now, int *retry)
{
        cJSON *m = evacuation_migration(v, ms, now, retry);
        cJSON_Delete(m);
        return m != NULL;
}

int main(void)
{
        time_t now = time(NULL);
        char ts_now[40], ts_old[40];
        rfc3339_at(now, ts_now, sizeof(ts_now));
        rfc3339_at(now - 3600, ts_old, sizeof(ts_old));
        cJSON *none = cJSON_CreateArray();
        int retry = -1;

        cJSON *v = vmi("Running", "node01", "node01", NULL);
        cJSON *m = evacuation_migration(v, none, now, &retry);
        CHECK_MSG(m && retry == 0, "a marked Running VMI on its node gets a migration");
        CHECK_MSG(
            m && !strcmp(kube_str(m, "kind"), "VirtualMachineInstanceMigration") &&
                !strcmp(kube_str(m, "metadata.generateName"), "kubevirt-evacuation-") &&
                !strcmp(kube_str(m, "metadata.namespace"), "ns1") &&
                !strcmp(kube_str(m, "spec.vmiName"), "vm1") &&
                !strcmp(cJSON_GetStringValue(
                            cJSON_GetObjectItem(kube_obj(m, "metadata.labels"), "kubevirt.io/vmi-name")),
                        "vm1") &&
                !strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(kube_obj(m, "metadata.annotations"),
                                                                 "kubevirt.io/evacuationMigration")),
                        "node01"),
            "KubeVirt's evacuation migration: generateName, vmi-name label, evacuationMigration annotation");
        cJSON_Delete(m);

        cJSON *running = cJSON_CreateArray();
        cJSON_AddItemToArray(running, vmim("Running", ts_now, false));
        CHECK_MSG(!wants(v, running, now, &retry) && retry == 0, "not while a migration of the VMI is going");
        cJSON *done = cJSON_CreateArray();
        cJSON_AddItemToArray(done, vmim("Succeeded", ts_old, false));
        cJSON_AddItemToArray(done, vmim("Failed", ts_now, false));
        CHECK_MSG(wants(v, done, now, &retry),
                  "finished migrations (a failed user one too) do not hold it back");
        cJSON *failed = cJSON_CreateArray();
        cJSON_AddItemToArray(failed, vmim("Failed", ts_now, true));
        CHECK_MSG(!wants(v, failed, now, &retry) && retry > 0,
                  "a failed evacuation is retried after a back-off");
        CHECK_MSG(wants(v, failed, now + 6, &retry), "... of 5 s after the first failure");
        cJSON_AddItemToArray(failed, vmim("Failed", ts_old, true));
        CHECK_MSG(!wants(v, failed, now + 6, &retry) && wants(v, failed, now + 11, &retry),
                  "... 10 s after the second");
        cJSON_Delete(v);

        v = vmi("Running", "node01", "", NULL);
        CHECK_MSG(!wants(v, none, now, &retry), "no mark, no migration");
        cJSON_Delete(v);
        v = vmi("Running", "node02", "node01", NULL);
        CHECK_MSG(!wants(v, none, now, &retry), "not once the VMI runs elsewhere");
        cJSON_Delete(v);
        v = vmi("Scheduled", "node01", "node01", NULL);
        CHECK_MSG(!wants(v, none, now, &retry), "not before it runs");
        cJSON_Delete(v);
        v = vmi("Running", "node01", "node01", "{\"migrationUid\":\"x\",\"completed\":false}");
        CHECK_MSG(!wants(v, none, now, &retry), "not while its migrationState is in flight");
        cJSON_Delete(v);

        /* the status from the Pods: the mark stays on the node, goes with the guest */
        cJSON *pods = cJSON_Parse("[{\"metadata\":{\"name\":\"p\",\"uid\":\"pu\",\"labels\":{}},"
                                  "\"spec\":{\"nodeName\":\"node01\"},\"status\":{\"phase\":\"Running\"}}]");
        v = vmi("Running", "node01", "node01", NULL);
        cJSON *st = vmi_status_from_pods(v, pods, ts_now);
        CHECK_MSG(!strcmp(kube_str(st, "evacuationNodeName") ?: "", "node01"),
                  "the mark stays while on the node");
        cJSON_Delete(st);
        cJSON_Delete(v);
        cJSON_ReplaceItemInObject(kube_obj(cJSON_GetArrayItem(pods, 0), "spec"), "nodeName",
                                  cJSON_CreateString("node02"));
        v = vmi("Running", "node01", "node01", NULL);
        st = vmi_status_from_pods(v, pods, ts_now);
        CHECK_MSG(!kube_str(st, "evacuationNodeName") && !strcmp(kube_str(st, "nodeName"), "node02"),
                  "the mark goes once the guest runs on another node");
        cJSON_Delete(st);
        cJSON_Delete(v);
        cJSON_Delete(pods);
        cJSON_Delete(none);
        cJSON_Delete(running);
        cJSON_Delete(done);
        cJSON_Delete(failed);
        return test_failures ? 1 : 0;
}
