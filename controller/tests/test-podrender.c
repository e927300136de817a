/* Pod rendering golden files (golden/NAME.vmi.json → golden/NAME.pod.json, or NAME.err for a VMI that
 * cannot run) and VMI status transitions. KV_UPDATE_GOLDEN=1 rewrites the expected files. */
#include "api.h"
#include "json.h"
#include "macro.h"
#include "podrender.h"
#include "vmistatus.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

static int failures;

static char *slurp(const char *path)
{
        FILE *f = fopen(path, "r");
        if (!f)
                return NULL;
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        fseek(f, 0, SEEK_SET);
        char *b = calloc(1, (size_t)n + 1);
        if (fread(b, 1, (size_t)n, f) != (size_t)n)
                b[0] = '\0';
        fclose(f);
        return b;
}

static void compare(const char *path, const char *got)
{
        if (getenv("KV_UPDATE_GOLDEN")) {
                FILE *f = fopen(path, "w");
                fputs(got, f);
                fclose(f);
                return;
        }
        _cleanup_free_ char *want = slurp(path);
        if (!want || strcmp(want, got)) {
                fprintf(stderr, "FAIL %s differs; got:\n%s\n", path, got);
                failures++;
        }
}

/* name "X-pull": X.vmi.json rendered for a cluster whose registry images are pulled by init containers
 * (kvlite-importer, with the registry configuration Secret) and whose launchers reach the API server through
 * virt-handler's relay (crds/) */
static void golden(const char *dir, const char *name)
{
        char p[512], base[64];
        bool pull = strstr(name, "-pull") != NULL;
        snprintf(base, sizeof(base), "%.*s", (int)strcspn(name, "-"), name);
        snprintf(p, sizeof(p), "%s/%s.vmi.json", dir, pull ? base : name);
        _cleanup_free_ char *text = slurp(p);
        assert(text);
        cJSON *vmi = cJSON_Parse(text), *pod = NULL;
        assert(vmi);
        /* "placement": a cluster that chose emulation and sets VMs apart on tainted nodes */
        _cleanup_json_ cJSON *defaults = cJSON_Parse(
            "[{\"key\":\"kvlite.io/vms\",\"operator\":\"Exists\",\"effect\":\"NoSchedule\"},"
            "{\"key\":\"dedicated\",\"operator\":\"Equal\",\"value\":\"vms\",\"effect\":\"NoExecute\"}]");
        bool placement = !strcmp(name, "placement");
        pod_render_opts o = {.launcher_image = "kvlite/virt-launcher:test",
                             .service_account = "kvlite-launcher",
                             .use_emulation = placement,
                             .tolerations = placement ? defaults : NULL,
                             .importer_image = pull ? "kvlite/importer:test" : NULL,
                             .registry_secret = pull ? "virt-launcher-x-registries" : NULL,
                             .api_relay_dir = pull ? "/var/run/kvlite-node" : NULL};
        kv_error err = {0};
        if (pod_render(vmi, &o, &pod, &err) < 0) {
                snprintf(p, sizeof(p), "%s/%s.err", dir, name);
                char line[1100];
                snprintf(line, sizeof(line), "%s\n", err.msg);
                compare(p, line);
        } else {
                _cleanup_free_ char *out = cJSON_Print(pod);
                size_t n = strlen(out);
                out = realloc(out, n + 2);
                strcpy(out + n, "\n");
                snprintf(p, sizeof(p), "%s/%s.pod.json", dir, name);
                compare(p, out);
        }
        cJSON_Delete(pod);
        cJSON_Delete(vmi);
}

static const char *phase_after(const char *vmi_json, const char *pod_json)
{
        static char phase[32];
        cJSON *vmi = cJSON_Parse(vmi_json), *pod = pod_json ? cJSON_Parse(pod_json) : NULL;
        cJSON *st = vmi_status_desired(vmi, pod, "2026-01-01T00:00:00Z");
        snprintf(phase, sizeof(phase), "%s", kube_str(st, "phase"));
        cJSON_Delete(st);
        cJSON_Delete(vmi);
        cJSON_Delete(pod);
        return phase;
}

/* The launcher's guest agent and readiness probe reach the VMI status (docs/guest-agent.md). */
static void test_status_agent_probe(void)
{
        const char *report = "{\"phase\":\"Running\",\"conditions\":["
                             "{\"type\":\"Ready\",\"status\":\"False\",\"reason\":\"GuestNotReady\","
                             "\"message\":\"readiness probe failed: timed out after 1s\"},"
                             "{\"type\":\"AgentConnected\",\"status\":\"True\"}],"
                             "\"guestOSInfo\":{\"id\":\"debian\",\"versionId\":\"12\"},"
                             "\"interfaces\":[{\"name\":\"default\",\"ipAddress\":\"10.0.0.5\","
                             "\"mac\":\"02:00:00:00:00:01\",\"interfaceName\":\"eth0\","
                             "\"infoSource\":\"domain, guest-agent\"},"
                             "{\"ipAddress\":\"10.9.0.2\",\"interfaceName\":\"eth1\","
                             "\"infoSource\":\"guest-agent\"}]}";
        cJSON *ann = cJSON_CreateObject();
        cJSON_AddStringToObject(ann, "kvlite.io/launcher-status", report);
        cJSON *pod = cJSON_Parse("{\"metadata\":{},\"spec\":{\"nodeName\":\"n1\"},"
                                 "\"status\":{\"phase\":\"Running\",\"podIP\":\"10.0.0.5\"}}");
        cJSON_AddItemToObject(cJSON_GetObjectItem(pod, "metadata"), "annotations", ann);
        cJSON *vmi = cJSON_Parse("{\"metadata\":{\"name\":\"v\"},\"spec\":{\"domain\":{\"devices\":"
                                 "{\"interfaces\":[{\"name\":\"default\"}]}}}}");
        cJSON *st = vmi_status_desired(vmi, pod, "2026-01-01T00:00:00Z");
        const cJSON *c, *ready = NULL, *agent = NULL;
        cJSON_ArrayForEach(c, kube_obj(st, "conditions"))
        {
                if (!strcmp(kube_str(c, "type"), "Ready"))
                        ready = c;
                if (!strcmp(kube_str(c, "type"), "AgentConnected"))
                        agent = c;
        }
        assert(ready && !strcmp(kube_str(ready, "status"), "False") &&
               !strcmp(kube_str(ready, "reason"), "GuestNotReady"));
        assert(agent && !strcmp(kube_str(agent, "status"), "True"));
        assert(!strcmp(kube_str(st, "guestOSInfo.id"), "debian"));
        const cJSON *ifs = kube_obj(st, "interfaces");
        assert(cJSON_GetArraySize(ifs) == 2);
        assert(!strcmp(kube_str(cJSON_GetArrayItem(ifs, 0), "interfaceName"), "eth0"));
        assert(!strcmp(kube_str(cJSON_GetArrayItem(ifs, 0), "infoSource"), "domain, guest-agent"));
        assert(!strcmp(kube_str(cJSON_GetArrayItem(ifs, 0), "ipAddress"), "10.0.0.5"));
        assert(!strcmp(kube_str(cJSON_GetArrayItem(ifs, 1), "interfaceName"), "eth1"));
        /* the agent disconnects: the launcher drops AgentConnected, and so does the VMI; the probe passes */
        cJSON_AddItemToObject(vmi, "status", st); /* the VMI had no status yet: replacing would drop st */
        cJSON_ReplaceItemInObject(ann, "kvlite.io/launcher-status",
                                  cJSON_CreateString("{\"phase\":\"Running\",\"conditions\":[]}"));
        st = vmi_status_desired(vmi, pod, "2026-01-01T00:01:00Z");
        int n_agent = 0, n_ready = 0;
        cJSON_ArrayForEach(c, kube_obj(st, "conditions"))
        {
                n_agent += !strcmp(kube_str(c, "type"), "AgentConnected");
                n_ready += !strcmp(kube_str(c, "type"), "Ready") && !strcmp(kube_str(c, "status"), "True");
        }
        assert(n_agent == 0 && n_ready == 1);
        cJSON_Delete(st);
        cJSON_Delete(vmi);
        cJSON_Delete(pod);
}

static void test_status(void)
{
        const char *fresh = "{\"metadata\":{\"name\":\"v\"}}";
        const char *running = "{\"metadata\":{\"name\":\"v\"},\"status\":{\"phase\":\"Running\"}}";
        assert(!strcmp(phase_after(fresh, NULL), "Pending"));
        assert(!strcmp(phase_after(fresh, "{\"status\":{\"phase\":\"Pending\"}}"), "Scheduling"));
        assert(
            !strcmp(phase_after(fresh, "{\"spec\":{\"nodeName\":\"n1\"},\"status\":{\"phase\":\"Pending\"}}"),
                    "Scheduled"));
        /* a Running Pod is not a running guest: no launcher report yet */
        assert(
            !strcmp(phase_after(fresh, "{\"spec\":{\"nodeName\":\"n1\"},\"status\":{\"phase\":\"Running\"}}"),
                    "Scheduled"));
        /* a phase never goes back: a Running VMI whose Pod (or a stale report) says less stays Running */
        assert(!strcmp(
            phase_after(running, "{\"spec\":{\"nodeName\":\"n1\"},\"status\":{\"phase\":\"Pending\"}}"),
            "Running"));
        /* the launcher has not started QEMU yet */
        const char *launcher_pending =
            "{\"metadata\":{\"annotations\":{\"kvlite.io/launcher-status\":"
            "\"{\\\"phase\\\":\\\"Pending\\\"}\"}},\"status\":{\"phase\":\"Running\"}}";
        assert(!strcmp(phase_after(fresh, launcher_pending), "Scheduled"));
        const char *launcher_failed =
            "{\"metadata\":{\"annotations\":{\"kvlite.io/launcher-status\":"
            "\"{\\\"phase\\\":\\\"Failed\\\",\\\"reason\\\":\\\"qemu crashed\\\"}\"}},"
            "\"status\":{\"phase\":\"Running\"}}";
        assert(!strcmp(phase_after(running, launcher_failed), "Failed"));
        assert(!strcmp(phase_after(running, NULL), "Failed")); /* Pod gone while Running */
        assert(!strcmp(phase_after(running, "{\"status\":{\"phase\":\"Succeeded\"}}"), "Succeeded"));
        const char *failed = "{\"status\":{\"phase\":\"Failed\"}}";
        assert(!strcmp(phase_after(failed, "{\"status\":{\"phase\":\"Running\"}}"), "Failed")); /* sticky */

        /* full status of a running VMI with the launcher's report */
        cJSON *vmi =
            cJSON_Parse("{\"metadata\":{\"name\":\"v\"},\"spec\":{\"domain\":{\"devices\":{\"interfaces\":"
                        "[{\"name\":\"default\"}]}}},\"status\":{\"phase\":\"Scheduled\"}}");
        cJSON *pod = cJSON_Parse(
            "{\"metadata\":{\"annotations\":{\"kvlite.io/launcher-status\":\"{\\\"phase\\\":\\\"Running\\\","
            "\\\"accel\\\":\\\"tcg\\\",\\\"conditions\\\":[{\\\"type\\\":\\\"SoftwareEmulation\\\","
            "\\\"status\\\":\\\"True\\\"}]}\"}},\"spec\":{\"nodeName\":\"node01\"},"
            "\"status\":{\"phase\":\"Running\",\"podIP\":\"10.0.0.5\"}}");
        cJSON *st = vmi_status_desired(vmi, pod, "2026-01-01T00:00:00Z");
        assert(!strcmp(kube_str(st, "phase"), "Running") && !strcmp(kube_str(st, "nodeName"), "node01"));
        assert(!strcmp(kube_str(cJSON_GetArrayItem(kube_obj(st, "interfaces"), 0), "ipAddress"), "10.0.0.5"));
        assert(!strcmp(kube_str(st, "accel"), "tcg"));
        int ready = 0, swemu = 0;
        const cJSON *c;
        cJSON_ArrayForEach(c, kube_obj(st, "conditions"))
        {
                ready += !strcmp(kube_str(c, "type"), "Ready") && !strcmp(kube_str(c, "status"), "True");
                swemu += !strcmp(kube_str(c, "type"), "SoftwareEmulation");
        }
        assert(ready == 1 && swemu == 1);
        assert(cJSON_GetArraySize(kube_obj(st, "phaseTransitionTimestamps")) == 1);
        /* recomputing from the written status changes nothing: no write loop */
        cJSON_ReplaceItemInObject(vmi, "status", st);
        cJSON *again = vmi_status_desired(vmi, pod, "2026-01-01T00:05:00Z");
        assert(cJSON_Compare(again, cJSON_GetObjectItem(vmi, "status"), 1));
        cJSON_Delete(again);
        cJSON_Delete(vmi);
        cJSON_Delete(pod);
}

static void test_toleration(void)
{
        kv_error err = {0};
        _cleanup_json_ cJSON *a = pod_toleration_parse("kvlite.io/vms=true:NoSchedule", &err);
        _cleanup_free_ char *as = cJSON_PrintUnformatted(a);
        assert(as && !strcmp(as, "{\"key\":\"kvlite.io/vms\",\"operator\":\"Equal\",\"value\":\"true\","
                                 "\"effect\":\"NoSchedule\"}"));
        _cleanup_json_ cJSON *b = pod_toleration_parse("gpu:NoExecute", &err);
        assert(b && !strcmp(kube_str(b, "operator"), "Exists") && !cJSON_GetObjectItem(b, "value"));
        const char *bad[] = {"gpu", ":NoSchedule", "gpu:Never", "=x:NoSchedule"};
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
                kv_error_clear(&err);
                assert(pod_toleration_parse(bad[i], &err) == NULL && strstr(err.msg, bad[i]));
        }
}

int main(int argc, char **argv)
{
        test_status_agent_probe();
        test_toleration();
        const char *dir = argc > 1 ? argv[1] : "golden";
        const char *names[] = {"minimal",         "full",          "kernelboot", "invalid",
                               "multus",          "placement",     "dedicated",  "configvolumes",
                               "kernelboot-pull", "backendstorage"};
        for (size_t i = 0; i < ARRAY_SIZE(names); i++)
                golden(dir, names[i]);
        test_status();
        assert(pod_memory_overhead(0, 1) == 102ull << 20);
        if (failures)
                return 1;
        printf("podrender: ok\n");
        return 0;
}
