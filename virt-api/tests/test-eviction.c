/* eviction_decide: KubeVirt's verdicts on evicting a launcher Pod for each evictionStrategy (VMI spec or the
 * cluster default), migratable or not, already marked, the migration target's Pod, completed Pods, other
 * Pods and hot-plug attachment Pods. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eviction.h"

static int failures;

static cJSON *pod(const char *app, const char *node, const char *phase)
{
        char buf[1024];
        snprintf(buf, sizeof(buf),
                 "{\"metadata\":{\"name\":\"virt-launcher-vm1-abcde\",\"namespace\":\"ns1\","
                 "\"labels\":{\"kubevirt.io\":\"%s\"},\"annotations\":{\"kubevirt.io/domain\":\"vm1\"}},"
                 "\"spec\":{\"nodeName\":\"%s\"},\"status\":{\"phase\":\"%s\"}}",
                 app, node, phase);
        return cJSON_Parse(buf);
}

/* strategy "" = not set; migratable: the LiveMigratable condition; evac: status.evacuationNodeName or "" */
static cJSON *vmi(const char *strategy, int migratable, const char *evac)
{
        char buf[1024], spec[128] = "{}", ev[128] = "";
        if (*strategy)
                snprintf(spec, sizeof(spec), "{\"evictionStrategy\":\"%s\"}", strategy);
        if (*evac)
                snprintf(ev, sizeof(ev), ",\"evacuationNodeName\":\"%s\"", evac);
        snprintf(
            buf, sizeof(buf),
            "{\"metadata\":{\"name\":\"vm1\",\"namespace\":\"ns1\"},\"spec\":%s,\"status\":{\"nodeName\":"
            "\"node01\"%s,\"conditions\":[{\"type\":\"LiveMigratable\",\"status\":\"%s\"}]}}",
            spec, ev, migratable ? "True" : "False");
        return cJSON_Parse(buf);
}

static void expect(const char *what, cJSON *p, cJSON *v, const char *cluster, eviction_verdict want,
                   const char *want_msg)
{
        char msg[512];
        eviction_verdict got = eviction_decide(p, v, cluster, msg, sizeof(msg));
        if (got != want || strcmp(msg, want_msg)) {
                fprintf(stderr, "FAIL %s: verdict %d \"%s\", want %d \"%s\"\n", what, got, msg, want,
                        want_msg);
                failures++;
        } else {
                printf("ok - %s\n", what);
        }
        cJSON_Delete(p);
        cJSON_Delete(v);
}

#define MARKED "Eviction triggered evacuation of VMI \"ns1/vm1\""

int main(void)
{
        expect("no strategy: the Pod goes", pod("virt-launcher", "node01", "Running"), vmi("", 1, ""), NULL,
               EVICTION_ALLOW, "");
        expect("None", pod("virt-launcher", "node01", "Running"), vmi("None", 1, ""), "LiveMigrate",
               EVICTION_ALLOW, "");
        expect("LiveMigrate, migratable: mark and refuse", pod("virt-launcher", "node01", "Running"),
               vmi("LiveMigrate", 1, ""), NULL, EVICTION_MARK, MARKED);
        expect("LiveMigrate, not migratable: refused, not marked", pod("virt-launcher", "node01", "Running"),
               vmi("LiveMigrate", 0, ""), NULL, EVICTION_DENY,
               "VMI vm1 is configured with an eviction strategy but is not live-migratable");
        expect("LiveMigrateIfPossible, migratable", pod("virt-launcher", "node01", "Running"),
               vmi("LiveMigrateIfPossible", 1, ""), NULL, EVICTION_MARK, MARKED);
        expect("LiveMigrateIfPossible, not migratable: as None", pod("virt-launcher", "node01", "Running"),
               vmi("LiveMigrateIfPossible", 0, ""), NULL, EVICTION_ALLOW, "");
        expect("External, not migratable: marked", pod("virt-launcher", "node01", "Running"),
               vmi("External", 0, ""), NULL, EVICTION_MARK, MARKED);
        expect("the cluster default for a VMI naming none", pod("virt-launcher", "node01", "Running"),
               vmi("", 1, ""), "LiveMigrate", EVICTION_MARK, MARKED);
        expect("the VMI's own strategy wins over the cluster's", pod("virt-launcher", "node01", "Running"),
               vmi("None", 1, ""), "External", EVICTION_ALLOW, "");
        expect("already marked: evacuation in progress", pod("virt-launcher", "node01", "Running"),
               vmi("LiveMigrate", 1, "node01"), NULL, EVICTION_DENY, "Evacuation in progress: " MARKED);
        expect("the migration target's Pod", pod("virt-launcher", "node02", "Running"),
               vmi("LiveMigrate", 1, ""), NULL, EVICTION_DENY, "Eviction request for target Pod");
        expect("a completed launcher (the source after a migration)",
               pod("virt-launcher", "node01", "Succeeded"), vmi("LiveMigrate", 1, "node01"), NULL,
               EVICTION_ALLOW, "");
        expect("a launcher whose VMI is gone", pod("virt-launcher", "node01", "Running"), NULL, "LiveMigrate",
               EVICTION_ALLOW, "");
        expect("not one of ours", pod("something-else", "node01", "Running"), vmi("LiveMigrate", 1, ""), NULL,
               EVICTION_ALLOW, "");
        expect("an attachment Pod of a VMI", pod("hotplug-disk", "node01", "Running"), vmi("", 1, ""), NULL,
               EVICTION_DENY,
               "cannot evict hotplug pod: virt-launcher-vm1-abcde associated with running vmi: vm1 in "
               "namespace ns1");
        expect("an attachment Pod without its VMI", pod("hotplug-disk", "node01", "Running"), NULL, NULL,
               EVICTION_ALLOW, "");
        return failures ? 1 : 0;
}
