/* spec.accessCredentials: KubeVirt's AccessCredential list. Each entry is exactly one of sshPublicKey or
 * userPassword, reads one Secret (source.secret.secretName) and names one propagation method: noCloud or
 * configDrive (SSH keys only, and only with a cloud-init volume of that kind to carry them), or
 * qemuGuestAgent (SSH keys for the listed users; passwords for the users the Secret's keys name). As in
 * KubeVirt's admitter, one Secret serves one entry. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "vmi-parse.h"

/* The one member of obj among names (exactly one must be present); its index in *which. */
static int one_of(const cJSON *obj, const char *path, const char *const *names, int *which, kv_error *err)
{
        *which = -1;
        for (int k = 0; names[k]; k++) {
                if (!cJSON_GetObjectItemCaseSensitive(obj, names[k]))
                        continue;
                if (*which >= 0)
                        return jf_error(err, path, "only one of %s and %s may be set", names[*which],
                                        names[k]);
                *which = k;
        }
        if (*which >= 0)
                return 0;
        char all[128] = "";
        for (int k = 0; names[k]; k++)
                snprintf(all + strlen(all), sizeof(all) - strlen(all), "%s%s", k ? ", " : "", names[k]);
        return jf_error(err, path, "must set one of %s", all);
}

/* source.secret.secretName, a DNS subdomain-ish name (a Secret's), unique in the list. */
static int parse_source(const vmi *v, vmi_access_cred *c, const cJSON *cred, const char *path, kv_error *err)
{
        static const char *const src_keys[] = {"secret", NULL}, *const secret_keys[] = {"secretName", NULL};
        char p[JPATH_MAX], ps[JPATH_MAX];
        const cJSON *src = NULL, *secret = NULL;
        JF_TRY(jf_object(cred, path, "source", &src, err));
        if (!src)
                return jf_error(err, jpath_key(p, path, "source"), "is required");
        JF_TRY(jf_check_keys(src, jpath_key(p, path, "source"), src_keys, NULL, err));
        JF_TRY(jf_object(src, p, "secret", &secret, err));
        if (!secret)
                return jf_error(err, jpath_key(ps, p, "secret"), "is required");
        JF_TRY(jf_check_keys(secret, jpath_key(ps, p, "secret"), secret_keys, NULL, err));
        JF_TRY(jf_string(secret, ps, "secretName", true, &c->secret, err));
        jpath_key(p, ps, "secretName");
        if (!jf_is_dns_subdomain(c->secret))
                return jf_error(err, p, "\"%.64s\" is not a valid Secret name", c->secret);
        for (size_t i = 0; i + 1 < v->n_access_creds; i++)
                if (!strcmp(v->access_creds[i].secret, c->secret))
                        return jf_error(err, p,
                                        "Secret \"%s\" is already used by spec.accessCredentials[%zu]",
                                        c->secret, i);
        return 0;
}

static bool has_volume(const vmi *v, volume_kind kind)
{
        for (size_t i = 0; i < v->n_volumes; i++)
                if (v->volumes[i].kind == kind)
                        return true;
        return false;
}

/* qemuGuestAgent.users: at least one user name, each a non-empty string without control characters. */
static int parse_users(vmi_access_cred *c, const cJSON *agent, const char *path, kv_error *err)
{
        static const char *const keys[] = {"users", NULL};
        char p[JPATH_MAX], pi[JPATH_MAX];
        const cJSON *users = NULL, *u;
        JF_TRY(jf_check_keys(agent, path, keys, NULL, err));
        JF_TRY(jf_array(agent, path, "users", &users, err));
        jpath_key(p, path, "users");
        if (!users || !cJSON_GetArraySize(users))
                return jf_error(err, p, "must name at least one guest user");
        if (!(c->users = calloc((size_t)cJSON_GetArraySize(users) + 1, sizeof(char *))))
                return kv_error_set(err, ENOMEM, "out of memory");
        size_t n = 0;
        cJSON_ArrayForEach(u, users)
        {
                jpath_index(pi, p, n);
                if (!cJSON_IsString(u) || !*u->valuestring || jf_has_control_chars(u->valuestring) ||
                    strchr(u->valuestring, ':') || strlen(u->valuestring) > 256)
                        return jf_error(err, pi, "must be a guest user name");
                if (!(c->users[n++] = strdup(u->valuestring)))
                        return kv_error_set(err, ENOMEM, "out of memory");
        }
        return 0;
}

static int parse_ssh(const vmi *v, vmi_access_cred *c, const cJSON *ssh, const char *path, kv_error *err)
{
        static const char *const keys[] = {"source", "propagationMethod", NULL};
        static const char *const methods[] = {"qemuGuestAgent", "noCloud", "configDrive", NULL};
        static const volume_kind needs[] = {0, VOL_CLOUD_INIT_NOCLOUD, VOL_CLOUD_INIT_CONFIG_DRIVE};
        static const char *const volume_names[] = {NULL, "cloudInitNoCloud", "cloudInitConfigDrive"};
        char p[JPATH_MAX], pm[JPATH_MAX];
        const cJSON *pmo = NULL, *agent = NULL;
        int which;
        c->kind = CRED_SSH_KEYS;
        JF_TRY(jf_check_keys(ssh, path, keys, NULL, err));
        JF_TRY(parse_source(v, c, ssh, path, err));
        JF_TRY(jf_object(ssh, path, "propagationMethod", &pmo, err));
        jpath_key(p, path, "propagationMethod");
        if (!pmo)
                return jf_error(err, p, "is required");
        JF_TRY(one_of(pmo, p, methods, &which, err));
        c->method = which == 0 ? CRED_VIA_AGENT : which == 1 ? CRED_VIA_NOCLOUD : CRED_VIA_CONFIG_DRIVE;
        jpath_key(pm, p, methods[which]);
        if (which == 0) {
                JF_TRY(jf_object(pmo, p, "qemuGuestAgent", &agent, err));
                return parse_users(c, agent, pm, err);
        }
        JF_TRY(jf_object(pmo, p, methods[which], &agent, err));
        if (agent && cJSON_GetArraySize(agent))
                return jf_error(err, pm, "takes no fields");
        if (!has_volume(v, needs[which]))
                return jf_error(err, pm, "needs a %s volume in spec.volumes to carry the keys",
                                volume_names[which]);
        return 0;
}

static int parse_password(const vmi *v, vmi_access_cred *c, const cJSON *pw, const char *path, kv_error *err)
{
        static const char *const keys[] = {"source", "propagationMethod", NULL};
        static const char *const methods[] = {"qemuGuestAgent", NULL};
        char p[JPATH_MAX], pm[JPATH_MAX];
        const cJSON *pmo = NULL, *agent = NULL;
        int which;
        c->kind = CRED_USER_PASSWORDS, c->method = CRED_VIA_AGENT;
        JF_TRY(jf_check_keys(pw, path, keys, NULL, err));
        JF_TRY(parse_source(v, c, pw, path, err));
        JF_TRY(jf_object(pw, path, "propagationMethod", &pmo, err));
        jpath_key(p, path, "propagationMethod");
        if (!pmo)
                return jf_error(err, p, "is required");
        JF_TRY(jf_check_keys(pmo, p, methods, NULL, err));
        JF_TRY(one_of(pmo, p, methods, &which, err));
        JF_TRY(jf_object(pmo, p, "qemuGuestAgent", &agent, err));
        if (agent && cJSON_GetArraySize(agent))
                return jf_error(err, jpath_key(pm, p, "qemuGuestAgent"), "takes no fields");
        return 0;
}

int vmi_parse_access_credentials(vmi *v, const cJSON *spec, kv_error *err)
{
        static const char *const kinds[] = {"sshPublicKey", "userPassword", NULL};
        const cJSON *list = NULL, *cred;
        char p[JPATH_MAX], pk[JPATH_MAX];
        JF_TRY(jf_array(spec, "spec", "accessCredentials", &list, err));
        size_t i = 0;
        cJSON_ArrayForEach(cred, list)
        {
                jpath_index(p, "spec.accessCredentials", i++);
                if (!cJSON_IsObject(cred))
                        return jf_error(err, p, "must be an object");
                JF_TRY(jf_check_keys(cred, p, kinds, NULL, err));
                int which;
                JF_TRY(one_of(cred, p, kinds, &which, err));
                vmi_access_cred *c = vmi_grow((void **)&v->access_creds, &v->n_access_creds, sizeof(*c));
                if (!c)
                        return kv_error_set(err, ENOMEM, "out of memory");
                const cJSON *body = NULL;
                JF_TRY(jf_object(cred, p, kinds[which], &body, err));
                jpath_key(pk, p, kinds[which]);
                if (!body)
                        return jf_error(err, pk, "must be an object");
                JF_TRY(which == 0 ? parse_ssh(v, c, body, pk, err) : parse_password(v, c, body, pk, err));
        }
        return 0;
}

void vmi_access_creds_free(vmi *v)
{
        for (size_t i = 0; i < v->n_access_creds; i++) {
                for (char **u = v->access_creds[i].users; u && *u; u++)
                        free(*u);
                free(v->access_creds[i].users), free(v->access_creds[i].secret);
        }
        free(v->access_creds);
}
