/* registration: the caBundle of virt-api's webhook configurations and APIService, and the front-proxy CA
 * (registration.h). */
#include "registration.h"

#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "base64.h"
#include "macro.h"

static const kube_resource validating = {"/apis/admissionregistration.k8s.io/v1",
                                         "validatingwebhookconfigurations", "ValidatingWebhookConfiguration",
                                         "admissionregistration.k8s.io/v1", false};
static const kube_resource mutating = {"/apis/admissionregistration.k8s.io/v1",
                                       "mutatingwebhookconfigurations", "MutatingWebhookConfiguration",
                                       "admissionregistration.k8s.io/v1", false};
static const kube_resource apiservice = {"/apis/apiregistration.k8s.io/v1", "apiservices", "APIService",
                                         "apiregistration.k8s.io/v1", false};
static const kube_resource configmap = {"/api/v1", "configmaps", "ConfigMap", "v1", false};
static const kube_resource secret = {"/api/v1", "secrets", "Secret", "v1", false};

static void cjson_freep(cJSON **p)
{
        cJSON_Delete(*p);
}
#define _cleanup_json_ _cleanup_(cjson_freep)

/* Sets obj[key] to value; 1 when it changed. */
static int set_string(cJSON *obj, const char *key, const char *value)
{
        const char *old = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(obj, key));
        if (old && !strcmp(old, value))
                return 0;
        cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
        cJSON_AddStringToObject(obj, key, value);
        return 1;
}

static int webhooks_set_ca(cJSON *obj, void *bundle)
{
        int changed = 0;
        cJSON *w;
        cJSON_ArrayForEach(w, cJSON_GetObjectItemCaseSensitive(obj, "webhooks"))
        {
                cJSON *cc = cJSON_GetObjectItemCaseSensitive(w, "clientConfig");
                if (!cc)
                        cc = cJSON_AddObjectToObject(w, "clientConfig");
                changed |= set_string(cc, "caBundle", bundle);
        }
        return changed;
}

static int apiservice_set_ca(cJSON *obj, void *bundle)
{
        cJSON *spec = cJSON_GetObjectItemCaseSensitive(obj, "spec");
        if (!spec)
                spec = cJSON_AddObjectToObject(obj, "spec");
        return set_string(spec, "caBundle", bundle);
}

static char *b64(const char *text)
{
        return base64_encode(text, strlen(text));
}

int reg_publish_ca(kube_client *api, const char *ca_pem, kv_error *err)
{
        _cleanup_free_ char *bundle = b64(ca_pem);
        if (!bundle)
                return kv_error_set(err, ENOMEM, "caBundle");
        static const struct {
                const kube_resource *res;
                const char *name;
                kube_mutate_fn fn;
        } targets[] = {{&validating, REG_VALIDATING_WEBHOOK, webhooks_set_ca},
                       {&mutating, REG_MUTATING_WEBHOOK, webhooks_set_ca},
                       {&apiservice, REG_APISERVICE, apiservice_set_ca}};
        for (size_t i = 0; i < ARRAY_SIZE(targets); i++) {
                int r = kube_update_retry(api, targets[i].res, NULL, targets[i].name, NULL, false,
                                          targets[i].fn, bundle, NULL, err);
                if (r < 0)
                        return kv_error_wrap(err, "caBundle of %s %s", targets[i].res->kind, targets[i].name);
        }
        return 0;
}

/* A JSON list of strings ("[\"a\",\"b\"]", as the ConfigMap holds it) as "a,b". */
static char *names_csv(const char *json)
{
        _cleanup_json_ cJSON *list = json ? cJSON_Parse(json) : NULL;
        size_t cap = json ? strlen(json) + 1 : 1, len = 0;
        char *out = calloc(1, cap);
        const cJSON *e;
        cJSON_ArrayForEach(e, list) if (cJSON_IsString(e) && out)
        {
                len += (size_t)snprintf(out + len, cap - len, "%s%s", len ? "," : "", e->valuestring);
        }
        return out;
}

int reg_front_proxy(kube_client *api, char **ca_pem, char **allowed_names, kv_error *err)
{
        _cleanup_json_ cJSON *cm = NULL;
        int r = kube_get(api, &configmap, REG_AUTH_CONFIGMAP_NS, REG_AUTH_CONFIGMAP, &cm, err);
        if (r < 0)
                return kv_error_wrap(err, "front-proxy CA: configmap %s/%s", REG_AUTH_CONFIGMAP_NS,
                                     REG_AUTH_CONFIGMAP);
        const char *ca = kube_str(cm, "data.requestheader-client-ca-file");
        if (!ca || !strstr(ca, "-----BEGIN CERTIFICATE"))
                return kv_error_set(err, ENOENT,
                                    "front-proxy CA: configmap %s/%s has no "
                                    "requestheader-client-ca-file",
                                    REG_AUTH_CONFIGMAP_NS, REG_AUTH_CONFIGMAP);
        *ca_pem = strdup(ca);
        *allowed_names = names_csv(kube_str(cm, "data.requestheader-allowed-names"));
        if (!*ca_pem || !*allowed_names) {
                free(*ca_pem);
                free(*allowed_names);
                return kv_error_set(err, ENOMEM, "front-proxy CA");
        }
        return 0;
}

/* data of the handler Secret: set each key; 1 when something changed. */
static int secret_set_data(cJSON *obj, void *data)
{
        cJSON *have = cJSON_GetObjectItemCaseSensitive(obj, "data");
        if (!have)
                have = cJSON_AddObjectToObject(obj, "data");
        int changed = 0;
        const cJSON *kv;
        cJSON_ArrayForEach(kv, (const cJSON *)data) changed |= set_string(have, kv->string, kv->valuestring);
        return changed;
}

int reg_publish_handler_secret(kube_client *api, const char *ns, const char *ca_pem, const char *crt_pem,
                               const char *key_pem, kv_error *err)
{
        _cleanup_json_ cJSON *obj = cJSON_CreateObject();
        cJSON *meta = cJSON_AddObjectToObject(obj, "metadata"), *data = cJSON_AddObjectToObject(obj, "data");
        const char *keys[] = {"ca.crt", "tls.crt", "tls.key"}, *values[] = {ca_pem, crt_pem, key_pem};
        cJSON_AddStringToObject(obj, "apiVersion", "v1");
        cJSON_AddStringToObject(obj, "kind", "Secret");
        cJSON_AddStringToObject(obj, "type", "kubernetes.io/tls");
        cJSON_AddStringToObject(meta, "name", REG_HANDLER_SECRET);
        cJSON_AddStringToObject(meta, "namespace", ns);
        for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
                _cleanup_free_ char *v = b64(values[i]);
                if (!v || !cJSON_AddStringToObject(data, keys[i], v))
                        return kv_error_set(err, ENOMEM, "Secret %s", REG_HANDLER_SECRET);
        }
        int r = kube_create(api, &secret, ns, obj, NULL, err);
        if (r == -KUBE_EEXISTS)
                r = kube_update_retry(api, &secret, ns, REG_HANDLER_SECRET, NULL, false, secret_set_data,
                                      data, NULL, err);
        return r < 0 ? kv_error_wrap(err, "Secret %s/%s", ns, REG_HANDLER_SECRET) : 0;
}
