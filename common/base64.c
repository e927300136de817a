/* Strict base64 decoding, one copy for every caller (kubeconfig *-data fields, cloud-init *Base64). */
#include "base64.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"

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

int base64_decode(const char *in, unsigned flags, char **out, size_t *outlen)
{
        size_t len = strlen(in);
        _cleanup_free_ char *buf = malloc(len / 4 * 3 + 4);
        if (!buf)
                return -ENOMEM;
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
                        return -EINVAL;
                acc = (acc << 6) | (unsigned)v;
                bits += 6;
                if (bits >= 8) {
                        bits -= 8;
                        buf[n++] = (char)((acc >> bits) & 0xff);
                }
        }
        /* 6 leftover bits can never come from a valid encoding; padding must complete a quantum */
        if (bits >= 6 || pad > 2 || (pad && (bits / 2) != pad))
                return -EINVAL;
        if ((flags & BASE64_TEXT) && memchr(buf, '\0', n))
                return -EINVAL;
        buf[n] = '\0';
        if (outlen)
                *outlen = n;
        *out = TAKE_PTR(buf);
        return 0;
}

char *base64_encode(const void *in, size_t len)
{
        static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        const unsigned char *b = in;
        char *out = malloc(4 * ((len + 2) / 3) + 1), *o = out;
        if (!out)
                return NULL;
        for (size_t i = 0; i < len; i += 3) {
                unsigned v = (unsigned)b[i] << 16 | (i + 1 < len ? (unsigned)b[i + 1] << 8 : 0) |
                             (i + 2 < len ? b[i + 2] : 0);
                *o++ = abc[v >> 18 & 63];
                *o++ = abc[v >> 12 & 63];
                *o++ = i + 1 < len ? abc[v >> 6 & 63] : '=';
                *o++ = i + 2 < len ? abc[v & 63] : '=';
        }
        *o = '\0';
        return out;
}
