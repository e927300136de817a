/* A minimal raw-KVM x86-64 guest for the smoke and irqchip probes: one memory slot holding identity page
 * tables, a GDT and an IDT, one vCPU started directly in long mode, and a vCPU thread run under a
 * watchdog that interrupts KVM_RUN (immediate_exit + a signal) so a probe can never hang. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "profile.h"

#if defined(__x86_64__)
#define KVMCHECK_HAVE_GUEST 1

#include <linux/kvm.h>

/* guest-physical layout inside the one 64 KiB slot */
#define GUEST_MEM_SIZE 0x10000u
#define GUEST_PML4 0x1000u
#define GUEST_PDPT 0x2000u
#define GUEST_PD 0x3000u
#define GUEST_GDT 0x4000u
#define GUEST_IDT 0x5000u
#define GUEST_DATA 0x7000u
#define GUEST_CODE 0x8000u
#define GUEST_ISR 0x9000u
#define GUEST_STACK 0xf000u

typedef struct guest_vm {
        int vm_fd, vcpu_fd;
        struct kvm_run *run;
        size_t run_size;
        uint8_t *mem;
} guest_vm;

#define GUEST_VM_INIT                                                                                        \
        {                                                                                                    \
                .vm_fd = -1, .vcpu_fd = -1                                                                   \
        }

/* On failure too, the caller calls guest_vm_destroy(). with_irqchip: KVM_CREATE_IRQCHIP + KVM_CREATE_PIT2
 * before the vCPU exists (KVM requires that order). */
int guest_vm_create(int kvm_fd, bool with_irqchip, guest_vm *g, kv_error *err);
void guest_vm_destroy(guest_vm *g);
void guest_vm_load(guest_vm *g, uint32_t gpa, const void *bytes, size_t len);
/* Points IDT vector `vector` at the interrupt gate handler at gpa `handler`. */
void guest_vm_set_idt_gate(guest_vm *g, unsigned vector, uint32_t handler);

/* Called in the vCPU thread after every KVM_RUN exit: return 0 to run on, 1 to stop, <0 (err filled)
 * to stop with an error. */
typedef int (*guest_exit_fn)(struct kvm_run *run, uint64_t elapsed_us, void *userdata, kv_error *err);

typedef struct guest_run_result {
        bool timed_out;      /* the watchdog fired */
        bool stuck;          /* the vCPU thread did not stop even after kicks: the VM was leaked, not freed */
        uint64_t elapsed_us; /* first KVM_RUN until the thread stopped */
        struct kvm_regs regs; /* registers when it stopped */
} guest_run_result;

/* Runs the vCPU in its own thread; after timeout_ms it is kicked out of KVM_RUN. Returns 0 when the exit
 * function stopped it, -ETIMEDOUT on the watchdog, another negative errno (err filled) on failure. */
int guest_run_watched(guest_vm *g, unsigned timeout_ms, guest_exit_fn fn, void *userdata,
                      guest_run_result *res, kv_error *err);

/* KVM_GET_SUPPORTED_CPUID, grown until it fits (caller frees). NULL with *errp set on failure. */
struct kvm_cpuid2 *probe_supported_cpuid(int kvm_fd, int *errp);

/* Reads the vCPU statistics kvmcheck keeps ("exits", "insn_emulation", ...) via KVM_GET_STATS_FD. */
void guest_read_stats(int vcpu_fd, kvm_profile_stats *st);

const char *guest_exit_name(uint32_t reason);
uint64_t guest_now_us(void);
#endif
