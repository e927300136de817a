/* QMP transport framing: turns a byte stream into lines (one JSON message each) with a hard cap on the
 * line size. Pure: no I/O, so golden tests and the fuzzer drive it directly. */
#pragma once

#include <stddef.h>

#include "error.h"

#define QMP_DEFAULT_MAX_LINE (16u * 1024 * 1024)

typedef struct qmp_framer {
        char *buf;
        size_t start; /* first unconsumed byte */
        size_t len;   /* bytes held from start */
        size_t cap;
        size_t scanned; /* bytes after start already known to hold no '\n' */
        size_t max_line;
} qmp_framer;

void qmp_framer_init(qmp_framer *f, size_t max_line);
void qmp_framer_free(qmp_framer *f);
/* Space for at least `want` more bytes; *dst points at it and *avail is its size. -ENOMEM. */
int qmp_framer_reserve(qmp_framer *f, size_t want, char **dst, size_t *avail);
void qmp_framer_commit(qmp_framer *f, size_t n);
/* Convenience for tests and the fuzzer: reserve + copy + commit. */
int qmp_framer_feed(qmp_framer *f, const void *data, size_t n);
/* Next complete line without its "\n" / "\r\n" (blank lines are skipped), valid until the next framer
 * call. Returns 1 with a line, 0 when more bytes are needed, -E2BIG when the line exceeds max_line. */
int qmp_framer_next(qmp_framer *f, const char **line, size_t *len, kv_error *err);
/* Bytes of an incomplete line held (non-zero at EOF means the peer closed mid-message). */
size_t qmp_framer_pending(const qmp_framer *f);
