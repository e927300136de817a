/* yamljson: libyaml event stream → cJSON tree, with YAML 1.2 core-schema scalar typing. */
#include "yamljson.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "macro.h"

static int parser_error(yaml_parser_t *p, kv_error *err)
{
        return kv_error_set(err, EINVAL, "line %zu, column %zu: %s%s%s", p->problem_mark.line + 1,
                            p->problem_mark.column + 1, p->problem ? p->problem : "invalid YAML",
                            p->context ? " " : "", p->context ? p->context : "");
}

static int event_error(const yaml_event_t *ev, kv_error *err, const char *what)
{
        return kv_error_set(err, EINVAL, "line %zu, column %zu: %s", ev->start_mark.line + 1,
                            ev->start_mark.column + 1, what);
}

static bool matches_all(const char *s, int (*pred)(int))
{
        if (!*s)
                return false;
        for (; *s; s++)
                if (!pred((unsigned char)*s))
                        return false;
        return true;
}

static int is_octal(int c)
{
        return c >= '0' && c <= '7';
}

static bool is_core_null(const char *s)
{
        return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

static int core_bool(const char *s)
{
        if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
                return 1;
        if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
                return 0;
        return -1;
}

/* [-+]?[0-9]+ | 0o[0-7]+ | 0x[0-9a-fA-F]+ */
static bool core_int(const char *s, double *out)
{
        if (s[0] == '0' && s[1] == 'o' && matches_all(s + 2, is_octal)) {
                *out = (double)strtoull(s + 2, NULL, 8);
                return true;
        }
        if (s[0] == '0' && s[1] == 'x' && matches_all(s + 2, isxdigit)) {
                *out = (double)strtoull(s + 2, NULL, 16);
                return true;
        }
        const char *d = (*s == '-' || *s == '+') ? s + 1 : s;
        if (!matches_all(d, isdigit))
                return false;
        *out = strtod(s, NULL);
        return true;
}

/* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? | [-+]?\.(inf|Inf|INF) | \.(nan|NaN|NAN) */
static bool core_float(const char *s, double *out)
{
        const char *p = (*s == '-' || *s == '+') ? s + 1 : s;
        if (!strcmp(p, ".inf") || !strcmp(p, ".Inf") || !strcmp(p, ".INF")) {
                *out = *s == '-' ? -INFINITY : INFINITY;
                return true;
        }
        if (p == s && (!strcmp(s, ".nan") || !strcmp(s, ".NaN") || !strcmp(s, ".NAN"))) {
                *out = NAN;
                return true;
        }
        size_t digits = 0;
        while (isdigit((unsigned char)*p))
                p++, digits++;
        if (*p == '.') {
                p++;
                while (isdigit((unsigned char)*p))
                        p++, digits++;
        }
        if (!digits)
                return false;
        if (*p == 'e' || *p == 'E') {
                p++;
                if (*p == '-' || *p == '+')
                        p++;
                if (!matches_all(p, isdigit))
                        return false;
                p += strlen(p);
        }
        if (*p)
                return false;
        *out = strtod(s, NULL);
        return true;
}

static cJSON *plain_scalar(const char *s)
{
        double d;
        int b;
        if (is_core_null(s))
                return cJSON_CreateNull();
        if ((b = core_bool(s)) >= 0)
                return cJSON_CreateBool(b);
        if (core_int(s, &d) || core_float(s, &d))
                return cJSON_CreateNumber(d);
        return cJSON_CreateString(s);
}

/* An explicit core-schema tag wins over the plain-scalar rules; other tags are refused. */
static int tagged_scalar(const yaml_event_t *ev, cJSON **out, kv_error *err)
{
        const char *tag = (const char *)ev->data.scalar.tag;
        const char *s = (const char *)ev->data.scalar.value;
        if (!tag || !strcmp(tag, "!")) {
                bool plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
                *out = plain && !tag ? plain_scalar(s) : cJSON_CreateString(s);
                return *out ? 0 : -ENOMEM;
        }
        if (!strcmp(tag, YAML_STR_TAG)) {
                *out = cJSON_CreateString(s);
        } else {
                *out = plain_scalar(s);
                bool ok =
                    *out &&
                    ((!strcmp(tag, YAML_NULL_TAG) && cJSON_IsNull(*out)) ||
                     (!strcmp(tag, YAML_BOOL_TAG) && cJSON_IsBool(*out)) ||
                     ((!strcmp(tag, YAML_INT_TAG) || !strcmp(tag, YAML_FLOAT_TAG)) && cJSON_IsNumber(*out)));
                if (!ok) {
                        cJSON_Delete(*out);
                        *out = NULL;
                        return event_error(ev, err, "unsupported tag or value not matching its tag");
                }
        }
        return *out ? 0 : -ENOMEM;
}

static int parse_node(yaml_parser_t *p, yaml_event_t *ev, cJSON **out, int depth, kv_error *err);

static int next_event(yaml_parser_t *p, yaml_event_t *ev, kv_error *err)
{
        if (!yaml_parser_parse(p, ev))
                return parser_error(p, err);
        return 0;
}

/* Collection contents up to the matching end event; `ev` is the start event (consumed by the caller). */
static int parse_collection(yaml_parser_t *p, bool mapping, cJSON *coll, int depth, kv_error *err)
{
        for (;;) {
                yaml_event_t ev;
                int r = next_event(p, &ev, err);
                if (r < 0)
                        return r;
                if (ev.type == YAML_SEQUENCE_END_EVENT || ev.type == YAML_MAPPING_END_EVENT) {
                        yaml_event_delete(&ev);
                        return 0;
                }
                _cleanup_free_ char *key = NULL;
                if (mapping) {
                        if (ev.type != YAML_SCALAR_EVENT) {
                                r = event_error(&ev, err, "mapping keys must be scalars");
                                yaml_event_delete(&ev);
                                return r;
                        }
                        key = strdup((const char *)ev.data.scalar.value);
                        if (key && cJSON_GetObjectItemCaseSensitive(coll, key))
                                r = kv_error_set(err, EINVAL,
                                                 "line %zu, column %zu: duplicate key \"%.100s\"",
                                                 ev.start_mark.line + 1, ev.start_mark.column + 1, key);
                        yaml_event_delete(&ev);
                        if (!key)
                                return -ENOMEM;
                        if (r < 0)
                                return r;
                        r = next_event(p, &ev, err);
                        if (r < 0)
                                return r;
                }
                cJSON *child = NULL;
                r = parse_node(p, &ev, &child, depth + 1, err);
                yaml_event_delete(&ev);
                if (r < 0)
                        return r;
                if (mapping)
                        cJSON_AddItemToObject(coll, key, child);
                else
                        cJSON_AddItemToArray(coll, child);
        }
}

/* Build the node that starts with `ev` (owned by the caller). */
static int parse_node(yaml_parser_t *p, yaml_event_t *ev, cJSON **out, int depth, kv_error *err)
{
        if (depth > 64)
                return event_error(ev, err, "nesting deeper than 64 levels");
        switch (ev->type) {
        case YAML_SCALAR_EVENT:
                if (ev->data.scalar.anchor)
                        return event_error(ev, err, "anchors and aliases are not supported");
                return tagged_scalar(ev, out, err);
        case YAML_ALIAS_EVENT:
                return event_error(ev, err, "anchors and aliases are not supported");
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT: {
                bool mapping = ev->type == YAML_MAPPING_START_EVENT;
                const yaml_char_t *anchor =
                    mapping ? ev->data.mapping_start.anchor : ev->data.sequence_start.anchor;
                if (anchor)
                        return event_error(ev, err, "anchors and aliases are not supported");
                cJSON *coll = mapping ? cJSON_CreateObject() : cJSON_CreateArray();
                if (!coll)
                        return -ENOMEM;
                int r = parse_collection(p, mapping, coll, depth, err);
                if (r < 0) {
                        cJSON_Delete(coll);
                        return r;
                }
                *out = coll;
                return 0;
        }
        default:
                return event_error(ev, err, "unexpected YAML event");
        }
}

/* One document: DOCUMENT-START node DOCUMENT-END. Returns 1 with *out set, 0 at STREAM-END. */
static int parse_document(yaml_parser_t *p, cJSON **out, kv_error *err)
{
        yaml_event_t ev;
        int r = next_event(p, &ev, err);
        if (r < 0)
                return r;
        if (ev.type == YAML_STREAM_END_EVENT) {
                yaml_event_delete(&ev);
                return 0;
        }
        yaml_event_delete(&ev); /* DOCUMENT-START */
        r = next_event(p, &ev, err);
        if (r < 0)
                return r;
        r = parse_node(p, &ev, out, 0, err);
        yaml_event_delete(&ev);
        if (r < 0)
                return r;
        r = next_event(p, &ev, err); /* DOCUMENT-END */
        yaml_event_delete(&ev);
        if (r < 0) {
                cJSON_Delete(*out);
                *out = NULL;
                return r;
        }
        return 1;
}

int yaml_to_json_all(const char *buf, size_t len, cJSON **out, kv_error *err)
{
        yaml_parser_t p;
        if (!yaml_parser_initialize(&p))
                return kv_error_set(err, ENOMEM, "yaml parser");
        yaml_parser_set_input_string(&p, (const unsigned char *)buf, len);
        cJSON *docs = cJSON_CreateArray();
        yaml_event_t ev;
        int r = docs ? next_event(&p, &ev, err) : -ENOMEM; /* STREAM-START */
        if (r >= 0)
                yaml_event_delete(&ev);
        while (r >= 0) {
                cJSON *doc = NULL;
                r = parse_document(&p, &doc, err);
                if (r <= 0)
                        break;
                cJSON_AddItemToArray(docs, doc);
        }
        yaml_parser_delete(&p);
        if (r < 0) {
                cJSON_Delete(docs);
                return r == -ENOMEM ? kv_error_set(err, ENOMEM, "out of memory parsing YAML") : r;
        }
        *out = docs;
        return 0;
}

int yaml_to_json(const char *buf, size_t len, cJSON **out, kv_error *err)
{
        cJSON *docs = NULL;
        int r = yaml_to_json_all(buf, len, &docs, err);
        if (r < 0)
                return r;
        int n = cJSON_GetArraySize(docs);
        if (n != 1) {
                cJSON_Delete(docs);
                return kv_error_set(err, EINVAL, "expected exactly one YAML document, found %d", n);
        }
        *out = cJSON_DetachItemFromArray(docs, 0);
        cJSON_Delete(docs);
        return 0;
}

static void line_col(const char *buf, size_t off, size_t *line, size_t *col)
{
        *line = 1, *col = 1;
        for (size_t i = 0; i < off; i++) {
                if (buf[i] == '\n')
                        (*line)++, *col = 1;
                else
                        (*col)++;
        }
}

int yaml_or_json_parse(const char *buf, size_t len, cJSON **out, kv_error *err)
{
        size_t i = 0;
        while (i < len && isspace((unsigned char)buf[i]))
                i++;
        if (i == len || (buf[i] != '{' && buf[i] != '['))
                return yaml_to_json(buf, len, out, err);
        const char *end = NULL;
        cJSON *j = cJSON_ParseWithLengthOpts(buf, len, &end, false);
        if (!j) {
                size_t line, col, off = end && end >= buf && end <= buf + len ? (size_t)(end - buf) : 0;
                line_col(buf, off, &line, &col);
                return kv_error_set(err, EINVAL, "line %zu, column %zu: invalid JSON", line, col);
        }
        /* Only whitespace may follow the value. */
        for (size_t k = (size_t)(end - buf); k < len; k++) {
                if (!isspace((unsigned char)buf[k]) && buf[k] != '\0') {
                        size_t line, col;
                        line_col(buf, k, &line, &col);
                        cJSON_Delete(j);
                        return kv_error_set(err, EINVAL, "line %zu, column %zu: trailing data after JSON",
                                            line, col);
                }
        }
        *out = j;
        return 0;
}
