/* Unit tests for the verdict: recorded profiles of the three kinds of host (a VT-x host: usable; a
 * kvm_pvm host with /dev/kvm: unusable; a host with kvm_pvm loaded but no /dev/kvm node: absent) against
 * golden reports, and single-field variations of them for every branch of the decision.
 * Usage: test-verdict TESTDATA_DIR   (KV_UPDATE_GOLDEN=1 rewrites the golden reports) */
#include "kvmcheck.h"
#include "profile-json.h"
#include "report.h"
#include "test-util.h"

#include <errno.h>
#include <stdlib.h>

static const char *testdata;

static char *slurp(const char *path)
{
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        if (!f)
                return NULL;
        char *buf = calloc(1, 1 << 20);
        if (buf)
                buf[fread(buf, 1, (1 << 20) - 1, f)] = '\0';
        return buf;
}

static kvm_profile load(const char *name)
{
        char path[4096];
        kvm_profile p;
        kv_error err = {0};
        snprintf(path, sizeof(path), "%s/profile-%s.json", testdata, name);
        _cleanup_free_ char *text = slurp(path);
        CHECK(text != NULL);
        if (!text || kvm_profile_from_json(text, &p, &err) < 0) {
                fprintf(stderr, "%s: %s\n", path, err.msg);
                exit(1);
        }
        return p;
}

static kvm_report decide(const kvm_profile *p)
{
        kvm_report r;
        kvmcheck_decide(p, &r);
        return r;
}

static void golden(const char *name, kvm_verdict want)
{
        kvm_profile p = load(name);
        kvm_report r = decide(&p);
        CHECK(r.verdict == want);
        cJSON *json = kvm_report_to_cjson(&r, &p);
        cJSON_DeleteItemFromObject(json, "profile"); /* that is the input */
        _cleanup_free_ char *got = cJSON_Print(json);
        cJSON_Delete(json);
        char path[4096];
        snprintf(path, sizeof(path), "%s/report-%s.json", testdata, name);
        if (getenv("KV_UPDATE_GOLDEN")) {
                _cleanup_fclose_ FILE *f = fopen(path, "we");
                CHECK(f && fprintf(f, "%s\n", got) > 0);
                return;
        }
        _cleanup_free_ char *want_text = slurp(path);
        CHECK(want_text != NULL);
        if (want_text && strlen(want_text) > 0)
                want_text[strlen(want_text) - 1] = '\0'; /* the file's final newline */
        if (want_text && strcmp(got, want_text)) {
                fprintf(stderr, "%s differs from the report:\n%s\n", path, got);
                test_failures++;
        }
}

static void round_trip(const char *name)
{
        kvm_profile p = load(name), q;
        kv_error err = {0};
        cJSON *json = kvm_profile_to_cjson(&p);
        _cleanup_free_ char *text = cJSON_PrintUnformatted(json);
        cJSON_Delete(json);
        CHECK(kvm_profile_from_json(text, &q, &err) == 0);
        CHECK(memcmp(&p, &q, sizeof(p)) == 0);
}

static void expect(int line, const kvm_profile *p, kvm_verdict want, const char *prefix)
{
        kvm_report r = decide(p);
        if (r.verdict != want || strncmp(r.reason, prefix, strlen(prefix))) {
                fprintf(stderr, "%s:%d: got %s \"%s\", want %s \"%s...\"\n", __FILE__, line,
                        kvm_verdict_name(r.verdict), r.reason, kvm_verdict_name(want), prefix);
                test_failures++;
        }
}
#define EXPECT(p, want, prefix) expect(__LINE__, &(p), want, prefix)

static void set_stat(kvm_profile *p, const char *name, uint64_t v)
{
        for (int i = 0; i < p->smoke.stats.n; i++)
                if (!strcmp(p->smoke.stats.s[i].name, name))
                        p->smoke.stats.s[i].value = v;
}

static void test_device(void)
{
        kvm_profile p = load("intel-vtx");
        p.device.exists = false;
        p.device.open_errno = ENOENT;
        EXPECT(p, KVM_VERDICT_ABSENT, "no working KVM: /dev/kvm: No such file or directory");
        p = load("intel-vtx");
        p.device.open_errno = EACCES;
        EXPECT(p, KVM_VERDICT_UNUSABLE,
               "/dev/kvm (crw-rw---- uid 0 gid 104) cannot be opened read-write: Perm");
        p = load("intel-vtx");
        p.device.api_version = 11;
        EXPECT(p, KVM_VERDICT_ABSENT, "no working KVM: KVM_GET_API_VERSION = 11, QEMU needs 12");
        p = load("intel-vtx");
        p.device.create_vm_errno = ENOMEM;
        EXPECT(p, KVM_VERDICT_ABSENT, "no working KVM: KVM_CREATE_VM: Cannot allocate memory");
}

static void test_caps(void)
{
        kvm_profile p = load("intel-vtx");
        p.caps.value[0] = 0; /* USER_MEMORY */
        EXPECT(p, KVM_VERDICT_UNUSABLE, "QEMU cannot start without: USER_MEMORY");
        p = load("intel-vtx");
        p.caps.value[7] = 0; /* PIT2: the default machine wants it, QEMU still starts */
        EXPECT(p, KVM_VERDICT_USABLE, "KVM runs guest code at hardware speed");
        CHECK(decide(&p).checks[KVM_CHECK_CAPS].status == KVM_CHECK_WARN);
}

static void test_smoke(void)
{
        kvm_profile p = load("intel-vtx");
        p.smoke.elapsed_us = 400;
        EXPECT(p, KVM_VERDICT_UNUSABLE, "smoke loop of 16777216 iterations claims 400 us");
        p = load("intel-vtx");
        p.smoke.elapsed_us = 250000;
        EXPECT(p, KVM_VERDICT_UNUSABLE, "kvm_intel is too slow: smoke loop took 250.0 ms, limit 200 ms");
        p = load("intel-vtx");
        set_stat(&p, "insn_emulation", 2u << 24);
        EXPECT(p, KVM_VERDICT_UNUSABLE, "kvm_intel emulated the smoke loop although it finished in 8.4 ms");
        p = load("intel-vtx");
        p.smoke.probed = false;
        EXPECT(p, KVM_VERDICT_UNUSABLE, "smoke test did not run: not reached");
        p = load("intel-vtx");
        snprintf(p.smoke.error, sizeof(p.smoke.error), "KVM_SET_SREGS (long mode): Invalid argument");
        p.smoke.finished = false;
        EXPECT(p, KVM_VERDICT_UNUSABLE,
               "smoke guest did not run: KVM_SET_SREGS (long mode): Invalid argument");
        p = load("kvm-pvm");
        p.smoke.stats.available = false;
        p.smoke.stats.n = 0;
        EXPECT(p, KVM_VERDICT_UNUSABLE,
               "kvm_pvm runs guest code far below hardware speed: smoke loop did not finish");
}

static void test_irq(void)
{
        kvm_profile p = load("intel-vtx");
        p.irq.ticks = 3;
        EXPECT(p, KVM_VERDICT_UNUSABLE, "only 3 of 10 PIT timer interrupts arrived in 300 ms");
        p = load("intel-vtx");
        p.irq.elapsed_us = 100;
        EXPECT(p, KVM_VERDICT_UNUSABLE, "10 timer interrupts in 100 us");
}

static void test_not_x86(void)
{
        kvm_profile p = load("intel-vtx");
        snprintf(p.host.arch, sizeof(p.host.arch), "aarch64");
        p.cpuid.probed = p.smoke.probed = p.irq.probed = false;
        EXPECT(p, KVM_VERDICT_USABLE, "/dev/kvm works (not x86");
        kvm_report r = decide(&p);
        CHECK(r.checks[KVM_CHECK_HOST].status == KVM_CHECK_SKIP);
        CHECK(r.checks[KVM_CHECK_SMOKE].status == KVM_CHECK_SKIP);
        CHECK(r.checks[KVM_CHECK_CAPS].status == KVM_CHECK_PASS); /* x86-only caps are not asked for */
}

static void test_kvm_pvm(void)
{
        kvm_profile p = load("kvm-pvm");
        EXPECT(p, KVM_VERDICT_UNUSABLE,
               "kvm_pvm emulates every instruction: smoke loop did not finish in 500 ms");
        kvm_report r = decide(&p);
        CHECK(r.checks[KVM_CHECK_HOST].status == KVM_CHECK_WARN);
        CHECK(r.checks[KVM_CHECK_CPUID].status == KVM_CHECK_FAIL);
        CHECK(r.checks[KVM_CHECK_IRQ].status == KVM_CHECK_PASS);
        CHECK(kvmcheck_exit_code(r.verdict) == KVMCHECK_EXIT_UNUSABLE);
}

static void test_no_device(void)
{
        kvm_profile p = load("no-device");
        EXPECT(p, KVM_VERDICT_ABSENT, "no working KVM: /dev/kvm: No such file or directory");
        kvm_report r = decide(&p);
        CHECK(r.checks[KVM_CHECK_DEVICE].status == KVM_CHECK_FAIL);
        for (int i = KVM_CHECK_CAPS; i < KVM_CHECK_COUNT; i++)
                CHECK(r.checks[i].status == KVM_CHECK_SKIP); /* nothing to probe without the device */
        CHECK(kvmcheck_exit_code(r.verdict) == KVMCHECK_EXIT_ABSENT);
}

static void test_bad_json(void)
{
        kvm_profile p;
        kv_error err = {0};
        CHECK(kvm_profile_from_json("not json", &p, &err) == -EINVAL);
        CHECK(kvm_profile_from_json("{\"device\":{\"exists\":1}}", &p, &err) == -EINVAL);
        CHECK_STR(err.msg, "profile field device.exists: wrong type");
        CHECK(kvm_profile_from_json("{\"cpuid\":{\"host\":{\"l1_ecx\":\"12\"}}}", &p, &err) == -EINVAL);
        CHECK_STR(err.msg, "profile field cpuid.host.l1_ecx: not a 0x hex number");
        CHECK(kvm_profile_from_json("{}", &p, &err) == 0); /* nothing probed */
        EXPECT(p, KVM_VERDICT_ABSENT, "no working KVM");
}

int main(int argc, char **argv)
{
        if (argc != 2) {
                fprintf(stderr, "usage: test-verdict TESTDATA_DIR\n");
                return 2;
        }
        testdata = argv[1];
        golden("intel-vtx", KVM_VERDICT_USABLE);
        golden("kvm-pvm", KVM_VERDICT_UNUSABLE);
        golden("no-device", KVM_VERDICT_ABSENT);
        round_trip("intel-vtx");
        round_trip("kvm-pvm");
        round_trip("no-device");
        test_device();
        test_caps();
        test_smoke();
        test_irq();
        test_not_x86();
        test_kvm_pvm();
        test_no_device();
        test_bad_json();
        return test_result("test-verdict");
}
