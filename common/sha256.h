/* SHA-256 (FIPS 180-4), one-shot: what virt-launcher needs (Multus Pod interface names, api/vmi-net.c)
 * without mapping libcrypto, about 1.4 MiB of resident pages per launcher (bench/launcher-memory.py). */
#pragma once
#include <stddef.h>

#define SHA256_LEN 32

void sha256(const void *data, size_t len, unsigned char out[SHA256_LEN]);
