/* Strict base64 decoding: kubeconfig data fields must fail loudly, not decode garbage. */
#include "base64.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int b64_value(unsigned char c)
{
        if (c >= 'A' && c <= 'Z')
                return c - 'A';
        if (c >= 'a' && c <= 'z')
                return c - 'a' + 26;
        if (c >= '0' && c <= '9')
                return c - '0' + 52;
        if (c == '+')
                return 62;
        if (c == '/')
                return 63;
        return -1;
}

char *base64_decode(const char *in, size_t *outlen)
{
        size_t len = strlen(in);
        char *out = malloc(len / 4 * 3 + 4);
        if (!out)
                return NULL;
        unsigned acc = 0;
        size_t bits = 0, n = 0, pad = 0;
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char)in[i];
                if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
                        continue;
                if (c == '=') {
                        pad++;
                        continue;
                }
                int v = b64_value(c);
                if (v < 0 || pad > 0) /* bad character, or data after padding */
                        goto bad;
                acc = (acc << 6) | (unsigned)v;
                bits += 6;
                if (bits >= 8) {
                        bits -= 8;
                        out[n++] = (char)((acc >> bits) & 0xff);
                }
        }
        /* 6 leftover bits can never come from a valid encoding; padding must complete a quantum */
        if (bits >= 6 || pad > 2 || (pad && (bits / 2) != pad))
                goto bad;
        out[n] = '\0';
        *outlen = n;
        return out;
bad:
        free(out);
        errno = EINVAL;
        return NULL;
}
