/* Strict base64 decoding for kubeconfig *-data fields. */
#pragma once
#include <stddef.h>

/* Decodes standard base64 (padding optional, whitespace ignored). Returns a NUL-terminated malloc'd buffer
 * and its length in *outlen, or NULL on invalid input (errno = EINVAL) or allocation failure. */
char *base64_decode(const char *in, size_t *outlen);
