/* cpumem: the host side of dedicatedCpuPlacement (pinning QEMU's vCPU and emulator threads) and hugepages
 * (a hugetlbfs with enough free pages). */
#pragma once
#include <sched.h>
#include <stddef.h>
#include <sys/types.h>

#include "error.h"
#include "qmp.h"
#include "vmi.h"

#define CPUMEM_QMP_TIMEOUT_MS 5000

/* CPUs a dedicatedCpuPlacement VMI needs (vCPUs + 1 with isolateEmulatorThread); 0 without it. */
unsigned cpumem_cpus_needed(const vmi *v);
/* Before QEMU starts: the launcher's allowed CPU set (into *allowed) holds cpumem_cpus_needed(v) CPUs, else
 * -EINVAL naming spec.domain.cpu.dedicatedCpuPlacement. */
int cpumem_check_cpus(const vmi *v, cpu_set_t *allowed, kv_error *err);
/* memory.hugepages: a writable hugetlbfs of the page size with enough free pages into out ("" without
 * hugepages), else -EINVAL naming spec.domain.memory.hugepages.pageSize. */
int cpumem_hugepages_dir(const vmi *v, char *out, size_t outsz, kv_error *err);
/* cpu.realtime: QEMU locks all its memory (-overcommit mem-lock=on), so the launcher, whose limits QEMU
 * inherits, lifts RLIMIT_MEMLOCK as libvirt does for <memoryBacking><locked/>; -EPERM naming
 * spec.domain.cpu.realtime when the limit is too low and cannot be raised. Nothing without realtime. */
int cpumem_memlock_limit(const vmi *v, kv_error *err);
/* After QEMU started (paused): vCPU i's thread (query-cpus-fast) on the i-th CPU of allowed, the other
 * QEMU threads on the next one with isolateEmulatorThread; realtime: the vCPU threads SCHED_FIFO 1. */
int cpumem_pin(const vmi *v, const cpu_set_t *allowed, qmp *q, pid_t qemu, kv_error *err);
