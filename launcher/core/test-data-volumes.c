/* configMap/secret/serviceAccount/downwardAPI/sysprep volumes and cloudInitConfigDrive: the directory of keys
 * at <secret_root>/<volume> (laid out as the kubelet does, with its ..data links) becomes an ISO with
 * KubeVirt's label, each key a file; the config drive's OpenStack layout; each bad case naming its field. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test-util.h"
#include "vmi.h"
#include "volumes.h"

static char base[] = "/tmp/kv-datavol-XXXXXX";
static char iso[1 << 20];
static size_t iso_len;

static const char *vmi_json(const char *volume, const char *devices)
{
        static char buf[4096];
        snprintf(buf, sizeof(buf),
                 "{\"apiVersion\":\"kubevirt.io/v1\",\"kind\":\"VirtualMachineInstance\","
                 "\"metadata\":{\"name\":\"s\",\"namespace\":\"ns\",\"uid\":\"u-1\"},"
                 "\"spec\":{\"domain\":{\"memory\":{\"guest\":\"64Mi\"},\"devices\":{%s}},"
                 "\"volumes\":[{\"name\":\"v\",%s}]}}",
                 devices, volume);
        return buf;
}

/* Shell commands run in base (the test's own fixed strings). */
static void sh(const char *cmd)
{
        if (system(cmd) != 0) {
                fprintf(stderr, "command failed: %s\n", cmd);
                test_failures++;
        }
}

static int prepare(const char *volume, const char *devices, vmi **v, kv_error *err)
{
        char run[512], secrets[512];
        snprintf(run, sizeof(run), "%s/run", base);
        snprintf(secrets, sizeof(secrets), "%s/secrets", base);
        int r = vmi_load_json_string(vmi_json(volume, devices), v, err);
        if (r < 0)
                return r;
        launcher_paths p = {.run_dir = run, .secret_root = secrets};
        return volumes_prepare(*v, &p, err);
}

/* Prepares a volume that must work and loads its ISO into iso[]. */
static bool prepare_iso(const char *volume, vmi **v)
{
        kv_error err = {0};
        if (prepare(volume, "", v, &err) < 0) {
                fprintf(stderr, "prepare %s: %s\n", volume, err.msg);
                test_failures++;
                return false;
        }
        FILE *f = fopen((*v)->volumes[0].prep.path, "rb");
        CHECK(f != NULL);
        iso_len = f ? fread(iso, 1, sizeof(iso), f) : 0;
        if (f)
                fclose(f);
        return iso_len > 32768 + 72;
}

static bool has(const char *needle)
{
        return memmem(iso, iso_len, needle, strlen(needle)) != NULL;
}

/* The primary volume descriptor's volume identifier (sector 16, offset 40, 32 bytes padded with spaces). */
static void check_label(const char *want)
{
        char got[33];
        memcpy(got, iso + 32768 + 40, 32);
        got[32] = '\0';
        for (int i = 31; i >= 0 && got[i] == ' '; i--)
                got[i] = '\0';
        CHECK_STR(got, want);
}

static void test_config_map(void)
{
        _cleanup_(vmi_freep) vmi *v = NULL;
        /* the kubelet's atomic writer: keys are links through ..data to a timestamped directory */
        sh("mkdir -p 'secrets/v/..2026_12_01' && cd 'secrets/v' && "
           "printf 'color=blue\\n' > ..2026_12_01/app.properties && printf 'a\\0b-binary' > "
           "..2026_12_01/blob && "
           "ln -s ..2026_12_01 ..data && ln -s ..data/app.properties app.properties && ln -s ..data/blob "
           "blob");
        if (!prepare_iso("\"configMap\":{\"name\":\"app-config\"}", &v))
                return;
        check_label("cfgdata");
        CHECK(has("color=blue\n"));
        CHECK(memmem(iso, iso_len, "a\0b-binary", 10) != NULL); /* keys are bytes, not C strings */
        CHECK(has("app.properties"));
        CHECK(!has("..2026_12_01") && !has("..data"));
        CHECK(v->volumes[0].prep.read_only);
}

static void test_secret_label_and_optional(void)
{
        _cleanup_(vmi_freep) vmi *v = NULL, *w = NULL;
        if (prepare_iso("\"secret\":{\"secretName\":\"s\",\"volumeLabel\":\"OEMDRV\"}", &v)) {
                check_label("OEMDRV");
                CHECK(has("color=blue\n"));
        }
        sh("rm -rf 'secrets/v'");
        if (prepare_iso("\"configMap\":{\"name\":\"gone\",\"optional\":true}", &w)) /* an empty disk */
                check_label("cfgdata");
}

static void test_config_drive(void)
{
        _cleanup_(vmi_freep) vmi *v = NULL;
        if (!prepare_iso("\"cloudInitConfigDrive\":{\"userData\":\"#cloud-config\\nx: 1\\n\","
                         "\"networkDataBase64\":\"eyJsaW5rcyI6W119\"}",
                         &v))
                return;
        check_label("config-2");
        CHECK(has("{\"instance_id\":\"s.ns\",\"hostname\":\"s\",\"uuid\":\"u-1\"}"));
        CHECK(has("#cloud-config\nx: 1\n") && has("{\"links\":[]}"));
        CHECK(has("openstack") && has("latest") && has("meta_data.json") && has("user_data") &&
              has("network_data.json"));
}

static void test_sysprep(void)
{
        _cleanup_(vmi_freep) vmi *v = NULL;
        sh("mkdir -p 'secrets/v' && echo '<unattend/>' > 'secrets/v/Unattend.xml'");
        if (prepare_iso("\"sysprep\":{\"secret\":{\"name\":\"win\"}}", &v)) {
                check_label("unattendCD");
                CHECK(has("<unattend/>"));
        }
}

static void expect_error(const char *volume, const char *devices, const char *field, const char *words)
{
        _cleanup_(vmi_freep) vmi *v = NULL;
        kv_error err = {0};
        int r = prepare(volume, devices, &v, &err);
        CHECK(r == -EINVAL);
        if (!strstr(err.msg, field) || !strstr(err.msg, words)) {
                fprintf(stderr, "error \"%s\" should name %s and say %s\n", err.msg, field, words);
                test_failures++;
        }
}

static void test_errors(void)
{
        sh("rm -rf 'secrets/v' && mkdir -p 'secrets/v' && echo x > 'secrets/v/other'");
        expect_error("\"sysprep\":{\"configMap\":{\"name\":\"win\"}}", "",
                     "spec.volumes[0].sysprep.configMap.name", "neither autounattend.xml nor unattend.xml");
        expect_error("\"sysprep\":{\"configMap\":{\"name\":\"a\"},\"secret\":{\"name\":\"b\"}}", "",
                     "spec.volumes[0].sysprep", "exactly one of configMap and secret");
        sh("rm -rf 'secrets/v'");
        expect_error("\"configMap\":{\"name\":\"app\"}", "", "spec.volumes[0].configMap.name",
                     "not available");
        expect_error("\"secret\":{\"secretName\":\"s\"}", "", "spec.volumes[0].secret.secretName",
                     "not available");
        expect_error("\"configMap\":{\"name\":\"a/b\"}", "", "spec.volumes[0].configMap.name",
                     "not a valid ConfigMap name");
        expect_error("\"configMap\":{\"name\":\"a\",\"volumeLabel\":\"0123456789012345678901234567890123\"}",
                     "", "spec.volumes[0].configMap.volumeLabel", "at most 32");
        expect_error("\"configMap\":{\"name\":\"a\",\"items\":[]}", "", "spec.volumes[0].configMap.items",
                     "");
        expect_error("\"downwardAPI\":{\"fields\":[{\"path\":\"../"
                     "x\",\"fieldRef\":{\"fieldPath\":\"metadata.name\"}}]}",
                     "", "spec.volumes[0].downwardAPI.fields[0].path", "relative path");
        expect_error("\"downwardAPI\":{\"fields\":[{\"path\":\"x\"}]}", "",
                     "spec.volumes[0].downwardAPI.fields[0]", "exactly one of fieldRef and resourceFieldRef");
        expect_error("\"serviceAccount\":{}", "", "spec.volumes[0].serviceAccount.serviceAccountName", "");
        expect_error("\"cloudInitConfigDrive\":{\"secretRef\":{\"name\":\"cd\"}}", "",
                     "spec.volumes[0].cloudInitConfigDrive.secretRef",
                     "neither a userdata nor a userData key");
        expect_error("\"configMap\":{\"name\":\"a\"}", "\"filesystems\":[{\"name\":\"w\",\"virtiofs\":{}}]",
                     "spec.domain.devices.filesystems[0].name", "no volume named \"w\"");
        expect_error("\"emptyDisk\":{\"capacity\":\"1Mi\"}",
                     "\"filesystems\":[{\"name\":\"v\",\"virtiofs\":{}}]",
                     "spec.domain.devices.filesystems[0].name", "cannot be shared over virtiofs");
        expect_error("\"configMap\":{\"name\":\"a\"}",
                     "\"disks\":[{\"name\":\"v\"}],\"filesystems\":[{\"name\":\"v\",\"virtiofs\":{}}]",
                     "spec.domain.devices.filesystems[0].name", "also used by a disk");
        expect_error("\"configMap\":{\"name\":\"a\"}", "\"filesystems\":[{\"name\":\"v\"}]",
                     "spec.domain.devices.filesystems[0].virtiofs", "is required");
}

int main(void)
{
        if (!mkdtemp(base))
                return perror("mkdtemp"), 1;
        if (chdir(base) < 0)
                return perror("chdir"), 1;
        sh("mkdir -p run secrets");
        test_config_map();
        test_secret_label_and_optional();
        test_config_drive();
        test_sysprep();
        test_errors();
        if (chdir("/") == 0) {
                char cmd[600];
                snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
                sh(cmd);
        }
        return test_result("data volumes");
}
