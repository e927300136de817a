/* credentials-internal: what credentials.c (flags, the VM's Secrets, data patches, set-password) and
 * credentials-sshkey.c (add-ssh-key, remove-ssh-key) share. Each int function returns 0, or EXIT_FAIL after
 * printing "Error: …" in KubeVirt's words. */
#pragma once

#include <cjson/cJSON.h>

#include "client.h"
#include "credentials.h"
#include "resource.h"
#include "strv.h"

typedef struct cctx {
        kube_client *api;
        const char *ns;
        const cred_cmd *cmd;
        cJSON *vm;
        char *key; /* the SSH key, trimmed */
} cctx;

/* The Secrets of the VM's `kind` credentials ("sshPublicKey" or "userPassword") propagated by the guest agent
 * (KubeVirt's GetSSHSecretsForUser, getPasswordSecrets); user non-NULL: those listing user. */
int cred_secrets(const cJSON *vm, const char *kind, const char *user, strv *out);
/* KubeVirt's FindSecretOrGetFirst: --secret when it is one of secrets, else the only one. */
int cred_pick_secret(const cctx *c, const strv *secrets, const char **out);
/* Refuses a Secret without an ownerReference to the VM (kind, name, uid) unless --force: another VM may use
 * it too. */
int cred_check_owner(const cctx *c, const cJSON *secret, const char *name);
int cred_get_secret(const cctx *c, const char *name, cJSON **out);
/* A JSON patch adding value (consumed) at `path` inside the array or map at `parent` of the object; when it
 * fails, KubeVirt's second patch: `parent` tested absent, added as `empty` (consumed), then the value. 0 or
 * the API's error in err. */
int cred_patch_add(const cctx *c, const kube_resource *res, const char *name, const char *parent,
                   const char *path, cJSON *value, cJSON *empty, kv_error *err);
/* data[key] = value in the Secret, with cred_patch_add. */
int cred_secret_add_data(const cctx *c, const char *secret, const char *key, const char *value);

/* --value, else --file's text, trimmed; into *out (malloc'd). */
int cred_read_key(const cred_cmd *cmd, char **out);
/* The commands; the exit code. */
int cred_add_ssh_key(const cctx *c);
int cred_remove_ssh_key(const cctx *c);
