/* libFuzzer target: bytes → admission_validate() and admission_mutate(). Any body must give an answer or
 * -EINVAL, never a crash or a leak; an answer is always JSON with response.allowed. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "admission.h"

/* inferFromVolume's reads: a name of even length is a labelled claim or DataVolume, or a DataSource pointing
 * at a claim of one more character; an odd one is not found. */
static int lookup_get(void *ctx, const char *resource, const char *ns, const char *name, cJSON **obj,
                      kv_error *err)
{
        (void)ctx, (void)ns;
        if (strlen(name) % 2)
                return kv_error_set(err, ENOENT, "%s \"%s\" not found", resource, name);
        *obj = cJSON_CreateObject();
        if (!strcmp(resource, "datasources")) {
                cJSON *pvc = cJSON_AddObjectToObject(
                    cJSON_AddObjectToObject(cJSON_AddObjectToObject(*obj, "spec"), "source"), "pvc");
                cJSON_AddStringToObject(pvc, "name", "x");
                return 0;
        }
        cJSON *labels = cJSON_AddObjectToObject(cJSON_AddObjectToObject(*obj, "metadata"), "labels");
        cJSON_AddStringToObject(labels, "instancetype.kubevirt.io/default-instancetype", name);
        return 0;
}

static const admission_lookup lookup = {.get = lookup_get};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        for (int mutate = 0; mutate < 2; mutate++) {
                char *answer = NULL;
                kv_error err = {0};
                int r = mutate ? admission_mutate((const char *)data, size, &lookup, &answer, &err)
                               : admission_validate((const char *)data, size, &lookup, &answer, &err);
                if (r == 0) {
                        cJSON *root = cJSON_Parse(answer);
                        cJSON *resp = cJSON_GetObjectItemCaseSensitive(root, "response");
                        if (!cJSON_IsBool(cJSON_GetObjectItemCaseSensitive(resp, "allowed")))
                                abort();
                        cJSON_Delete(root);
                }
                free(answer);
        }
        return 0;
}
