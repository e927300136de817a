/* image: image directories and files on the host — confinement of in-image paths, the containerDisk
 * disk-directory lookup, format detection from the header. */
#pragma once

#include <stdint.h>

#include "error.h"
#include "vmi.h"

/* <dir>/<rel> with symlinks resolved, refused (-EINVAL naming `field`) if it leaves dir or is not a
 * regular file or block device. *out is malloc'd. */
int image_resolve_in(const char *dir, const char *rel, const char *field, char **out, kv_error *err);
/* The single disk image under <dir>/disk (KubeVirt's containerDisk layout). */
int image_find_disk(const char *dir, const char *field, char **out, kv_error *err);
