/* createvm-cloudinit: the guest's first-boot data in `virtctl create vm`, as KubeVirt's generator makes it:
 * the cloud-init disk (--cloud-init nocloud|configdrive|none, user data given in base64 or made from --user,
 * --password-file, --ssh-key and --ga-manage-ssh, --cloud-init-network-data), spec.accessCredentials from
 * --access-cred type:ssh|password,src:SECRET,method:ga|nocloud|configdrive,user:USER, and the sysprep disk
 * (--volume-sysprep src:NAME,type:configmap|secret). Messages are KubeVirt's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"
#include "createvm-internal.h"

#define CLOUD_INIT_HEADER "#cloud-config"

static int flag_err(const char *flag, const char *what)
{
        return die("failed to parse \"--%s\" flag: %s", flag, what);
}

/* The cloud-init method an SSH credential needs: --cloud-init follows it unless given, else must match. */
static int want_cloud_init(createvm *c, const char *method)
{
        if (!c->cloud_init_given) {
                c->cloud_init = method, c->cloud_init_given = true, c->cloud_init_flags = true;
                return 0;
        }
        if (strcasecmp(c->cloud_init, method))
                return die("failed to parse \"--access-cred\" flag: method param and value passed to "
                           "--cloud-init have to match: %s vs %s",
                           method, c->cloud_init);
        return 0;
}

static cJSON *credential(const char *kind, const char *secret, const char *method, cJSON *method_body)
{
        cJSON *cred = cJSON_CreateObject(), *body = cJSON_AddObjectToObject(cred, kind);
        cJSON_AddStringToObject(cJSON_AddObjectToObject(cJSON_AddObjectToObject(body, "source"), "secret"),
                                "secretName", secret);
        cJSON_AddItemToObject(cJSON_AddObjectToObject(body, "propagationMethod"), method, method_body);
        return cred;
}

static int ssh_credential(createvm *c, const char *secret, const char *method, const char *user, cJSON **out)
{
        if (!method || !strcasecmp(method, "ga")) {
                const char *who = user ? user : c->user;
                if (!who)
                        return flag_err("access-cred", "user must be specified with access credential ssh "
                                                       "method ga (\"--user\" flag or param \"user\")");
                if (c->ga_manage_ssh < 0) /* the guest agent may write authorized_keys (SELinux guests) */
                        c->ga_manage_ssh = 1, c->cloud_init_flags = true;
                cJSON *ga = cJSON_CreateObject(), *users = cJSON_AddArrayToObject(ga, "users");
                cJSON_AddItemToArray(users, cJSON_CreateString(who));
                *out = credential("sshPublicKey", secret, "qemuGuestAgent", ga);
                return 0;
        }
        bool nocloud = !strcasecmp(method, "nocloud");
        if (!nocloud && strcasecmp(method, "configdrive"))
                return die("failed to parse \"--access-cred\" flag: invalid access credentials ssh method "
                           "\"%s\", supported values are: ga, nocloud, configdrive",
                           method);
        if (user)
                return flag_err("access-cred",
                                "user cannot be specified with selected access credential type "
                                "and method");
        if (want_cloud_init(c, nocloud ? "nocloud" : "configdrive"))
                return EXIT_FAIL;
        *out = credential("sshPublicKey", secret, nocloud ? "noCloud" : "configDrive", cJSON_CreateObject());
        return 0;
}

int createvm_access_cred(createvm *c, char *spec)
{
        static const char *const allowed[] = {"type", "src", "method", "user", NULL};
        param p[4];
        int n;
        if (parse_params("access-cred", spec, allowed, p, 4, &n))
                return EXIT_FAIL;
        char *src = param_get(p, n, "src");
        const char *type = param_get(p, n, "type"), *method = param_get(p, n, "method"),
                   *user = param_get(p, n, "user"), *ns, *name;
        if (!src || !*src)
                return flag_err("access-cred", "src must be specified");
        split_ref(src, &ns, &name);
        if (ns)
                return die(
                    "failed to parse \"--access-cred\" flag: not allowed to specify namespace of secret "
                    "\"%s\"",
                    name);
        cJSON *cred = NULL;
        if (!type || !strcasecmp(type, "ssh")) {
                if (ssh_credential(c, name, method, user, &cred))
                        return EXIT_FAIL;
        } else if (!strcasecmp(type, "password")) {
                if (method && strcasecmp(method, "ga"))
                        return die(
                            "failed to parse \"--access-cred\" flag: invalid access credentials password "
                            "method \"%s\", supported values are: ga",
                            method);
                if (user)
                        return flag_err("access-cred", "user cannot be specified with selected access "
                                                       "credential type and method");
                cred = credential("userPassword", name, "qemuGuestAgent", cJSON_CreateObject());
        } else {
                return die("failed to parse \"--access-cred\" flag: invalid access credential type \"%s\", "
                           "supported values are: ssh, password",
                           type);
        }
        if (!c->access_creds)
                c->access_creds = cJSON_CreateArray();
        cJSON_AddItemToArray(c->access_creds, cred);
        return 0;
}

int createvm_sysprep(createvm *c, char *spec)
{
        static const char *const allowed[] = {"src", "type", NULL};
        param p[2];
        int n;
        if (parse_params("volume-sysprep", spec, allowed, p, 2, &n))
                return EXIT_FAIL;
        char *src = param_get(p, n, "src");
        const char *type = param_get(p, n, "type"), *ns, *name;
        if (!src || !*src)
                return flag_err("volume-sysprep", "src must be specified");
        split_ref(src, &ns, &name);
        if (ns)
                return die("failed to parse \"--volume-sysprep\" flag: not allowed to specify namespace of "
                           "configmap or secret \"%s\"",
                           name);
        bool secret = type && !strcasecmp(type, "secret");
        if (type && !secret && strcasecmp(type, "configmap"))
                return die("failed to parse \"--volume-sysprep\" flag: invalid sysprep source type \"%s\", "
                           "supported values are: configmap, secret",
                           type);
        vol *v = new_vol(c, V_SYSPREP, "sysprepdisk");
        if (!v)
                return die("too many volumes");
        cJSON *sp = cJSON_AddObjectToObject(v->volume, "sysprep");
        cJSON_AddStringToObject(cJSON_AddObjectToObject(sp, secret ? "secret" : "configMap"), "name", name);
        return 0;
}

/* The user data KubeVirt generates: the header, then user, password, keys and the guest agent's SSH right. */
static int generated_user_data(const createvm *c, char *data, size_t size)
{
        size_t len = (size_t)snprintf(data, size, CLOUD_INIT_HEADER);
        if (c->user)
                len += (size_t)snprintf(data + len, size - len, "\nuser: %s", c->user);
        if (c->password_file) {
                char pw[512] = "";
                FILE *f = fopen(c->password_file, "re");
                if (!f || !fgets(pw, sizeof(pw), f)) {
                        if (f)
                                fclose(f);
                        return die("failed to read --password-file %s", c->password_file);
                }
                fclose(f);
                pw[strcspn(pw, "\r\n")] = '\0';
                if (*pw)
                        len += (size_t)snprintf(data + len, size - len,
                                                "\npassword: %s\nchpasswd: { expire: False }", pw);
        }
        for (int i = 0; i < c->n_ssh_keys && len < size; i++)
                len += (size_t)snprintf(data + len, size - len, "%s\n  - %s",
                                        i == 0 ? "\nssh_authorized_keys:" : "", c->ssh_keys[i]);
        if (c->ga_manage_ssh > 0 && len < size)
                len += (size_t)snprintf(data + len, size - len,
                                        "\nruncmd:\n  - [ setsebool, -P, 'virt_qemu_ga_manage_ssh', 'on' ]");
        return len >= size ? die("the generated cloud-init user data is too long") : 0;
}

int createvm_cloudinit(createvm *c)
{
        bool generate = c->user || c->n_ssh_keys || c->password_file || c->ga_manage_ssh_given;
        if (!c->cloud_init_flags)
                return 0;
        if (c->user_data_b64 && generate)
                return die(
                    "--cloud-init-user-data is mutually exclusive with --user, --password-file, --ssh-key "
                    "and --ga-manage-ssh");
        bool configdrive = !strcasecmp(c->cloud_init, "configdrive");
        if (!strcasecmp(c->cloud_init, "none"))
                return 0;
        if (!configdrive && strcasecmp(c->cloud_init, "nocloud"))
                return die(
                    "failed to parse \"--cloud-init\" flag: invalid cloud-init data source type \"%s\", "
                    "supported values are: nocloud, configdrive, none",
                    c->cloud_init);
        char data[8192];
        if (!c->user_data_b64 && generated_user_data(c, data, sizeof(data)))
                return EXIT_FAIL;
        /* only the header and no network data: no disk, unless --cloud-init asked for one */
        if (!c->cloud_init_given && !c->user_data_b64 && !c->network_data_b64 &&
            !strcmp(data, CLOUD_INIT_HEADER))
                return 0;
        vol *v = new_vol(c, V_CLOUDINIT, "cloudinitdisk");
        if (!v)
                return die("too many volumes");
        cJSON *ci =
            cJSON_AddObjectToObject(v->volume, configdrive ? "cloudInitConfigDrive" : "cloudInitNoCloud");
        if (c->network_data_b64)
                cJSON_AddStringToObject(ci, "networkDataBase64", c->network_data_b64);
        if (c->user_data_b64)
                cJSON_AddStringToObject(ci, "userDataBase64", c->user_data_b64);
        else
                cJSON_AddStringToObject(ci, "userData", data);
        return 0;
}
