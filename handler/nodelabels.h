/* The labels the node agent keeps on its Node, from kvmcheck: KubeVirt's kubevirt.io/schedulable, CPU model
 * and CPU feature labels, and kvlite's KVM verdict. Pure functions: tests feed recorded profiles. */
#pragma once

#include <cjson/cJSON.h>

#include "kvmcheck.h"

#define NODE_LABEL_CPU_MODEL "cpu-model.node.kubevirt.io/"
#define NODE_LABEL_CPU_FEATURE "cpu-feature.node.kubevirt.io/"

/* {"label": "value", ...} for this host. CPU feature and model labels describe what a guest on KVM gets
 * (the host CPUID bits KVM_GET_SUPPORTED_CPUID passes through), so only a usable verdict yields features;
 * qemu64, QEMU's default model, runs everywhere (TCG emulates it). NULL on out of memory. */
cJSON *node_labels_build(const kvm_report *r, const kvm_profile *p);

/* The merge patch {"metadata":{"labels":{...}}} that sets `want` and removes the labels under the CPU
 * model/feature prefixes that `current` (the Node's labels, may be NULL) has and `want` lacks. */
cJSON *node_labels_patch(const cJSON *current, const cJSON *want);
