/* The x86-64 baseline CPUID bits by name, and their comparison between the host and what KVM can give a
 * guest (KVM_GET_SUPPORTED_CPUID). Pure functions over recorded registers. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "profile.h"

enum kvm_cpuid_reg { CPUID_L1_ECX, CPUID_L1_EDX, CPUID_L7_EBX, CPUID_L7_ECX, CPUID_E1_ECX, CPUID_E1_EDX };

typedef struct kvm_cpuid_feature {
        const char *name;  /* Linux /proc/cpuinfo spelling: "pni" is SSE3 */
        const char *label; /* what people call it: "SSE3" */
        enum kvm_cpuid_reg reg;
        unsigned bit;
        int level; /* x86-64 psABI level: 1 (baseline incl. long mode), 2 or 3 */
} kvm_cpuid_feature;

extern const kvm_cpuid_feature kvm_cpuid_features[];
extern const size_t kvm_cpuid_features_count;

bool kvm_cpuid_has(const kvm_cpuid_regs *r, const kvm_cpuid_feature *f);

/* Writes the labels of features up to `level` that `host` has and `supported` lacks, comma separated
 * ("SSE3,SSSE3"), into out; returns how many there are. With only_level, just that level. */
int kvm_cpuid_missing(const kvm_cpuid_regs *host, const kvm_cpuid_regs *supported, int level, bool only_level,
                      char *out, size_t outsz);
