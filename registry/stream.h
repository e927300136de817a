/* A producer thread (an HTTP transfer) writing into a socket that a consumer (libarchive) reads: turns
 * curl's push into libarchive's pull with a bounded in-kernel buffer and no temporary file. */
#pragma once

#include <pthread.h>
#include <stdbool.h>

#include "error.h"
#include "http.h"

/* The producer: streams everything to sink(sink_ctx, …) and returns 0 or a negative errno with err set. */
typedef int (*kvreg_producer)(void *ctx, kvreg_sink sink, void *sink_ctx, kv_error *err);

typedef struct kvreg_stream {
        pthread_t thread;
        int wfd; /* producer's end */
        kvreg_producer fn;
        void *ctx;
        int rc;
        kv_error err;
} kvreg_stream;

/* Starts the producer; *read_fd is the consumer's end (owned by the caller). */
int kvreg_stream_start(kvreg_stream *s, kvreg_producer fn, void *ctx, int *read_fd, kv_error *err);
/* With drain, reads read_fd to its end (so the producer sees the whole body and verifies it); without,
 * the producer is cut off. Closes read_fd, joins the producer and returns its result (err set on
 * failure). */
int kvreg_stream_finish(kvreg_stream *s, int read_fd, bool drain, kv_error *err);
