/* Golden tests of admission_validate/admission_mutate: each NAME.validate.json or NAME.mutate.json in the
 * directory is an AdmissionReview request, NAME.<op>.out.json the expected answer (for readability the
 * JSONPatch is stored decoded, under `patchDecoded`). KV_UPDATE_GOLDEN=1 rewrites the .out.json files. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "admission.h"
#include "test-util.h"

static char *slurp(const char *path, size_t *len)
{
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        if (!f)
                return NULL;
        char *buf = malloc(1 << 20);
        *len = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
        if (buf)
                buf[*len] = '\0';
        return buf;
}

/* The objects VMs name: lookup-objects.data in the directory, a JSON list of PVCs, DataVolumes, DataSources,
 * instancetypes and preferences (inferFromVolume, templates checked with their instancetype). */
static cJSON *objects;

static int lookup_get(void *ctx, const char *resource, const char *ns, const char *name, cJSON **obj,
                      kv_error *err)
{
        static const char *const kinds[][2] = {
            {"virtualmachines", "VirtualMachine"},
            {"persistentvolumeclaims", "PersistentVolumeClaim"},
            {"datavolumes", "DataVolume"},
            {"datasources", "DataSource"},
            {"controllerrevisions", "ControllerRevision"},
            {"virtualmachineclusterinstancetypes", "VirtualMachineClusterInstancetype"},
            {"virtualmachineinstancetypes", "VirtualMachineInstancetype"},
            {"virtualmachineclusterpreferences", "VirtualMachineClusterPreference"},
            {"virtualmachinepreferences", "VirtualMachinePreference"}};
        (void)ctx;
        const char *kind = NULL;
        for (size_t i = 0; i < ARRAY_SIZE(kinds); i++)
                if (!strcmp(kinds[i][0], resource))
                        kind = kinds[i][1];
        const cJSON *o;
        cJSON_ArrayForEach(o, objects)
        {
                const cJSON *md = cJSON_GetObjectItemCaseSensitive(o, "metadata");
                const char *k = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "kind")),
                           *n = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(md, "name")),
                           *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(md, "namespace"));
                if (kind && k && n && !strcmp(k, kind) && !strcmp(n, name) &&
                    (!ns || (s && !strcmp(s, ns)))) {
                        *obj = cJSON_Duplicate(o, true);
                        return 0;
                }
        }
        return kv_error_set(err, ENOENT, "%s \"%s\" not found", resource, name);
}

static const admission_lookup lookup = {.get = lookup_get};

/* The answer with its base64 patch replaced by the decoded JSONPatch. */
static cJSON *readable(const char *answer)
{
        cJSON *root = cJSON_Parse(answer);
        cJSON *resp = cJSON_GetObjectItemCaseSensitive(root, "response");
        cJSON *patch = cJSON_GetObjectItemCaseSensitive(resp, "patch");
        if (cJSON_IsString(patch)) {
                size_t n = strlen(patch->valuestring);
                unsigned char *raw = calloc(1, n + 1);
                int len = EVP_DecodeBlock(raw, (unsigned char *)patch->valuestring, (int)n);
                while (len > 0 && raw[len - 1] == '\0')
                        len--; /* EVP_DecodeBlock counts the padding */
                raw[len > 0 ? len : 0] = '\0';
                cJSON_AddItemToObject(resp, "patchDecoded", cJSON_Parse((char *)raw));
                cJSON_DeleteItemFromObject(resp, "patch");
                free(raw);
        }
        return root;
}

static void check_golden(const char *dir, const char *name)
{
        char in[4096], out[4200];
        snprintf(in, sizeof(in), "%s/%s", dir, name);
        snprintf(out, sizeof(out), "%.*s.out.json", (int)(strlen(in) - 5), in);
        size_t len = 0;
        _cleanup_free_ char *review = slurp(in, &len);
        _cleanup_free_ char *answer = NULL;
        kv_error err = {0};
        bool mutate = strstr(name, ".mutate.json") != NULL;
        int r = mutate ? admission_mutate(review, len, &lookup, &answer, &err)
                       : admission_validate(review, len, &lookup, &answer, &err);
        if (r < 0) {
                fprintf(stderr, "%s: %s\n", name, err.msg);
                test_failures++;
                return;
        }
        cJSON *got = readable(answer);
        _cleanup_free_ char *got_text = cJSON_Print(got);
        if (getenv("KV_UPDATE_GOLDEN")) {
                _cleanup_fclose_ FILE *f = fopen(out, "we");
                if (f)
                        fprintf(f, "%s\n", got_text);
        }
        _cleanup_free_ char *want_text = slurp(out, &len);
        cJSON *want = want_text ? cJSON_Parse(want_text) : NULL;
        if (!want || !cJSON_Compare(got, want, true)) {
                fprintf(stderr, "%s: got\n%s\nwant (%s)\n%s\n", name, got_text, out,
                        want_text ? want_text : "(none)");
                test_failures++;
        }
        cJSON_Delete(got), cJSON_Delete(want);
}

static void check_bad_bodies(void)
{
        static const char *const bad[] = {
            "", "not json", "{}", "{\"request\":{}}", "{\"request\":{\"uid\":7}}", "[1]"};
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
                char *answer = NULL;
                kv_error err = {0};
                CHECK(admission_validate(bad[i], strlen(bad[i]), &lookup, &answer, &err) == -EINVAL);
                CHECK(admission_mutate(bad[i], strlen(bad[i]), &lookup, &answer, &err) == -EINVAL);
                CHECK(answer == NULL && err.msg[0]);
        }
}

int main(int argc, char **argv)
{
        const char *dir = argc > 1 ? argv[1] : "virt-api/tests/admission";
        DIR *d = opendir(dir);
        if (!d) {
                fprintf(stderr, "opendir %s: %s\n", dir, strerror(errno));
                return 1;
        }
        char path[4096];
        size_t len = 0;
        snprintf(path, sizeof(path), "%s/lookup-objects.data", dir);
        _cleanup_free_ char *text = slurp(path, &len);
        CHECK((objects = text ? cJSON_Parse(text) : NULL) != NULL);
        int n = 0;
        for (struct dirent *e; (e = readdir(d));) {
                size_t l = strlen(e->d_name);
                if (strstr(e->d_name, ".out.json") || l < 5 || strcmp(e->d_name + l - 5, ".json"))
                        continue;
                check_golden(dir, e->d_name);
                n++;
        }
        closedir(d);
        cJSON_Delete(objects);
        CHECK(n >= 10);
        check_bad_bodies();
        return test_result("virt-api-admission");
}
