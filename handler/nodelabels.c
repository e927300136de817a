/* Node labels from a kvmcheck report and profile. */
#include "nodelabels.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cpuid-features.h"
#include "report.h"

/* libvirt's (and so KubeVirt's) spelling of a feature: Linux's "sse4_2" is "sse4.2". */
static void feature_label(const kvm_cpuid_feature *f, char *out, size_t outsz)
{
        snprintf(out, outsz, NODE_LABEL_CPU_FEATURE "%s", f->name);
        char *u = strstr(out + strlen(NODE_LABEL_CPU_FEATURE), "sse4_");
        if (u)
                u[4] = '.';
}

static bool guest_has(const kvm_profile *p, const kvm_cpuid_feature *f)
{
        return kvm_cpuid_has(&p->cpuid.host, f) && kvm_cpuid_has(&p->cpuid.supported, f);
}

/* Every feature of x86-64 psABI levels up to `level` reaches a KVM guest. */
static bool guest_has_level(const kvm_profile *p, int level)
{
        for (size_t i = 0; i < kvm_cpuid_features_count; i++)
                if (kvm_cpuid_features[i].level <= level && !guest_has(p, &kvm_cpuid_features[i]))
                        return false;
        return true;
}

cJSON *node_labels_build(const kvm_report *r, const kvm_profile *p)
{
        cJSON *l = cJSON_CreateObject();
        bool usable = r->verdict == KVM_VERDICT_USABLE;
        /* the node always runs VMs: without usable KVM the launcher falls back to TCG */
        cJSON_AddStringToObject(l, KVMCHECK_LABEL_SCHEDULABLE, "true");
        cJSON_AddStringToObject(l, KVMCHECK_LABEL_USABLE, usable ? "true" : "false");
        cJSON_AddStringToObject(l, KVMCHECK_LABEL_VERDICT, kvm_verdict_name(r->verdict));
        cJSON_AddStringToObject(l, NODE_LABEL_CPU_MODEL "qemu64", "true");
        if (usable && p->cpuid.probed && !p->cpuid.err) {
                /* Nehalem's instruction set is the x86-64-v2 level */
                if (guest_has_level(p, 2))
                        cJSON_AddStringToObject(l, NODE_LABEL_CPU_MODEL "Nehalem", "true");
                for (size_t i = 0; i < kvm_cpuid_features_count; i++) {
                        char key[128];
                        if (!guest_has(p, &kvm_cpuid_features[i]))
                                continue;
                        feature_label(&kvm_cpuid_features[i], key, sizeof(key));
                        cJSON_AddStringToObject(l, key, "true");
                }
        }
        return l;
}

static bool owned_prefix(const char *key)
{
        return !strncmp(key, NODE_LABEL_CPU_MODEL, strlen(NODE_LABEL_CPU_MODEL)) ||
               !strncmp(key, NODE_LABEL_CPU_FEATURE, strlen(NODE_LABEL_CPU_FEATURE));
}

cJSON *node_labels_patch(const cJSON *current, const cJSON *want)
{
        cJSON *patch = cJSON_CreateObject();
        cJSON *labels = cJSON_AddObjectToObject(cJSON_AddObjectToObject(patch, "metadata"), "labels");
        const cJSON *it;
        cJSON_ArrayForEach(it, want) cJSON_AddItemToObject(labels, it->string, cJSON_Duplicate(it, false));
        cJSON_ArrayForEach(it, current)
        {
                if (owned_prefix(it->string) && !cJSON_GetObjectItemCaseSensitive(want, it->string))
                        cJSON_AddNullToObject(labels, it->string);
        }
        return patch;
}
