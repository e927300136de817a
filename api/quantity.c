/* quantity: the subset of k8s.io/apimachinery resource.Quantity syntax that manifests use. */
#include "quantity.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "jfield.h"

static const struct {
        const char *suffix;
        long double mult;
} suffixes[] = {
    {"Ki", 1024.0L},
    {"Mi", 1048576.0L},
    {"Gi", 1073741824.0L},
    {"Ti", 1099511627776.0L},
    {"Pi", 1125899906842624.0L},
    {"Ei", 1152921504606846976.0L},
    {"n", 1e-9L},
    {"u", 1e-6L},
    {"m", 1e-3L},
    {"", 1.0L},
    {"k", 1e3L},
    {"M", 1e6L},
    {"G", 1e9L},
    {"T", 1e12L},
    {"P", 1e15L},
    {"E", 1e18L},
};

/* <sign><digits>[.<digits>] */
static const char *scan_number(const char *s)
{
        size_t digits = 0;
        if (*s == '+' || *s == '-')
                s++;
        while (isdigit((unsigned char)*s))
                s++, digits++;
        if (*s == '.') {
                s++;
                while (isdigit((unsigned char)*s))
                        s++, digits++;
        }
        return digits ? s : NULL;
}

static int parse_string(const char *s, long double *out)
{
        const char *end = scan_number(s);
        if (!end)
                return -EINVAL;
        long double num = strtold(s, NULL);
        if ((*end == 'e' || *end == 'E') && end[1]) { /* decimal exponent form: 1e9, 5E-3 */
                char *e;
                long exp = strtol(end + 1, &e, 10);
                if (*e || e == end + 1 || exp > 30 || exp < -30)
                        return -EINVAL;
                *out = num * powl(10.0L, (long double)exp);
                return 0;
        }
        for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
                if (!strcmp(end, suffixes[i].suffix)) {
                        *out = num * suffixes[i].mult;
                        return 0;
                }
        }
        return -EINVAL;
}

int quantity_parse(const cJSON *v, const char *path, long double *out, kv_error *err)
{
        char d[64];
        if (cJSON_IsNumber(v) && isfinite(v->valuedouble)) {
                *out = v->valuedouble;
                return 0;
        }
        if (!cJSON_IsString(v))
                return jf_error(err, path, "expected a quantity such as \"1Gi\", got %s",
                                jf_describe(v, d, sizeof(d)));
        if (parse_string(v->valuestring, out) < 0)
                return jf_error(err, path,
                                "\"%.64s\" is not a valid quantity (e.g. \"512Mi\", \"1G\", \"2\")",
                                v->valuestring);
        return 0;
}

int quantity_bytes(const cJSON *v, const char *path, uint64_t *out, kv_error *err)
{
        long double q;
        int r = quantity_parse(v, path, &q, err);
        if (r < 0)
                return r;
        if (q < 0)
                return jf_error(err, path, "must not be negative");
        if (q >= 9223372036854775808.0L)
                return jf_error(err, path, "is too large");
        *out = (uint64_t)ceill(q);
        return 0;
}
