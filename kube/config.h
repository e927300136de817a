/* Where the API server is and how to authenticate to it: kubeconfig files and in-cluster service
 * accounts, validated up front so a bad field is reported by name before any request is made. */
#pragma once

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "error.h"

typedef struct kube_config {
        char *server;    /* "https://host:port", no trailing slash */
        char *namespace; /* default namespace (context or service account), never NULL */
        char *ca_file;   /* PEM path, or NULL */
        char *ca_data;   /* decoded PEM bytes, or NULL */
        size_t ca_data_len;
        bool insecure;
        char *tls_server_name;
        char *token;      /* static bearer token */
        char *token_file; /* re-read when it changes (bound service-account tokens rotate) */
        char *cert_file, *key_file;
        char *cert_data, *key_data; /* decoded PEM, passed to curl as blobs */
        size_t cert_data_len, key_data_len;
        char *username, *password;

        pthread_mutex_t token_lock;
        char *file_token; /* last content read from token_file */
        time_t token_mtime;
        off_t token_size;
        ino_t token_ino;
} kube_config;

/* Parses a kubeconfig document already converted to JSON. `dir` resolves relative file paths; `context`
 * overrides current-context when non-NULL. */
int kube_config_from_json(kube_config *cfg, const cJSON *doc, const char *dir, const char *context,
                          kv_error *err);
/* Loads one kubeconfig file (YAML or JSON). */
int kube_config_from_file(kube_config *cfg, const char *path, const char *context, kv_error *err);
/* $KUBECONFIG's first file, else ~/.kube/config. */
int kube_config_from_default(kube_config *cfg, const char *context, kv_error *err);
/* The pod's service account: $KUBERNETES_SERVICE_HOST/PORT and the files under
 * $KVLITE_SA_DIR (default /var/run/secrets/kubernetes.io/serviceaccount, overridable for tests). */
int kube_config_in_cluster(kube_config *cfg, kv_error *err);
/* What a cluster component (controller, virt-api, node agent) runs with: --in-cluster, else the --kubeconfig
 * file, else the service account when $KUBERNETES_SERVICE_HOST is set and no context is asked for, else the
 * default kubeconfig. */
int kube_config_load(kube_config *cfg, const char *kubeconfig, const char *context, bool in_cluster,
                     kv_error *err);
/* The current bearer token (re-reading token_file if it changed), malloc'd, or NULL when there is none. */
int kube_config_bearer(kube_config *cfg, char **token, kv_error *err);
void kube_config_free(kube_config *cfg);
