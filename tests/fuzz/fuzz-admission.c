/* libFuzzer target: bytes → admission_validate() and admission_mutate(). Any body must give an answer or
 * -EINVAL, never a crash or a leak; an answer is always JSON with response.allowed. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>

#include "admission.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        for (int mutate = 0; mutate < 2; mutate++) {
                char *answer = NULL;
                kv_error err = {0};
                int r = mutate ? admission_mutate((const char *)data, size, &answer, &err)
                               : admission_validate((const char *)data, size, &answer, &err);
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
