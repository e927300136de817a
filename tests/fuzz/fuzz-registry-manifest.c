/* libFuzzer target for the manifest/index parser: a registry's response body, with the Content-Type the
 * first input byte picks. Must never crash, leak or read out of bounds. */
#include <stddef.h>
#include <stdint.h>

#include "manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static const char *const types[] = {NULL,
                                            KVREG_MT_OCI_MANIFEST,
                                            KVREG_MT_OCI_INDEX,
                                            KVREG_MT_DOCKER_MANIFEST,
                                            KVREG_MT_DOCKER_LIST,
                                            "text/plain"};
        if (size == 0)
                return 0;
        const char *type = types[data[0] % (sizeof(types) / sizeof(types[0]))];
        kvreg_manifest m;
        kv_error err;
        if (kvreg_manifest_parse((const char *)data + 1, size - 1, type, "amd64", &m, &err) == 0) {
                (void)kvreg_manifest_layers_size(&m);
                kvreg_manifest_done(&m);
        }
        return 0;
}
