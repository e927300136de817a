/* jfield: path-aware typed access to cJSON manifests. */
#include "jfield.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *jpath_key(char buf[static JPATH_MAX], const char *parent, const char *key)
{
        if (parent && *parent)
                snprintf(buf, JPATH_MAX, "%s.%.64s", parent, key);
        else
                snprintf(buf, JPATH_MAX, "%.64s", key);
        return buf;
}

const char *jpath_index(char buf[static JPATH_MAX], const char *parent, size_t i)
{
        snprintf(buf, JPATH_MAX, "%s[%zu]", parent, i);
        return buf;
}

int jf_error(kv_error *err, const char *path, const char *fmt, ...)
{
        char msg[KV_ERR_MSG_MAX];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        return kv_error_set(err, EINVAL, "%s: %s", path, msg);
}

const char *jf_describe(const cJSON *v, char *buf, size_t size)
{
        if (cJSON_IsString(v))
                snprintf(buf, size, "string \"%.40s\"%s", v->valuestring,
                         strlen(v->valuestring) > 40 ? "..." : "");
        else if (cJSON_IsNumber(v))
                snprintf(buf, size, "number %g", v->valuedouble);
        else if (cJSON_IsBool(v))
                snprintf(buf, size, "%s", cJSON_IsTrue(v) ? "true" : "false");
        else if (cJSON_IsObject(v))
                snprintf(buf, size, "an object");
        else if (cJSON_IsArray(v))
                snprintf(buf, size, "a list");
        else
                snprintf(buf, size, "null");
        return buf;
}

static bool listed(const char *const *list, const char *key)
{
        for (; list && *list; list++)
                if (!strcmp(*list, key))
                        return true;
        return false;
}

int jf_check_keys(const cJSON *obj, const char *path, const char *const *allowed, const char *const *ignored,
                  kv_error *err)
{
        const cJSON *c;
        cJSON_ArrayForEach(c, obj)
        {
                if (listed(allowed, c->string) || listed(ignored, c->string))
                        continue;
                char p[JPATH_MAX];
                return jf_error(err, jpath_key(p, path, c->string), "field is not supported");
        }
        return 0;
}

/* The member, or NULL when absent or null. */
static const cJSON *member(const cJSON *parent, const char *key)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(parent, key);
        return cJSON_IsNull(v) ? NULL : v;
}

static int type_error(const cJSON *v, const char *path, const char *key, const char *expected, kv_error *err)
{
        char p[JPATH_MAX], d[64];
        return jf_error(err, jpath_key(p, path, key), "expected %s, got %s", expected,
                        jf_describe(v, d, sizeof(d)));
}

int jf_object(const cJSON *parent, const char *path, const char *key, const cJSON **out, kv_error *err)
{
        const cJSON *v = member(parent, key);
        if (!v)
                return 0;
        if (!cJSON_IsObject(v))
                return type_error(v, path, key, "an object", err);
        *out = v;
        return 0;
}

int jf_array(const cJSON *parent, const char *path, const char *key, const cJSON **out, kv_error *err)
{
        const cJSON *v = member(parent, key);
        if (!v)
                return 0;
        if (!cJSON_IsArray(v))
                return type_error(v, path, key, "a list", err);
        *out = v;
        return 0;
}

int jf_bool(const cJSON *parent, const char *path, const char *key, bool *out, kv_error *err)
{
        const cJSON *v = member(parent, key);
        if (!v)
                return 0;
        if (!cJSON_IsBool(v))
                return type_error(v, path, key, "true or false", err);
        *out = cJSON_IsTrue(v);
        return 0;
}

int jf_int(const cJSON *parent, const char *path, const char *key, int64_t min, int64_t max, int64_t *out,
           bool *present, kv_error *err)
{
        const cJSON *v = member(parent, key);
        if (present)
                *present = v != NULL;
        if (!v)
                return 0;
        double d = v->valuedouble;
        if (!cJSON_IsNumber(v) || !isfinite(d) || d != floor(d))
                return type_error(v, path, key, "an integer", err);
        if (d < (double)min || d > (double)max) {
                char p[JPATH_MAX];
                return jf_error(err, jpath_key(p, path, key), "%g is out of range [%lld, %lld]", d,
                                (long long)min, (long long)max);
        }
        *out = (int64_t)d;
        return 0;
}

int jf_string(const cJSON *parent, const char *path, const char *key, bool required, char **out,
              kv_error *err)
{
        const cJSON *v = member(parent, key);
        char p[JPATH_MAX];
        if (!v)
                return required ? jf_error(err, jpath_key(p, path, key), "is required") : 0;
        if (!cJSON_IsString(v))
                return type_error(v, path, key, "a string", err);
        char *s = strdup(v->valuestring);
        if (!s)
                return kv_error_set(err, ENOMEM, "out of memory");
        free(*out);
        *out = s;
        return 0;
}

int jf_enum(const cJSON *parent, const char *path, const char *key, const char *const *values, int *index,
            kv_error *err)
{
        const cJSON *v = member(parent, key);
        if (!v)
                return 0;
        if (!cJSON_IsString(v))
                return type_error(v, path, key, "a string", err);
        for (int i = 0; values[i]; i++) {
                if (!strcmp(values[i], v->valuestring)) {
                        *index = i;
                        return 0;
                }
        }
        char p[JPATH_MAX], list[256] = "";
        for (int i = 0; values[i]; i++)
                snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? ", " : "", values[i]);
        return jf_error(err, jpath_key(p, path, key), "\"%.64s\" is not supported (supported: %s)",
                        v->valuestring, list);
}

bool jf_is_dns_label(const char *s)
{
        size_t n = strlen(s);
        if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
                return false;
        for (; *s; s++)
                if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-'))
                        return false;
        return true;
}

bool jf_has_control_chars(const char *s)
{
        for (; *s; s++)
                if ((unsigned char)*s < 0x20 || *s == 0x7f)
                        return true;
        return false;
}

/* Components between slashes: none may be "", "." or "..". */
static int check_components(const char *s, const char *rel, const char *path, kv_error *err)
{
        if (jf_has_control_chars(s))
                return jf_error(err, path, "must not contain control characters");
        const char *c = rel;
        for (;;) {
                const char *slash = strchr(c, '/');
                size_t len = slash ? (size_t)(slash - c) : strlen(c);
                if (len == 0 || (len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
                        return jf_error(err, path,
                                        "\"%.100s\" must be a normalized path (no \"..\", \".\" or \"//\")",
                                        s);
                if (!slash)
                        return 0;
                c = slash + 1;
        }
}

int jf_check_abs_path(const char *s, const char *path, kv_error *err)
{
        if (s[0] != '/')
                return jf_error(err, path, "\"%.100s\" must be an absolute path", s);
        if (!s[1])
                return jf_error(err, path, "\"/\" is not a file");
        return check_components(s, s + 1, path, err);
}

int jf_check_image_path(const char *s, const char *path, kv_error *err)
{
        if (!*s || (s[0] == '/' && !s[1]))
                return jf_error(err, path, "must name a file");
        return check_components(s, s[0] == '/' ? s + 1 : s, path, err);
}

bool jf_is_dns_subdomain(const char *s)
{
        char buf[254];
        if (strlen(s) > 253)
                return false;
        snprintf(buf, sizeof(buf), "%s", s);
        for (char *save = NULL, *l = strtok_r(buf, ".", &save); l; l = strtok_r(NULL, ".", &save))
                if (!jf_is_dns_label(l))
                        return false;
        return s[0] && s[0] != '.' && s[strlen(s) - 1] != '.' && !strstr(s, "..");
}

bool jf_is_pci_address(const char *a)
{
        bool ok =
            strlen(a) == 12 && a[4] == ':' && a[7] == ':' && a[10] == '.' && a[11] >= '0' && a[11] <= '7';
        for (size_t k = 0; ok && k < 10; k++)
                ok = k == 4 || k == 7 || strchr("0123456789abcdefABCDEF", a[k]);
        return ok;
}
