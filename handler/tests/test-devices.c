/* Unit tests of the node agent's pure parts: which devices are advertised, the device-plugin messages
 * (packed here, unpacked with protobuf-c as the kubelet would), and the node labels from recorded kvmcheck
 * profiles (kvmcheck/testdata), and the API relay's reading of the server URL. */
#include <errno.h>
#include <stdlib.h>

#include "apirelay.h"
#include "cpuid-features.h"
#include "deviceplugin.pb-c.h"
#include "devices.h"
#include "json.h"
#include "nodelabels.h"
#include "profile-json.h"
#include "report.h"
#include "test-util.h"

static void test_advertised(void)
{
        const dp_kind *kvm = dp_kind_find("kvm"), *tun = dp_kind_find("tun");
        CHECK(kvm && tun && dp_kind_find("vhost-net") && dp_kind_find("vhost-vsock") &&
              !dp_kind_find("kvm0"));
        CHECK(dp_advertised(kvm, true, KVM_VERDICT_USABLE));
        CHECK(!dp_advertised(kvm, true, KVM_VERDICT_UNUSABLE)); /* kvm_pvm: the node exists, KVM crawls */
        CHECK(!dp_advertised(kvm, false, KVM_VERDICT_ABSENT));
        CHECK(dp_advertised(tun, true, KVM_VERDICT_ABSENT));
        CHECK(!dp_advertised(tun, false, KVM_VERDICT_USABLE));
}

static void test_list(void)
{
        uint8_t *buf = NULL;
        size_t len = 0;
        kv_error err = {0};
        CHECK(dp_list_pack(dp_kind_find("vhost-net"), 3, true, &buf, &len, &err) == 0);
        V1beta1__ListAndWatchResponse *r = v1beta1__list_and_watch_response__unpack(NULL, len, buf);
        CHECK(r && r->n_devices == 3);
        if (r && r->n_devices == 3) {
                CHECK_STR(r->devices[0]->id, "vhost-net0");
                CHECK_STR(r->devices[2]->id, "vhost-net2");
                CHECK_STR(r->devices[1]->health, "Healthy");
        }
        v1beta1__list_and_watch_response__free_unpacked(r, NULL);
        free(buf);
        CHECK(dp_list_pack(dp_kind_find("kvm"), 1000, false, &buf, &len, &err) == 0);
        r = v1beta1__list_and_watch_response__unpack(NULL, len, buf);
        CHECK(r && r->n_devices == 0);
        v1beta1__list_and_watch_response__free_unpacked(r, NULL);
        free(buf);
}

/* Packs an AllocateRequest with one container per id list (NULL-terminated lists). */
static size_t pack_alloc(uint8_t **out, char **c1, size_t n1, char **c2, size_t n2)
{
        V1beta1__ContainerAllocateRequest a = V1BETA1__CONTAINER_ALLOCATE_REQUEST__INIT,
                                          b = V1BETA1__CONTAINER_ALLOCATE_REQUEST__INIT;
        a.n_devices_ids = n1, a.devices_ids = c1;
        b.n_devices_ids = n2, b.devices_ids = c2;
        V1beta1__ContainerAllocateRequest *both[] = {&a, &b};
        V1beta1__AllocateRequest req = V1BETA1__ALLOCATE_REQUEST__INIT;
        req.n_container_requests = 2;
        req.container_requests = both;
        *out = malloc(v1beta1__allocate_request__get_packed_size(&req));
        return v1beta1__allocate_request__pack(&req, *out);
}

static void test_allocate(void)
{
        const dp_kind *tun = dp_kind_find("tun");
        char *ids[] = {"tun7", "tun0"}, *bad[] = {"tun10"}, *zero[] = {"tun01"}, *other[] = {"kvm1"};
        uint8_t *req = NULL, *out = NULL;
        size_t outlen = 0, len = pack_alloc(&req, ids, 2, NULL, 0);
        kv_error err = {0};
        CHECK(dp_allocate(tun, 10, req, len, &out, &outlen, &err) == 0);
        V1beta1__AllocateResponse *r = v1beta1__allocate_response__unpack(NULL, outlen, out);
        CHECK(r && r->n_container_responses == 2);
        if (r && r->n_container_responses == 2) {
                CHECK(r->container_responses[0]->n_devices == 1); /* one node however many IDs */
                CHECK_STR(r->container_responses[0]->devices[0]->host_path, "/dev/net/tun");
                CHECK_STR(r->container_responses[0]->devices[0]->container_path, "/dev/net/tun");
                CHECK_STR(r->container_responses[0]->devices[0]->permissions, "rw");
                CHECK(r->container_responses[1]->n_devices == 0); /* asked for nothing of this kind */
        }
        v1beta1__allocate_response__free_unpacked(r, NULL);
        free(req);
        free(out);
        char **wrong[] = {bad, zero, other};
        for (size_t i = 0; i < 3; i++) {
                out = NULL;
                len = pack_alloc(&req, wrong[i], 1, NULL, 0);
                kv_error_clear(&err);
                CHECK(dp_allocate(tun, 10, req, len, &out, &outlen, &err) == -ENOENT);
                CHECK(strstr(err.msg, wrong[i][0]) != NULL);
                CHECK(out == NULL);
                free(req);
        }
        const uint8_t garbage[] = {0x0a, 0x05, 0xff};
        CHECK(dp_allocate(tun, 10, garbage, sizeof(garbage), &out, &outlen, &err) == -EINVAL);
}

static void test_preferred(void)
{
        char *avail[] = {"kvm3", "kvm4", "kvm5"}, *must[] = {"kvm5"};
        V1beta1__ContainerPreferredAllocationRequest c =
            V1BETA1__CONTAINER_PREFERRED_ALLOCATION_REQUEST__INIT;
        c.n_available_deviceids = 3, c.available_deviceids = avail;
        c.n_must_include_deviceids = 1, c.must_include_deviceids = must;
        c.allocation_size = 2;
        V1beta1__ContainerPreferredAllocationRequest *cs[] = {&c};
        V1beta1__PreferredAllocationRequest req = V1BETA1__PREFERRED_ALLOCATION_REQUEST__INIT;
        req.n_container_requests = 1, req.container_requests = cs;
        uint8_t buf[256], *out = NULL;
        size_t len = v1beta1__preferred_allocation_request__pack(&req, buf), outlen;
        kv_error err = {0};
        CHECK(dp_preferred(buf, len, &out, &outlen, &err) == 0);
        V1beta1__PreferredAllocationResponse *r =
            v1beta1__preferred_allocation_response__unpack(NULL, outlen, out);
        CHECK(r && r->n_container_responses == 1 && r->container_responses[0]->n_deviceids == 2);
        if (r && r->n_container_responses == 1 && r->container_responses[0]->n_deviceids == 2) {
                CHECK_STR(r->container_responses[0]->deviceids[0], "kvm5");
                CHECK_STR(r->container_responses[0]->deviceids[1], "kvm3");
        }
        v1beta1__preferred_allocation_response__free_unpacked(r, NULL);
        free(out);
}

static void test_register(void)
{
        uint8_t *buf = NULL;
        size_t len;
        kv_error err = {0};
        CHECK(dp_register_pack(dp_kind_find("vhost-vsock"), "kubevirt-vhost-vsock.sock", &buf, &len, &err) ==
              0);
        V1beta1__RegisterRequest *r = v1beta1__register_request__unpack(NULL, len, buf);
        CHECK(r != NULL);
        if (r) {
                CHECK_STR(r->version, "v1beta1");
                CHECK_STR(r->resource_name, "devices.kubevirt.io/vhost-vsock");
                CHECK_STR(r->endpoint, "kubevirt-vhost-vsock.sock");
                CHECK(r->options && r->options->get_preferred_allocation_available);
        }
        v1beta1__register_request__free_unpacked(r, NULL);
        free(buf);
}

static cJSON *labels_of(const char *dir, const char *name, kvm_profile *p)
{
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        FILE *f = fopen(path, "re");
        CHECK(f != NULL);
        if (!f)
                return cJSON_CreateObject();
        static char text[1 << 16];
        size_t n = fread(text, 1, sizeof(text) - 1, f);
        text[n] = '\0';
        fclose(f);
        kv_error err = {0};
        kvm_profile_init(p);
        CHECK(kvm_profile_from_json(text, p, &err) == 0);
        kvm_report r;
        kvmcheck_decide(p, &r);
        return node_labels_build(&r, p);
}

static const char *label(const cJSON *l, const char *key)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(l, key);
        return cJSON_IsString(v) ? v->valuestring : "(absent)";
}

static void test_labels(const char *dir)
{
        kvm_profile p;
        _cleanup_json_ cJSON *usable = labels_of(dir, "profile-intel-vtx.json", &p);
        CHECK_STR(label(usable, "kubevirt.io/schedulable"), "true");
        CHECK_STR(label(usable, "kvlite.io/kvm-usable"), "true");
        CHECK_STR(label(usable, "kvlite.io/kvm-verdict"), "usable");
        CHECK_STR(label(usable, "cpu-model.node.kubevirt.io/qemu64"), "true");
        /* every feature label is one the recorded host has and KVM passes through */
        size_t features = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, usable) features +=
            !strncmp(it->string, NODE_LABEL_CPU_FEATURE, strlen(NODE_LABEL_CPU_FEATURE));
        size_t want = 0;
        for (size_t i = 0; i < kvm_cpuid_features_count; i++)
                want += kvm_cpuid_has(&p.cpuid.host, &kvm_cpuid_features[i]) &&
                        kvm_cpuid_has(&p.cpuid.supported, &kvm_cpuid_features[i]);
        CHECK(features == want && want > 0);
        CHECK_STR(label(usable, "cpu-feature.node.kubevirt.io/sse2"), "true");
        if (kvm_cpuid_has(&p.cpuid.supported, &kvm_cpuid_features[13])) /* sse4_2, libvirt's sse4.2 */
                CHECK_STR(label(usable, "cpu-feature.node.kubevirt.io/sse4.2"), "true");

        const char *others[] = {"profile-kvm-pvm.json", "profile-no-device.json"};
        for (size_t i = 0; i < 2; i++) {
                _cleanup_json_ cJSON *l = labels_of(dir, others[i], &p);
                CHECK_STR(label(l, "kubevirt.io/schedulable"), "true"); /* TCG fallback */
                CHECK_STR(label(l, "kvlite.io/kvm-usable"), "false");
                CHECK(cJSON_GetArraySize(l) == 4); /* schedulable, usable, verdict, qemu64: no CPU features */
                /* a node that lost usable KVM drops the feature labels it had */
                _cleanup_json_ cJSON *patch = node_labels_patch(usable, l);
                const cJSON *pl = cJSON_GetObjectItem(cJSON_GetObjectItem(patch, "metadata"), "labels");
                CHECK(cJSON_IsNull(cJSON_GetObjectItem(pl, "cpu-feature.node.kubevirt.io/sse2")));
                CHECK_STR(label(pl, "kvlite.io/kvm-verdict"), i ? "absent" : "unusable");
                CHECK(cJSON_GetObjectItem(pl, "kubernetes.io/hostname") == NULL);
        }
}

static void check_address(const char *url, const char *host, const char *port)
{
        char *h = NULL, p[8] = "";
        kv_error err = {0};
        int r = api_relay_server_address(url, &h, p, &err);
        if (!host) {
                CHECK(r == -EINVAL && strstr(err.msg, url));
        } else {
                CHECK(r == 0);
                CHECK_STR(h, host);
                CHECK_STR(p, port);
        }
        free(h);
}

static void test_relay_address(void)
{
        check_address("https://10.96.0.1:443", "10.96.0.1", "443");
        check_address("https://api.example:6443/", "api.example", "6443");
        check_address("https://[fd00::1]:6443", "fd00::1", "6443");
        check_address("https://[fd00::1]", "fd00::1", "443");
        check_address("http://127.0.0.1", "127.0.0.1", "80");
        check_address("https://h:644300", NULL, NULL);
        check_address("https://h:x", NULL, NULL);
        check_address("https://h/api", NULL, NULL);
        check_address("https://[fd00::1", NULL, NULL);
        check_address("ftp://h", NULL, NULL);
}

int main(int argc, char **argv)
{
        test_relay_address();
        test_advertised();
        test_list();
        test_allocate();
        test_preferred();
        test_register();
        if (argc > 1)
                test_labels(argv[1]);
        return test_result("handler-devices");
}
