/* subres-internal: what the subresource handlers of subresources.c and guestagent.c share. */
#pragma once
#include <cjson/cJSON.h>
#include <stdbool.h>

#include "api.h"
#include "subresources.h"

typedef struct target {
        const char *ns, *name;
        const cJSON *body; /* the request's options object (empty object when no body) */
} target;

/* KubeVirt's errors.NewConflict wording: Operation cannot be fulfilled on <resource> "<name>": <why>. */
int subres_conflict(subres_reply *r, const target *t, bool vm, const char *why);
/* The VMI, or the reply (404; 409 "VMI is not running"). */
int subres_running_vmi(kube_client *api, const target *t, cJSON **vmi, subres_reply *r);
bool subres_vmi_condition(const cJSON *vmi, const char *type);

/* guestagent.c: what the guest agent told the launcher (KubeVirt's guestosinfo, userlist, filesystemlist) */
int subres_guestosinfo(kube_client *api, const target *t, subres_reply *r);
int subres_userlist(kube_client *api, const target *t, subres_reply *r);
int subres_filesystemlist(kube_client *api, const target *t, subres_reply *r);
