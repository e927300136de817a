/* A fixed-size byte ring that keeps the most recent output (the console backlog shown on attach). */
#pragma once
#include <stddef.h>

#define RING_SIZE (64 * 1024)

typedef struct ring {
        char buf[RING_SIZE];
        size_t head; /* next write position */
        size_t len;  /* bytes held, <= RING_SIZE */
} ring;

/* Append, overwriting the oldest bytes when full. */
void ring_append(ring *r, const char *data, size_t n);
/* The held bytes in order as at most two spans: (a, alen) then (b, blen). */
void ring_spans(const ring *r, const char **a, size_t *alen, const char **b, size_t *blen);
