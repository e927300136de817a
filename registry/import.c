/* Import flows: blobs stream from the network thread through libarchive into one sparse file in the
 * destination, which qemu-img then turns into disk.img. */
#include "import.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "disk.h"
#include "extract.h"
#include "macro.h"
#include "stream.h"

struct progress {
        const kvreg_import_opts *o;
        int64_t done, total;
};

static void progress_add(void *ctx, size_t n)
{
        struct progress *p = ctx;
        p->done += n;
        if (p->o->progress)
                p->o->progress(p->o->progress_ctx, p->done, p->total);
}

static int check_dest(const char *dir, kv_error *err)
{
        struct stat st;
        if (stat(dir, &st) < 0)
                return kv_error_errno(err, errno, "destination %s", dir);
        if (!S_ISDIR(st.st_mode))
                return kv_error_set(err, ENOTDIR, "destination %s is not a directory", dir);
        return 0;
}

struct layer_job {
        kvreg_client *c;
        const kvreg_descriptor *blob;
};

static int layer_produce(void *ctx, kvreg_sink sink, void *sink_ctx, kv_error *err)
{
        struct layer_job *j = ctx;
        return kvreg_blob_fetch(j->c, j->blob, sink, sink_ctx, err);
}

/* Runs producer → consumer for one stream; the producer's error wins (a broken stream makes the
 * consumer fail too, but the cause is the transfer). */
static int stream_through(kvreg_producer fn, void *ctx,
                          int (*consume)(int fd, kvreg_extract *x, kv_error *err), kvreg_extract *x,
                          kv_error *err)
{
        kvreg_stream s;
        int fd = -1;
        int r = kvreg_stream_start(&s, fn, ctx, &fd, err);
        if (r < 0)
                return r;
        kv_error cerr = {0};
        int rc = consume(fd, x, &cerr);
        kv_error perr = {0};
        int rp = kvreg_stream_finish(&s, fd, rc == 0, &perr);
        /* When the consumer gave up, the producer's write fails with EPIPE or ECONNRESET: not the cause. */
        if (rp < 0 && (rc == 0 || (perr.code != EPIPE && perr.code != ECONNRESET))) {
                *err = perr;
                return rp;
        }
        if (rc < 0)
                *err = cerr;
        return rc;
}

static int tmp_path(const kvreg_import_opts *o, char **out)
{
        return asprintf(out, "%s/.%s.download", o->dest_dir, KVREG_DISK_NAME) < 0 ? -ENOMEM : 0;
}

static int pull_layers(kvreg_client *c, const kvreg_manifest *m, kvreg_extract *x, kv_error *err)
{
        for (size_t i = 0; i < m->n_layers; i++) {
                struct layer_job job = {.c = c, .blob = &m->layers[i]};
                int r = stream_through(layer_produce, &job, kvreg_extract_layer, x, err);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < x->n_files; i++)
                if (!(x->files_found & (1u << i)))
                        return kv_error_set(err, EINVAL, "the image has no regular file /%s", x->files[i]);
        if (!x->files && !x->found[0])
                return kv_error_set(err, EINVAL,
                                    "the image has no disk file under disk/ (qcow2, raw or img)");
        return 0;
}

/* Pulls reference's disk file (verified, with failover) into out_path; x->found names it in the image. */
static int registry_pull(const char *reference, const kvreg_config *cfg, const kvreg_import_opts *o,
                         kvreg_extract *x, kvreg_report *report, kv_error *err)
{
        kvreg_client c;
        kvreg_manifest m = {0};
        int r = kvreg_client_init(&c, cfg, reference, err);
        if (r < 0) {
                kvreg_client_done(&c);
                return r;
        }
        c.http.max_rate = o->max_rate;
        struct progress p = {.o = o};
        c.progress = progress_add;
        c.progress_ctx = &p;
        r = kvreg_resolve(&c, &m, err);
        if (r == 0) {
                p.total = kvreg_manifest_layers_size(&m);
                r = pull_layers(&c, &m, x, err);
        }
        if (report)
                *report = c.report;
        kvreg_manifest_done(&m);
        kvreg_client_done(&c);
        return r;
}

int kvreg_import_registry(const char *reference, const kvreg_config *cfg, const kvreg_import_opts *o,
                          kvreg_report *report, kv_error *err)
{
        _cleanup_free_ char *tmp = NULL;
        int r = check_dest(o->dest_dir, err);
        if (r == 0)
                r = tmp_path(o, &tmp);
        if (r < 0)
                return r;
        kvreg_extract x = {.out_path = tmp, .limit = o->claim};
        int64_t vsize;
        r = registry_pull(reference, cfg, o, &x, report, err);
        if (r == 0)
                r = kvreg_disk_install(tmp, o->dest_dir, o->claim, &vsize, err);
        unlink(tmp);
        return r;
}

int kvreg_import_container_disk(const char *reference, const kvreg_config *cfg, const kvreg_import_opts *o,
                                kvreg_report *report, kv_error *err)
{
        _cleanup_free_ char *dir = NULL, *tmp = NULL, *final = NULL;
        int r = check_dest(o->dest_dir, err);
        if (r < 0)
                return r;
        if (asprintf(&dir, "%s/disk", o->dest_dir) < 0 || asprintf(&tmp, "%s/.download", dir) < 0)
                return -ENOMEM;
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
                return kv_error_errno(err, errno, "create %s", dir);
        kvreg_extract x = {.out_path = tmp, .limit = o->claim};
        r = registry_pull(reference, cfg, o, &x, report, err);
        /* the image's own file name: its extension is all the launcher needs (formats are probed) */
        const char *base = strrchr(x.found, '/');
        if (r == 0 && asprintf(&final, "%s/%s", dir, base ? base + 1 : x.found) < 0)
                r = -ENOMEM;
        if (r == 0 && chmod(tmp, 0644) < 0)
                r = kv_error_errno(err, errno, "chmod %s", tmp);
        if (r == 0 && rename(tmp, final) < 0)
                r = kv_error_errno(err, errno, "install %s", final);
        if (r < 0)
                unlink(tmp);
        return r;
}

int kvreg_import_files(const char *reference, const kvreg_config *cfg, const char *const *files, size_t n,
                       const kvreg_import_opts *o, kvreg_report *report, kv_error *err)
{
        _cleanup_free_ const char **rel = calloc(n ? n : 1, sizeof(*rel));
        int r = check_dest(o->dest_dir, err);
        if (r < 0)
                return r;
        if (!rel || n > 8 * sizeof(unsigned))
                return kv_error_set(err, EINVAL, "at most %zu files", 8 * sizeof(unsigned));
        for (size_t i = 0; i < n; i++) { /* paths as written in the VMI: absolute in the image */
                rel[i] = files[i];
                while (*rel[i] == '/')
                        rel[i]++;
                if (!*rel[i] || kvreg_path_check(rel[i], err) < 0)
                        return kv_error_set(err, EINVAL,
                                            "file \"%s\": want an absolute path in the image without \"..\"",
                                            files[i]);
        }
        kvreg_extract x = {.limit = o->claim, .files = rel, .n_files = n, .files_dir = o->dest_dir};
        return registry_pull(reference, cfg, o, &x, report, err);
}

struct http_job {
        kvreg_http http;
        const kvreg_http_source *src;
        struct progress *p;
        EVP_MD_CTX *md;
        kvreg_sink sink;
        void *sink_ctx;
};

static int http_sink(void *ctx, const void *buf, size_t len)
{
        struct http_job *j = ctx;
        if (j->md)
                EVP_DigestUpdate(j->md, buf, len);
        progress_add(j->p, len);
        return j->sink(j->sink_ctx, buf, len);
}

/* The reason phrase of the status codes an image server refuses with (HTTP/2 sends none), for the
 * DataVolume's condition and Event: "HTTP 401 Unauthorized" names the credentials as the cause. */
static const char *http_status_text(long status)
{
        switch (status) {
        case 401:
                return " Unauthorized";
        case 403:
                return " Forbidden";
        case 404:
                return " Not Found";
        case 407:
                return " Proxy Authentication Required";
        default:
                return "";
        }
}

static int http_produce(void *ctx, kvreg_sink sink, void *sink_ctx, kv_error *err)
{
        struct http_job *j = ctx;
        j->sink = sink;
        j->sink_ctx = sink_ctx;
        kvreg_http_req req = {.url = j->src->url,
                              .headers = j->src->headers,
                              .ca_file = j->src->ca_file,
                              .insecure = j->src->insecure,
                              .username = j->src->username,
                              .password = j->src->password,
                              .sink = http_sink,
                              .sink_ctx = j};
        int r = kvreg_http_get(&j->http, &req, err);
        if (r < 0 && !req.sink_failed) {
                err->code = EHOSTUNREACH;
                return kv_error_wrap(err, "%s", j->src->url);
        }
        if (r < 0)
                return r;
        if (req.status != 200)
                return kv_error_set(err, EHOSTUNREACH, "%s: HTTP %ld%s", j->src->url, req.status,
                                    http_status_text(req.status));
        return 0;
}

static int checksum_setup(const char *checksum, EVP_MD_CTX **md, const char **want, kv_error *err)
{
        const char *colon = checksum ? strchr(checksum, ':') : NULL;
        if (!checksum)
                return 0;
        char algo[16];
        if (!colon || colon - checksum >= (long)sizeof(algo))
                return kv_error_set(err, EINVAL, "checksum \"%s\": expected ALGO:HEX", checksum);
        snprintf(algo, sizeof(algo), "%.*s", (int)(colon - checksum), checksum);
        const EVP_MD *type = NULL;
        if (!strcasecmp(algo, "sha256") || !strcasecmp(algo, "sha512") || !strcasecmp(algo, "sha1") ||
            !strcasecmp(algo, "md5"))
                type = EVP_get_digestbyname(algo);
        if (!type)
                return kv_error_set(
                    err, EINVAL, "checksum \"%s\": algorithm must be md5, sha1, sha256 or sha512", checksum);
        *md = EVP_MD_CTX_new();
        if (!*md || !EVP_DigestInit_ex(*md, type, NULL))
                return kv_error_set(err, ENOMEM, "digest context");
        *want = colon + 1;
        return 0;
}

static int checksum_verify(EVP_MD_CTX *md, const char *want, kv_error *err)
{
        unsigned char d[EVP_MAX_MD_SIZE];
        unsigned int n = 0;
        char hex[2 * EVP_MAX_MD_SIZE + 1];
        EVP_DigestFinal_ex(md, d, &n);
        for (unsigned i = 0; i < n; i++)
                sprintf(hex + 2 * i, "%02x", d[i]);
        hex[2 * n] = '\0';
        if (strcasecmp(hex, want))
                return kv_error_set(err, EBADMSG, "checksum mismatch: the source has %s", hex);
        return 0;
}

int kvreg_import_http(const kvreg_http_source *src, const kvreg_import_opts *o, kv_error *err)
{
        struct progress p = {.o = o, .total = -1};
        struct http_job j = {.src = src, .p = &p};
        const char *want = NULL;
        _cleanup_free_ char *tmp = NULL;
        int r = check_dest(o->dest_dir, err);
        if (r == 0)
                r = checksum_setup(src->checksum, &j.md, &want, err);
        if (r == 0)
                r = kvreg_http_init(&j.http, err);
        if (r == 0)
                r = tmp_path(o, &tmp);
        if (r == 0) {
                j.http.max_rate = o->max_rate;
                kvreg_extract x = {.out_path = tmp, .limit = o->claim};
                r = stream_through(http_produce, &j, kvreg_extract_raw, &x, err);
                if (r == 0 && j.md)
                        r = checksum_verify(j.md, want, err);
                int64_t vsize;
                if (r == 0)
                        r = kvreg_disk_install(tmp, o->dest_dir, o->claim, &vsize, err);
                unlink(tmp);
        }
        kvreg_http_done(&j.http);
        EVP_MD_CTX_free(j.md);
        return r;
}

int kvreg_import_blank(const kvreg_import_opts *o, int64_t size, kv_error *err)
{
        int r = check_dest(o->dest_dir, err);
        if (r < 0)
                return r;
        if (o->claim > 0 && size > o->claim)
                return kv_error_set(err, ENOSPC, "blank size %lld is larger than the claim (%lld bytes)",
                                    (long long)size, (long long)o->claim);
        return kvreg_disk_blank(o->dest_dir, size, err);
}

static bool plain_name(const char *s)
{
        return s[0] && s[0] != '.' && !strchr(s, '/');
}

int kvreg_import_claim(const char *src_dir, const char *file, const kvreg_import_opts *o, kv_error *err)
{
        if (file && !plain_name(file))
                return kv_error_set(err, EINVAL, "source file %s: a file name in the source claim is wanted",
                                    file);
        if (o->dest_file && !plain_name(o->dest_file))
                return kv_error_set(err, EINVAL, "destination file %s: a file name is wanted", o->dest_file);
        int r = check_dest(o->dest_dir, err);
        if (r < 0)
                return r;
        _cleanup_free_ char *src = NULL, *tmp = NULL, *dst = NULL;
        struct stat st;
        if (asprintf(&src, "%s/%s", src_dir, file ? file : KVREG_DISK_NAME) < 0 ||
            (o->dest_file ? asprintf(&tmp, "%s/.%s.download", o->dest_dir, o->dest_file) < 0 ||
                                asprintf(&dst, "%s/%s", o->dest_dir, o->dest_file) < 0
                          : tmp_path(o, &tmp) < 0))
                return -ENOMEM;
        if (stat(src, &st) < 0)
                return kv_error_errno(err, errno, "source %s", src);
        if (o->progress)
                o->progress(o->progress_ctx, 0, st.st_size);
        char *argv[] = {"cp", "--sparse=always", "--reflink=auto", src, tmp, NULL};
        r = kvreg_run(argv, NULL, 0, err);
        if (r < 0) {
                unlink(tmp);
                err->code = strstr(err->msg, "No space") ? ENOSPC : EIO;
                return kv_error_wrap(err, "copy %s", src); /* err->msg cannot be an argument of its own */
        }
        int64_t vsize = 0;
        if (dst) /* a byte copy into place */
                r = rename(tmp, dst) < 0 ? kv_error_errno(err, errno, "rename into %s", dst) : 0;
        else
                r = kvreg_disk_install(tmp, o->dest_dir, o->claim, &vsize, err);
        if (r < 0)
                unlink(tmp);
        else if (o->progress)
                o->progress(o->progress_ctx, st.st_size, st.st_size);
        return r;
}
