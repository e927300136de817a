/* accesscreds: the Secrets of spec.accessCredentials (api/vmi.h vmi_access_cred) as the launcher reads
 * them. In a Pod the controller mounts each at <secret_root>/VMI_ACCESS_CRED_DIR/<secret>. An SSH key
 * Secret holds public keys, one per non-empty line of each key; a password Secret maps each guest user (the
 * key) to its password (the value).
 * docs/access-credentials.md */
#pragma once
#include <cjson/cJSON.h>

#include "error.h"
#include "vmi.h"
#include "volumes.h"

/* Credential i's Secret as {key: text}. */
int access_cred_read(const launcher_paths *p, const vmi *v, size_t i, cJSON **out, kv_error *err);
/* The SSH public keys of every sshPublicKey credential propagated by method m, in spec order and each
 * Secret's key order, duplicates dropped: an array of strings (empty when none). */
int access_cred_ssh_keys(const launcher_paths *p, const vmi *v, cred_method m, cJSON **out, kv_error *err);
/* What the guest agent must hold: {"ssh": {user: [keys]}, "passwords": {user: password}} from every
 * qemuGuestAgent credential (a user named by several credentials gets all their keys). */
int access_cred_agent_state(const launcher_paths *p, const vmi *v, cJSON **out, kv_error *err);
