/* Image reference parsing (the grammar of distribution's reference package, reduced to what pulls need). */
#include "reference.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"

void kvreg_ref_done(kvreg_ref *r)
{
        free(r->host);
        free(r->repo);
        free(r->tag);
        free(r->digest);
        *r = (kvreg_ref){0};
}

int kvreg_digest_valid(const char *d)
{
        if (strncmp(d, "sha256:", 7))
                return 0;
        d += 7;
        size_t n = strspn(d, "0123456789abcdef");
        return n == 64 && d[64] == '\0';
}

static bool is_lower_alnum(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* A path component: [a-z0-9]+ joined by '.', '_', '__' or '-'+. */
static bool component_valid(const char *s, size_t n)
{
        if (n == 0 || !is_lower_alnum(s[0]) || !is_lower_alnum(s[n - 1]))
                return false;
        for (size_t i = 0; i < n; i++)
                if (!is_lower_alnum(s[i]) && !strchr("._-", s[i]))
                        return false;
        return true;
}

static bool repo_valid(const char *r)
{
        size_t len = strlen(r);
        if (len == 0 || len > 255)
                return false;
        for (const char *p = r;;) {
                const char *slash = strchr(p, '/');
                size_t n = slash ? (size_t)(slash - p) : strlen(p);
                if (!component_valid(p, n))
                        return false;
                if (!slash)
                        return true;
                p = slash + 1;
        }
}

static bool host_valid(const char *h)
{
        const char *colon = strchr(h, ':');
        size_t n = colon ? (size_t)(colon - h) : strlen(h);
        if (n == 0 || n > 253)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = h[i];
                if (!(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') && !(c >= '0' && c <= '9') &&
                    c != '.' && c != '-')
                        return false;
        }
        if (!colon)
                return true;
        const char *port = colon + 1;
        size_t digits = strspn(port, "0123456789");
        return digits > 0 && digits <= 5 && port[digits] == '\0' && atoi(port) > 0 && atoi(port) < 65536;
}

static bool tag_valid(const char *t)
{
        size_t n = strlen(t);
        if (n == 0 || n > 128 || t[0] == '.' || t[0] == '-')
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = t[i];
                if (!(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') && !(c >= '0' && c <= '9') &&
                    !strchr("._-", c))
                        return false;
        }
        return true;
}

/* Docker's rule: the first component is a host when it has a '.' or ':' or is "localhost". */
static bool looks_like_host(const char *s, size_t n)
{
        return memchr(s, '.', n) || memchr(s, ':', n) || (n == 9 && !memcmp(s, "localhost", 9));
}

int kvreg_ref_parse(const char *s, kvreg_ref *out, kv_error *err)
{
        *out = (kvreg_ref){0};
        if (!strncmp(s, "docker://", 9))
                s += 9;
        else if (strstr(s, "://"))
                return kv_error_set(err, EINVAL, "image reference \"%.200s\": only docker:// is supported",
                                    s);
        _cleanup_free_ char *buf = strdup(s);
        if (!buf)
                return -ENOMEM;

        char *at = strchr(buf, '@');
        if (at) {
                *at = '\0';
                if (!kvreg_digest_valid(at + 1))
                        return kv_error_set(err, EINVAL, "image reference \"%.200s\": bad digest \"%.100s\"",
                                            s, at + 1);
                out->digest = strdup(at + 1);
        }
        char *slash = strchr(buf, '/');
        const char *name = buf;
        if (slash && looks_like_host(buf, slash - buf)) {
                *slash = '\0';
                out->host = strdup(buf);
                name = slash + 1;
        } else {
                out->host = strdup("docker.io");
        }
        char *last_slash = strrchr(name, '/');
        char *colon = strrchr(last_slash ? last_slash : name, ':');
        if (colon) {
                *colon = '\0';
                if (!tag_valid(colon + 1)) {
                        kv_error_set(err, EINVAL, "image reference \"%.200s\": bad tag \"%.130s\"", s,
                                     colon + 1);
                        goto fail;
                }
                out->tag = strdup(colon + 1);
        } else if (!out->digest) {
                out->tag = strdup("latest");
        }
        if (!strcmp(out->host, "index.docker.io")) {
                free(out->host);
                out->host = strdup("docker.io");
        }
        if (!strcmp(out->host, "docker.io") && !strchr(name, '/')) {
                out->repo = malloc(strlen(name) + sizeof("library/"));
                if (out->repo)
                        strcat(strcpy(out->repo, "library/"), name);
        } else {
                out->repo = strdup(name);
        }
        if (!out->host || !out->repo || (!out->tag && !out->digest)) {
                kv_error_set(err, ENOMEM, "out of memory");
                goto fail;
        }
        if (!host_valid(out->host)) {
                kv_error_set(err, EINVAL, "image reference \"%.200s\": bad registry host \"%.200s\"", s,
                             out->host);
                goto fail;
        }
        if (!repo_valid(out->repo)) {
                kv_error_set(err, EINVAL, "image reference \"%.200s\": bad repository \"%.300s\"", s,
                             out->repo);
                goto fail;
        }
        return 0;
fail:
        kvreg_ref_done(out);
        return -(err && err->code ? err->code : EINVAL);
}
