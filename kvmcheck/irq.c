/* Check 6: the in-kernel irqchip (PIC/LAPIC) and PIT deliver timer interrupts. The guest programs the
 * PIC (IRQ0 -> vector 0x20) and the PIT (channel 0, rate generator, ~1 kHz), then sleeps in HLT; its
 * handler counts ticks. HLT with an in-kernel irqchip never leaves the kernel, so ticks prove the whole
 * interrupt path: PIT -> PIC -> LAPIC LINT0 (ExtINT) -> IDT -> handler -> EOI. */
#include "guest.h"
#include "probes.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define IRQ_TICKS 10
#define IRQ_WATCHDOG_MS 300
#define IRQ_PORT 0x11
#define IRQ_VECTOR 0x20

#ifdef KVMCHECK_HAVE_GUEST
/* clang-format off */
static const uint8_t irq_main[] = {
	0xb0, 0x11, 0xe6, 0x20, /* PIC ICW1: edge, cascade, ICW4 follows */
	0xb0, 0x20, 0xe6, 0x21, /* ICW2: IRQ0 -> vector 0x20 */
	0xb0, 0x04, 0xe6, 0x21, /* ICW3: slave on IRQ2 */
	0xb0, 0x01, 0xe6, 0x21, /* ICW4: 8086 mode */
	0xb0, 0xfe, 0xe6, 0x21, /* OCW1: only IRQ0 unmasked */
	0xb0, 0xff, 0xe6, 0xa1, /* slave: all masked */
	0xb0, 0x34, 0xe6, 0x43, /* PIT channel 0, lo/hi byte, mode 2 */
	0xb0, 0xa9, 0xe6, 0x40, /* divisor 1193 = 0x04a9: ~1 kHz */
	0xb0, 0x04, 0xe6, 0x40,
	0xfb,                   /* sti */
	0xf4,                   /* wait: hlt */
	0x83, 0x3c, 0x25, 0x00, 0x70, 0x00, 0x00, IRQ_TICKS, /* cmp dword [0x7000], IRQ_TICKS */
	0x72, 0xf5,             /* jb wait */
	0xfa,                   /* cli */
	0x8b, 0x04, 0x25, 0x00, 0x70, 0x00, 0x00, /* mov eax, [0x7000] */
	0xe7, IRQ_PORT,         /* out IRQ_PORT, eax */
	0xf4,                   /* hlt */
};
static const uint8_t irq_handler[] = {
	0xff, 0x04, 0x25, 0x00, 0x70, 0x00, 0x00, /* inc dword [0x7000] */
	0xb0, 0x20, 0xe6, 0x20,                   /* EOI to the PIC */
	0x48, 0xcf,                               /* iretq */
};
/* clang-format on */
_Static_assert(GUEST_DATA == 0x7000, "the guest code addresses the tick counter at 0x7000");

typedef struct irq_state {
        bool reported;
        uint32_t ticks;
        uint64_t at_us;
} irq_state;

static int irq_exit(struct kvm_run *run, uint64_t elapsed_us, void *userdata, kv_error *err)
{
        irq_state *s = userdata;
        if (run->exit_reason == KVM_EXIT_IO && run->io.direction == KVM_EXIT_IO_OUT &&
            run->io.port == IRQ_PORT && run->io.size == 4) {
                memcpy(&s->ticks, (uint8_t *)run + run->io.data_offset, sizeof(s->ticks));
                s->reported = true;
                s->at_us = elapsed_us;
                return 1;
        }
        if (run->exit_reason == KVM_EXIT_IO) /* PIC/PIT ports are in-kernel; anything else is a stray */
                return kv_error_set(err, EPROTO,
                                    "guest port I/O to 0x%x left the kernel: in-kernel PIC/PIT missing",
                                    run->io.port);
        return kv_error_set(err, EPROTO, "guest stopped with %s (reason %u)",
                            guest_exit_name(run->exit_reason), run->exit_reason);
}

void probe_irq(int kvm_fd, kvm_profile_irq *q)
{
        q->probed = true;
        q->ticks_wanted = IRQ_TICKS;
        q->watchdog_ms = IRQ_WATCHDOG_MS;
        kv_error err = {0};
        guest_vm g;
        int rc = guest_vm_create(kvm_fd, true, &g, &err);
        if (rc < 0) {
                snprintf(q->error, sizeof(q->error), "%s", err.msg);
                guest_vm_destroy(&g);
                return;
        }
        guest_vm_load(&g, GUEST_CODE, irq_main, sizeof(irq_main));
        guest_vm_load(&g, GUEST_ISR, irq_handler, sizeof(irq_handler));
        guest_vm_set_idt_gate(&g, IRQ_VECTOR, GUEST_ISR);
        irq_state st = {0};
        guest_run_result res = {0};
        rc = guest_run_watched(&g, IRQ_WATCHDOG_MS, irq_exit, &st, &res, &err);
        if (rc < 0 && rc != -ETIMEDOUT)
                snprintf(q->error, sizeof(q->error), "%s", err.msg);
        q->timed_out = res.timed_out;
        q->elapsed_us = st.reported ? st.at_us : res.elapsed_us;
        uint32_t counted;
        memcpy(&counted, g.mem + GUEST_DATA, sizeof(counted));
        q->ticks = st.reported ? st.ticks : counted;
        if (!res.stuck)
                guest_vm_destroy(&g);
}
#else
void probe_irq(int kvm_fd, kvm_profile_irq *q)
{
        /* x86 PIC/PIT only */
}
#endif
