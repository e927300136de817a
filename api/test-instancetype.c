/* Golden tests of the instancetype expansion: testdata/instancetype/NAME.yaml (a VM with its instancetype
 * and preference beside it, or naming the bundled common ones) → it_vmi_from_docs → NAME.json, the VMI
 * KubeVirt's VM controller would create. A manifest whose first line is "# error: TEXT" must be refused
 * with TEXT in the message (conflicts, requirements, missing objects). KV_REGEN_GOLDEN=1 rewrites .json.
 * usage: test-instancetype TESTDATA_DIR BUNDLE.yaml... */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "instancetype.h"
#include "json.h"
#include "test-util.h"
#include "yamljson.h"

static char *slurp(const char *path, size_t *len)
{
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        if (!f)
                return NULL;
        char *buf = NULL;
        size_t cap = 0;
        FILE *m = open_memstream(&buf, &cap);
        char chunk[4096];
        size_t n;
        while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
                fwrite(chunk, 1, n, m);
        fclose(m);
        *len = cap;
        return buf;
}

static cJSON *load_docs(const char *path)
{
        size_t len;
        _cleanup_free_ char *text = slurp(path, &len);
        cJSON *docs = NULL;
        kv_error err = {0};
        if (!text || yaml_to_json_all(text, len, &docs, &err) < 0) {
                fprintf(stderr, "%s: %s\n", path, text ? err.msg : strerror(errno));
                exit(1);
        }
        return docs;
}

static void run_case(const char *dir, const char *name, const cJSON *bundle)
{
        char path[512], gpath[512];
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        size_t len;
        _cleanup_free_ char *text = slurp(path, &len);
        _cleanup_json_ cJSON *docs = load_docs(path), *vmi = NULL;
        kv_error err = {0};
        int r = it_vmi_from_docs(docs, bundle, &vmi, &err);
        if (!strncmp(text, "# error: ", 9)) {
                char want[512];
                snprintf(want, sizeof(want), "%.*s", (int)strcspn(text + 9, "\n"), text + 9);
                if (r >= 0 || !strstr(err.msg, want)) {
                        fprintf(stderr, "%s: want error containing \"%s\", got %s\n", name, want,
                                r < 0 ? err.msg : "success");
                        test_failures++;
                }
                return;
        }
        if (r < 0) {
                fprintf(stderr, "%s: %s\n", name, err.msg);
                test_failures++;
                return;
        }
        snprintf(gpath, sizeof(gpath), "%s/%.*s.json", dir, (int)(strlen(name) - 5), name);
        _cleanup_free_ char *got = cJSON_Print(vmi);
        if (getenv("KV_REGEN_GOLDEN")) {
                _cleanup_fclose_ FILE *f = fopen(gpath, "we");
                fprintf(f, "%s\n", got);
                return;
        }
        size_t glen;
        _cleanup_free_ char *want = slurp(gpath, &glen);
        if (!want || strncmp(want, got, strlen(got)) || glen != strlen(got) + 1) {
                fprintf(stderr, "%s: expansion differs from %s:\n%s\n", name, gpath, got);
                test_failures++;
        }
}

int main(int argc, char **argv)
{
        if (argc < 2) {
                fprintf(stderr, "usage: %s TESTDATA_DIR BUNDLE...\n", argv[0]);
                return 2;
        }
        _cleanup_json_ cJSON *bundle = cJSON_CreateArray();
        for (int i = 2; i < argc; i++) {
                cJSON *docs = load_docs(argv[i]), *d;
                while ((d = cJSON_DetachItemFromArray(docs, 0)))
                        cJSON_AddItemToArray(bundle, d);
                cJSON_Delete(docs);
        }
        DIR *d = opendir(argv[1]);
        if (!d)
                return perror(argv[1]), 1;
        struct dirent *e;
        int cases = 0;
        while ((e = readdir(d))) {
                size_t n = strlen(e->d_name);
                if (n > 5 && !strcmp(e->d_name + n - 5, ".yaml")) {
                        run_case(argv[1], e->d_name, bundle);
                        cases++;
                }
        }
        closedir(d);
        CHECK(cases >= 10);
        return test_result("instancetype");
}
