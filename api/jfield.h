/* jfield: typed reads from a parsed manifest where every error names the JSON path of the field
 * ("spec.domain.cpu.cores: expected an integer, got string \"two\""). */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "error.h"

#define JPATH_MAX 256

/* "<parent>.<key>" (or just key when parent is empty) into buf. */
const char *jpath_key(char buf[static JPATH_MAX], const char *parent, const char *key);
/* "<parent>[i]" into buf. */
const char *jpath_index(char buf[static JPATH_MAX], const char *parent, size_t i);

/* Every member of obj must be listed in `allowed` or `ignored` (NULL-terminated, may be NULL); any
 * other member is an error naming its path. obj must be an object. */
int jf_check_keys(const cJSON *obj, const char *path, const char *const *allowed, const char *const *ignored,
                  kv_error *err);

/* Absent or null members leave *out untouched (defaults) and return 0; a wrong type is -EINVAL. */
int jf_object(const cJSON *parent, const char *path, const char *key, const cJSON **out, kv_error *err);
int jf_array(const cJSON *parent, const char *path, const char *key, const cJSON **out, kv_error *err);
int jf_bool(const cJSON *parent, const char *path, const char *key, bool *out, kv_error *err);
/* An integral number within [min, max]. *present (if non-NULL) says whether it was given. */
int jf_int(const cJSON *parent, const char *path, const char *key, int64_t min, int64_t max, int64_t *out,
           bool *present, kv_error *err);
/* A string (strdup'd into *out, replacing nothing when absent). required: absent is an error. */
int jf_string(const cJSON *parent, const char *path, const char *key, bool required, char **out,
              kv_error *err);
/* A string that must be one of `values` (NULL-terminated); *index receives its position. */
int jf_enum(const cJSON *parent, const char *path, const char *key, const char *const *values, int *index,
            kv_error *err);

/* A short description of a value for error messages: `string "x"`, `number 3`, `an object`. */
const char *jf_describe(const cJSON *v, char *buf, size_t size);
/* Error "<path>: <fmt>" with EINVAL. */
int jf_error(kv_error *err, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Return a negative result at once (keeps the long field-by-field readers flat). */
#define JF_TRY(expr)                                                                                         \
        do {                                                                                                 \
                int _jf_r = (expr);                                                                          \
                if (_jf_r < 0)                                                                               \
                        return _jf_r;                                                                        \
        } while (0)

/* Checks shared by the VMI readers. */
bool jf_is_dns_label(const char *s); /* [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63 */
/* A DNS subdomain (an object's name): DNS labels joined by dots, at most 253 characters. */
bool jf_is_dns_subdomain(const char *s);
/* A PCI address as KubeVirt writes one: "DDDD:BB:SS.F", hexadecimal, function 0-7. */
bool jf_is_pci_address(const char *s);
bool jf_has_control_chars(const char *s);
/* An absolute path without "..", "." or empty components and without control characters. */
int jf_check_abs_path(const char *s, const char *path, kv_error *err);
/* A path inside an image: same rules; a leading "/" is optional. */
int jf_check_image_path(const char *s, const char *path, kv_error *err);
