/* The KVM capabilities QEMU 7.2 relies on, in the order the profile stores their values. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

typedef enum {
        KVM_CAP_NEED_REQUIRED, /* QEMU refuses to start without it */
        KVM_CAP_NEED_DEFAULT,  /* QEMU's default configuration (kernel irqchip, PIT) uses it */
        KVM_CAP_NEED_INFO,     /* reported only */
} kvm_cap_need;

typedef struct kvm_cap_info {
        const char *name; /* without the KVM_CAP_ prefix, as in <linux/kvm.h> */
        int id;
        kvm_cap_need need;
        bool x86_only;
} kvm_cap_info;

extern const kvm_cap_info kvm_caps[];
extern const size_t kvm_caps_count;
