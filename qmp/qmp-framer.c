/* QMP line framing over a growable buffer; the cap makes a hostile peer cost at most max_line bytes. */
#include "qmp-framer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void qmp_framer_init(qmp_framer *f, size_t max_line)
{
        *f = (qmp_framer){.max_line = max_line ? max_line : QMP_DEFAULT_MAX_LINE};
}

void qmp_framer_free(qmp_framer *f)
{
        free(f->buf);
        *f = (qmp_framer){.max_line = f->max_line};
}

int qmp_framer_reserve(qmp_framer *f, size_t want, char **dst, size_t *avail)
{
        if (f->start > 0 && f->start + f->len + want > f->cap) {
                /* Compact before growing: consumed lines are dead weight. */
                memmove(f->buf, f->buf + f->start, f->len);
                f->start = 0;
        }
        if (f->len + want > f->cap) {
                size_t cap = f->cap ? f->cap : 4096;
                while (cap < f->len + want)
                        cap *= 2;
                char *nb = realloc(f->buf, cap);
                if (!nb)
                        return -ENOMEM;
                f->buf = nb;
                f->cap = cap;
        }
        *dst = f->buf + f->start + f->len;
        *avail = f->cap - f->start - f->len;
        return 0;
}

void qmp_framer_commit(qmp_framer *f, size_t n)
{
        f->len += n;
}

int qmp_framer_feed(qmp_framer *f, const void *data, size_t n)
{
        char *dst;
        size_t avail;
        int r = qmp_framer_reserve(f, n, &dst, &avail);
        if (r < 0)
                return r;
        memcpy(dst, data, n);
        qmp_framer_commit(f, n);
        return 0;
}

int qmp_framer_next(qmp_framer *f, const char **line, size_t *len, kv_error *err)
{
        for (;;) {
                char *base = f->buf + f->start;
                char *nl = f->len > f->scanned ? memchr(base + f->scanned, '\n', f->len - f->scanned) : NULL;
                if (!nl) {
                        f->scanned = f->len;
                        if (f->len > f->max_line)
                                return kv_error_set(err, E2BIG, "QMP message exceeds %zu bytes", f->max_line);
                        return 0;
                }
                size_t n = (size_t)(nl - base);
                f->start += n + 1;
                f->len -= n + 1;
                f->scanned = 0;
                if (f->len == 0)
                        f->start = 0; /* the common case: the buffer drained, reuse it from the top */
                if (n > 0 && base[n - 1] == '\r')
                        n--;
                if (n > f->max_line)
                        return kv_error_set(err, E2BIG, "QMP message exceeds %zu bytes", f->max_line);
                if (n == 0)
                        continue;
                *line = base;
                *len = n;
                return 1;
        }
}

size_t qmp_framer_pending(const qmp_framer *f)
{
        return f->len;
}
