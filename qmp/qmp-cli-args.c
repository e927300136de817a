/* The `qmp` CLI's request language: words -> {"execute", "arguments"}. */
#include "qmp-cli-args.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"

/* --- tokenizer ------------------------------------------------------------------------------------ */

typedef struct word {
        char *buf;
        size_t len;
        bool active; /* a word is open, even if empty ("") */
} word;

static int word_put(word *w, char c)
{
        char *nb = realloc(w->buf, w->len + 2);
        if (!nb)
                return -ENOMEM;
        w->buf = nb;
        w->buf[w->len++] = c;
        w->buf[w->len] = '\0';
        w->active = true;
        return 0;
}

static int word_end(word *w, strv *out)
{
        if (!w->active)
                return 0;
        int r = strv_push_take(out, w->buf ? w->buf : strdup(""));
        *w = (word){0};
        return r;
}

/* Consume a quoted section starting after the opening quote; returns the index after the closing one. */
static long quoted(const char *s, long i, char q, word *w)
{
        w->active = true;
        for (; s[i] && s[i] != q; i++) {
                if (q == '"' && s[i] == '\\' && (s[i + 1] == '"' || s[i + 1] == '\\'))
                        i++;
                if (word_put(w, s[i]) < 0)
                        return -ENOMEM;
        }
        return s[i] == q ? i + 1 : -EINVAL;
}

int qmp_cli_tokenize(const char *line, strv *out, kv_error *err)
{
        word w = {0};
        long i = 0;
        int r = 0;
        while (line[i] && r >= 0) {
                char c = line[i];
                if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
                        r = word_end(&w, out);
                        i++;
                } else if (c == '\'' || c == '"') {
                        long next = quoted(line, i + 1, c, &w);
                        if (next < 0) {
                                r = (int)next;
                                break;
                        }
                        i = next;
                } else {
                        if (c == '\\' && line[i + 1])
                                c = line[++i];
                        r = word_put(&w, c);
                        i++;
                }
        }
        if (r >= 0)
                r = word_end(&w, out);
        free(w.buf);
        if (r == -EINVAL)
                return kv_error_set(err, EINVAL, "unterminated quote in: %s", line);
        if (r < 0)
                return kv_error_set(err, ENOMEM, "out of memory");
        return 0;
}

/* --- key=value arguments -------------------------------------------------------------------------- */

/* key=value: a value that parses as JSON keeps its type (42, true, null, "x", [..], {..}); anything
 * else is a string. key:=value is always a string. */
static cJSON *typed_value(const char *value, bool force_string)
{
        if (!force_string) {
                cJSON *v = cJSON_ParseWithOpts(value, NULL, true);
                if (v)
                        return v;
        }
        return cJSON_CreateString(value);
}

/* Walk/create the objects for a.b.c and return the parent of the leaf; *leaf points into key. */
static cJSON *parent_for(cJSON *root, char *key, const char *word_text, char **leaf, kv_error *err)
{
        cJSON *cur = root;
        char *dot;
        while ((dot = strchr(key, '.'))) {
                *dot = '\0';
                if (!*key) {
                        kv_error_set(err, EINVAL, "argument '%s': empty key component", word_text);
                        return NULL;
                }
                cJSON *next = cJSON_GetObjectItemCaseSensitive(cur, key);
                if (!next)
                        next = cJSON_AddObjectToObject(cur, key);
                else if (!cJSON_IsObject(next)) {
                        kv_error_set(err, EINVAL, "argument '%s': '%s' is already set to a non-object",
                                     word_text, key);
                        return NULL;
                }
                if (!next) {
                        kv_error_set(err, ENOMEM, "out of memory");
                        return NULL;
                }
                cur = next;
                key = dot + 1;
        }
        if (!*key) {
                kv_error_set(err, EINVAL, "argument '%s': empty key", word_text);
                return NULL;
        }
        *leaf = key;
        return cur;
}

static int add_word(cJSON *root, const char *text, kv_error *err)
{
        const char *eq = strchr(text, '=');
        if (!eq || eq == text)
                return kv_error_set(
                    err, EINVAL, "argument '%s': expected key=value, key:=string or one JSON object", text);
        bool force_string = eq[-1] == ':';
        _cleanup_free_ char *key = strndup(text, (size_t)(eq - text) - (force_string ? 1 : 0));
        if (!key)
                return kv_error_set(err, ENOMEM, "out of memory");
        char *leaf;
        cJSON *parent = parent_for(root, key, text, &leaf, err);
        if (!parent)
                return -err->code;
        if (cJSON_GetObjectItemCaseSensitive(parent, leaf))
                return kv_error_set(err, EINVAL, "argument '%s': key '%s' given twice", text, leaf);
        cJSON *v = typed_value(eq + 1, force_string);
        if (!v || !cJSON_AddItemToObject(parent, leaf, v)) {
                cJSON_Delete(v);
                return kv_error_set(err, ENOMEM, "out of memory");
        }
        return 0;
}

int qmp_cli_build_args(char *const *words, size_t n, cJSON **args, kv_error *err)
{
        *args = NULL;
        if (n == 0)
                return 0;
        if (n == 1 && words[0][0] == '{') {
                *args = cJSON_Parse(words[0]);
                if (!cJSON_IsObject(*args)) {
                        cJSON_Delete(*args);
                        *args = NULL;
                        return kv_error_set(err, EINVAL, "arguments '%s': not a valid JSON object", words[0]);
                }
                return 0;
        }
        cJSON *root = cJSON_CreateObject();
        if (!root)
                return kv_error_set(err, ENOMEM, "out of memory");
        for (size_t i = 0; i < n; i++) {
                int r = add_word(root, words[i], err);
                if (r < 0) {
                        cJSON_Delete(root);
                        return r;
                }
        }
        *args = root;
        return 0;
}

/* --- transaction( TYPE k=v ... ; TYPE k=v ... ) ------------------------------------------------------ */

static int add_action(cJSON *actions, char *const *words, size_t n, kv_error *err)
{
        if (n == 0)
                return kv_error_set(err, EINVAL, "transaction: empty action (two ';' in a row?)");
        cJSON *data = NULL;
        int r = qmp_cli_build_args(words + 1, n - 1, &data, err);
        if (r < 0)
                return kv_error_wrap(err, "transaction action %s", words[0]);
        cJSON *action = cJSON_CreateObject();
        if (!action || !cJSON_AddStringToObject(action, "type", words[0]) ||
            !cJSON_AddItemToObject(action, "data", data ? data : cJSON_CreateObject())) {
                cJSON_Delete(action);
                return kv_error_set(err, ENOMEM, "out of memory");
        }
        cJSON_AddItemToArray(actions, action);
        return 0;
}

static int build_transaction(char *const *words, size_t n, cJSON *actions, kv_error *err)
{
        if (n == 0 || strcmp(words[n - 1], ")") != 0)
                return kv_error_set(err, EINVAL,
                                    "transaction: missing closing ')' (write it as a separate word)");
        n--;
        size_t start = 0;
        for (size_t i = 0; i <= n; i++) {
                if (i < n && strcmp(words[i], ";") != 0)
                        continue;
                if (i == n && start == n) { /* nothing after the last ';' */
                        if (cJSON_GetArraySize(actions) == 0)
                                return kv_error_set(err, EINVAL, "transaction: no actions");
                        break;
                }
                int r = add_action(actions, words + start, i - start, err);
                if (r < 0)
                        return r;
                start = i + 1;
        }
        return 0;
}

int qmp_cli_build_request(char *const *words, size_t n, char **command, cJSON **args, kv_error *err)
{
        *command = NULL;
        *args = NULL;
        if (n == 0)
                return kv_error_set(err, EINVAL, "no command given");
        if (strcmp(words[0], "transaction(") != 0) {
                int r = qmp_cli_build_args(words + 1, n - 1, args, err);
                if (r < 0)
                        return r;
                *command = strdup(words[0]);
        } else {
                cJSON *root = cJSON_CreateObject();
                cJSON *actions = cJSON_AddArrayToObject(root, "actions");
                if (!actions) {
                        cJSON_Delete(root);
                        return kv_error_set(err, ENOMEM, "out of memory");
                }
                int r = build_transaction(words + 1, n - 1, actions, err);
                if (r < 0) {
                        cJSON_Delete(root);
                        return r;
                }
                *args = root;
                *command = strdup("transaction");
        }
        if (!*command) {
                cJSON_Delete(*args);
                *args = NULL;
                return kv_error_set(err, ENOMEM, "out of memory");
        }
        return 0;
}
