/* The capability table: QEMU's kvm_required_capabilites[] plus the x86 ones it checks at start-up
 * (accel/kvm/kvm-all.c, target/i386/kvm/kvm.c in 7.2), and the ones kvmcheck itself uses. */
#include "caps.h"
#include "profile.h"

#include <linux/kvm.h>

/* Defined only under __KVM_HAVE_PIT (x86 headers); the number is the same everywhere. */
#ifndef KVM_CAP_PIT2
#define KVM_CAP_PIT2 33
#endif

const kvm_cap_info kvm_caps[] = {
    {"USER_MEMORY", KVM_CAP_USER_MEMORY, KVM_CAP_NEED_REQUIRED, false},
    {"DESTROY_MEMORY_REGION_WORKS", KVM_CAP_DESTROY_MEMORY_REGION_WORKS, KVM_CAP_NEED_REQUIRED, false},
    {"JOIN_MEMORY_REGIONS_WORKS", KVM_CAP_JOIN_MEMORY_REGIONS_WORKS, KVM_CAP_NEED_REQUIRED, false},
    {"SET_TSS_ADDR", KVM_CAP_SET_TSS_ADDR, KVM_CAP_NEED_REQUIRED, true},
    {"EXT_CPUID", KVM_CAP_EXT_CPUID, KVM_CAP_NEED_REQUIRED, true},
    {"MP_STATE", KVM_CAP_MP_STATE, KVM_CAP_NEED_REQUIRED, true},
    {"IRQCHIP", KVM_CAP_IRQCHIP, KVM_CAP_NEED_DEFAULT, false},
    {"PIT2", KVM_CAP_PIT2, KVM_CAP_NEED_DEFAULT, true},
    {"IRQ_ROUTING", KVM_CAP_IRQ_ROUTING, KVM_CAP_NEED_DEFAULT, false},
    {"IOEVENTFD", KVM_CAP_IOEVENTFD, KVM_CAP_NEED_DEFAULT, false},
    {"IRQFD", KVM_CAP_IRQFD, KVM_CAP_NEED_DEFAULT, false},
    {"USER_NMI", KVM_CAP_USER_NMI, KVM_CAP_NEED_INFO, false},
    {"IMMEDIATE_EXIT", KVM_CAP_IMMEDIATE_EXIT, KVM_CAP_NEED_INFO, false},
    {"BINARY_STATS_FD", KVM_CAP_BINARY_STATS_FD, KVM_CAP_NEED_INFO, false},
    {"NR_VCPUS", KVM_CAP_NR_VCPUS, KVM_CAP_NEED_INFO, false},
    {"MAX_VCPUS", KVM_CAP_MAX_VCPUS, KVM_CAP_NEED_INFO, false},
};
const size_t kvm_caps_count = sizeof(kvm_caps) / sizeof(kvm_caps[0]);

_Static_assert(sizeof(kvm_caps) / sizeof(kvm_caps[0]) <= KVM_PROFILE_CAPS_MAX, "profile too small for caps");
