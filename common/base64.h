/* base64 (RFC 4648 standard alphabet): encoding, and strict decoding: data fields from manifests and
 * kubeconfigs must fail loudly, not decode garbage. */
#pragma once
#include <stddef.h>

enum {
        /* The decoded bytes become a C string (a file's text): an embedded NUL is refused. */
        BASE64_TEXT = 1 << 0,
};

/* Decodes standard base64: padding optional, whitespace ignored; a character outside the alphabet, data
 * after padding, padding that does not complete a quantum or a dangling 6 bits is refused. On success *out
 * is a NUL-terminated malloc'd buffer and *outlen (if not NULL) its length. Returns 0, -EINVAL or -ENOMEM. */
int base64_decode(const char *in, unsigned flags, char **out, size_t *outlen);

/* Encodes len bytes as standard base64 with padding: a malloc'd NUL-terminated string, NULL when out of
 * memory. */
char *base64_encode(const void *in, size_t len);
