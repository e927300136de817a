/* Device plugin kinds and the device-plugin messages, packed and unpacked with protobuf-c. */
#include "devices.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deviceplugin.pb-c.h"
#include "macro.h"

const dp_kind dp_kinds[] = {
    {"kvm", "/dev/kvm", "rw", true},
    {"tun", "/dev/net/tun", "rw", false},
    {"vhost-net", "/dev/vhost-net", "rw", false},
    {"vhost-vsock", "/dev/vhost-vsock", "rw", false},
};
const size_t dp_kinds_count = ARRAY_SIZE(dp_kinds);

const dp_kind *dp_kind_find(const char *name)
{
        for (size_t i = 0; i < dp_kinds_count; i++)
                if (!strcmp(dp_kinds[i].name, name))
                        return &dp_kinds[i];
        return NULL;
}

bool dp_advertised(const dp_kind *k, bool node_exists, kvm_verdict verdict)
{
        return node_exists && (!k->needs_kvm || verdict == KVM_VERDICT_USABLE);
}

/* Packs any protobuf-c message into a malloc'd buffer. */
static int pack(const ProtobufCMessage *m, uint8_t **out, size_t *outlen, kv_error *err)
{
        size_t n = protobuf_c_message_get_packed_size(m);
        *out = malloc(n ? n : 1);
        if (!*out)
                return kv_error_errno(err, ENOMEM, "pack %s", m->descriptor->name);
        *outlen = protobuf_c_message_pack(m, *out);
        return 0;
}

/* An ID of this kind: <name><index> with index < count, no leading zeros. */
static bool id_valid(const dp_kind *k, unsigned count, const char *id)
{
        size_t n = strlen(k->name);
        if (strncmp(id, k->name, n) || !id[n] || (id[n] == '0' && id[n + 1]))
                return false;
        char *end;
        errno = 0;
        unsigned long i = strtoul(id + n, &end, 10);
        return !errno && !*end && id[n] >= '0' && id[n] <= '9' && i < count;
}

int dp_list_pack(const dp_kind *k, unsigned count, bool advertised, uint8_t **out, size_t *outlen,
                 kv_error *err)
{
        V1beta1__ListAndWatchResponse resp = V1BETA1__LIST_AND_WATCH_RESPONSE__INIT;
        unsigned n = advertised ? count : 0;
        _cleanup_free_ V1beta1__Device *devs = calloc(n ? n : 1, sizeof(*devs));
        _cleanup_free_ V1beta1__Device **ptrs = calloc(n ? n : 1, sizeof(*ptrs));
        _cleanup_free_ char *ids = malloc((size_t)(n ? n : 1) * 32);
        if (!devs || !ptrs || !ids)
                return kv_error_errno(err, ENOMEM, "ListAndWatch %s", k->name);
        for (unsigned i = 0; i < n; i++) {
                V1beta1__Device d = V1BETA1__DEVICE__INIT;
                snprintf(ids + (size_t)i * 32, 32, "%s%u", k->name, i);
                d.id = ids + (size_t)i * 32;
                d.health = "Healthy";
                devs[i] = d;
                ptrs[i] = &devs[i];
        }
        resp.n_devices = n;
        resp.devices = ptrs;
        return pack(&resp.base, out, outlen, err);
}

int dp_allocate(const dp_kind *k, unsigned count, const uint8_t *req, size_t reqlen, uint8_t **out,
                size_t *outlen, kv_error *err)
{
        V1beta1__AllocateRequest *r = v1beta1__allocate_request__unpack(NULL, reqlen, req);
        if (!r)
                return kv_error_set(err, EINVAL, "Allocate %s: not an AllocateRequest", k->name);
        size_t n = r->n_container_requests;
        V1beta1__AllocateResponse resp = V1BETA1__ALLOCATE_RESPONSE__INIT;
        _cleanup_free_ V1beta1__ContainerAllocateResponse *crs = calloc(n ? n : 1, sizeof(*crs));
        _cleanup_free_ V1beta1__ContainerAllocateResponse **crp = calloc(n ? n : 1, sizeof(*crp));
        _cleanup_free_ V1beta1__DeviceSpec *specs = calloc(n ? n : 1, sizeof(*specs));
        _cleanup_free_ V1beta1__DeviceSpec **specp = calloc(n ? n : 1, sizeof(*specp));
        int ret = 0;
        if (!crs || !crp || !specs || !specp) {
                ret = kv_error_errno(err, ENOMEM, "Allocate %s", k->name);
                goto out;
        }
        for (size_t c = 0; c < n && !ret; c++) {
                const V1beta1__ContainerAllocateRequest *cr = r->container_requests[c];
                V1beta1__ContainerAllocateResponse one = V1BETA1__CONTAINER_ALLOCATE_RESPONSE__INIT;
                V1beta1__DeviceSpec spec = V1BETA1__DEVICE_SPEC__INIT;
                for (size_t i = 0; i < cr->n_devices_ids && !ret; i++)
                        if (!id_valid(k, count, cr->devices_ids[i]))
                                ret = kv_error_set(err, ENOENT, "Allocate %s: no device %s", k->name,
                                                   cr->devices_ids[i]);
                /* the node is shared: one device spec however many IDs the container holds */
                spec.container_path = spec.host_path = (char *)k->path;
                spec.permissions = (char *)k->permissions;
                specs[c] = spec;
                specp[c] = &specs[c];
                if (cr->n_devices_ids) {
                        one.n_devices = 1;
                        one.devices = &specp[c];
                }
                crs[c] = one;
                crp[c] = &crs[c];
        }
        if (!ret) {
                resp.n_container_responses = n;
                resp.container_responses = crp;
                ret = pack(&resp.base, out, outlen, err);
        }
out:
        v1beta1__allocate_request__free_unpacked(r, NULL);
        return ret;
}

/* Appends id to list unless present or the list is full. */
static void id_add(char **list, size_t *n, size_t max, char *id)
{
        for (size_t i = 0; i < *n; i++)
                if (!strcmp(list[i], id))
                        return;
        if (*n < max)
                list[(*n)++] = id;
}

int dp_preferred(const uint8_t *req, size_t reqlen, uint8_t **out, size_t *outlen, kv_error *err)
{
        V1beta1__PreferredAllocationRequest *r =
            v1beta1__preferred_allocation_request__unpack(NULL, reqlen, req);
        if (!r)
                return kv_error_set(err, EINVAL, "GetPreferredAllocation: not a PreferredAllocationRequest");
        size_t n = r->n_container_requests, total = 0;
        for (size_t c = 0; c < n; c++)
                total += r->container_requests[c]->n_available_deviceids +
                         r->container_requests[c]->n_must_include_deviceids;
        V1beta1__PreferredAllocationResponse resp = V1BETA1__PREFERRED_ALLOCATION_RESPONSE__INIT;
        _cleanup_free_ V1beta1__ContainerPreferredAllocationResponse *crs = calloc(n ? n : 1, sizeof(*crs));
        _cleanup_free_ V1beta1__ContainerPreferredAllocationResponse **crp = calloc(n ? n : 1, sizeof(*crp));
        _cleanup_free_ char **ids = calloc(total ? total : 1, sizeof(*ids));
        int ret = 0;
        if (!crs || !crp || !ids) {
                ret = kv_error_errno(err, ENOMEM, "GetPreferredAllocation");
                goto out;
        }
        size_t used = 0;
        for (size_t c = 0; c < n; c++) {
                const V1beta1__ContainerPreferredAllocationRequest *cr = r->container_requests[c];
                size_t size = cr->allocation_size > 0 ? (size_t)cr->allocation_size : 0, got = 0;
                char **mine = ids + used;
                for (size_t i = 0; i < cr->n_must_include_deviceids; i++)
                        id_add(mine, &got, size, cr->must_include_deviceids[i]);
                for (size_t i = 0; i < cr->n_available_deviceids; i++)
                        id_add(mine, &got, size, cr->available_deviceids[i]);
                V1beta1__ContainerPreferredAllocationResponse one =
                    V1BETA1__CONTAINER_PREFERRED_ALLOCATION_RESPONSE__INIT;
                one.n_deviceids = got;
                one.deviceids = mine;
                used += got;
                crs[c] = one;
                crp[c] = &crs[c];
        }
        resp.n_container_responses = n;
        resp.container_responses = crp;
        ret = pack(&resp.base, out, outlen, err);
out:
        v1beta1__preferred_allocation_request__free_unpacked(r, NULL);
        return ret;
}

int dp_options_pack(uint8_t **out, size_t *outlen, kv_error *err)
{
        V1beta1__DevicePluginOptions o = V1BETA1__DEVICE_PLUGIN_OPTIONS__INIT;
        o.pre_start_required = false;
        o.get_preferred_allocation_available = true;
        return pack(&o.base, out, outlen, err);
}

int dp_register_pack(const dp_kind *k, const char *endpoint, uint8_t **out, size_t *outlen, kv_error *err)
{
        char resource[128];
        snprintf(resource, sizeof(resource), DP_RESOURCE_PREFIX "%s", k->name);
        V1beta1__DevicePluginOptions o = V1BETA1__DEVICE_PLUGIN_OPTIONS__INIT;
        o.get_preferred_allocation_available = true;
        V1beta1__RegisterRequest r = V1BETA1__REGISTER_REQUEST__INIT;
        r.version = DP_API_VERSION;
        r.endpoint = (char *)endpoint;
        r.resource_name = resource;
        r.options = &o;
        return pack(&r.base, out, outlen, err);
}
