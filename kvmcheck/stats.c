/* KVM_GET_STATS_FD: the binary vCPU statistics (Linux >= 5.14). kvmcheck keeps the few counters that
 * tell hardware execution from instruction emulation. */
#include "guest.h"

#ifdef KVMCHECK_HAVE_GUEST
#include "macro.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

static const char *const kept[] = {"exits",      "insn_emulation", "insn_emulation_fail", "io_exits",
                                   "halt_exits", "signal_exits",   "irq_exits",           "mmio_exits"};

static bool is_kept(const char *name)
{
        for (size_t i = 0; i < ARRAY_SIZE(kept); i++)
                if (!strcmp(name, kept[i]))
                        return true;
        return false;
}

static void keep(int fd, const struct kvm_stats_header *h, const struct kvm_stats_desc *d,
                 kvm_profile_stats *st)
{
        uint64_t v;
        if (st->n >= KVM_PROFILE_STATS_MAX || !is_kept(d->name) || d->size < 1)
                return;
        if (pread(fd, &v, sizeof(v), (off_t)h->data_offset + d->offset) != (ssize_t)sizeof(v))
                return;
        kvm_profile_stat *s = &st->s[st->n++];
        snprintf(s->name, sizeof(s->name), "%s", d->name);
        s->value = v;
}

void guest_read_stats(int vcpu_fd, kvm_profile_stats *st)
{
        _cleanup_close_ int fd = ioctl(vcpu_fd, KVM_GET_STATS_FD, 0);
        if (fd < 0)
                return;
        struct kvm_stats_header h;
        if (pread(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h) || h.name_size == 0 || h.name_size > 4096 ||
            h.num_desc > 65536)
                return;
        size_t dsz = sizeof(struct kvm_stats_desc) + h.name_size;
        _cleanup_free_ uint8_t *descs = calloc(h.num_desc, dsz);
        if (!descs || pread(fd, descs, h.num_desc * dsz, h.desc_offset) != (ssize_t)(h.num_desc * dsz))
                return;
        st->available = true;
        for (uint32_t i = 0; i < h.num_desc; i++) {
                struct kvm_stats_desc *d = (struct kvm_stats_desc *)(descs + i * dsz);
                d->name[h.name_size - 1] = '\0';
                keep(fd, &h, d, st);
        }
}
#endif
