/* x86-64 psABI levels (v1 incl. long mode, v2, v3) as CPUID bits, and the host-vs-KVM comparison. */
#include "cpuid-features.h"

#include <stdio.h>
#include <string.h>

const kvm_cpuid_feature kvm_cpuid_features[] = {
    /* x86-64 baseline: what a 64-bit kernel needs at all */
    {"lm", "LM", CPUID_E1_EDX, 29, 1},
    {"cmov", "CMOV", CPUID_L1_EDX, 15, 1},
    {"cx8", "CX8", CPUID_L1_EDX, 8, 1},
    {"fpu", "FPU", CPUID_L1_EDX, 0, 1},
    {"fxsr", "FXSR", CPUID_L1_EDX, 24, 1},
    {"mmx", "MMX", CPUID_L1_EDX, 23, 1},
    {"sse", "SSE", CPUID_L1_EDX, 25, 1},
    {"sse2", "SSE2", CPUID_L1_EDX, 26, 1},
    {"syscall", "SYSCALL", CPUID_E1_EDX, 11, 1},
    /* x86-64-v2: what current distributions (RHEL 9, ...) require */
    {"pni", "SSE3", CPUID_L1_ECX, 0, 2},
    {"ssse3", "SSSE3", CPUID_L1_ECX, 9, 2},
    {"cx16", "CX16", CPUID_L1_ECX, 13, 2},
    {"sse4_1", "SSE4.1", CPUID_L1_ECX, 19, 2},
    {"sse4_2", "SSE4.2", CPUID_L1_ECX, 20, 2},
    {"popcnt", "POPCNT", CPUID_L1_ECX, 23, 2},
    {"lahf_lm", "LAHF_LM", CPUID_E1_ECX, 0, 2},
    /* x86-64-v3: reported, never decisive */
    {"fma", "FMA", CPUID_L1_ECX, 12, 3},
    {"movbe", "MOVBE", CPUID_L1_ECX, 22, 3},
    {"xsave", "XSAVE", CPUID_L1_ECX, 26, 3},
    {"avx", "AVX", CPUID_L1_ECX, 28, 3},
    {"f16c", "F16C", CPUID_L1_ECX, 29, 3},
    {"abm", "LZCNT", CPUID_E1_ECX, 5, 3},
    {"bmi1", "BMI1", CPUID_L7_EBX, 3, 3},
    {"avx2", "AVX2", CPUID_L7_EBX, 5, 3},
    {"bmi2", "BMI2", CPUID_L7_EBX, 8, 3},
};
const size_t kvm_cpuid_features_count = sizeof(kvm_cpuid_features) / sizeof(kvm_cpuid_features[0]);

static uint32_t reg_value(const kvm_cpuid_regs *r, enum kvm_cpuid_reg reg)
{
        switch (reg) {
        case CPUID_L1_ECX:
                return r->l1_ecx;
        case CPUID_L1_EDX:
                return r->l1_edx;
        case CPUID_L7_EBX:
                return r->l7_ebx;
        case CPUID_L7_ECX:
                return r->l7_ecx;
        case CPUID_E1_ECX:
                return r->e1_ecx;
        case CPUID_E1_EDX:
                return r->e1_edx;
        }
        return 0;
}

bool kvm_cpuid_has(const kvm_cpuid_regs *r, const kvm_cpuid_feature *f)
{
        return (reg_value(r, f->reg) >> f->bit) & 1;
}

int kvm_cpuid_missing(const kvm_cpuid_regs *host, const kvm_cpuid_regs *supported, int level, bool only_level,
                      char *out, size_t outsz)
{
        int n = 0;
        size_t len = 0;
        if (outsz)
                out[0] = '\0';
        for (size_t i = 0; i < kvm_cpuid_features_count; i++) {
                const kvm_cpuid_feature *f = &kvm_cpuid_features[i];
                if (f->level > level || (only_level && f->level != level))
                        continue;
                if (!kvm_cpuid_has(host, f) || kvm_cpuid_has(supported, f))
                        continue;
                n++;
                if (len < outsz) {
                        int w = snprintf(out + len, outsz - len, "%s%s", len ? "," : "", f->label);
                        len += w > 0 ? (size_t)w : 0;
                }
        }
        return n;
}
