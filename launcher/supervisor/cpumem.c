/* cpumem: the host side of spec.domain.cpu.dedicatedCpuPlacement and spec.domain.memory.hugepages. The
 * launcher checks before QEMU starts that its CPU set and the host's huge pages can hold the guest (each
 * refusal names the field), then pins QEMU's threads as KubeVirt (through libvirt's cputune) does. */
#include "cpumem.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "jfield.h"
#include "json.h"
#include "log.h"
#include "macro.h"

#define HUGETLBFS_MAGIC 0x958458f6

/* The vCPUs, plus one CPU for the emulator thread with isolateEmulatorThread (KubeVirt adds it to the
 * Pod's request as well). */
unsigned cpumem_cpus_needed(const vmi *v)
{
        return v->dedicated_cpus ? vmi_vcpus(v) + (v->isolate_emulator_thread ? 1 : 0) : 0;
}

int cpumem_check_cpus(const vmi *v, cpu_set_t *allowed, kv_error *err)
{
        CPU_ZERO(allowed);
        if (!v->dedicated_cpus)
                return 0;
        if (sched_getaffinity(0, sizeof(*allowed), allowed) < 0)
                return kv_error_errno(err, errno, "sched_getaffinity");
        unsigned have = (unsigned)CPU_COUNT(allowed), need = cpumem_cpus_needed(v);
        if (have < need)
                return kv_error_set(
                    err, EINVAL,
                    "spec.domain.cpu.dedicatedCpuPlacement: needs %u dedicated CPUs (%u vCPUs%s) "
                    "and the launcher's CPU set has %u, which this host lacks",
                    need, vmi_vcpus(v), v->isolate_emulator_thread ? " + the emulator thread" : "", have);
        return 0;
}

static unsigned long read_ulong(const char *path)
{
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        unsigned long n = 0;
        return f && fscanf(f, "%lu", &n) == 1 ? n : 0;
}

/* A mounted hugetlbfs whose block size is the page size: /proc/self/mountinfo's 5th field is the mount
 * point (octal escapes: a space is \040, which such paths rarely have; those are skipped). */
static int find_hugetlbfs(uint64_t page_size, char *out, size_t outsz)
{
        _cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
        char line[4096];
        while (f && fgets(line, sizeof(line), f)) {
                char mnt[1024], fstype[64];
                const char *sep = strstr(line, " - ");
                if (!sep || sscanf(line, "%*s %*s %*s %*s %1023s", mnt) != 1 ||
                    sscanf(sep, " - %63s", fstype) != 1 || strcmp(fstype, "hugetlbfs") || strchr(mnt, '\\'))
                        continue;
                struct statfs st;
                if (statfs(mnt, &st) == 0 && (uint64_t)st.f_type == HUGETLBFS_MAGIC &&
                    (uint64_t)st.f_bsize == page_size && access(mnt, W_OK) == 0) {
                        snprintf(out, outsz, "%s", mnt);
                        return 0;
                }
        }
        return -ENOENT;
}

int cpumem_hugepages_dir(const vmi *v, char *out, size_t outsz, kv_error *err)
{
        if (!v->hugepage_size)
                return 0;
        const char *size = v->hugepage_size == (1u << 30) ? "1Gi" : "2Mi";
        char path[128];
        snprintf(path, sizeof(path), "/sys/kernel/mm/hugepages/hugepages-%llukB/free_hugepages",
                 (unsigned long long)(v->hugepage_size >> 10));
        unsigned long free_pages = read_ulong(path), need = (unsigned long)(v->memory / v->hugepage_size);
        if (free_pages < need)
                return kv_error_set(
                    err, EINVAL,
                    "spec.domain.memory.hugepages.pageSize: %lu free %s pages needed, %lu free "
                    "(%s), which this host lacks",
                    need, size, free_pages, path);
        if (find_hugetlbfs(v->hugepage_size, out, outsz) < 0)
                return kv_error_set(
                    err, EINVAL,
                    "spec.domain.memory.hugepages.pageSize: no writable hugetlbfs mount of %s pages "
                    "(a Pod gets KubeVirt's HugePages emptyDir at /dev/hugepages), which this host "
                    "lacks",
                    size);
        return 0;
}

int cpumem_memlock_limit(const vmi *v, kv_error *err)
{
        if (!v->realtime)
                return 0;
        struct rlimit lim = {RLIM_INFINITY, RLIM_INFINITY};
        if (setrlimit(RLIMIT_MEMLOCK, &lim) == 0)
                return 0;
        int e = errno;
        /* Without CAP_SYS_RESOURCE a hard limit that holds all of QEMU's memory (the guest's and about as
         * much again for QEMU itself, TCG's code cache included) is enough. */
        if (getrlimit(RLIMIT_MEMLOCK, &lim) == 0 &&
            (lim.rlim_max == RLIM_INFINITY || lim.rlim_max / 2 >= v->memory)) {
                lim.rlim_cur = lim.rlim_max;
                if (setrlimit(RLIMIT_MEMLOCK, &lim) == 0)
                        return 0;
                e = errno;
        }
        return kv_error_errno(err, e,
                              "spec.domain.cpu.realtime: QEMU must lock the guest's memory in RAM, but "
                              "RLIMIT_MEMLOCK is %llu kB (the launcher needs CAP_SYS_RESOURCE or a memlock "
                              "limit of twice the guest memory)",
                              (unsigned long long)(lim.rlim_max >> 10));
}

/* The n-th CPU of set (0-based), or -1. */
static int nth_cpu(const cpu_set_t *set, unsigned n)
{
        for (int c = 0; c < CPU_SETSIZE; c++)
                if (CPU_ISSET(c, set) && n-- == 0)
                        return c;
        return -1;
}

static int pin_thread(pid_t tid, int cpu, kv_error *err)
{
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(cpu, &one);
        if (sched_setaffinity(tid, sizeof(one), &one) < 0)
                return kv_error_errno(err, errno,
                                      "spec.domain.cpu.dedicatedCpuPlacement: pin thread %d to CPU %d",
                                      (int)tid, cpu);
        return 0;
}

static bool is_vcpu(pid_t tid, const pid_t *vcpus, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (vcpus[i] == tid)
                        return true;
        return false;
}

static void closedirp(DIR **d)
{
        if (*d)
                closedir(*d);
}

/* Every QEMU thread that is not a vCPU (main loop, I/O, RCU...) goes to the emulator CPU. */
static int pin_emulator(pid_t qemu, const pid_t *vcpus, size_t n, int cpu, kv_error *err)
{
        char dir[64];
        snprintf(dir, sizeof(dir), "/proc/%d/task", (int)qemu);
        _cleanup_(closedirp) DIR *d = opendir(dir);
        if (!d)
                return kv_error_errno(err, errno, "open %s", dir);
        for (struct dirent *e; (e = readdir(d));) {
                pid_t tid = (pid_t)atoi(e->d_name);
                if (tid > 0 && !is_vcpu(tid, vcpus, n) && pin_thread(tid, cpu, err) < 0 && errno != ESRCH)
                        return -EIO;
        }
        return 0;
}

int cpumem_pin(const vmi *v, const cpu_set_t *allowed, qmp *q, pid_t qemu, kv_error *err)
{
        if (!v->dedicated_cpus)
                return 0;
        _cleanup_json_ cJSON *ret = NULL;
        int r = qmp_execute(q, "query-cpus-fast", NULL, CPUMEM_QMP_TIMEOUT_MS, &ret, err);
        if (r < 0)
                return kv_error_wrap(err, "query-cpus-fast");
        size_t n = 0;
        pid_t vcpus[1024];
        const cJSON *c;
        cJSON_ArrayForEach(c, ret)
        {
                const cJSON *idx = cJSON_GetObjectItemCaseSensitive(c, "cpu-index");
                const cJSON *tid = cJSON_GetObjectItemCaseSensitive(c, "thread-id");
                if (!json_is_whole(idx, 0, INT_MAX) || !json_is_whole(tid, 1, INT_MAX) ||
                    n >= ARRAY_SIZE(vcpus))
                        return kv_error_set(err, EIO, "query-cpus-fast: unexpected reply");
                int cpu = nth_cpu(allowed, (unsigned)idx->valuedouble);
                if (cpu < 0)
                        return kv_error_set(err, EINVAL,
                                            "spec.domain.cpu.dedicatedCpuPlacement: no CPU for vCPU %d",
                                            (int)idx->valuedouble);
                vcpus[n++] = (pid_t)tid->valuedouble;
                JF_TRY(pin_thread(vcpus[n - 1], cpu, err));
                if (v->realtime && sched_setscheduler(vcpus[n - 1], SCHED_FIFO,
                                                      &(struct sched_param){.sched_priority = 1}) < 0)
                        return kv_error_errno(err, errno,
                                              "spec.domain.cpu.realtime: SCHED_FIFO for vCPU %d (needs "
                                              "CAP_SYS_NICE, which this host lacks)",
                                              (int)idx->valuedouble);
                log_info("vCPU %d (thread %d) pinned to CPU %d", (int)idx->valuedouble, (int)vcpus[n - 1],
                         cpu);
        }
        if (v->isolate_emulator_thread) {
                int cpu = nth_cpu(allowed, vmi_vcpus(v));
                JF_TRY(pin_emulator(qemu, vcpus, n, cpu, err));
                log_info("emulator threads pinned to CPU %d", cpu);
        }
        return 0;
}
