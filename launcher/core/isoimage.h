/* isoimage: small read-only ISO9660 images (Joliet + Rock Ridge) written with libisofs from files held in
 * memory: the cloud-init seeds (NoCloud `cidata`, config drive `config-2`) and the disks of configMap,
 * secret, serviceAccount, downwardAPI and sysprep volumes. */
#pragma once

#include <stddef.h>

#include "error.h"

typedef struct iso_entry {
        const char *path; /* relative, '/'-separated: directories are created as needed */
        const void *data;
        size_t len;
} iso_entry;

/* Write the ISO labelled `label` to path (created or truncated, mode 0600). The output is deterministic:
 * fixed timestamps and ownership, so the same input gives the same bytes. */
int iso_image_write(const char *path, const char *label, const iso_entry *entries, size_t n, kv_error *err);
