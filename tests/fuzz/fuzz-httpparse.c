/* libFuzzer: an HTTP response (status line, headers, Content-Length / chunked / close-delimited body) fed
 * to kube/httpparse.c in fuzzer-chosen pieces, as the reporter's lite client reads it from TLS records;
 * the body reaches a callback that checks it never gets more bytes than were fed. */
#include "httpparse.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int count(const char *d, size_t n, void *ud)
{
        size_t *total = ud;
        (void)d;
        *total += n;
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        http_parser p;
        size_t body = 0;
        http_parser_init(&p, count, &body);
        /* the first byte picks the piece size, so lines and chunks split anywhere */
        size_t step = size ? (size_t)data[0] % 32 + 1 : 1, fed = 0;
        for (size_t off = 1; off < size; off += step) {
                size_t n = off + step > size ? size - off : step;
                long r = http_parser_feed(&p, (const char *)data + off, n);
                if (r < 0 || (size_t)r > n)
                        break;
                fed += (size_t)r;
                if ((size_t)r < n)
                        break;
        }
        if (body > fed)
                abort();
        if (!http_parser_done(&p))
                http_parser_eof(&p);
        return 0;
}
