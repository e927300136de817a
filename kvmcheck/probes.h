/* The probes behind kvmcheck_probe(): each fills its section of the profile and records its own failure
 * there instead of returning one, so that later checks still run and the report shows every piece of
 * evidence. */
#pragma once

#include "profile.h"

void probe_host(kvm_profile_host *h); /* check 1 */
/* Checks 2-4 on an open /dev/kvm; returns the fd (caller closes) or -1 when the device is not usable. */
int probe_device(kvm_profile_device *d);            /* check 2 */
void probe_caps(int kvm_fd, kvm_profile_caps *c);   /* check 3 */
void probe_cpuid(int kvm_fd, kvm_profile_cpuid *c); /* check 4 */
void probe_smoke(int kvm_fd, kvm_profile_smoke *s); /* check 5 */
void probe_irq(int kvm_fd, kvm_profile_irq *q);     /* check 6 */
