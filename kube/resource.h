/* Resource descriptors, URL paths (segments and query values escaped) and small JSON accessors for API
 * objects. Pure: no transport (libkubecore), shared by libkube's verbs and the reporter's lite client. */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "error.h"

typedef struct kube_resource {
        const char *prefix; /* "/api/v1" or "/apis/kubevirt.io/v1" */
        const char *plural;
        const char *kind;
        const char *api_version;
        bool status_subresource; /* VMI has none: its status is written through the main endpoint */
} kube_resource;

/* An ownerReferences entry naming its controller (controller and blockOwnerDeletion true), as every
 * object a kvlite controller creates carries; _of takes name and uid from the owner's metadata. */
cJSON *kube_controller_ref(const char *api_version, const char *kind, const char *name, const char *uid);
cJSON *kube_controller_ref_of(const cJSON *owner, const char *api_version, const char *kind);

extern const kube_resource kube_vmi, kube_vm, kube_vmim, kube_pod, kube_namespace, kube_migrationpolicy;
extern const kube_resource kube_vmirs, kube_vmpool;
/* snapshot.kubevirt.io/v1beta1 */
extern const kube_resource kube_vmsnapshot, kube_vmsnapshotcontent, kube_vmrestore;
extern const kube_resource kube_pvc, kube_secret, kube_event;
/* cdi.kubevirt.io/v1beta1 */
extern const kube_resource kube_datavolume;
extern const kube_resource kube_datasource;
/* apps/v1 ControllerRevision; instancetype.kubevirt.io/v1beta1 (cluster kinds: ns NULL) */
extern const kube_resource kube_controllerrevision, kube_vminstancetype, kube_vmclusterinstancetype,
    kube_vmpreference, kube_vmclusterpreference;

/* "/apis/kubevirt.io/v1/namespaces/ns/plural/name/sub"; ns NULL = all namespaces. Every segment is
 * URL-escaped. Returns malloc'd string or NULL. */
char *kube_path(const kube_resource *r, const char *ns, const char *name, const char *sub);
/* Appends "?k=v&k2=v2" (values escaped) to path; NULL-terminated list of key/value pairs. */
char *kube_path_query(const char *path, ...) __attribute__((sentinel));

/* The JSON merge patch (RFC 7386) turning from into to: removed keys become null, nested objects are
 * diffed, everything else is replaced whole. */
cJSON *kube_merge_patch_diff(const cJSON *from, const cJSON *to);

/* Small accessors for object JSON. */
const char *kube_str(const cJSON *obj, const char *dotted_path); /* "metadata.name" → value or NULL */
cJSON *kube_obj(const cJSON *obj, const char *dotted_path);
/* metadata.namespace/name/uid of a namespaced object (borrowed from obj); -EINVAL naming `kind` and the
 * store key when one is missing. */
int kube_obj_ident(const cJSON *obj, const char *kind, const char *key, const char **ns, const char **name,
                   const char **uid, kv_error *err);
