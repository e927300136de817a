/* Turning an extracted disk file into the destination's disk.img with qemu-img: probe (format, virtual
 * size, backing file), check it fits the claim, convert to sparse raw, rename into place. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define KVREG_DISK_NAME "disk.img"

/* src is a file inside dest_dir (it is consumed). claim = 0 skips the size check. -ENOSPC when the virtual
 * size exceeds the claim, -EINVAL for an unsupported format or a backing file. */
int kvreg_disk_install(const char *src, const char *dest_dir, int64_t claim, int64_t *virtual_size,
                       kv_error *err);
/* A sparse raw disk.img of `size` bytes. */
int kvreg_disk_blank(const char *dest_dir, int64_t size, kv_error *err);
/* Runs argv, capturing up to cap-1 bytes of stdout (out may be NULL) and stderr's last line into err on
 * failure. */
int kvreg_run(char *const argv[], char *out, size_t cap, kv_error *err);
