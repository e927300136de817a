/* quantity: Kubernetes resource quantities ("64Mi", "1G", "1.5Gi", "500m", "1e9", 2) as numbers. */
#pragma once

#include <cjson/cJSON.h>
#include <stdint.h>

#include "error.h"

/* Parse a quantity value (a string or a plain number) into *out. path names the field for errors. */
int quantity_parse(const cJSON *v, const char *path, long double *out, kv_error *err);
/* A byte count: non-negative, rounded up to whole bytes, below 2^63. */
int quantity_bytes(const cJSON *v, const char *path, uint64_t *out, kv_error *err);
