/* libFuzzer: kubeconfig documents (YAML or JSON) through kube_config_from_json; must never crash or leak,
 * whatever the fields hold. */
#include "config.h"
#include "yamljson.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        cJSON *doc = NULL;
        kv_error err = {0};
        if (yaml_or_json_parse((const char *)data, size, &doc, &err) < 0)
                return 0;
        kube_config cfg;
        /* relative paths resolve under a directory that does not exist: file fields fail cleanly */
        kube_config_from_json(&cfg, doc, "/nonexistent-fuzz-dir", NULL, &err);
        kube_config_free(&cfg);
        cJSON_Delete(doc);
        return 0;
}
