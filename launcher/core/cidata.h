/* cidata: the cloud-init NoCloud seed — an ISO9660 image (Joliet + Rock Ridge) labelled `cidata` holding
 * meta-data, user-data and network-data, written with libisofs. */
#pragma once

#include "error.h"

typedef struct cidata_files {
        const char *meta_data;    /* required */
        const char *user_data;    /* NULL = omitted */
        const char *network_data; /* NULL = omitted */
} cidata_files;

/* Write the ISO to path (created or truncated, mode 0600). The output is deterministic: fixed
 * timestamps and ownership, so the same input gives the same bytes. */
int cidata_write(const char *path, const cidata_files *f, kv_error *err);
