/* Manifests of the OCI image spec and Docker's v2 schema 2: image manifests, and indexes / manifest lists
 * from which one platform's manifest is picked. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define KVREG_MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define KVREG_MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define KVREG_MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define KVREG_MT_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
/* The Accept header of a manifest request: every kind the client reads. */
#define KVREG_MT_OCI_ALL KVREG_MT_OCI_MANIFEST ", " KVREG_MT_OCI_INDEX
#define KVREG_MT_DOCKER_ALL KVREG_MT_DOCKER_MANIFEST ", " KVREG_MT_DOCKER_LIST
#define KVREG_MANIFEST_ACCEPT KVREG_MT_OCI_ALL ", " KVREG_MT_DOCKER_ALL
#define KVREG_MANIFEST_MAX (4 * 1024 * 1024)

typedef struct kvreg_descriptor {
        char *media_type;
        char *digest;
        int64_t size;
} kvreg_descriptor;

enum kvreg_manifest_kind { KVREG_MANIFEST_IMAGE, KVREG_MANIFEST_INDEX };

typedef struct kvreg_manifest {
        enum kvreg_manifest_kind kind;
        kvreg_descriptor config;  /* image */
        kvreg_descriptor *layers; /* image, base layer first */
        size_t n_layers;
        kvreg_descriptor platform; /* index: the manifest chosen for os/arch */
} kvreg_manifest;

/* content_type: the response's Content-Type (may be NULL; the body's mediaType wins when present).
 * For an index, picks the entry for linux/<arch>. Returns 0 or -EINVAL with a reason. */
int kvreg_manifest_parse(const char *body, size_t len, const char *content_type, const char *arch,
                         kvreg_manifest *out, kv_error *err);
void kvreg_manifest_done(kvreg_manifest *m);
/* Sum of the layer sizes (for progress). */
int64_t kvreg_manifest_layers_size(const kvreg_manifest *m);
