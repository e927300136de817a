/* registration: what virt-api keeps up to date in the cluster about itself, as KubeVirt's operator does:
 * its CA in the caBundle of its webhook configurations and APIService, and what it reads back from it: the
 * front-proxy CA the API server signs its proxy client certificate with. */
#pragma once

#include "client.h"
#include "error.h"

/* KubeVirt's object names (crds/32-virt-api-apiservice.yaml, crds/33-virt-api-webhooks.yaml). */
#define REG_VALIDATING_WEBHOOK "virt-api-validator"
#define REG_MUTATING_WEBHOOK "virt-api-mutator"
#define REG_APISERVICE "v1.subresources.kubevirt.io"
/* Where kube-apiserver publishes the front-proxy CA (requestheader-client-ca-file). */
#define REG_AUTH_CONFIGMAP_NS "kube-system"
#define REG_AUTH_CONFIGMAP "extension-apiserver-authentication"

/* Writes ca_pem (base64) into every webhook's clientConfig.caBundle of the two configurations and into the
 * APIService's spec.caBundle; an object that is already right is not written. 0, or negative with err
 * naming the object (a missing object is an error: `kubectl apply -f crds/` creates them). */
int reg_publish_ca(kube_client *api, const char *ca_pem, kv_error *err);

/* The front-proxy CA (PEM) and the allowed client names (requestheader-allowed-names, comma-separated, ""
 * for any) from kube-system/extension-apiserver-authentication. Both malloc'd. */
int reg_front_proxy(kube_client *api, char **ca_pem, char **allowed_names, kv_error *err);

/* The Secret virt-handler mounts for the console channel (docs/console.md): ca.crt (virt-api's CA), tls.crt
 * and tls.key (virt-handler's server certificate, signed by that CA). */
#define REG_HANDLER_SECRET "kvlite-handler-certs"

/* Creates or updates ns/REG_HANDLER_SECRET with the three PEM texts; an object already right is not written.
 */
int reg_publish_handler_secret(kube_client *api, const char *ns, const char *ca_pem, const char *crt_pem,
                               const char *key_pem, kv_error *err);
