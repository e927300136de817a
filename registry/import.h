/* Imports into a destination directory (a claim's volume): from a registry image, an HTTP URL, or blank.
 * The result is DEST/disk.img, sparse raw, installed atomically; on failure nothing is left but what was
 * there before. Error codes: EHOSTUNREACH (source unreachable), EINVAL/EBADMSG (bad image or checksum),
 * ENOSPC (claim too small or disk full). */
#pragma once

#include <curl/curl.h>
#include <stdbool.h>
#include <stdint.h>

#include "client.h"
#include "error.h"
#include "regconfig.h"

typedef struct kvreg_import_opts {
        const char *dest_dir;
        int64_t claim;    /* bytes, 0 = unchecked */
        int64_t max_rate; /* bytes/s per transfer, 0 = unlimited */
        /* bytes received so far and the expected total (-1 when unknown) */
        void (*progress)(void *ctx, int64_t done, int64_t total);
        void *progress_ctx;
        /* kvreg_import_claim only: the copy is DEST/dest_file, byte for byte (a hostDisk's image restored, no
         * format probe); NULL = DEST/disk.img */
        const char *dest_file;
} kvreg_import_opts;

typedef struct kvreg_http_source {
        const char *url;
        const char *checksum; /* "sha256:<hex>" (md5, sha1, sha512 too), NULL = none */
        const struct curl_slist *headers;
        const char *ca_file;
        bool insecure;
        const char *username, *password;
} kvreg_http_source;

/* report is filled even on failure (which registries failed). */
int kvreg_import_registry(const char *reference, const kvreg_config *cfg, const kvreg_import_opts *o,
                          kvreg_report *report, kv_error *err);
/* A containerDisk: the image's disk file as it is (no conversion: the launcher uses it read-only as a
 * backing file) at DEST/disk/<its name in the image>, the layout KubeVirt's containerDisk images have. */
int kvreg_import_container_disk(const char *reference, const kvreg_config *cfg, const kvreg_import_opts *o,
                                kvreg_report *report, kv_error *err);
/* Files from an image (a kernelBoot container's kernel and initrd): each of files (absolute paths in the
 * image) that is a regular file is written at DEST/<path>, the image's own layout, which the launcher's
 * image resolution reads. EINVAL when one is missing or is a link. */
int kvreg_import_files(const char *reference, const kvreg_config *cfg, const char *const *files, size_t n,
                       const kvreg_import_opts *o, kvreg_report *report, kv_error *err);
int kvreg_import_http(const kvreg_http_source *src, const kvreg_import_opts *o, kv_error *err);
int kvreg_import_blank(const kvreg_import_opts *o, int64_t size, kv_error *err);
/* Clones another claim's volume: SRC_DIR/disk.img (or SRC_DIR/file: a plain name, a running VM's backup)
 * copied sparse (holes kept) and installed like a download (CDI's `pvc` clone source; also the snapshot
 * controller's volume backups). ENOENT: no such file there. */
int kvreg_import_claim(const char *src_dir, const char *file, const kvreg_import_opts *o, kv_error *err);
