/* Kubernetes label selectors (metav1.LabelSelector: matchLabels, matchExpressions) matched against an
 * object's labels, as apimachinery's LabelSelectorAsSelector and Matches do. */
#pragma once
#include <cjson/cJSON.h>

#include "error.h"

/* 1 when labels (an object of strings, or NULL) satisfy selector, 0 when not: a missing (or null) selector
 * matches nothing, an empty one everything. -EINVAL, naming path and the field, when the selector is
 * malformed: an unknown operator, values given to Exists/DoesNotExist or missing for In/NotIn. */
int label_selector_matches(const cJSON *selector, const char *path, const cJSON *labels, kv_error *err);
