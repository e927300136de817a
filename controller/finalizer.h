/* Finalizers on any kind: presence, and the add/remove merge patch conditional on the resourceVersion read
 * (so a finalizer someone else added meanwhile is never dropped: 409 → the caller retries from a fresh
 * cache). Shared by the VMI and VMIM reconcilers. */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "api.h"

bool finalizer_has(const cJSON *obj, const char *finalizer);
/* extra: more of the patch (e.g. a status written in the same request), taken over; may be NULL. */
int finalizer_patch(kube_client *api, const kube_resource *res, const cJSON *obj, const char *finalizer,
                    bool add, cJSON *extra, cJSON **out, kv_error *err);
/* Adds or removes the finalizer unless the object already says so; the object gone is no error. Returns 1
 * when it patched (the update event brings the reconciler back), 0 when nothing was needed. */
int finalizer_set(kube_client *api, const kube_resource *res, const cJSON *obj, const char *finalizer,
                  bool add, kv_error *err);
