/* cJSON helpers shared by every component that builds or holds cJSON trees: the cleanup attribute and
 * chainable object builders. Header-only, so libkvcommon itself stays free of cJSON; include it from code
 * that already depends on cJSON. */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "macro.h"

static inline void cjson_freep(cJSON **p)
{
        cJSON_Delete(*p);
}
#define _cleanup_json_ _cleanup_(cjson_freep)

/* Chainable builders: jstr(jstr(cJSON_CreateObject(), "driver", "nbd"), "export", node). On allocation
 * failure the object is freed and NULL returned, and every later call passes NULL through, so one check
 * of the final result catches it. The result must be used: after a failure the object passed in is gone. */
#define JSON_BUILDER static inline __attribute__((warn_unused_result))

JSON_BUILDER cJSON *json_poison(cJSON *o)
{
        cJSON_Delete(o);
        return NULL;
}

JSON_BUILDER cJSON *jstr(cJSON *o, const char *key, const char *value)
{
        return !o || cJSON_AddStringToObject(o, key, value) ? o : json_poison(o);
}

JSON_BUILDER cJSON *jnum(cJSON *o, const char *key, double value)
{
        return !o || cJSON_AddNumberToObject(o, key, value) ? o : json_poison(o);
}

JSON_BUILDER cJSON *jbool(cJSON *o, const char *key, bool value)
{
        return !o || cJSON_AddBoolToObject(o, key, value) ? o : json_poison(o);
}

JSON_BUILDER cJSON *jnull(cJSON *o, const char *key)
{
        return !o || cJSON_AddNullToObject(o, key) ? o : json_poison(o);
}

/* Adds child under key (consumed either way); a NULL child poisons o. */
JSON_BUILDER cJSON *jobj(cJSON *o, const char *key, cJSON *child)
{
        if (!o || !child) {
                cJSON_Delete(child);
                return o ? json_poison(o) : NULL;
        }
        cJSON_AddItemToObject(o, key, child);
        return o;
}

#undef JSON_BUILDER

/* One JSONPatch (RFC 6902) operation {op, path[, value]}; value is consumed (NULL: none, as for remove). */
static inline cJSON *json_patch_op(const char *op, const char *path, cJSON *value)
{
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "op", op);
        cJSON_AddStringToObject(o, "path", path);
        if (value)
                cJSON_AddItemToObject(o, "value", value);
        return o;
}

/* A JSON number as an integer clamped to [lo, hi]; def when v is not a number. Casting a double outside
 * the target type's range is undefined behaviour, so every number read from a peer (a guest agent, QEMU,
 * a client) goes through here or json_is_whole before a cast. */
static inline int64_t json_clamp_i64(const cJSON *v, int64_t lo, int64_t hi, int64_t def)
{
        if (!cJSON_IsNumber(v) || v->valuedouble != v->valuedouble)
                return def;
        if (v->valuedouble <= (double)lo)
                return lo;
        if (v->valuedouble >= (double)hi)
                return hi;
        return (int64_t)v->valuedouble;
}

/* True when v is a whole number in [lo, hi] (so that casting it is defined); lo and hi within +-2^53. */
static inline bool json_is_whole(const cJSON *v, double lo, double hi)
{
        return cJSON_IsNumber(v) && v->valuedouble >= lo && v->valuedouble <= hi &&
               v->valuedouble == (double)(int64_t)v->valuedouble;
}
