/* The kvmcheck profile: everything the probes measured on a host, as plain data. The verdict is a pure
 * function of it (verdict.c), so recorded profiles (in testdata/) replay any host in a unit test. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#define KVM_PROFILE_ERR_MAX 160

/* Check 1: host CPU and the KVM module that serves /dev/kvm. */
typedef struct kvm_profile_host {
        char arch[16];     /* uname machine: "x86_64", "aarch64", ... */
        bool cpuinfo_read; /* /proc/cpuinfo could be read */
        bool vmx, svm;     /* hardware virtualization flags */
        bool hypervisor;   /* we run inside a VM ourselves */
        char cpu_model[64];
        char modules[128]; /* loaded KVM modules, comma separated: "kvm,kvm_intel" */
} kvm_profile_host;

/* Check 2: the device node and the KVM API. */
typedef struct kvm_profile_device {
        bool exists; /* stat("/dev/kvm") worked */
        bool is_chardev;
        uint32_t mode; /* st_mode permission bits */
        uint32_t uid, gid;
        int open_errno;      /* 0: opened O_RDWR */
        int api_version;     /* KVM_GET_API_VERSION, -1 when not reached */
        int create_vm_errno; /* 0: KVM_CREATE_VM worked, -1 when not reached */
} kvm_profile_device;

/* Check 3: KVM_CHECK_EXTENSION results for the capabilities in caps.c, by index; -1 = not probed. */
#define KVM_PROFILE_CAPS_MAX 24
typedef struct kvm_profile_caps {
        bool probed;
        int value[KVM_PROFILE_CAPS_MAX];
} kvm_profile_caps;

/* Check 4: raw CPUID registers of the host and of KVM_GET_SUPPORTED_CPUID for the leaves that carry the
 * x86-64 baseline bits (1, 7.0, 0x80000001). */
typedef struct kvm_cpuid_regs {
        uint32_t l1_ecx, l1_edx, l7_ebx, l7_ecx, e1_ecx, e1_edx;
} kvm_cpuid_regs;

typedef struct kvm_profile_cpuid {
        bool probed;
        int err; /* errno of KVM_GET_SUPPORTED_CPUID, 0 = ok */
        kvm_cpuid_regs host, supported;
} kvm_profile_cpuid;

/* vCPU statistics read through KVM_GET_STATS_FD after a guest run (only the names stats.c keeps). */
#define KVM_PROFILE_STATS_MAX 8
typedef struct kvm_profile_stat {
        char name[32];
        uint64_t value;
} kvm_profile_stat;

typedef struct kvm_profile_stats {
        bool available; /* KVM_GET_STATS_FD worked */
        int n;
        kvm_profile_stat s[KVM_PROFILE_STATS_MAX];
} kvm_profile_stats;

/* Check 5: the smoke guest (smoke.c). */
typedef struct kvm_profile_smoke {
        bool probed;
        char error[KVM_PROFILE_ERR_MAX]; /* setup or run failure; "" = the guest ran */
        bool finished;                   /* reached OUT with the right value and HLT */
        bool timed_out;                  /* the watchdog stopped it */
        uint32_t watchdog_ms;
        uint64_t elapsed_us; /* first KVM_RUN to the OUT exit (or to the watchdog) */
        uint64_t iterations; /* loop length, 1 << 24 */
        uint64_t iterations_done;
        kvm_profile_stats stats;
} kvm_profile_smoke;

/* Check 6: in-kernel irqchip + PIT timer interrupts (irq.c). */
typedef struct kvm_profile_irq {
        bool probed;
        char error[KVM_PROFILE_ERR_MAX];
        bool timed_out;
        uint32_t watchdog_ms;
        uint32_t ticks_wanted, ticks;
        uint64_t elapsed_us;
} kvm_profile_irq;

typedef struct kvm_profile {
        kvm_profile_host host;
        kvm_profile_device device;
        kvm_profile_caps caps;
        kvm_profile_cpuid cpuid;
        kvm_profile_smoke smoke;
        kvm_profile_irq irq;
} kvm_profile;

/* An empty profile: nothing probed, every "not reached" marker set. */
void kvm_profile_init(kvm_profile *p);
