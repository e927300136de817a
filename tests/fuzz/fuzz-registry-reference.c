/* libFuzzer target for image reference parsing (user input from DataVolume and VM specs). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "reference.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char *s = malloc(size + 1);
        if (!s)
                return 0;
        memcpy(s, data, size);
        s[size] = '\0';
        kvreg_ref r;
        kv_error err;
        if (kvreg_ref_parse(s, &r, &err) == 0) {
                if (!r.host || !r.repo || (!r.tag && !r.digest))
                        abort();
                kvreg_ref_done(&r);
        }
        free(s);
        return 0;
}
