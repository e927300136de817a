/* The registry configuration: per registry host or prefix, the mirrors to pull from in priority order,
 * each with its credentials and TLS settings (docs/registries.md). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "reference.h"

typedef struct kvreg_mirror {
        char *location;  /* host[:port][/path], as configured */
        bool plain_http; /* http:// instead of https:// */
        bool insecure;   /* https without certificate verification */
        char *ca_file;
        char *username;
        char *password;
} kvreg_mirror;

typedef struct kvreg_rule {
        char *prefix; /* "host[:port][/repo/path]" */
        kvreg_mirror *mirrors;
        size_t n_mirrors;
} kvreg_rule;

typedef struct kvreg_config {
        kvreg_rule *rules;
        size_t n_rules;
        long connect_timeout_ms;  /* per connection attempt (default 3000) */
        long low_speed_time_s;    /* a transfer below 1 KiB/s for this long is dropped (default 10) */
        long response_timeout_ms; /* request sent → first byte of the response (default 1000) */
        /* A DataVolume's own credentials and CA (CDI's registry secretRef and certConfigMap): used for the
         * registry the reference names, and for a mirror on that same host that has none of its own. Never
         * sent to another host. location is unused. */
        kvreg_mirror source;
} kvreg_config;

/* One registry to try for one image: base URL ("https://host:port") and the repository there. */
typedef struct kvreg_endpoint {
        char *name;     /* host[:port] for reports */
        char *base_url; /* scheme://host[:port] */
        char *repo;
        const kvreg_mirror *mirror; /* settings (points into the config or the endpoint's own default) */
        kvreg_mirror own;           /* used when no rule matched */
        char *token;                /* cached bearer token */
        bool dead;                  /* connection failed: skip it for the rest of this pull */
} kvreg_endpoint;

void kvreg_config_init(kvreg_config *c);
/* YAML or JSON text. Returns 0 or -EINVAL naming the bad key. */
int kvreg_config_parse(const char *text, size_t len, kvreg_config *c, kv_error *err);
int kvreg_config_load(const char *path, kvreg_config *c, kv_error *err);
void kvreg_config_done(kvreg_config *c);
/* Sets c->source (copies the strings; NULL leaves a field unset). */
int kvreg_config_set_source(kvreg_config *c, const char *username, const char *password, const char *ca_file,
                            bool insecure);

/* The endpoints for ref: the mirrors of the longest matching prefix (the matched prefix replaced by each
 * mirror's location), or the reference's own registry over https when no rule matches. */
int kvreg_config_endpoints(const kvreg_config *c, const kvreg_ref *ref, kvreg_endpoint **out, size_t *n,
                           kv_error *err);
void kvreg_endpoints_free(kvreg_endpoint *e, size_t n);
