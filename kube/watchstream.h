/* Incremental decoder for a watch response body: newline-delimited {"type":..,"object":..} events arriving
 * in arbitrary chunks from libcurl. Pure (no I/O), so it is unit-tested and fuzzed directly. */
#pragma once

#include <cjson/cJSON.h>
#include <stddef.h>

#include "error.h"

enum kube_event_type { KUBE_ADDED, KUBE_MODIFIED, KUBE_DELETED, KUBE_BOOKMARK, KUBE_ERROR };

/* Called once per complete event; takes ownership of object. Return <0 to stop the stream. */
typedef int (*kube_event_fn)(enum kube_event_type type, cJSON *object, void *userdata);

typedef struct kube_watchstream {
        char *line;
        size_t len, cap;
        size_t max_line; /* longer lines are discarded as garbage (default 32 MiB) */
        int discarding;  /* inside an over-long line */
        unsigned long events;
        unsigned long bad_lines; /* undecodable lines skipped so far */
        char last_error[256];    /* why the last bad line was rejected */
        kube_event_fn fn;
        void *userdata;
} kube_watchstream;

void kube_watchstream_init(kube_watchstream *ws, kube_event_fn fn, void *userdata);
/* Feeds a chunk. Returns 0, or the callback's negative value (decoding stops there). Garbage lines are
 * counted in bad_lines and skipped: the caller decides whether to restart the watch. */
int kube_watchstream_feed(kube_watchstream *ws, const char *data, size_t n);
void kube_watchstream_reset(kube_watchstream *ws); /* drops a partial line (new connection) */
void kube_watchstream_free(kube_watchstream *ws);

/* Decodes one line. On success *object is owned by the caller. */
int kube_event_decode(const char *line, size_t len, enum kube_event_type *type, cJSON **object,
                      kv_error *err);
const char *kube_event_type_name(enum kube_event_type t);
