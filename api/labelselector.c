/* Label selector matching (labelselector.h). */
#include "labelselector.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "jfield.h"

static const char *label(const cJSON *labels, const char *key)
{
        return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(labels, key));
}

static bool in_values(const cJSON *values, const char *v)
{
        const cJSON *x;
        cJSON_ArrayForEach(x, values)
        {
                if (v && !strcmp(cJSON_GetStringValue(x), v))
                        return true;
        }
        return false;
}

/* One matchExpressions entry: 1 match, 0 not, -EINVAL malformed (path is the entry's). */
static int expression_matches(const cJSON *e, const char *path, const cJSON *labels, kv_error *err)
{
        static const char *const ops[] = {"In", "NotIn", "Exists", "DoesNotExist", NULL};
        char p[JPATH_MAX];
        int op = -1;
        if (!cJSON_IsObject(e))
                return jf_error(err, path, "must be an object");
        const char *key = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "key"));
        if (!key || !key[0])
                return jf_error(err, jpath_key(p, path, "key"), "is required");
        JF_TRY(jf_enum(e, path, "operator", ops, &op, err));
        if (op < 0)
                return jf_error(err, jpath_key(p, path, "operator"), "is required");
        const cJSON *values = cJSON_GetObjectItemCaseSensitive(e, "values"), *x;
        int n = cJSON_IsArray(values) ? cJSON_GetArraySize(values) : 0;
        if (values && !cJSON_IsNull(values) && !cJSON_IsArray(values))
                return jf_error(err, jpath_key(p, path, "values"), "must be a list of strings");
        cJSON_ArrayForEach(x, values)
        {
                if (!cJSON_IsString(x))
                        return jf_error(err, jpath_key(p, path, "values"), "must be a list of strings");
        }
        if (op <= 1 && n == 0)
                return jf_error(err, jpath_key(p, path, "values"),
                                "must be specified when `operator` is 'In' or 'NotIn'");
        if (op >= 2 && n > 0)
                return jf_error(err, jpath_key(p, path, "values"),
                                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'");
        const char *v = label(labels, key);
        switch (op) {
        case 0:
                return in_values(values, v);
        case 1:
                return !in_values(values, v);
        case 2:
                return v != NULL;
        default:
                return v == NULL;
        }
}

int label_selector_matches(const cJSON *sel, const char *path, const cJSON *labels, kv_error *err)
{
        char p[JPATH_MAX], q[JPATH_MAX];
        if (!sel || cJSON_IsNull(sel))
                return 0;
        if (!cJSON_IsObject(sel))
                return jf_error(err, path, "must be an object");
        bool match = true;
        const cJSON *kv, *e;
        cJSON_ArrayForEach(kv, cJSON_GetObjectItemCaseSensitive(sel, "matchLabels"))
        {
                if (!cJSON_IsString(kv))
                        return jf_error(err, jpath_key(q, jpath_key(p, path, "matchLabels"), kv->string),
                                        "must be a string");
                const char *v = label(labels, kv->string);
                match = match && v && !strcmp(v, kv->valuestring);
        }
        size_t i = 0;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(sel, "matchExpressions"))
        {
                int r = expression_matches(e, jpath_index(q, jpath_key(p, path, "matchExpressions"), i++),
                                           labels, err);
                if (r < 0)
                        return r;
                match = match && r;
        }
        return match;
}
