/* The raw-KVM guest: memory, page tables, GDT/IDT in guest memory, and a vCPU entered directly in
 * 64-bit long mode (no real-mode trampoline: fewer instructions that could go wrong). */
#include "guest.h"

#ifdef KVMCHECK_HAVE_GUEST
#include "macro.h"

#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>

#define PTE_P 0x1ull
#define PTE_RW 0x2ull
#define PTE_PS 0x80ull
#define CR0_PE 0x1ull
#define CR0_MP 0x2ull
#define CR0_ET 0x10ull
#define CR0_NE 0x20ull
#define CR0_PG 0x80000000ull
#define CR4_PAE 0x20ull
#define EFER_LME 0x100ull
#define EFER_LMA 0x400ull
#define SEL_CODE 0x08
#define SEL_DATA 0x10
#define TSS_ADDR 0xfffbd000ul /* where QEMU puts it: below the BIOS, outside our slot */

uint64_t guest_now_us(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void put64(guest_vm *g, uint32_t gpa, uint64_t v)
{
        memcpy(g->mem + gpa, &v, sizeof(v));
}

void guest_vm_load(guest_vm *g, uint32_t gpa, const void *bytes, size_t len)
{
        memcpy(g->mem + gpa, bytes, len);
}

void guest_vm_set_idt_gate(guest_vm *g, unsigned vector, uint32_t handler)
{
        /* 64-bit interrupt gate: offset 15:0, selector, IST 0, type 0xE present DPL 0, offset 31:16, 63:32 */
        uint64_t lo = (handler & 0xffffull) | ((uint64_t)SEL_CODE << 16) | (0x8eull << 40) |
                      ((uint64_t)(handler >> 16) << 48);
        put64(g, GUEST_IDT + vector * 16, lo);
        put64(g, GUEST_IDT + vector * 16 + 8, 0);
}

static void build_tables(guest_vm *g)
{
        /* identity-map the first 2 MiB with one large page */
        put64(g, GUEST_PML4, GUEST_PDPT | PTE_P | PTE_RW);
        put64(g, GUEST_PDPT, GUEST_PD | PTE_P | PTE_RW);
        put64(g, GUEST_PD, 0 | PTE_P | PTE_RW | PTE_PS);
        put64(g, GUEST_GDT, 0);
        put64(g, GUEST_GDT + SEL_CODE, 0x00af9b000000ffffull); /* 64-bit code, L=1 */
        put64(g, GUEST_GDT + SEL_DATA, 0x00cf93000000ffffull); /* flat data */
}

static struct kvm_segment segment(uint16_t selector, uint8_t type, bool code)
{
        return (struct kvm_segment){
            .base = 0,
            .limit = 0xffffffff,
            .selector = selector,
            .type = type,
            .present = 1,
            .dpl = 0,
            .db = code ? 0 : 1,
            .s = 1,
            .l = code ? 1 : 0,
            .g = 1,
        };
}

static int enter_long_mode(guest_vm *g, kv_error *err)
{
        struct kvm_sregs sr;
        if (ioctl(g->vcpu_fd, KVM_GET_SREGS, &sr) < 0)
                return kv_error_errno(err, errno, "KVM_GET_SREGS");
        sr.cs = segment(SEL_CODE, 0xb, true);
        sr.ds = sr.es = sr.fs = sr.gs = sr.ss = segment(SEL_DATA, 0x3, false);
        sr.gdt.base = GUEST_GDT;
        sr.gdt.limit = 3 * 8 - 1;
        sr.idt.base = GUEST_IDT;
        sr.idt.limit = 256 * 16 - 1;
        sr.cr3 = GUEST_PML4;
        sr.cr4 = CR4_PAE;
        sr.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_PG;
        sr.efer = EFER_LME | EFER_LMA;
        if (ioctl(g->vcpu_fd, KVM_SET_SREGS, &sr) < 0)
                return kv_error_errno(err, errno, "KVM_SET_SREGS (long mode)");
        struct kvm_regs regs = {.rip = GUEST_CODE, .rsp = GUEST_STACK, .rflags = 0x2};
        if (ioctl(g->vcpu_fd, KVM_SET_REGS, &regs) < 0)
                return kv_error_errno(err, errno, "KVM_SET_REGS");
        return 0;
}

static int set_cpuid(int kvm_fd, guest_vm *g, kv_error *err)
{
        /* KVM refuses EFER.LME unless the vCPU's CPUID has long mode: give it all KVM supports */
        int e = 0;
        _cleanup_free_ struct kvm_cpuid2 *c = probe_supported_cpuid(kvm_fd, &e);
        if (!c)
                return kv_error_errno(err, e, "KVM_GET_SUPPORTED_CPUID");
        if (ioctl(g->vcpu_fd, KVM_SET_CPUID2, c) < 0)
                return kv_error_errno(err, errno, "KVM_SET_CPUID2");
        return 0;
}

static int create_vcpu(int kvm_fd, guest_vm *g, kv_error *err)
{
        g->vcpu_fd = ioctl(g->vm_fd, KVM_CREATE_VCPU, 0);
        if (g->vcpu_fd < 0)
                return kv_error_errno(err, errno, "KVM_CREATE_VCPU");
        int sz = ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
        if (sz < (int)sizeof(struct kvm_run))
                return kv_error_errno(err, sz < 0 ? errno : EINVAL, "KVM_GET_VCPU_MMAP_SIZE");
        void *run = mmap(NULL, (size_t)sz, PROT_READ | PROT_WRITE, MAP_SHARED, g->vcpu_fd, 0);
        if (run == MAP_FAILED)
                return kv_error_errno(err, errno, "mmap kvm_run");
        g->run = run;
        g->run_size = (size_t)sz;
        int r = set_cpuid(kvm_fd, g, err);
        return r < 0 ? r : enter_long_mode(g, err);
}

static int create_memory(guest_vm *g, kv_error *err)
{
        void *mem = mmap(NULL, GUEST_MEM_SIZE, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (mem == MAP_FAILED)
                return kv_error_errno(err, errno, "mmap guest memory");
        g->mem = mem;
        struct kvm_userspace_memory_region region = {
            .slot = 0, .guest_phys_addr = 0, .memory_size = GUEST_MEM_SIZE, .userspace_addr = (uintptr_t)mem};
        if (ioctl(g->vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0)
                return kv_error_errno(err, errno, "KVM_SET_USER_MEMORY_REGION");
        build_tables(g);
        return 0;
}

static int create_irqchip(guest_vm *g, kv_error *err)
{
        if (ioctl(g->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
                return kv_error_errno(err, errno, "KVM_CREATE_IRQCHIP");
        struct kvm_pit_config pit = {.flags = 0};
        if (ioctl(g->vm_fd, KVM_CREATE_PIT2, &pit) < 0)
                return kv_error_errno(err, errno, "KVM_CREATE_PIT2");
        return 0;
}

int guest_vm_create(int kvm_fd, bool with_irqchip, guest_vm *g, kv_error *err)
{
        *g = (guest_vm)GUEST_VM_INIT;
        g->vm_fd = ioctl(kvm_fd, KVM_CREATE_VM, 0);
        if (g->vm_fd < 0)
                return kv_error_errno(err, errno, "KVM_CREATE_VM");
        if (ioctl(g->vm_fd, KVM_SET_TSS_ADDR, TSS_ADDR) < 0)
                return kv_error_errno(err, errno, "KVM_SET_TSS_ADDR");
        int r = create_memory(g, err);
        if (r == 0 && with_irqchip)
                r = create_irqchip(g, err);
        return r < 0 ? r : create_vcpu(kvm_fd, g, err);
}

void guest_vm_destroy(guest_vm *g)
{
        if (g->run)
                munmap(g->run, g->run_size);
        if (g->vcpu_fd >= 0)
                close(g->vcpu_fd);
        if (g->vm_fd >= 0)
                close(g->vm_fd);
        if (g->mem)
                munmap(g->mem, GUEST_MEM_SIZE);
        *g = (guest_vm)GUEST_VM_INIT;
}

const char *guest_exit_name(uint32_t reason)
{
        switch (reason) {
        case KVM_EXIT_IO:
                return "KVM_EXIT_IO";
        case KVM_EXIT_HLT:
                return "KVM_EXIT_HLT";
        case KVM_EXIT_MMIO:
                return "KVM_EXIT_MMIO";
        case KVM_EXIT_SHUTDOWN:
                return "KVM_EXIT_SHUTDOWN (triple fault)";
        case KVM_EXIT_FAIL_ENTRY:
                return "KVM_EXIT_FAIL_ENTRY";
        case KVM_EXIT_INTERNAL_ERROR:
                return "KVM_EXIT_INTERNAL_ERROR";
        case KVM_EXIT_EXCEPTION:
                return "KVM_EXIT_EXCEPTION";
        default:
                return "an unexpected exit";
        }
}
#endif
