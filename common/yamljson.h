/* yamljson: YAML (libyaml) → cJSON, typed per the YAML 1.2 core schema. Used for KubeVirt manifests and
 * kubeconfig files. Quoted scalars stay strings; plain `123`, `0x1f`, `1.5`, `true`, `null`, `~` are typed.
 * Anchors/aliases, complex keys and duplicate keys are rejected; errors carry "line L, column C". */
#pragma once

#include <cjson/cJSON.h>
#include <stddef.h>

#include "error.h"

/* Parse every document of a stream into a cJSON array (one element per document; an empty stream gives
 * an empty array). Returns 0 or -EINVAL with err->msg "line L, column C: problem". */
int yaml_to_json_all(const char *buf, size_t len, cJSON **out, kv_error *err);

/* Parse a stream that must hold exactly one document (an empty stream is an error). */
int yaml_to_json(const char *buf, size_t len, cJSON **out, kv_error *err);

/* JSON or YAML: JSON text (first non-blank character '{' or '[') is parsed with cJSON (strict, with a
 * position on error); anything else as a single YAML document. */
int yaml_or_json_parse(const char *buf, size_t len, cJSON **out, kv_error *err);
