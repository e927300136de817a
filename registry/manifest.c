/* Manifest and index parsing with cJSON: every descriptor must carry a sha256 digest and a size, so blobs
 * can be verified and fetched from any mirror. */
#include "manifest.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "reference.h"

static void descriptor_done(kvreg_descriptor *d)
{
        free(d->media_type);
        free(d->digest);
        *d = (kvreg_descriptor){0};
}

void kvreg_manifest_done(kvreg_manifest *m)
{
        descriptor_done(&m->config);
        descriptor_done(&m->platform);
        for (size_t i = 0; i < m->n_layers; i++)
                descriptor_done(&m->layers[i]);
        free(m->layers);
        *m = (kvreg_manifest){0};
}

int64_t kvreg_manifest_layers_size(const kvreg_manifest *m)
{
        int64_t sum = 0;
        for (size_t i = 0; i < m->n_layers; i++)
                sum += m->layers[i].size;
        return sum;
}

static int descriptor_parse(const cJSON *j, const char *what, kvreg_descriptor *d, kv_error *err)
{
        const cJSON *mt = cJSON_GetObjectItemCaseSensitive(j, "mediaType");
        const cJSON *dg = cJSON_GetObjectItemCaseSensitive(j, "digest");
        const cJSON *sz = cJSON_GetObjectItemCaseSensitive(j, "size");
        if (!cJSON_IsObject(j))
                return kv_error_set(err, EINVAL, "manifest: %s is not an object", what);
        if (!cJSON_IsString(dg) || !kvreg_digest_valid(dg->valuestring))
                return kv_error_set(err, EINVAL, "manifest: %s has no sha256 digest", what);
        if (!cJSON_IsNumber(sz) || sz->valuedouble < 0 || sz->valuedouble > 9.0e15 ||
            sz->valuedouble != (double)(int64_t)sz->valuedouble)
                return kv_error_set(err, EINVAL, "manifest: %s has no valid size", what);
        if (mt && !cJSON_IsString(mt))
                return kv_error_set(err, EINVAL, "manifest: %s mediaType is not a string", what);
        d->digest = strdup(dg->valuestring);
        d->media_type = strdup(mt ? mt->valuestring : "");
        d->size = (int64_t)sz->valuedouble;
        if (!d->digest || !d->media_type)
                return kv_error_set(err, ENOMEM, "out of memory");
        return 0;
}

static int image_parse(const cJSON *root, kvreg_manifest *m, kv_error *err)
{
        m->kind = KVREG_MANIFEST_IMAGE;
        int r = descriptor_parse(cJSON_GetObjectItemCaseSensitive(root, "config"), "config", &m->config, err);
        if (r < 0)
                return r;
        const cJSON *layers = cJSON_GetObjectItemCaseSensitive(root, "layers");
        if (!cJSON_IsArray(layers) || cJSON_GetArraySize(layers) == 0)
                return kv_error_set(err, EINVAL, "manifest: no layers");
        int n = cJSON_GetArraySize(layers);
        m->layers = calloc(n, sizeof(*m->layers));
        if (!m->layers)
                return kv_error_set(err, ENOMEM, "out of memory");
        const cJSON *l;
        cJSON_ArrayForEach(l, layers)
        {
                char what[32];
                snprintf(what, sizeof(what), "layer %zu", m->n_layers);
                r = descriptor_parse(l, what, &m->layers[m->n_layers], err);
                m->n_layers++;
                if (r < 0)
                        return r;
        }
        return 0;
}

static int str_is(const cJSON *j, const char *key, const char *want)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
        return cJSON_IsString(v) && !strcmp(v->valuestring, want);
}

static int index_parse(const cJSON *root, const char *arch, kvreg_manifest *m, kv_error *err)
{
        m->kind = KVREG_MANIFEST_INDEX;
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(root, "manifests");
        if (!cJSON_IsArray(list))
                return kv_error_set(err, EINVAL, "index: no manifests list");
        const cJSON *e;
        cJSON_ArrayForEach(e, list)
        {
                const cJSON *p = cJSON_GetObjectItemCaseSensitive(e, "platform");
                if (!cJSON_IsObject(p) || !str_is(p, "os", "linux") || !str_is(p, "architecture", arch))
                        continue;
                return descriptor_parse(e, "index entry", &m->platform, err);
        }
        return kv_error_set(err, EINVAL, "index: no manifest for linux/%s", arch);
}

int kvreg_manifest_parse(const char *body, size_t len, const char *content_type, const char *arch,
                         kvreg_manifest *out, kv_error *err)
{
        *out = (kvreg_manifest){0};
        cJSON *root = cJSON_ParseWithLength(body, len);
        if (!root)
                return kv_error_set(err, EINVAL, "manifest: not JSON");
        int r;
        const cJSON *sv = cJSON_GetObjectItemCaseSensitive(root, "schemaVersion");
        const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "mediaType");
        const char *type = cJSON_IsString(mt) ? mt->valuestring : content_type ? content_type : "";
        if (!cJSON_IsObject(root) || !cJSON_IsNumber(sv) || sv->valueint != 2) {
                r = kv_error_set(err, EINVAL, "manifest: schemaVersion is not 2 (schema 1 is not supported)");
        } else if (!strncmp(type, KVREG_MT_OCI_INDEX, strlen(KVREG_MT_OCI_INDEX)) ||
                   !strncmp(type, KVREG_MT_DOCKER_LIST, strlen(KVREG_MT_DOCKER_LIST)) ||
                   (!*type && cJSON_GetObjectItemCaseSensitive(root, "manifests"))) {
                r = index_parse(root, arch, out, err);
        } else if (!strncmp(type, KVREG_MT_OCI_MANIFEST, strlen(KVREG_MT_OCI_MANIFEST)) ||
                   !strncmp(type, KVREG_MT_DOCKER_MANIFEST, strlen(KVREG_MT_DOCKER_MANIFEST)) || !*type) {
                r = image_parse(root, out, err);
        } else {
                r = kv_error_set(err, EINVAL, "manifest: unsupported media type \"%.200s\"", type);
        }
        cJSON_Delete(root);
        if (r < 0)
                kvreg_manifest_done(out);
        return r;
}
