/* Unit tests for the CPUID decoding: bit positions by name, and the host-vs-supported comparison over
 * register values recorded on a VT-x host and on this build machine (kvm_pvm). */
#include "cpuid-features.h"
#include "test-util.h"

#include <string.h>

static const kvm_cpuid_feature *feature(const char *label)
{
        for (size_t i = 0; i < kvm_cpuid_features_count; i++)
                if (!strcmp(kvm_cpuid_features[i].label, label))
                        return &kvm_cpuid_features[i];
        return NULL;
}

static void test_v2_table(void)
{
        /* the x86-64-v2 list of the psABI, plus long mode in the baseline */
        static const char *const v2[] = {"SSE3", "SSSE3", "CX16", "SSE4.1", "SSE4.2", "POPCNT", "LAHF_LM"};
        int n = 0;
        for (size_t i = 0; i < ARRAY_SIZE(v2); i++) {
                const kvm_cpuid_feature *f = feature(v2[i]);
                CHECK(f && f->level == 2);
        }
        for (size_t i = 0; i < kvm_cpuid_features_count; i++)
                n += kvm_cpuid_features[i].level == 2;
        CHECK(n == (int)ARRAY_SIZE(v2));
        CHECK(feature("LM") && feature("LM")->level == 1 && feature("LM")->bit == 29);
}

static void test_bits(void)
{
        kvm_cpuid_regs r = {
            .l1_ecx = 1u << 0 | 1u << 20, .e1_ecx = 1u, .e1_edx = 1u << 29, .l7_ebx = 1u << 5};
        CHECK(kvm_cpuid_has(&r, feature("SSE3")));
        CHECK(kvm_cpuid_has(&r, feature("SSE4.2")));
        CHECK(!kvm_cpuid_has(&r, feature("SSE4.1")));
        CHECK(kvm_cpuid_has(&r, feature("LAHF_LM")));
        CHECK(kvm_cpuid_has(&r, feature("LM")));
        CHECK(kvm_cpuid_has(&r, feature("AVX2")));
        CHECK(!kvm_cpuid_has(&r, feature("POPCNT")));
}

static void test_missing_kvm_pvm(void)
{
        /* recorded on the build machines: AMD EPYC host, kvm_pvm's KVM_GET_SUPPORTED_CPUID */
        kvm_cpuid_regs host = {0xfffa3203, 0x178bfbff, 0xf1bf07ab, 0x00405fc6, 0x004003f3, 0x2fd3fbff};
        kvm_cpuid_regs sup = {0x81202000, 0x078bfbff, 0x01800002, 0x00000104, 0x00400393, 0x23d3fbff};
        char out[256];
        CHECK(kvm_cpuid_missing(&host, &sup, 2, false, out, sizeof(out)) == 5);
        CHECK_STR(out, "SSE3,SSSE3,SSE4.1,SSE4.2,POPCNT");
        CHECK(kvm_cpuid_missing(&host, &sup, 1, false, out, sizeof(out)) == 0);
        CHECK_STR(out, "");
        CHECK(kvm_cpuid_missing(&host, &sup, 3, true, out, sizeof(out)) == 9);
        CHECK_STR(out, "FMA,MOVBE,XSAVE,AVX,F16C,LZCNT,BMI1,AVX2,BMI2");
        /* truncation keeps the count and a terminated string */
        CHECK(kvm_cpuid_missing(&host, &sup, 2, false, out, 8) == 5);
        CHECK(strlen(out) < 8);
}

static void test_missing_vtx(void)
{
        /* Xeon Gold 6248 with kvm_intel: KVM drops VMX, MONITOR, OSXSAVE, ... but no baseline bit */
        kvm_cpuid_regs host = {0x7ffefbff, 0xbfebfbff, 0xd39ffffb, 0x00000818, 0x00000121, 0x2c100800};
        kvm_cpuid_regs sup = {0xf7fa3a03, 0x0f8bfbff, 0xd19f4fbb, 0x00000808, 0x00000121, 0x2c100800};
        char out[256];
        CHECK(kvm_cpuid_missing(&host, &sup, 3, false, out, sizeof(out)) == 0);
        CHECK_STR(out, "");
}

static void test_host_lacks_bit(void)
{
        /* a bit the host itself lacks is not KVM's fault: not reported */
        kvm_cpuid_regs host = {.l1_ecx = 0x1, .e1_edx = 1u << 29};
        kvm_cpuid_regs sup = {.e1_edx = 1u << 29};
        char out[64];
        CHECK(kvm_cpuid_missing(&host, &sup, 2, false, out, sizeof(out)) == 1);
        CHECK_STR(out, "SSE3");
        host.e1_edx = 1u << 29;
        sup.e1_edx = 0;
        CHECK(kvm_cpuid_missing(&host, &sup, 1, false, out, sizeof(out)) == 1);
        CHECK_STR(out, "LM");
}

int main(void)
{
        test_v2_table();
        test_bits();
        test_missing_kvm_pvm();
        test_missing_vtx();
        test_host_lacks_bit();
        return test_result("test-cpuid");
}
