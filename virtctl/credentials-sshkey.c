/* credentials-sshkey: `virtctl credentials add-ssh-key` and `remove-ssh-key` (KubeVirt's addkey and
 * removekey): the key's lines in the data entries of a user's Secrets, a new Secret owned by the VM with its
 * credential in the VM's template. */
#include "credentials-internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "api.h"
#include "base64.h"
#include "cli.h"
#include "json.h"

#define ACCESS_CREDENTIALS "/spec/template/spec/accessCredentials"
#define MAX_KEY_FILE (64 * 1024)

/* "ssh-key-" and 6 characters of apimachinery's rand.String alphabet (KubeVirt's RandomWithPrefix). */
static int random_key_name(char out[static 16])
{
        static const char alphabet[] = "bcdfghjklmnpqrstvwxz2456789";
        unsigned char b[6];
        if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
                return die("no random bytes for a Secret key: %s", strerror(errno));
        memcpy(out, "ssh-key-", 8);
        for (size_t i = 0; i < sizeof(b); i++)
                out[8 + i] = alphabet[b[i] % (sizeof(alphabet) - 1)];
        out[14] = '\0';
        return 0;
}

static char *trimmed(char *s)
{
        size_t len = strlen(s), start = strspn(s, " \t\r\n\v\f");
        while (len > start && isspace((unsigned char)s[len - 1]))
                s[--len] = '\0';
        memmove(s, s + start, len - start + 1);
        return s;
}

/* The file's text (a public key file is small), or NULL after "Error: …". */
static char *read_key_file(const char *path)
{
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        _cleanup_free_ char *key = f ? calloc(1, MAX_KEY_FILE + 1) : NULL;
        size_t n = key ? fread(key, 1, MAX_KEY_FILE, f) : 0;
        if (!f)
                die("error getting ssh key: open %s: %s", path, strerror(errno));
        else if (!key)
                die("out of memory");
        else if (ferror(f))
                die("error getting ssh key: read %s: %s", path, strerror(errno));
        else if (n == MAX_KEY_FILE)
                die("error getting ssh key: %s is larger than %d bytes", path, MAX_KEY_FILE - 1);
        else
                return TAKE_PTR(key);
        return NULL;
}

/* --value, else the file's text; trimmed, since KubeVirt's lines-start-with-the-key test never matches a key
 * read from a file with its newline. An empty key, which every line starts with, is refused. */
int cred_read_key(const cred_cmd *cmd, char **out)
{
        char *key;
        if (cmd->value && *cmd->value) {
                if (!(key = strdup(cmd->value)))
                        return die("out of memory");
        } else if (!cmd->file) {
                return die("error getting ssh key: one of --file, or --value must be specified");
        } else if (!(key = read_key_file(cmd->file))) {
                return EXIT_FAIL;
        }
        if (!*trimmed(key)) {
                free(key);
                return die("error getting ssh key: %s holds no key", cmd->file ?: "--value");
        }
        *out = key;
        return 0;
}

/* The next line of [*p, end), as Go's strings.Split(s, "\n") gives them: false past the last one. */
static bool next_line(const char **p, const char *end, const char **line, size_t *len)
{
        if (*p > end)
                return false;
        const char *nl = memchr(*p, '\n', (size_t)(end - *p));
        *line = *p;
        *len = nl ? (size_t)(nl - *p) : (size_t)(end - *p);
        *p += *len + 1;
        return true;
}

/* KubeVirt's LineContainsKey: the line, trimmed, starts with the key. */
static bool line_has_key(const char *line, size_t len, const char *key)
{
        size_t k = strlen(key);
        while (len && isspace((unsigned char)*line))
                line++, len--;
        return len >= k && !memcmp(line, key, k);
}

static bool blank(const char *line, size_t len)
{
        while (len && isspace((unsigned char)*line))
                line++, len--;
        return len == 0;
}

/* The decoded value of a data entry (NUL-terminated, *len bytes), or NULL. */
static char *entry_bytes(const cJSON *entry, size_t *len)
{
        char *out = NULL;
        const char *b64 = cJSON_GetStringValue(entry);
        return b64 && base64_decode(b64, 0, &out, len) == 0 ? out : NULL;
}

/* data's lines without those holding key and without blank ones, joined by '\n' (KubeVirt's
 * removeSSHKeyFromBytes); *n: its length. */
static char *without_key(const char *data, size_t len, const char *key, size_t *n)
{
        char *out = malloc(len + 1);
        const char *p = data, *line;
        size_t l;
        *n = 0;
        while (out && next_line(&p, data + len, &line, &l)) {
                if (line_has_key(line, l, key) || blank(line, l))
                        continue;
                if (*n)
                        out[(*n)++] = '\n';
                memcpy(out + *n, line, l);
                *n += l;
        }
        return out;
}

static bool secret_has_key(const cJSON *secret, const char *key)
{
        const cJSON *e;
        cJSON_ArrayForEach(e, kube_obj(secret, "data"))
        {
                size_t len, l;
                _cleanup_free_ char *data = entry_bytes(e, &len);
                const char *p = data, *line;
                while (data && next_line(&p, data + len, &line, &l))
                        if (line_has_key(line, l, key))
                                return true;
        }
        return false;
}

static cJSON *access_credential(const char *secret, const char *user)
{
        cJSON *users = cJSON_CreateArray();
        cJSON_AddItemToArray(users, cJSON_CreateString(user));
        cJSON *method =
            jobj(cJSON_CreateObject(), "qemuGuestAgent", jobj(cJSON_CreateObject(), "users", users));
        cJSON *source =
            jobj(cJSON_CreateObject(), "secret", jstr(cJSON_CreateObject(), "secretName", secret));
        cJSON *ssh = jobj(jobj(cJSON_CreateObject(), "source", source), "propagationMethod", method);
        return jobj(cJSON_CreateObject(), "sshPublicKey", ssh);
}

/* A Secret `<vm>-ssh-key-<random>` owned by the VM (controller) holding the key. */
static cJSON *new_key_secret(const cctx *c)
{
        char gen[300], key[32];
        if (random_key_name(key))
                return NULL;
        _cleanup_free_ char *b64 = base64_encode(c->key, strlen(c->key));
        snprintf(gen, sizeof(gen), "%s-ssh-key-", c->cmd->vm);
        cJSON *refs = cJSON_CreateArray();
        cJSON_AddItemToArray(refs, owner_ref(c->vm, "VirtualMachine"));
        cJSON *md = jobj(jstr(jstr(cJSON_CreateObject(), "generateName", gen), "namespace", c->ns),
                         "ownerReferences", refs);
        cJSON *s =
            jobj(jstr(jstr(cJSON_CreateObject(), "apiVersion", "v1"), "kind", "Secret"), "metadata", md);
        if (!(s = b64 ? jobj(s, "data", jstr(cJSON_CreateObject(), key, b64)) : json_poison(s)))
                die("out of memory");
        return s;
}

/* A new Secret with the key, added to the VM's template: refused while the VMI exists unless --force (it
 * takes effect at the next start). Prints nothing, as KubeVirt's. */
static int add_key_new_secret(const cctx *c)
{
        _cleanup_json_ cJSON *vmi = NULL, *secret = NULL, *created = NULL;
        kv_error err = {0};
        if (!c->cmd->force) {
                int r = kube_get(c->api, &kube_vmi, c->ns, c->cmd->vm, &vmi, &err);
                if (r == 0)
                        return die(
                            "virtual machine %s is running. Use --force flag to update a running VM, it "
                            "will take effect after restart",
                            c->cmd->vm);
                if (r != -KUBE_ENOTFOUND)
                        return die("error when getting virtual machine instance: %s", api_message(&err));
                kv_error_clear(&err);
        }
        if (!(secret = new_key_secret(c)))
                return EXIT_FAIL;
        if (kube_create(c->api, &kube_secret, c->ns, secret, &created, &err) < 0)
                return die("error creating secret: %s", api_message(&err));
        const char *name = kube_str(created, "metadata.name") ?: "";
        if (cred_patch_add(c, &kube_vm, c->cmd->vm, ACCESS_CREDENTIALS, ACCESS_CREDENTIALS "/-",
                           access_credential(name, c->cmd->user), cJSON_CreateArray(), &err) < 0)
                return die("error patching virtual machine: %s", api_message(&err));
        return EXIT_OK;
}

/* The key added to one of the user's Secrets as a new data entry `ssh-key-<random>`. */
static int add_key_to_secret(const cctx *c, const strv *secrets)
{
        const char *name;
        _cleanup_json_ cJSON *secret = NULL;
        char key[32];
        if (!secrets->n)
                return die("no secrets specified for user: %s", c->cmd->user);
        if (cred_pick_secret(c, secrets, &name) || cred_get_secret(c, name, &secret))
                return EXIT_FAIL;
        if (secret_has_key(secret, c->key)) {
                printf("Secret \"%s\" already contains this SSH key.\n", name);
                return EXIT_OK;
        }
        if (cred_check_owner(c, secret, name) || random_key_name(key) ||
            cred_secret_add_data(c, name, key, c->key))
                return EXIT_FAIL;
        printf("Successfully added the key to secret \"%s\"\n", name);
        return EXIT_OK;
}

int cred_add_ssh_key(const cctx *c)
{
        _cleanup_(strv_free) strv secrets = {0};
        if (cred_secrets(c->vm, "sshPublicKey", c->cmd->user, &secrets))
                return EXIT_FAIL;
        bool create = c->cmd->create_secret || (!c->cmd->update_secret && secrets.n == 0);
        return create ? add_key_new_secret(c) : add_key_to_secret(c, &secrets);
}

typedef struct remove_ctx {
        const cctx *c;
        const char *name;
        bool refused;
} remove_ctx;

/* Every data entry without the key's lines and blank lines; entries left empty go. 1 when that changed it. */
static int remove_key_mutate(cJSON *secret, void *userdata)
{
        remove_ctx *rc = userdata;
        if (cred_check_owner(rc->c, secret, rc->name)) {
                rc->refused = true;
                return -EPERM;
        }
        cJSON *data = kube_obj(secret, "data"), *e = data ? data->child : NULL;
        int changed = 0;
        for (cJSON *next; e; e = next) {
                next = e->next;
                size_t len, n;
                _cleanup_free_ char *bytes = entry_bytes(e, &len);
                _cleanup_free_ char *rest = bytes ? without_key(bytes, len, rc->c->key, &n) : NULL;
                _cleanup_free_ char *b64 = rest && n ? base64_encode(rest, n) : NULL;
                if (!rest || (n && !b64) || (n == len && !memcmp(rest, bytes, n)))
                        continue;
                if (n)
                        cJSON_ReplaceItemViaPointer(data, e, cJSON_CreateString(b64));
                else
                        cJSON_Delete(cJSON_DetachItemViaPointer(data, e));
                changed = 1;
        }
        return changed;
}

/* The key removed from each of the user's Secrets (or --secret's); a Secret that is gone is fine. Read,
 * change, update; a 409 reads again. */
int cred_remove_ssh_key(const cctx *c)
{
        _cleanup_(strv_free) strv secrets = {0};
        const char *want = c->cmd->secret;
        if (cred_secrets(c->vm, "sshPublicKey", c->cmd->user, &secrets))
                return EXIT_FAIL;
        if (!secrets.n) {
                printf("No secrets associated with user %s\n", c->cmd->user);
                return EXIT_OK;
        }
        if (want && *want && !strv_contains(&secrets, want))
                return die("secret %s is not associated with user %s", want, c->cmd->user);
        for (size_t i = 0; i < secrets.n; i++) {
                remove_ctx rc = {.c = c, .name = secrets.v[i]};
                kv_error err = {0};
                if (want && *want && strcmp(want, rc.name))
                        continue;
                int r = kube_update_retry(c->api, &kube_secret, c->ns, rc.name, NULL, false,
                                          remove_key_mutate, &rc, NULL, &err);
                if (rc.refused)
                        return EXIT_FAIL;
                if (r < 0 && r != -KUBE_ENOTFOUND)
                        return die("%s", api_message(&err));
        }
        return EXIT_OK;
}
