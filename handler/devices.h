/* The device plugins the node agent serves: KubeVirt's resource names for /dev/kvm, /dev/net/tun,
 * /dev/vhost-net and /dev/vhost-vsock, when each is advertised, and the kubelet device-plugin messages
 * (ListAndWatch, Allocate, GetPreferredAllocation) as pure functions over packed protobuf bytes. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "kvmcheck.h"

#define DP_API_VERSION "v1beta1"
#define DP_RESOURCE_PREFIX "devices.kubevirt.io/"
/* KubeVirt's virt-handler advertises this many of each device (--max-devices): the devices are shared,
 * the count only bounds how many Pods on a node may hold one. */
#define DP_DEFAULT_COUNT 1000

typedef struct dp_kind {
        const char *name;        /* "kvm": resource devices.kubevirt.io/<name>, device IDs <name><i> */
        const char *path;        /* the device node on the host */
        const char *permissions; /* cgroup device permissions the container gets */
        bool needs_kvm;          /* advertised only when kvmcheck says KVM is usable */
} dp_kind;

extern const dp_kind dp_kinds[];
extern const size_t dp_kinds_count;

const dp_kind *dp_kind_find(const char *name);

/* Advertised when the node exists on the host and, for KVM, kvmcheck's verdict is usable: an emulated
 * /dev/kvm (kvm_pvm) must not attract VMs that then crawl. */
bool dp_advertised(const dp_kind *k, bool node_exists, kvm_verdict verdict);

/* A ListAndWatchResponse: `count` Healthy devices <name>0..<name>count-1, or none when not advertised.
 * *out is malloc'd. */
int dp_list_pack(const dp_kind *k, unsigned count, bool advertised, uint8_t **out, size_t *outlen,
                 kv_error *err);

/* Answers an AllocateRequest: every container that asks for IDs of this kind gets the device node, once.
 * An unknown ID is an error naming it (the kubelet then fails the Pod's admission). */
int dp_allocate(const dp_kind *k, unsigned count, const uint8_t *req, size_t reqlen, uint8_t **out,
                size_t *outlen, kv_error *err);

/* Answers a GetPreferredAllocation: the must-include IDs, then the first available ones up to the size. */
int dp_preferred(const uint8_t *req, size_t reqlen, uint8_t **out, size_t *outlen, kv_error *err);

/* A DevicePluginOptions (nothing required before start; preferred allocation answered). */
int dp_options_pack(uint8_t **out, size_t *outlen, kv_error *err);

/* A RegisterRequest for this kind served on `endpoint` (a socket name in the device-plugins directory). */
int dp_register_pack(const dp_kind *k, const char *endpoint, uint8_t **out, size_t *outlen, kv_error *err);
