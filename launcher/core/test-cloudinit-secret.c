/* cloud-init from Secrets: userDataSecretRef/networkDataSecretRef parsed, the mounted keys read from
 * <secret_root>/<volume> (both spellings) into the cidata ISO, and each bad case naming its field; the SSH
 * keys of accessCredentials (noCloud, configDrive) in the seeds' meta-data. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test-util.h"
#include "vmi.h"
#include "volumes.h"

static char base[] = "/tmp/kv-cisecret-XXXXXX";

static const char *vmi_json(const char *cloud_init)
{
        static char buf[2048];
        snprintf(buf, sizeof(buf),
                 "{\"apiVersion\":\"kubevirt.io/v1\",\"kind\":\"VirtualMachineInstance\","
                 "\"metadata\":{\"name\":\"s\",\"namespace\":\"ns\"},"
                 "\"spec\":{\"domain\":{\"memory\":{\"guest\":\"64Mi\"},"
                 "\"devices\":{\"disks\":[{\"name\":\"ci\",\"disk\":{\"bus\":\"virtio\"}}]}},"
                 "\"volumes\":[{\"name\":\"ci\",\"cloudInitNoCloud\":%s}]}}",
                 cloud_init);
        return buf;
}

static void write_file(const char *rel, const char *text)
{
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", base, rel);
        FILE *f = fopen(path, "w");
        CHECK(f != NULL);
        if (f) {
                fputs(text, f);
                fclose(f);
        }
}

static bool file_contains(const char *path, const char *needle)
{
        FILE *f = fopen(path, "rb");
        if (!f)
                return false;
        static char buf[1 << 20];
        size_t n = fread(buf, 1, sizeof(buf), f);
        fclose(f);
        return memmem(buf, n, needle, strlen(needle)) != NULL;
}

/* Parses and prepares; returns volumes_prepare's result (or the parse error's) with err filled. */
static int prepare(const char *cloud_init, vmi **v, kv_error *err)
{
        char run[512], secrets[512];
        snprintf(run, sizeof(run), "%s/run", base);
        snprintf(secrets, sizeof(secrets), "%s/secrets", base);
        int r = vmi_load_json_string(vmi_json(cloud_init), v, err);
        if (r < 0)
                return r;
        launcher_paths p = {.run_dir = run, .secret_root = secrets};
        return volumes_prepare(*v, &p, err);
}

static void test_both_secrets(void)
{
        _cleanup_(vmi_freep) vmi *v = NULL;
        kv_error err = {0};
        write_file("secrets/ci/userData", "#cloud-config\nhostname: from-secret\n");
        write_file("secrets/ci/networkdata", "version: 2\nethernets: {}\n");
        int r = prepare("{\"userDataSecretRef\":{\"name\":\"u\"},\"networkDataSecretRef\":{\"name\":\"n\"}}",
                        &v, &err);
        CHECK(r == 0);
        if (r < 0) {
                fprintf(stderr, "prepare: %s\n", err.msg);
                return;
        }
        CHECK_STR(v->volumes[0].user_data_secret, "u");
        CHECK_STR(v->volumes[0].network_data_secret, "n");
        CHECK_STR(v->volumes[0].user_data, "#cloud-config\nhostname: from-secret\n");
        CHECK_STR(v->volumes[0].network_data, "version: 2\nethernets: {}\n");
        CHECK(file_contains(v->volumes[0].prep.path, "hostname: from-secret"));
        CHECK(file_contains(v->volumes[0].prep.path, "ethernets: {}"));
        CHECK(file_contains(v->volumes[0].prep.path, "CIDATA") ||
              file_contains(v->volumes[0].prep.path, "cidata"));
}

/* `userdata` wins over `userData` (KubeVirt looks it up first); inline networkData mixes with a ref. */
static void test_lowercase_first(void)
{
        _cleanup_(vmi_freep) vmi *v = NULL;
        kv_error err = {0};
        write_file("secrets/ci/userdata", "#cloud-config\nlower: 1\n");
        CHECK(prepare("{\"userDataSecretRef\":{\"name\":\"u\"},\"networkData\":\"version: 1\\n\"}", &v,
                      &err) == 0);
        if (v && v->volumes[0].user_data) {
                CHECK_STR(v->volumes[0].user_data, "#cloud-config\nlower: 1\n");
                CHECK_STR(v->volumes[0].network_data, "version: 1\n");
        }
}

static void expect_error(const char *cloud_init, const char *field, const char *words)
{
        _cleanup_(vmi_freep) vmi *v = NULL;
        kv_error err = {0};
        int r = prepare(cloud_init, &v, &err);
        CHECK(r == -EINVAL);
        if (!strstr(err.msg, field) || !strstr(err.msg, words)) {
                fprintf(stderr, "error \"%s\" should name %s and say %s\n", err.msg, field, words);
                test_failures++;
        }
}

static void test_errors(void)
{
        char path[512];
        snprintf(path, sizeof(path), "%s/secrets/ci/userdata", base);
        unlink(path);
        snprintf(path, sizeof(path), "%s/secrets/ci/userData", base);
        unlink(path);
        expect_error("{\"userDataSecretRef\":{\"name\":\"u\"}}",
                     "spec.volumes[0].cloudInitNoCloud.userDataSecretRef",
                     "neither a userdata nor a userData key");
        expect_error("{\"userData\":\"x\",\"userDataSecretRef\":{\"name\":\"u\"}}",
                     "spec.volumes[0].cloudInitNoCloud.userDataSecretRef", "only one of");
        expect_error("{\"userDataSecretRef\":{\"name\":\"../x\"}}",
                     "spec.volumes[0].cloudInitNoCloud.userDataSecretRef.name", "not a valid Secret name");
        expect_error("{\"userDataSecretRef\":{\"name\":\"u\",\"key\":\"k\"}}",
                     "spec.volumes[0].cloudInitNoCloud.userDataSecretRef.key", "");
        expect_error("{\"userDataSecretRef\":\"u\"}", "spec.volumes[0].cloudInitNoCloud.userDataSecretRef",
                     "");
        expect_error("{}", "spec.volumes[0].cloudInitNoCloud", "SecretRef");
        /* a key that is not text */
        snprintf(path, sizeof(path), "%s/secrets/ci/userdata", base);
        FILE *f = fopen(path, "wb");
        if (f) {
                fwrite("a\0b", 1, 3, f);
                fclose(f);
        }
        expect_error("{\"userDataSecretRef\":{\"name\":\"u\"}}", "userDataSecretRef", "NUL");
}

/* Keys of an access credential Secret (<secret_root>/access-credentials.d/<secret>) in the seed of kind
 * volume ("cloudInitNoCloud" / "cloudInitConfigDrive", method "noCloud" / "configDrive"). */
static void expect_keys(const char *volume, const char *method, const char *const *needles)
{
        static char json[2048];
        _cleanup_(vmi_freep) vmi *v = NULL;
        kv_error err = {0};
        char run[512], secrets[512];
        snprintf(
            json, sizeof(json),
            "{\"apiVersion\":\"kubevirt.io/v1\",\"kind\":\"VirtualMachineInstance\","
            "\"metadata\":{\"name\":\"s\",\"namespace\":\"ns\"},"
            "\"spec\":{\"domain\":{\"memory\":{\"guest\":\"64Mi\"},"
            "\"devices\":{\"disks\":[{\"name\":\"ci\",\"disk\":{\"bus\":\"virtio\"}}]}},"
            "\"volumes\":[{\"name\":\"ci\",\"%s\":{\"userData\":\"#cloud-config\\n\"}}],"
            "\"accessCredentials\":[{\"sshPublicKey\":{\"source\":{\"secret\":{\"secretName\":\"keys\"}},"
            "\"propagationMethod\":{\"%s\":{}}}}]}}",
            volume, method);
        snprintf(run, sizeof(run), "%s/run", base);
        snprintf(secrets, sizeof(secrets), "%s/secrets", base);
        launcher_paths p = {.run_dir = run, .secret_root = secrets};
        int r = vmi_load_json_string(json, &v, &err);
        CHECK(r == 0);
        if (r == 0 && (r = volumes_prepare(v, &p, &err)) < 0)
                fprintf(stderr, "%s: %s\n", method, err.msg);
        CHECK(r == 0);
        for (size_t i = 0; r == 0 && needles[i]; i++)
                if (!file_contains(v->volumes[0].prep.path, needles[i])) {
                        fprintf(stderr, "%s seed lacks %s\n", method, needles[i]);
                        test_failures++;
                }
}

static void test_access_keys(void)
{
        char path[512];
        snprintf(path, sizeof(path), "%s/secrets/access-credentials.d", base);
        CHECK(mkdir(path, 0700) == 0);
        snprintf(path, sizeof(path), "%s/secrets/access-credentials.d/keys", base);
        CHECK(mkdir(path, 0700) == 0);
        write_file("secrets/access-credentials.d/keys/a",
                   "ssh-ed25519 AAAAone one@x\n\n  ssh-rsa AAAAtwo two@x \n");
        write_file("secrets/access-credentials.d/keys/b", "ssh-ed25519 AAAAone one@x\n");
        const char *nocloud[] = {
            "public-keys:\n  - \"ssh-ed25519 AAAAone one@x\"\n  - \"ssh-rsa AAAAtwo two@x\"\n", NULL};
        expect_keys("cloudInitNoCloud", "noCloud", nocloud);
        const char *drive[] = {
            "\"public_keys\":{\"0\":\"ssh-ed25519 AAAAone one@x\",\"1\":\"ssh-rsa AAAAtwo two@x\"}", NULL};
        expect_keys("cloudInitConfigDrive", "configDrive", drive);
}

static void test_access_keys_missing(void)
{
        _cleanup_(vmi_freep) vmi *v = NULL;
        kv_error err = {0};
        char run[512], secrets[512];
        snprintf(run, sizeof(run), "%s/run", base);
        snprintf(secrets, sizeof(secrets), "%s/nowhere", base);
        launcher_paths p = {.run_dir = run, .secret_root = secrets};
        CHECK(
            vmi_load_json_string(
                "{\"apiVersion\":\"kubevirt.io/"
                "v1\",\"kind\":\"VirtualMachineInstance\",\"metadata\":{\"name\":"
                "\"s\"},\"spec\":{\"domain\":{\"memory\":{\"guest\":\"64Mi\"}},\"volumes\":[{\"name\":\"ci\","
                "\"cloudInitNoCloud\":{\"userData\":\"x\"}}],\"accessCredentials\":[{\"sshPublicKey\":{"
                "\"source\":{\"secret\":{\"secretName\":\"gone\"}},\"propagationMethod\":{\"noCloud\":{}}}}]}"
                "}",
                &v, &err) == 0);
        CHECK(v && volumes_prepare(v, &p, &err) == -EINVAL);
        CHECK(strstr(err.msg, "spec.accessCredentials[0].sshPublicKey.source.secret.secretName") &&
              strstr(err.msg, "\"gone\" is not available"));
}

int main(void)
{
        char path[512];
        if (!mkdtemp(base))
                return perror("mkdtemp"), 1;
        const char *dirs[] = {"run", "secrets", "secrets/ci"};
        for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
                snprintf(path, sizeof(path), "%s/%s", base, dirs[i]);
                CHECK(mkdir(path, 0700) == 0);
        }
        test_both_secrets();
        test_lowercase_first();
        test_errors();
        test_access_keys();
        test_access_keys_missing();
        char cmd[600];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
        CHECK(system(cmd) == 0);
        return test_result("cloud-init secrets");
}
