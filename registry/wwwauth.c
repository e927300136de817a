/* WWW-Authenticate parsing: scheme token, then name=value pairs where value is a token or a quoted string
 * with backslash escapes. */
#include "wwwauth.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "macro.h"

void kvreg_challenge_done(kvreg_challenge *c)
{
        free(c->realm);
        free(c->service);
        free(c->scope);
        *c = (kvreg_challenge){0};
}

static bool is_tchar(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               (c && strchr("!#$%&'*+-.^_`|~", c));
}

static const char *skip_ws(const char *p)
{
        while (*p == ' ' || *p == '\t')
                p++;
        return p;
}

/* Reads a token or quoted string at p into a new string; returns the position after it or NULL. */
static const char *read_value(const char *p, char **out)
{
        size_t cap = strlen(p) + 1, n = 0;
        _cleanup_free_ char *v = malloc(cap);
        if (!v)
                return NULL;
        if (*p == '"') {
                for (p++; *p && *p != '"'; p++) {
                        if (*p == '\\' && p[1])
                                p++;
                        v[n++] = *p;
                }
                if (*p != '"')
                        return NULL;
                p++;
        } else {
                while (is_tchar(*p) || *p == '/' || *p == ':' || *p == '=')
                        v[n++] = *p++;
        }
        v[n] = '\0';
        *out = TAKE_PTR(v);
        return p;
}

static void set_param(kvreg_challenge *c, const char *name, size_t len, char *value)
{
        char **slot = NULL;
        if (len == 5 && !strncasecmp(name, "realm", 5))
                slot = &c->realm;
        else if (len == 7 && !strncasecmp(name, "service", 7))
                slot = &c->service;
        else if (len == 5 && !strncasecmp(name, "scope", 5))
                slot = &c->scope;
        if (slot && !*slot)
                *slot = value;
        else
                free(value);
}

/* Parses `name=value, name=value` from p until the next scheme or the end; returns the end position. */
static const char *parse_params(const char *p, kvreg_challenge *c, bool keep)
{
        for (;;) {
                p = skip_ws(p);
                while (*p == ',')
                        p = skip_ws(p + 1);
                const char *name = p;
                while (is_tchar(*p))
                        p++;
                size_t len = p - name;
                const char *eq = skip_ws(p);
                if (len == 0 || *eq != '=')
                        return name; /* next scheme (or garbage) starts here */
                char *value = NULL;
                p = read_value(skip_ws(eq + 1), &value);
                if (!p)
                        return NULL;
                if (keep)
                        set_param(c, name, len, value);
                else
                        free(value);
        }
}

int kvreg_challenge_parse(const char *value, kvreg_challenge *out, kv_error *err)
{
        *out = (kvreg_challenge){0};
        const char *p = skip_ws(value);
        while (*p) {
                const char *scheme = p;
                while (is_tchar(*p))
                        p++;
                size_t len = p - scheme;
                if (len == 0)
                        break;
                enum kvreg_auth_scheme s = KVREG_AUTH_NONE;
                if (len == 6 && !strncasecmp(scheme, "bearer", 6))
                        s = KVREG_AUTH_BEARER;
                else if (len == 5 && !strncasecmp(scheme, "basic", 5))
                        s = KVREG_AUTH_BASIC;
                bool keep = s != KVREG_AUTH_NONE && out->scheme == KVREG_AUTH_NONE;
                if (keep)
                        out->scheme = s;
                const char *next = parse_params(p, out, keep);
                if (!next || next == p) {
                        if (!next || (*skip_ws(p) && *skip_ws(p) != ','))
                                break;
                }
                p = skip_ws(next);
                if (keep)
                        break;
        }
        if (out->scheme == KVREG_AUTH_BEARER && out->realm)
                return 0;
        if (out->scheme == KVREG_AUTH_BASIC)
                return 0;
        kvreg_challenge_done(out);
        return kv_error_set(err, EINVAL,
                            "WWW-Authenticate \"%.200s\": no Basic or Bearer challenge with a realm", value);
}
