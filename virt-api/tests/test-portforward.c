/* The portforward subresource's pure parts: its paths (which are one, which port and protocol), where
 * virt-handler connects for each binding of the pod network, or why not, and which launcher Pod. */
#include <cjson/cJSON.h>
#include <string.h>

#include "portforward.h"
#include "test-util.h"

#define PF "/apis/subresources.kubevirt.io/v1/namespaces/default/"

static void path(const char *p, int want, bool vm, const char *name, unsigned port, const char *proto)
{
        pf_path out;
        int r = portforward_path_parse(p, &out);
        CHECK_MSG(r == want &&
                      (want != 1 || (out.vm == vm && !strcmp(out.ns, "default") && !strcmp(out.name, name) &&
                                     out.port == port && !strcmp(out.protocol, proto))),
                  p);
}

/* portforward_target for a VMI spec (JSON) and pod IP: the request's address and device, or the refusal. */
static void target(const char *what, const char *spec, const char *pod_ip, unsigned port,
                   const char *want_addr, const char *want_dev, const char *want_refusal)
{
        char json[2048];
        snprintf(json, sizeof(json), "{\"metadata\":{\"name\":\"v\"},\"spec\":%s}", spec);
        cJSON *vmi = cJSON_Parse(json);
        pf_path p = {.port = port, .protocol = "tcp"};
        pf_request rq = {0};
        subres_reply r = {0};
        int rc = portforward_target(vmi, &p, pod_ip, &rq, &r);
        bool ok = want_addr ? rc == 0 && !strcmp(rq.address, want_addr) && !strcmp(rq.device, want_dev)
                            : rc < 0 && r.code == 400 && r.body && strstr(r.body, want_refusal);
        CHECK_MSG(ok, what);
        if (!ok)
                fprintf(stderr, "  rc %d address \"%s\" device \"%s\" reply %u %s\n", rc, rq.address,
                        rq.device, r.code, r.body ?: "");
        subres_reply_done(&r);
        cJSON_Delete(vmi);
}

#define DOMAIN "\"domain\":{\"devices\":{%s}}"
#define POD_NET ",\"networks\":[{\"name\":\"default\",\"pod\":{}}]"

/* The launcher Pod chosen for a VMI status (JSON) among two on node n1 (a: Running, b: Running, c:
 * Succeeded). */
static void launcher(const char *what, const char *status, const char *want)
{
        static const char pods_json[] =
            "{\"items\":[{\"metadata\":{\"name\":\"c\"},\"spec\":{\"nodeName\":\"n1\"},"
            "\"status\":{\"phase\":\"Succeeded\",\"podIP\":\"10.0.0.3\"}},"
            "{\"metadata\":{\"name\":\"a\"},\"spec\":{\"nodeName\":\"n1\"},"
            "\"status\":{\"phase\":\"Running\",\"podIP\":\"10.0.0.1\"}},"
            "{\"metadata\":{\"name\":\"b\"},\"spec\":{\"nodeName\":\"n1\"},"
            "\"status\":{\"phase\":\"Running\",\"podIP\":\"10.0.0.2\"}}]}";
        char json[512];
        snprintf(json, sizeof(json), "{\"status\":%s}", status);
        cJSON *pods = cJSON_Parse(pods_json), *vmi = cJSON_Parse(json);
        const cJSON *pod = console_launcher_pod(pods, vmi);
        const cJSON *name = pod ? cJSON_GetObjectItem(cJSON_GetObjectItem(pod, "metadata"), "name") : NULL;
        CHECK_MSG(want ? name && !strcmp(name->valuestring, want) : !pod, what);
        cJSON_Delete(pods);
        cJSON_Delete(vmi);
}

int main(void)
{
        launcher("no migration: the first running Pod on the VMI's node", "{\"nodeName\":\"n1\"}", "a");
        launcher("another node: none", "{\"nodeName\":\"n2\"}", NULL);
        launcher("a migration under way: its source",
                 "{\"nodeName\":\"n1\",\"migrationState\":{\"migrationUid\":\"u\",\"sourcePod\":\"b\","
                 "\"targetPod\":\"a\"}}",
                 "b");
        launcher("a completed migration: its target",
                 "{\"nodeName\":\"n1\",\"migrationState\":{\"migrationUid\":\"u\",\"completed\":true,"
                 "\"sourcePod\":\"c\",\"targetPod\":\"b\"}}",
                 "b");
        launcher("a finished source is never chosen",
                 "{\"nodeName\":\"n1\",\"migrationState\":{\"migrationUid\":\"u\",\"sourcePod\":\"c\"}}",
                 NULL);

        path(PF "virtualmachineinstances/v1/portforward/8080", 1, false, "v1", 8080, "tcp");
        path(PF "virtualmachineinstances/v1/portforward/22/tcp", 1, false, "v1", 22, "tcp");
        path(PF "virtualmachineinstances/v1/portforward/53/udp", 1, false, "v1", 53, "udp");
        path(PF "virtualmachines/vm.1/portforward/65535", 1, true, "vm.1", 65535, "tcp");
        path(PF "virtualmachineinstances/v1/portforward/0", -1, false, "", 0, "");
        path(PF "virtualmachineinstances/v1/portforward/65536", -1, false, "", 0, "");
        path(PF "virtualmachineinstances/v1/portforward/99999999999", -1, false, "", 0, "");
        path(PF "virtualmachineinstances/v1/portforward/80x", 0, false, "", 0, "");
        path(PF "virtualmachineinstances/v1/portforward/-80", 0, false, "", 0, "");
        path(PF "virtualmachineinstances/v1/portforward/80/sctp", 0, false, "", 0, "");
        path(PF "virtualmachineinstances/v1/portforward/80/tcp/x", 0, false, "", 0, "");
        path(PF "virtualmachineinstances/v1/portforward/80/", 0, false, "", 0, "");
        path(PF "virtualmachineinstances/v1/portforward", 0, false, "", 0, "");
        path(PF "virtualmachineinstances/v1/console", 0, false, "", 0, "");
        path(PF "virtualmachineinstances//portforward/80", 0, false, "", 0, "");
        path(PF "pods/v1/portforward/80", 0, false, "", 0, "");
        path("/apis/subresources.kubevirt.io/v1/namespaces//virtualmachineinstances/v1/portforward/80", 0,
             false, "", 0, "");
        path("/api/v1/namespaces/default/pods/v1/portforward/80", 0, false, "", 0, "");

        char spec[1024];
        snprintf(spec, sizeof(spec), "{" DOMAIN POD_NET "}",
                 "\"interfaces\":[{\"name\":\"default\",\"masquerade\":{},\"ports\":[{\"port\":22}]}]");
        target("masquerade: the guest's address, every port (not only ports[])", spec, "10.244.0.5", 8080,
               "10.0.2.2", "k6t-eth0", NULL);
        snprintf(spec, sizeof(spec), "{" DOMAIN "}", "");
        target("no interfaces: the implied bridge, the Pod IP through k6t-eth0", spec, "10.244.0.5", 8080,
               "10.244.0.5", "k6t-eth0", NULL);
        target("bridge without an IPv4 Pod address", spec, "fd00::5", 8080, NULL, NULL,
               "the launcher Pod has no IPv4 address");
        snprintf(spec, sizeof(spec), "{" DOMAIN POD_NET "}",
                 "\"interfaces\":[{\"name\":\"default\",\"bridge\":{}}]");
        target("bridge", spec, "10.244.0.7", 22, "10.244.0.7", "k6t-eth0", NULL);
        snprintf(spec, sizeof(spec), "{" DOMAIN POD_NET "}",
                 "\"interfaces\":[{\"name\":\"default\",\"slirp\":{},\"ports\":[{\"port\":8080}]}]");
        target("slirp: a listed port on the Pod's loopback", spec, "10.244.0.5", 8080, "127.0.0.1", "", NULL);
        target("slirp: an unlisted port", spec, "10.244.0.5", 22, NULL, NULL,
               "port 22/tcp is not forwarded by the slirp binding: list it in "
               "spec.domain.devices.interfaces[0].ports");
        snprintf(spec, sizeof(spec), "{" DOMAIN POD_NET "}",
                 "\"interfaces\":[{\"name\":\"default\",\"passt\":{}}]");
        target("passt", spec, "10.244.0.5", 22, NULL, NULL, "not supported with the passt binding");
        pf_path udp = {.port = 53, .protocol = "udp"};
        pf_request rq = {0};
        subres_reply r = {0};
        cJSON *vmi = cJSON_Parse("{\"spec\":{\"domain\":{\"devices\":{}}}}");
        CHECK_MSG(portforward_target(vmi, &udp, "10.244.0.5", &rq, &r) < 0 && r.code == 400 &&
                      strstr(r.body, "port-forward of udp is not supported"),
                  "udp");
        subres_reply_done(&r);
        cJSON_Delete(vmi);
        snprintf(spec, sizeof(spec), "{" DOMAIN "}", "\"autoattachPodInterface\":false");
        target("no pod network", spec, "10.244.0.5", 22, NULL, NULL, "no network interfaces are present");
        return test_result("virt-api-portforward");
}
