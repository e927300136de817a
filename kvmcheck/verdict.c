/* The verdict: a pure function of the profile. Each check turns its section into pass/warn/fail/skip
 * with a one-line piece of evidence; the overall verdict follows from the device check (absent) and the
 * failing checks (unusable), the smoke test being the decisive witness. */
#include "caps.h"
#include "cpuid-features.h"
#include "kvmcheck.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* The smoke loop's window: 2^24 iterations of `dec; jnz` take ~5-20 ms on VT-x/AMD-V. Below 1 ms would
 * be > 16 G iterations/s, which no CPU does: the measurement is broken. Above 200 ms KVM is too slow to
 * be worth it (TCG boots the test guest in ~1.5 s). */
#define SMOKE_MIN_US 1000u
#define SMOKE_MAX_US 200000u
/* PIT at ~1 kHz: 10 ticks cannot come in under ~9 ms; allow for a first tick that comes early */
#define IRQ_MIN_US_PER_TICK 500u

static kvm_check_status set(kvm_check_result *c, kvm_check_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static kvm_check_status set(kvm_check_result *c, kvm_check_status s, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->reason, sizeof(c->reason), fmt, ap);
        va_end(ap);
        c->status = s;
        return s;
}

static bool is_x86(const kvm_profile *p)
{
        const char *a = p->host.arch;
        return !strcmp(a, "x86_64") || (a[0] == 'i' && !strcmp(a + 2, "86"));
}

static bool has_module(const kvm_profile *p, const char *name)
{
        size_t n = strlen(name);
        for (const char *m = p->host.modules; (m = strstr(m, name)); m += n)
                if ((m == p->host.modules || m[-1] == ',') && (m[n] == ',' || m[n] == '\0'))
                        return true;
        return false;
}

/* The module that serves /dev/kvm, for messages: the vendor module if one is loaded. */
static const char *kvm_module(const kvm_profile *p)
{
        static const char *const vendors[] = {"kvm_intel", "kvm_amd", "kvm_pvm"};
        for (size_t i = 0; i < sizeof(vendors) / sizeof(vendors[0]); i++)
                if (has_module(p, vendors[i]))
                        return vendors[i];
        return p->host.modules[0] ? p->host.modules : "KVM";
}

static void check_host(const kvm_profile *p, kvm_check_result *c)
{
        const kvm_profile_host *h = &p->host;
        const char *mods = h->modules[0] ? h->modules : "none";
        if (!is_x86(p)) {
                set(c, KVM_CHECK_SKIP, "not x86 (%s): no vmx/svm flags to look for; KVM modules: %s",
                    h->arch[0] ? h->arch : "unknown", mods);
        } else if (!h->cpuinfo_read) {
                set(c, KVM_CHECK_WARN, "/proc/cpuinfo unreadable; KVM modules: %s", mods);
        } else if ((h->vmx && has_module(p, "kvm_intel")) || (h->svm && has_module(p, "kvm_amd"))) {
                set(c, KVM_CHECK_PASS, "CPU has %s, served by %s%s", h->vmx ? "vmx (VT-x)" : "svm (AMD-V)",
                    kvm_module(p), h->hypervisor ? " (nested: we run inside a VM)" : "");
        } else if (has_module(p, "kvm_pvm")) {
                set(c, KVM_CHECK_WARN, "%s; KVM served by kvm_pvm, a software hypervisor (modules: %s)",
                    h->vmx || h->svm ? "CPU has vmx/svm" : "no vmx/svm flag in /proc/cpuinfo", mods);
        } else {
                set(c, KVM_CHECK_WARN, "%s; KVM modules: %s",
                    h->vmx || h->svm ? "CPU has vmx/svm but no vendor module"
                                     : "no vmx/svm flag in /proc/cpuinfo",
                    mods);
        }
}

static void mode_string(uint32_t mode, char out[10])
{
        const char *rwx = "rwxrwxrwx";
        for (int i = 0; i < 9; i++)
                out[i] = mode & (0400u >> i) ? rwx[i] : '-';
        out[9] = '\0';
}

/* Returns true when the failure means "no KVM at all" rather than "KVM we may not use". */
static bool check_device(const kvm_profile *p, kvm_check_result *c)
{
        const kvm_profile_device *d = &p->device;
        char mode[10];
        mode_string(d->mode, mode);
        if (!d->exists) {
                set(c, KVM_CHECK_FAIL, "/dev/kvm: %s", strerror(d->open_errno > 0 ? d->open_errno : ENOENT));
                return true;
        }
        if (!d->is_chardev) {
                set(c, KVM_CHECK_FAIL, "/dev/kvm is not a character device");
                return true;
        }
        if (d->open_errno == EACCES || d->open_errno == EPERM || d->open_errno == EROFS) {
                set(c, KVM_CHECK_FAIL, "/dev/kvm (c%s uid %u gid %u) cannot be opened read-write: %s", mode,
                    d->uid, d->gid, strerror(d->open_errno));
                return false;
        }
        if (d->open_errno != 0) {
                set(c, KVM_CHECK_FAIL, "open /dev/kvm O_RDWR: %s",
                    strerror(d->open_errno > 0 ? d->open_errno : EIO));
                return true;
        }
        if (d->api_version != 12) {
                set(c, KVM_CHECK_FAIL, "KVM_GET_API_VERSION = %d, QEMU needs 12", d->api_version);
                return true;
        }
        if (d->create_vm_errno != 0) {
                set(c, KVM_CHECK_FAIL, "KVM_CREATE_VM: %s",
                    d->create_vm_errno > 0 ? strerror(d->create_vm_errno) : "not reached");
                return true;
        }
        set(c, KVM_CHECK_PASS, "/dev/kvm c%s uid %u gid %u, opened O_RDWR, API version 12, KVM_CREATE_VM ok",
            mode, d->uid, d->gid);
        return false;
}

static size_t list_caps(const kvm_profile *p, kvm_cap_need need, bool present, char *out, size_t outsz)
{
        size_t n = 0, len = 0;
        out[0] = '\0';
        for (size_t i = 0; i < kvm_caps_count; i++) {
                if (kvm_caps[i].need != need || (kvm_caps[i].x86_only && !is_x86(p)) ||
                    (p->caps.value[i] > 0) != present)
                        continue;
                int w = snprintf(out + len, outsz - len, "%s%s", len ? "," : "", kvm_caps[i].name);
                if (w > 0 && (size_t)w < outsz - len)
                        len += (size_t)w;
                n++;
        }
        return n;
}

static void check_caps(const kvm_profile *p, kvm_check_result *c)
{
        char missing_req[256], missing_def[256], have[256];
        if (!p->caps.probed) {
                set(c, KVM_CHECK_SKIP, "not reached: /dev/kvm is not usable");
                return;
        }
        size_t req = list_caps(p, KVM_CAP_NEED_REQUIRED, false, missing_req, sizeof(missing_req));
        size_t def = list_caps(p, KVM_CAP_NEED_DEFAULT, false, missing_def, sizeof(missing_def));
        size_t n = list_caps(p, KVM_CAP_NEED_REQUIRED, true, have, sizeof(have));
        if (req)
                set(c, KVM_CHECK_FAIL, "QEMU cannot start without: %s%s%s", missing_req,
                    def ? "; also missing: " : "", def ? missing_def : "");
        else if (def)
                set(c, KVM_CHECK_WARN, "all %zu required present; QEMU's default machine also wants: %s", n,
                    missing_def);
        else
                set(c, KVM_CHECK_PASS, "all %zu required (%s) and the default-machine ones present", n, have);
}

static void check_cpuid(const kvm_profile *p, kvm_check_result *c)
{
        const kvm_profile_cpuid *q = &p->cpuid;
        char v2[256], v3[256], extra[300] = "";
        if (!is_x86(p)) {
                set(c, KVM_CHECK_SKIP, "not x86: there is no x86-64-v2 baseline to compare");
                return;
        }
        if (!q->probed) {
                set(c, KVM_CHECK_SKIP, "not reached: /dev/kvm is not usable");
                return;
        }
        if (q->err) {
                set(c, KVM_CHECK_FAIL, "KVM_GET_SUPPORTED_CPUID: %s", strerror(q->err));
                return;
        }
        int n2 = kvm_cpuid_missing(&q->host, &q->supported, 2, false, v2, sizeof(v2));
        int n3 = kvm_cpuid_missing(&q->host, &q->supported, 3, true, v3, sizeof(v3));
        if (n3)
                snprintf(extra, sizeof(extra), " (x86-64-v3 bits also missing: %s)", v3);
        if (n2)
                set(c, KVM_CHECK_FAIL, "supported CPUID lacks x86-64-v2 bits the host has: %s%s", v2, extra);
        else
                set(c, KVM_CHECK_PASS,
                    "supported CPUID keeps long mode and every x86-64-v2 bit the host has%s", extra);
}

static uint64_t stat_value(const kvm_profile_stats *st, const char *name, bool *found)
{
        for (int i = 0; i < st->n; i++)
                if (!strcmp(st->s[i].name, name)) {
                        *found = true;
                        return st->s[i].value;
                }
        *found = false;
        return 0;
}

/* "; vCPU stats: insn_emulation=N exits=M" */
static void stats_witness(const kvm_profile_smoke *s, char *out, size_t outsz)
{
        bool found;
        if (!s->stats.available) {
                snprintf(out, outsz, "; no vCPU stats (KVM_GET_STATS_FD unsupported)");
                return;
        }
        unsigned long long emul = stat_value(&s->stats, "insn_emulation", &found);
        unsigned long long exits = stat_value(&s->stats, "exits", &found);
        snprintf(out, outsz, "; vCPU stats: insn_emulation=%llu exits=%llu", emul, exits);
}

/* The witness says emulated when KVM counted at least one emulated instruction per two loop iterations. */
static bool stats_say_emulated(const kvm_profile_smoke *s)
{
        bool found;
        uint64_t emul = stat_value(&s->stats, "insn_emulation", &found);
        return found && s->iterations_done > 0 && emul >= s->iterations_done / 2;
}

static void smoke_too_slow(const kvm_profile *p, kvm_check_result *c, const char *witness)
{
        const kvm_profile_smoke *s = &p->smoke;
        double ns = s->iterations_done ? (double)s->elapsed_us * 1000.0 / (double)s->iterations_done : 0;
        char speed[128] = "";
        if (s->iterations_done)
                snprintf(speed, sizeof(speed), "%llu of %llu iterations, ~%.0f ns each; hardware needs ~1 ns",
                         (unsigned long long)s->iterations_done, (unsigned long long)s->iterations, ns);
        else
                snprintf(speed, sizeof(speed), "no progress read back");
        const char *what = stats_say_emulated(s) ? "emulates every instruction"
                           : ns >= 50            ? "runs guest code far below hardware speed"
                                                 : "is too slow";
        if (s->timed_out || !s->finished)
                set(c, KVM_CHECK_FAIL, "%s %s: smoke loop did not finish in %u ms (%s)%s", kvm_module(p),
                    what, s->watchdog_ms, speed, witness);
        else
                set(c, KVM_CHECK_FAIL, "%s %s: smoke loop took %.1f ms, limit %u ms (%s)%s", kvm_module(p),
                    what, (double)s->elapsed_us / 1000.0, SMOKE_MAX_US / 1000, speed, witness);
}

static void check_smoke(const kvm_profile *p, kvm_check_result *c)
{
        const kvm_profile_smoke *s = &p->smoke;
        char witness[160];
        if (!is_x86(p)) {
                set(c, KVM_CHECK_SKIP, "not x86: the smoke guest is x86-64 code");
                return;
        }
        if (!s->probed) {
                set(c, KVM_CHECK_SKIP, "not reached: /dev/kvm is not usable");
                return;
        }
        stats_witness(s, witness, sizeof(witness));
        if (s->error[0] && !s->timed_out)
                set(c, KVM_CHECK_FAIL, "smoke guest did not run: %s", s->error);
        else if (s->timed_out || !s->finished || s->elapsed_us > SMOKE_MAX_US)
                smoke_too_slow(p, c, witness);
        else if (s->elapsed_us < SMOKE_MIN_US)
                set(c, KVM_CHECK_FAIL,
                    "smoke loop of %llu iterations claims %llu us: faster than any CPU, the "
                    "measurement is broken",
                    (unsigned long long)s->iterations, (unsigned long long)s->elapsed_us);
        else if (stats_say_emulated(s))
                set(c, KVM_CHECK_FAIL, "%s emulated the smoke loop although it finished in %.1f ms%s",
                    kvm_module(p), (double)s->elapsed_us / 1000.0, witness);
        else
                set(c, KVM_CHECK_PASS, "%llu iterations in %.1f ms (window %u-%u ms), ~%.1f ns each%s",
                    (unsigned long long)s->iterations, (double)s->elapsed_us / 1000.0, SMOKE_MIN_US / 1000,
                    SMOKE_MAX_US / 1000,
                    (double)s->elapsed_us * 1000.0 / (double)(s->iterations ? s->iterations : 1), witness);
}

static void check_irq(const kvm_profile *p, kvm_check_result *c)
{
        const kvm_profile_irq *q = &p->irq;
        if (!is_x86(p)) {
                set(c, KVM_CHECK_SKIP, "not x86: the PIC/PIT test is x86-specific");
        } else if (!q->probed) {
                set(c, KVM_CHECK_SKIP, "not reached: /dev/kvm is not usable");
        } else if (q->error[0]) {
                set(c, KVM_CHECK_FAIL, "in-kernel irqchip/PIT guest failed: %s", q->error);
        } else if (q->ticks < q->ticks_wanted) {
                set(c, KVM_CHECK_FAIL, "only %u of %u PIT timer interrupts arrived in %u ms", q->ticks,
                    q->ticks_wanted, q->watchdog_ms);
        } else if (q->elapsed_us < (uint64_t)q->ticks_wanted * IRQ_MIN_US_PER_TICK) {
                set(c, KVM_CHECK_FAIL, "%u timer interrupts in %llu us: faster than a ~1 kHz PIT fires",
                    q->ticks, (unsigned long long)q->elapsed_us);
        } else {
                set(c, KVM_CHECK_PASS, "%u PIT interrupts via the in-kernel PIC/LAPIC in %.1f ms", q->ticks,
                    (double)q->elapsed_us / 1000.0);
        }
}

/* Order in which a failing check explains an unusable verdict: the most decisive first. */
static const kvm_check_id explain_order[] = {KVM_CHECK_SMOKE, KVM_CHECK_CPUID, KVM_CHECK_CAPS, KVM_CHECK_IRQ,
                                             KVM_CHECK_DEVICE};

static void explain_unusable(kvm_report *r)
{
        size_t len = 0;
        int shown = 0;
        for (size_t i = 0; i < sizeof(explain_order) / sizeof(explain_order[0]); i++) {
                kvm_check_id id = explain_order[i];
                if (r->checks[id].status != KVM_CHECK_FAIL)
                        continue;
                int w = shown == 0 ? snprintf(r->reason, sizeof(r->reason), "%s", r->checks[id].reason)
                        : shown == 1
                            ? snprintf(r->reason + len, sizeof(r->reason) - len, " (also failing: %s",
                                       kvm_check_name(id))
                            : snprintf(r->reason + len, sizeof(r->reason) - len, ", %s", kvm_check_name(id));
                if (w > 0 && (size_t)w < sizeof(r->reason) - len)
                        len += (size_t)w;
                shown++;
        }
        if (shown > 1 && len + 1 < sizeof(r->reason))
                snprintf(r->reason + len, sizeof(r->reason) - len, ")");
}

void kvmcheck_decide(const kvm_profile *p, kvm_report *r)
{
        memset(r, 0, sizeof(*r));
        check_host(p, &r->checks[KVM_CHECK_HOST]);
        bool absent = check_device(p, &r->checks[KVM_CHECK_DEVICE]);
        check_caps(p, &r->checks[KVM_CHECK_CAPS]);
        check_cpuid(p, &r->checks[KVM_CHECK_CPUID]);
        check_smoke(p, &r->checks[KVM_CHECK_SMOKE]);
        check_irq(p, &r->checks[KVM_CHECK_IRQ]);
        bool failed = false;
        for (int i = 0; i < KVM_CHECK_COUNT; i++)
                failed |= r->checks[i].status == KVM_CHECK_FAIL;
        if (absent) {
                r->verdict = KVM_VERDICT_ABSENT;
                snprintf(r->reason, sizeof(r->reason), "no working KVM: %s",
                         r->checks[KVM_CHECK_DEVICE].reason);
        } else if (failed) {
                r->verdict = KVM_VERDICT_UNUSABLE;
                explain_unusable(r);
        } else if (is_x86(p) && r->checks[KVM_CHECK_SMOKE].status != KVM_CHECK_PASS) {
                /* never call KVM usable on x86 without having seen a guest run at speed */
                r->verdict = KVM_VERDICT_UNUSABLE;
                snprintf(r->reason, sizeof(r->reason), "smoke test did not run: %s",
                         r->checks[KVM_CHECK_SMOKE].reason);
        } else {
                r->verdict = KVM_VERDICT_USABLE;
                if (is_x86(p))
                        snprintf(r->reason, sizeof(r->reason), "KVM runs guest code at hardware speed: %s",
                                 r->checks[KVM_CHECK_SMOKE].reason);
                else
                        snprintf(r->reason, sizeof(r->reason),
                                 "/dev/kvm works (not x86: the smoke and CPUID checks do not apply): %s",
                                 r->checks[KVM_CHECK_DEVICE].reason);
        }
}
