/* accesscreds: reading the Secrets of spec.accessCredentials (accesscreds.h). */
#include "accesscreds.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jfield.h"
#include "json.h"
#include "macro.h"

int access_cred_read(const launcher_paths *p, const vmi *v, size_t i, cJSON **out, kv_error *err)
{
        const vmi_access_cred *c = &v->access_creds[i];
        char fld[JPATH_MAX];
        _cleanup_free_ char *dir = NULL;
        snprintf(fld, sizeof(fld), "spec.accessCredentials[%zu].%s.source.secret.secretName", i,
                 c->kind == CRED_SSH_KEYS ? "sshPublicKey" : "userPassword");
        if (asprintf(&dir, "%s/" VMI_ACCESS_CRED_DIR "/%s",
                     p->secret_root ? p->secret_root : VOLUMES_DEFAULT_SECRET_ROOT, c->secret) < 0)
                return kv_error_set(err, ENOMEM, "out of memory");
        return volumes_read_keys(dir, fld, c->secret, out, err);
}

static bool contains(const cJSON *array, const char *s)
{
        const cJSON *e;
        cJSON_ArrayForEach(e, array) if (!strcmp(e->valuestring, s)) return true;
        return false;
}

/* Each non-empty line of text, trimmed, appended to keys unless already there. */
static int add_key_lines(cJSON *keys, const char *text)
{
        for (const char *line = text; *line;) {
                size_t n = strcspn(line, "\n");
                const char *end = line + n;
                while (line < end && (*line == ' ' || *line == '\t' || *line == '\r'))
                        line++;
                const char *last = end;
                while (last > line && (last[-1] == ' ' || last[-1] == '\t' || last[-1] == '\r'))
                        last--;
                if (last > line) {
                        _cleanup_free_ char *k = strndup(line, (size_t)(last - line));
                        if (!k || (!contains(keys, k) && !cJSON_AddItemToArray(keys, cJSON_CreateString(k))))
                                return -ENOMEM;
                }
                line = *end ? end + 1 : end;
        }
        return 0;
}

/* The keys of credential i's Secret appended to keys. */
static int add_secret_keys(const launcher_paths *p, const vmi *v, size_t i, cJSON *keys, kv_error *err)
{
        _cleanup_json_ cJSON *secret = NULL;
        const cJSON *k;
        JF_TRY(access_cred_read(p, v, i, &secret, err));
        cJSON_ArrayForEach(k, secret) if (add_key_lines(keys, k->valuestring) <
                                          0) return kv_error_set(err, ENOMEM, "out of memory");
        return 0;
}

int access_cred_ssh_keys(const launcher_paths *p, const vmi *v, cred_method m, cJSON **out, kv_error *err)
{
        _cleanup_json_ cJSON *keys = cJSON_CreateArray();
        if (!keys)
                return kv_error_set(err, ENOMEM, "out of memory");
        for (size_t i = 0; i < v->n_access_creds; i++)
                if (v->access_creds[i].kind == CRED_SSH_KEYS && v->access_creds[i].method == m)
                        JF_TRY(add_secret_keys(p, v, i, keys, err));
        *out = TAKE_PTR(keys);
        return 0;
}

/* The Secret's keys (read once) added to each listed user's, duplicates dropped. */
static int add_user_keys(const launcher_paths *p, const vmi *v, size_t i, cJSON *ssh, kv_error *err)
{
        _cleanup_json_ cJSON *secret_keys = cJSON_CreateArray();
        const cJSON *k;
        if (!secret_keys)
                return kv_error_set(err, ENOMEM, "out of memory");
        JF_TRY(add_secret_keys(p, v, i, secret_keys, err));
        for (char **u = v->access_creds[i].users; *u; u++) {
                cJSON *keys = cJSON_GetObjectItemCaseSensitive(ssh, *u);
                if (!keys && !(keys = cJSON_AddArrayToObject(ssh, *u)))
                        return kv_error_set(err, ENOMEM, "out of memory");
                cJSON_ArrayForEach(k, secret_keys)
                {
                        if (contains(keys, k->valuestring))
                                continue;
                        if (!cJSON_AddItemToArray(keys, cJSON_CreateString(k->valuestring)))
                                return kv_error_set(err, ENOMEM, "out of memory");
                }
        }
        return 0;
}

static int add_passwords(const launcher_paths *p, const vmi *v, size_t i, cJSON *passwords, kv_error *err)
{
        _cleanup_json_ cJSON *secret = NULL;
        JF_TRY(access_cred_read(p, v, i, &secret, err));
        for (cJSON *k; (k = secret->child);) {
                cJSON_DetachItemViaPointer(secret, k);
                cJSON_DeleteItemFromObjectCaseSensitive(passwords, k->string); /* the last credential wins */
                cJSON_AddItemToObject(passwords, k->string, k);
        }
        return 0;
}

int access_cred_agent_state(const launcher_paths *p, const vmi *v, cJSON **out, kv_error *err)
{
        _cleanup_json_ cJSON *st = cJSON_CreateObject();
        cJSON *ssh = cJSON_AddObjectToObject(st, "ssh"),
              *passwords = cJSON_AddObjectToObject(st, "passwords");
        if (!ssh || !passwords)
                return kv_error_set(err, ENOMEM, "out of memory");
        for (size_t i = 0; i < v->n_access_creds; i++) {
                const vmi_access_cred *c = &v->access_creds[i];
                if (c->method != CRED_VIA_AGENT)
                        continue;
                JF_TRY(c->kind == CRED_SSH_KEYS ? add_user_keys(p, v, i, ssh, err)
                                                : add_passwords(p, v, i, passwords, err));
        }
        *out = TAKE_PTR(st);
        return 0;
}
