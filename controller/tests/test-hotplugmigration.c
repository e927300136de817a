/* A VMI with a hot-plugged claim migrates (docs/hotplug-volumes.md), pure parts: LiveMigratable for Ready
 * claims and its refusals, the claims a launcher Pod did not mount, and a target Pod that leaves them to its
 * attachment Pods. */
#include <stdio.h>
#include <string.h>

#include "api.h"
#include "controller.h"
#include "podrender.h"
#include "test-util.h"
#include "vmimigration.h"

/* A masquerade VMI (live-migratable as far as its network goes) with a boot claim and a hot-plugged one. */
#define VMI_JSON                                                                                             \
        "{\"apiVersion\":\"kubevirt.io/v1\",\"kind\":\"VirtualMachineInstance\","                            \
        "\"metadata\":{\"name\":\"vm1\",\"namespace\":\"ns1\",\"uid\":\"u1\"},"                              \
        "\"spec\":{\"domain\":{\"memory\":{\"guest\":\"128Mi\"},\"devices\":{"                               \
        "\"interfaces\":[{\"name\":\"default\",\"masquerade\":{}}],"                                         \
        "\"disks\":[{\"name\":\"boot\",\"disk\":{\"bus\":\"virtio\"}},"                                      \
        "{\"name\":\"data\",\"disk\":{\"bus\":\"scsi\"}},{\"name\":\"host\",\"disk\":{\"bus\":\"scsi\"}}]}}" \
        ","                                                                                                  \
        "\"networks\":[{\"name\":\"default\",\"pod\":{}}],"                                                  \
        "\"volumes\":[{\"name\":\"boot\",\"persistentVolumeClaim\":{\"claimName\":\"boot-pvc\"}},"           \
        "{\"name\":\"data\",\"persistentVolumeClaim\":{\"claimName\":\"data-pvc\",\"hotpluggable\":true}},"  \
        "{\"name\":\"host\",\"hostDisk\":{\"path\":\"/srv/h.img\",\"type\":\"Disk\"}}]}}"

static bool migratable(const cJSON *vmi, const char *volume_status, migration_blocker *b)
{
        _cleanup_json_ cJSON *vs = cJSON_Parse(volume_status);
        return vmi_migratable(vmi, vs, b);
}

static void test_live_migratable(const cJSON *vmi)
{
        migration_blocker b;
        CHECK_MSG(migratable(vmi, "[]", &b), "no hot-plugged volume: migratable");
        CHECK_MSG(migratable(vmi, "[{\"name\":\"data\",\"phase\":\"Ready\",\"hotplugVolume\":{}}]", &b),
                  "a Ready hot-plugged claim: migratable");
        CHECK_MSG(
            !migratable(vmi, "[{\"name\":\"data\",\"phase\":\"AttachedToNode\",\"hotplugVolume\":{}}]", &b) &&
                !strcmp(b.reason, "HotplugNotLiveMigratable") &&
                strstr(b.message, "volume data is not Ready") && strstr(b.message, "AttachedToNode"),
            "a claim not plugged yet: HotplugNotLiveMigratable naming it and its phase");
        CHECK_MSG(!migratable(vmi, "[{\"name\":\"host\",\"phase\":\"Ready\",\"hotplugVolume\":{}}]", &b) &&
                      !strcmp(b.reason, "HotplugNotLiveMigratable") && strstr(b.message, "volume host") &&
                      strstr(b.message, "not a hotpluggable claim"),
                  "a hot-plugged hostDisk: HotplugNotLiveMigratable, only claims follow");
}

static bool has_pod_volume(const cJSON *pod, const char *name)
{
        const cJSON *v;
        cJSON_ArrayForEach(v, kube_obj(pod, "spec.volumes"))
        {
                if (!strcmp(kube_str(v, "name") ?: "", name))
                        return true;
        }
        return false;
}

static void test_target_pod(const cJSON *vmi)
{
        _cleanup_json_ cJSON *source = cJSON_Parse("{\"metadata\":{\"name\":\"src\",\"uid\":\"p1\"},\"spec\":"
                                                   "{\"volumes\":[{\"name\":\"vol-boot\"}]}}");
        _cleanup_json_ cJSON *config = cJSON_Parse("{}");
        const char *attached[4];
        CHECK_MSG(
            hotplug_unmounted(vmi, source, attached, 4) == 1 && !strcmp(attached[0], "data") && !attached[1],
            "the source Pod did not mount the hot-plugged claim data (it came through an attachment Pod)");
        pod_render_opts o = {.launcher_image = "kvlite/virt-launcher:test", .attached_volumes = attached};
        _cleanup_json_ cJSON *pod = NULL, *plain = NULL;
        kv_error err = {0};
        CHECK_MSG(pod_render_migration_target(vmi, &o, "m1", config, "", &pod, &err) == 0 &&
                      has_pod_volume(pod, "vol-boot") && !has_pod_volume(pod, "vol-data"),
                  "the target Pod mounts the boot claim, not the hot-plugged one (its attachment Pod does)");
        o.attached_volumes = NULL;
        CHECK_MSG(pod_render_migration_target(vmi, &o, "m1", config, "", &plain, &err) == 0 &&
                      has_pod_volume(plain, "vol-data"),
                  "without attachment Pods, every claim is a Pod volume");
}

int main(void)
{
        _cleanup_json_ cJSON *vmi = cJSON_Parse(VMI_JSON);
        if (!vmi) {
                fprintf(stderr, "FAIL the test VMI does not parse\n");
                return 1;
        }
        test_live_migratable(vmi);
        test_target_pod(vmi);
        if (test_failures)
                return 1;
        printf("hotplugmigration: ok\n");
        return 0;
}
