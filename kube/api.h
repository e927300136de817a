/* Typed verbs over kube_request (resource descriptors and URL paths: resource.h): get/list/create/update/
 * patch/delete and the read-modify-write loop that retries a 409 with a fresh read. */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "client.h"
#include "resource.h"

int kube_get(kube_client *c, const kube_resource *r, const char *ns, const char *name, cJSON **out,
             kv_error *err);
/* label_selector may be NULL. */
int kube_list(kube_client *c, const kube_resource *r, const char *ns, const char *label_selector, cJSON **out,
              kv_error *err);
int kube_create(kube_client *c, const kube_resource *r, const char *ns, const cJSON *obj, cJSON **out,
                kv_error *err);
/* PUT, conditional on obj's metadata.resourceVersion. status: the /status subresource where the kind has
 * one. */
int kube_update(kube_client *c, const kube_resource *r, const cJSON *obj, bool status, cJSON **out,
                kv_error *err);
int kube_merge_patch(kube_client *c, const kube_resource *r, const char *ns, const char *name,
                     const cJSON *patch, bool status, cJSON **out, kv_error *err);
/* uid/resource_version: preconditions (NULL = none); propagation: "Background", "Foreground", "Orphan"
 * or NULL. A 404 counts as success (already gone). */
int kube_delete(kube_client *c, const kube_resource *r, const char *ns, const char *name, const char *uid,
                const char *resource_version, const char *propagation, kv_error *err);

/* Read-modify-write: mutate gets the object (fresh from the API when obj_hint is NULL or after a 409) and
 * returns 1 when it changed it, 0 when nothing needs writing, <0 to abort. Retries 409 up to 5 times. */
typedef int (*kube_mutate_fn)(cJSON *obj, void *userdata);
int kube_update_retry(kube_client *c, const kube_resource *r, const char *ns, const char *name,
                      const cJSON *obj_hint, bool status, kube_mutate_fn mutate, void *userdata, cJSON **out,
                      kv_error *err);
