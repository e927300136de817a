/* Extraction with libarchive: the one disk file under disk/ from image layers, or a single (possibly
 * gz/xz/zst-compressed) file, written sparse. Nothing from an archive is ever created on the host but
 * the one output file; unsafe entries are refused. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef struct kvreg_extract {
        const char *out_path; /* the disk file is written here (truncated each time it is found) */
        /* Files mode (a kernelBoot container: its kernel and initrd) instead of the disk file: the regular
         * files at these paths in the image (relative, checked by kvreg_path_check) are written to
         * files_dir/<path>, in directories the extractor creates itself; bit i of files_found says files[i]
         * was found. */
        const char *const *files;
        size_t n_files;
        const char *files_dir;
        unsigned files_found;
        int64_t limit;   /* refuse a disk file larger than this (0 = no limit) */
        char found[512]; /* path of the disk file in the image, "" while none */
        int64_t size;
} kvreg_extract;

/* Reads one layer (tar, any compression libarchive knows) from fd. -EINVAL for an unsafe entry or a
 * second disk file, -ENOSPC when the disk file exceeds the limit or the disk is full. */
int kvreg_extract_layer(int fd, kvreg_extract *x, kv_error *err);
/* Reads a single file (raw, gzip, xz or zstd) from fd into x->out_path. */
int kvreg_extract_raw(int fd, kvreg_extract *x, kv_error *err);
/* Checks an archive path: refuses absolute paths and any ".." component. Returns 0 or -EINVAL. */
int kvreg_path_check(const char *path, kv_error *err);
