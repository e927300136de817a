/* credentials: KubeVirt's `virtctl credentials` (pkg/virtctl/credentials): its flags and checks, the Secrets
 * a VM's accessCredentials name, the patches that add to a Secret's data, and set-password. The SSH key
 * commands: credentials-sshkey.c. Messages are KubeVirt's. */
#include "credentials.h"
#include "credentials-internal.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "base64.h"
#include "cli.h"
#include "json.h"

static void usage(void)
{
        puts("Usage: virtctl credentials add-ssh-key|remove-ssh-key|set-password VM [flags]\n"
             "Manipulate credentials on a virtual machine.\n\n"
             "  add-ssh-key VM --user U (--file F | --value KEY) [--secret S]\n"
             "              [--create-secret | --update-secret] [--force]\n"
             "  remove-ssh-key VM --user U (--file F | --value KEY) [--secret S] [--force]\n"
             "  set-password VM --user U --password P [--secret S] [--force]");
}

/* ---- flags, checked in cobra's order: syntax, arguments, required flags, exclusive groups -------------- */

enum { O_SECRET = 256, O_VALUE, O_CREATE, O_UPDATE, O_FORCE };

static const struct option longopts[] = {{"user", required_argument, NULL, 'u'},
                                         {"secret", required_argument, NULL, O_SECRET},
                                         {"file", required_argument, NULL, 'f'},
                                         {"value", required_argument, NULL, O_VALUE},
                                         {"password", required_argument, NULL, 'p'},
                                         {"create-secret", no_argument, NULL, O_CREATE},
                                         {"update-secret", no_argument, NULL, O_UPDATE},
                                         {"force", no_argument, NULL, O_FORCE},
                                         {NULL, 0, NULL, 0}};

/* Whether the subcommand has the flag: user, secret and force are everyone's. */
static bool has_flag(cred_verb verb, int opt)
{
        switch (opt) {
        case 'f':
        case O_VALUE:
                return verb != CRED_SET_PASSWORD;
        case 'p':
                return verb == CRED_SET_PASSWORD;
        case O_CREATE:
        case O_UPDATE:
                return verb == CRED_ADD_SSH_KEY;
        default:
                return true;
        }
}

/* li: the long option's index, -1 for a short one. */
static int take_flag(cred_cmd *c, int opt, int li)
{
        if (!has_flag(c->verb, opt))
                return li >= 0 ? die("unknown flag: --%s", longopts[li].name)
                               : die("unknown shorthand flag: '%c' in -%c", opt, opt);
        const char **value = opt == 'u'        ? &c->user
                             : opt == O_SECRET ? &c->secret
                             : opt == 'f'      ? &c->file
                             : opt == O_VALUE  ? &c->value
                             : opt == 'p'      ? &c->password
                                               : NULL;
        bool *on = opt == O_CREATE ? &c->create_secret : opt == O_UPDATE ? &c->update_secret : &c->force;
        if (value)
                *value = optarg;
        else
                *on = true;
        return 0;
}

/* getopt's '?' (unknown, or a value given to a switch) and ':' (no value), in cobra's words. */
static int flag_error(int opt, const char *word)
{
        if (opt == ':')
                return die("flag needs an argument: %s", word);
        if (optopt > 0 && optopt < 256)
                return die("unknown shorthand flag: '%c' in %s", optopt, word);
        return optopt ? die("bad flag syntax: %s", word) : die("unknown flag: %s", word);
}

static int check_flags(const cred_cmd *c)
{
        bool no_pw = c->verb == CRED_SET_PASSWORD && !c->password;
        if (no_pw || !c->user)
                return die("required flag(s) %s%s%s not set", no_pw ? "\"password\"" : "",
                           no_pw && !c->user ? ", " : "", c->user ? "" : "\"user\"");
        if (c->create_secret && c->update_secret)
                return die(
                    "if any flags in the group [create-secret update-secret] are set none of the others "
                    "can be; [create-secret update-secret] were all set");
        if (c->file && c->value)
                return die(
                    "if any flags in the group [file value] are set none of the others can be; [file value] "
                    "were all set");
        return 0;
}

int credentials_parse(int argc, char **argv, cred_cmd *c)
{
        static const char *const verbs[] = {"add-ssh-key", "remove-ssh-key", "set-password"};
        *c = (cred_cmd){0};
        if (argc < 1) {
                usage();
                return -1;
        }
        size_t v = 0;
        while (v < 3 && strcmp(argv[0], verbs[v]))
                v++;
        if (v == 3)
                return argv[0][0] == '-' ? die("unknown flag: %s", argv[0])
                                         : die("unknown command \"%s\" for \"virtctl credentials\"", argv[0]);
        c->verb = (cred_verb)v;
        int opt, r = 0;
        optind = 1;
        opterr = 0; /* KubeVirt's words below */
        for (int li = -1; !r && (opt = getopt_long(argc, argv, ":u:f:p:", longopts, &li)) != -1; li = -1)
                r = opt == '?' || opt == ':' ? flag_error(opt, argv[optind - 1]) : take_flag(c, opt, li);
        if (r)
                return r;
        if (argc - optind != 1)
                return die("accepts 1 arg(s), received %d", argc - optind);
        c->vm = argv[optind];
        return check_flags(c);
}

/* ---- the VM's credentials and their Secrets ------------------------------------------------------------ */

static bool str_eq(const char *a, const char *b)
{
        return a && b && !strcmp(a, b);
}

static bool lists(const cJSON *array, const char *s)
{
        const cJSON *e;
        cJSON_ArrayForEach(e, array)
        {
                if (str_eq(cJSON_GetStringValue(e), s))
                        return true;
        }
        return false;
}

int cred_secrets(const cJSON *vm, const char *kind, const char *user, strv *out)
{
        const cJSON *ac;
        cJSON_ArrayForEach(ac, kube_obj(vm, "spec.template.spec.accessCredentials"))
        {
                const cJSON *cred = cJSON_GetObjectItemCaseSensitive(ac, kind);
                const char *secret = kube_str(cred, "source.secret.secretName");
                const cJSON *agent = kube_obj(cred, "propagationMethod.qemuGuestAgent");
                if (!secret || !*secret || !cJSON_IsObject(agent) ||
                    (user && !lists(kube_obj(agent, "users"), user)))
                        continue;
                if (strv_push(out, secret) < 0)
                        return die("out of memory");
        }
        return 0;
}

int cred_pick_secret(const cctx *c, const strv *secrets, const char **out)
{
        const char *want = c->cmd->secret;
        if (want && *want) {
                if (!strv_contains(secrets, want))
                        return die("secret %s was not assigned", want);
                *out = want;
        } else {
                if (secrets->n > 1)
                        return die(
                            "multiple secrets specified, use option --secret to specify which secret to "
                            "modify");
                *out = secrets->v[0];
        }
        return 0;
}

static bool owned_by_vm(const cJSON *secret, const cJSON *vm)
{
        const cJSON *ref;
        cJSON_ArrayForEach(ref, kube_obj(secret, "metadata.ownerReferences"))
        {
                if (str_eq(kube_str(ref, "kind"), "VirtualMachine") &&
                    str_eq(kube_str(ref, "name"), kube_str(vm, "metadata.name")) &&
                    str_eq(kube_str(ref, "uid"), kube_str(vm, "metadata.uid")))
                        return true;
        }
        return false;
}

int cred_check_owner(const cctx *c, const cJSON *secret, const char *name)
{
        if (c->cmd->force || owned_by_vm(secret, c->vm))
                return 0;
        return die("secret %s does not have an owner reference pointing to VM %s", name, c->cmd->vm);
}

int cred_get_secret(const cctx *c, const char *name, cJSON **out)
{
        kv_error err = {0};
        if (kube_get(c->api, &kube_secret, c->ns, name, out, &err) < 0)
                return die("error getting secret \"%s\": %s", name, api_message(&err));
        return 0;
}

/* ---- JSON patches -------------------------------------------------------------------------------------- */

static cJSON *patch_op(cJSON *ops, const char *op, const char *path, cJSON *value)
{
        cJSON *o = jobj(jstr(jstr(cJSON_CreateObject(), "op", op), "path", path), "value", value);
        if (!ops || !o) {
                cJSON_Delete(o);
                cJSON_Delete(ops);
                return NULL;
        }
        cJSON_AddItemToArray(ops, o);
        return ops;
}

static int json_patch(const cctx *c, const kube_resource *res, const char *name, const cJSON *ops,
                      kv_error *err)
{
        _cleanup_free_ char *path = kube_path(res, c->ns, name, NULL);
        _cleanup_free_ char *body = ops ? cJSON_PrintUnformatted(ops) : NULL;
        if (!path || !body)
                return kv_error_set(err, ENOMEM, "out of memory");
        return kube_request(c->api, "PATCH", path, "application/json-patch+json", body, NULL, err);
}

int cred_patch_add(const cctx *c, const kube_resource *res, const char *name, const char *parent,
                   const char *path, cJSON *value, cJSON *empty, kv_error *err)
{
        _cleanup_json_ cJSON *one = patch_op(cJSON_CreateArray(), "add", path, cJSON_Duplicate(value, 1));
        _cleanup_json_ cJSON *two = patch_op(
            patch_op(patch_op(cJSON_CreateArray(), "test", parent, cJSON_CreateNull()), "add", parent, empty),
            "add", path, value);
        if (json_patch(c, res, name, one, err) == 0)
                return 0;
        kv_error_clear(err);
        return json_patch(c, res, name, two, err);
}

/* The value goes base64, as the API holds a Secret's data. */
int cred_secret_add_data(const cctx *c, const char *secret, const char *key, const char *value)
{
        _cleanup_free_ char *b64 = base64_encode(value, strlen(value));
        char path[512];
        kv_error err = {0};
        snprintf(path, sizeof(path), "/data/%s", key);
        if (!b64)
                return die("out of memory");
        if (cred_patch_add(c, &kube_secret, secret, "/data", path, cJSON_CreateString(b64),
                           cJSON_CreateObject(), &err) < 0)
                return die("error patching secret \"%s\": %s", secret, api_message(&err));
        return 0;
}

/* ---- passwords ----------------------------------------------------------------------------------------- */

/* data[user] = password in the VM's userPassword Secret (the only one, or --secret). */
static int cmd_set_password(const cctx *c)
{
        _cleanup_(strv_free) strv secrets = {0};
        _cleanup_json_ cJSON *secret = NULL;
        const char *name;
        if (cred_secrets(c->vm, "userPassword", NULL, &secrets))
                return EXIT_FAIL;
        if (!secrets.n)
                return die("no secrets assigned to UserPassword AccessCredentials");
        if (cred_pick_secret(c, &secrets, &name))
                return EXIT_FAIL;
        if (!c->cmd->force && (cred_get_secret(c, name, &secret) || cred_check_owner(c, secret, name)))
                return EXIT_FAIL;
        if (cred_secret_add_data(c, name, c->cmd->user, c->cmd->password))
                return EXIT_FAIL;
        printf("Successfully set password in secret \"%s\"\n", name);
        return EXIT_OK;
}

int credentials_run(kube_client *api, const char *ns, const cred_cmd *cmd)
{
        cctx c = {.api = api, .ns = ns, .cmd = cmd};
        kv_error err = {0};
        /* the key is read before the cluster is asked, as KubeVirt's */
        if (cmd->verb != CRED_SET_PASSWORD && cred_read_key(cmd, &c.key))
                return EXIT_FAIL;
        int rc;
        if (kube_get(api, &kube_vm, ns, cmd->vm, &c.vm, &err) < 0)
                rc = die("error getting virtual machine: %s", api_message(&err));
        else
                rc = cmd->verb == CRED_ADD_SSH_KEY      ? cred_add_ssh_key(&c)
                     : cmd->verb == CRED_REMOVE_SSH_KEY ? cred_remove_ssh_key(&c)
                                                        : cmd_set_password(&c);
        cJSON_Delete(c.vm);
        free(c.key);
        return rc;
}
