/* Writing a few status fields of any kind with a status subresource: a read-modify-write retried on
 * conflict that writes nothing when the fields already hold those values (timestamps aside, so a reconcile
 * that recomputes a condition does not rewrite it), and the KubeVirt-style condition they often carry. Used
 * by the snapshot and restore reconcilers. */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "api.h"

/* May the object's status still change? false: leave it (e.g. a final phase). NULL = always. */
typedef bool (*status_open_fn)(const cJSON *obj);

/* fields: status keys → values (a JSON null removes the key); taken over. The object gone is no error. */
int status_fields_write(kube_client *api, const kube_resource *res, const cJSON *obj, cJSON *fields,
                        status_open_fn open, kv_error *err);
/* {"type", "status": "True|False", "reason", "message", "lastTransitionTime": now} */
cJSON *status_condition(const char *type, bool status, const char *reason, const char *message);
/* {"message", "time": now} as in KubeVirt's snapshot Error. */
cJSON *status_error(const char *message);
