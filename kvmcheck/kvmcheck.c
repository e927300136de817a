/* libkvmcheck entry points: run the probes in order (each later one only when /dev/kvm works), the
 * one-call kvmcheck_quick() for the launcher, and the names used in every output. */
#include "kvmcheck.h"
#include "macro.h"
#include "probes.h"

#include <stdio.h>

void kvmcheck_probe(kvm_profile *p)
{
        kvm_profile_init(p);
        probe_host(&p->host);
        _cleanup_close_ int fd = probe_device(&p->device);
        if (fd < 0)
                return;
        probe_caps(fd, &p->caps);
        probe_cpuid(fd, &p->cpuid);
        probe_smoke(fd, &p->smoke);
        probe_irq(fd, &p->irq);
}

kvm_verdict kvmcheck_quick(char *why, size_t whylen)
{
        kvm_profile p;
        kvm_report r;
        kvmcheck_probe(&p);
        kvmcheck_decide(&p, &r);
        if (why && whylen)
                snprintf(why, whylen, "%s", r.reason);
        return r.verdict;
}

const char *kvm_verdict_name(kvm_verdict v)
{
        switch (v) {
        case KVM_VERDICT_USABLE:
                return "usable";
        case KVM_VERDICT_UNUSABLE:
                return "unusable";
        case KVM_VERDICT_ABSENT:
                return "absent";
        }
        return "unknown";
}

const char *kvm_check_name(kvm_check_id id)
{
        static const char *const names[KVM_CHECK_COUNT] = {"host", "device", "caps", "cpuid", "smoke", "irq"};
        return id >= 0 && id < KVM_CHECK_COUNT ? names[id] : "unknown";
}

const char *kvm_check_status_name(kvm_check_status s)
{
        static const char *const names[] = {"pass", "warn", "fail", "skip"};
        return s >= KVM_CHECK_PASS && s <= KVM_CHECK_SKIP ? names[s] : "unknown";
}

int kvmcheck_exit_code(kvm_verdict v)
{
        switch (v) {
        case KVM_VERDICT_USABLE:
                return KVMCHECK_EXIT_USABLE;
        case KVM_VERDICT_UNUSABLE:
                return KVMCHECK_EXIT_UNUSABLE;
        case KVM_VERDICT_ABSENT:
                return KVMCHECK_EXIT_ABSENT;
        }
        return KVMCHECK_EXIT_INTERNAL;
}
