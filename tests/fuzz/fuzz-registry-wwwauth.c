/* libFuzzer target for the WWW-Authenticate parser (a header from any registry, hostile or not). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wwwauth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char *s = malloc(size + 1);
        if (!s)
                return 0;
        memcpy(s, data, size);
        s[size] = '\0';
        kvreg_challenge c;
        kv_error err;
        if (kvreg_challenge_parse(s, &c, &err) == 0) {
                if (c.scheme == KVREG_AUTH_BEARER && !c.realm)
                        abort();
                kvreg_challenge_done(&c);
        }
        free(s);
        return 0;
}
