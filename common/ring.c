/* Console backlog ring: new bytes overwrite the oldest ones. */
#include "ring.h"

#include <string.h>

void ring_append(ring *r, const char *data, size_t n)
{
        if (n >= RING_SIZE) { /* only the tail fits */
                data += n - RING_SIZE;
                n = RING_SIZE;
        }
        size_t first = RING_SIZE - r->head;
        if (first > n)
                first = n;
        memcpy(r->buf + r->head, data, first);
        memcpy(r->buf, data + first, n - first);
        r->head = (r->head + n) % RING_SIZE;
        r->len = r->len + n > RING_SIZE ? RING_SIZE : r->len + n;
}

void ring_spans(const ring *r, const char **a, size_t *alen, const char **b, size_t *blen)
{
        size_t start = (r->head + RING_SIZE - r->len) % RING_SIZE;
        *a = r->buf + start;
        if (start + r->len <= RING_SIZE) {
                *alen = r->len;
                *b = r->buf;
                *blen = 0;
        } else {
                *alen = RING_SIZE - start;
                *b = r->buf;
                *blen = r->len - *alen;
        }
}
