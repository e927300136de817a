/* Check 5, the decisive one: a 64-bit guest counts ECX down from 2^24 (`dec ecx; jnz`), then OUTs a
 * value computed with a 64-bit register and halts. Hardware runs the loop in ~5-20 ms; a hypervisor that
 * emulates every instruction needs ~1 us per iteration and is stopped by the watchdog. The vCPU
 * statistics (KVM_GET_STATS_FD) are a second witness: emulated instructions are counted there. */
#include "guest.h"
#include "probes.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define SMOKE_ITERATIONS (1u << 24)
#define SMOKE_WATCHDOG_MS 500
#define SMOKE_PORT 0x10
#define SMOKE_RAX 0x1122334455667788ull

#ifdef KVMCHECK_HAVE_GUEST
/* clang-format off */
static const uint8_t smoke_code[] = {
	0x48, 0xb8, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, /* mov rax, 0x1122334455667788 */
	0xb9, 0x00, 0x00, 0x00, 0x01,                               /* mov ecx, 1 << 24 */
	0xff, 0xc9,                                                 /* loop: dec ecx */
	0x75, 0xfc,                                                 /* jnz loop */
	0xe7, SMOKE_PORT,                                           /* out 0x10, eax */
	0xf4,                                                       /* hlt */
};
/* clang-format on */

typedef struct smoke_state {
        bool out_seen, halted;
        uint64_t out_us;
} smoke_state;

static int smoke_exit(struct kvm_run *run, uint64_t elapsed_us, void *userdata, kv_error *err)
{
        smoke_state *s = userdata;
        if (run->exit_reason == KVM_EXIT_IO && !s->out_seen && run->io.direction == KVM_EXIT_IO_OUT &&
            run->io.port == SMOKE_PORT && run->io.size == 4) {
                uint32_t v;
                memcpy(&v, (uint8_t *)run + run->io.data_offset, sizeof(v));
                if (v != (uint32_t)SMOKE_RAX)
                        return kv_error_set(err, EPROTO, "guest wrote 0x%x, expected 0x%x", v,
                                            (uint32_t)SMOKE_RAX);
                s->out_seen = true;
                s->out_us = elapsed_us;
                return 0;
        }
        if (run->exit_reason == KVM_EXIT_HLT && s->out_seen) {
                s->halted = true;
                return 1;
        }
        return kv_error_set(err, EPROTO, "guest stopped with %s (reason %u)",
                            guest_exit_name(run->exit_reason), run->exit_reason);
}

static void record_run(kvm_profile_smoke *s, const smoke_state *st, const guest_run_result *res, int rc)
{
        s->timed_out = res->timed_out;
        s->elapsed_us = st->out_seen ? st->out_us : res->elapsed_us;
        uint32_t ecx = (uint32_t)res->regs.rcx;
        if (st->out_seen)
                s->iterations_done = SMOKE_ITERATIONS;
        else if (!res->stuck && ecx <= SMOKE_ITERATIONS && res->regs.rip >= GUEST_CODE &&
                 res->regs.rip < GUEST_CODE + sizeof(smoke_code))
                s->iterations_done = ecx ? SMOKE_ITERATIONS - ecx : 0;
        /* the 64-bit immediate must have survived: proves the guest really ran in long mode */
        s->finished = rc == 0 && st->halted && res->regs.rax == SMOKE_RAX && ecx == 0;
        if (rc == 0 && !s->finished && !s->error[0])
                snprintf(s->error, sizeof(s->error), "guest halted with rax=0x%llx rcx=0x%llx",
                         (unsigned long long)res->regs.rax, (unsigned long long)res->regs.rcx);
}

void probe_smoke(int kvm_fd, kvm_profile_smoke *s)
{
        s->probed = true;
        s->iterations = SMOKE_ITERATIONS;
        s->watchdog_ms = SMOKE_WATCHDOG_MS;
        kv_error err = {0};
        guest_vm g;
        int rc = guest_vm_create(kvm_fd, false, &g, &err);
        if (rc < 0) {
                snprintf(s->error, sizeof(s->error), "%s", err.msg);
                guest_vm_destroy(&g);
                return;
        }
        guest_vm_load(&g, GUEST_CODE, smoke_code, sizeof(smoke_code));
        smoke_state st = {0};
        guest_run_result res = {0};
        rc = guest_run_watched(&g, SMOKE_WATCHDOG_MS, smoke_exit, &st, &res, &err);
        if (rc < 0 && rc != -ETIMEDOUT)
                snprintf(s->error, sizeof(s->error), "%s", err.msg);
        record_run(s, &st, &res, rc);
        if (res.stuck) /* the vCPU thread still uses the VM: leak it rather than free it under its feet */
                return;
        guest_read_stats(g.vcpu_fd, &s->stats);
        guest_vm_destroy(&g);
}
#else
void probe_smoke(int kvm_fd, kvm_profile_smoke *s)
{
        /* the guest is x86-64 code: not probed elsewhere, and the verdict says so */
}
#endif
