/* libFuzzer target: any JSON as a VMI spec must give 0 or a clean -EINVAL from net_validate. */
#include "netspec.h"

#include <cjson/cJSON.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        cJSON *spec = cJSON_ParseWithLength((const char *)data, size);
        kv_error err = {0};
        int r = net_validate(spec, &err);
        if (r != 0 && (r != -22 || !err.msg[0]))
                abort();
        cJSON_Delete(spec);
        return 0;
}
