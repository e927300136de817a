/* libqmp side of the qmp-roundtrip benchmark: N blocking query-status calls over SOCKET, prints the
 * median and p90 round trip in microseconds as one JSON line. Then, on the same connection, QEMU's own
 * cost: the request libqmp sends, as a fixed string written with write() and answered into a spinning
 * read() with no JSON work at all (the floor), and the same request padded with PAD blanks, whose extra
 * time per byte is what QEMU 7.2's one-byte-per-loop-pass monitor charges for each request byte. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "qmp.h"

static int cmp_double(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;
        return (x > y) - (x < y);
}

static double now_us(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

#define REQUEST "{\"execute\":\"query-status\",\"id\":0" /* what libqmp sends, less the brace */
#define PAD 64

/* One request with no library and no JSON: the socket is ours alone. -1 on error. */
static double raw_round_trip(int fd, const char *req)
{
        char buf[4096];
        size_t got = 0, len = strlen(req);
        double start = now_us();
        if (write(fd, req, len) != (ssize_t)len)
                return -1;
        while (got == 0 || buf[got - 1] != '\n') {
                ssize_t r = read(fd, buf + got, sizeof(buf) - got);
                if (r < 0 &&
                    errno == EAGAIN) /* libqmp made the socket non-blocking: spin, the floor is a floor */
                        continue;
                if (r <= 0 || (got += (size_t)r) == sizeof(buf))
                        return -1;
        }
        return now_us() - start;
}

int main(int argc, char **argv)
{
        if (argc != 3) {
                fprintf(stderr, "usage: bench-qmp SOCKET CALLS\n");
                return 2;
        }
        int n = atoi(argv[2]);
        qmp *q = NULL;
        kv_error err = {0};
        if (n <= 0 || qmp_connect_unix(&q, argv[1], 10000, &err) < 0 || qmp_handshake(q, 10000, &err) < 0) {
                fprintf(stderr, "bench-qmp: %s\n", err.msg[0] ? err.msg : "bad CALLS");
                qmp_free(q);
                return 2;
        }
        double *t = calloc((size_t)n, sizeof(double)), *raw = calloc((size_t)n, sizeof(double));
        double *pad = calloc((size_t)n, sizeof(double));
        char plain[64], padded[64 + PAD];
        snprintf(plain, sizeof(plain), "%s}", REQUEST);
        snprintf(padded, sizeof(padded), "%s%*s}", REQUEST, PAD, "");
        for (int i = -200; i < n; i++) { /* the first 200 warm caches up and are not counted */
                double start = now_us();
                if (qmp_execute(q, "query-status", NULL, 10000, NULL, &err) < 0) {
                        fprintf(stderr, "bench-qmp: %s\n", err.msg);
                        return 1;
                }
                if (i < 0)
                        continue;
                t[i] = now_us() - start;
                raw[i] = raw_round_trip(qmp_fd(q), plain); /* interleaved, so drift hits all three alike */
                pad[i] = raw_round_trip(qmp_fd(q), padded);
        }
        qsort(raw, (size_t)n, sizeof(double), cmp_double);
        qsort(pad, (size_t)n, sizeof(double), cmp_double);
        qsort(t, (size_t)n, sizeof(double), cmp_double);
        printf(
            "{\"calls\":%d,\"median_us\":%.1f,\"p90_us\":%.1f,\"request_bytes\":%zu,\"floor_median_us\":%.1f,"
            "\"us_per_byte\":%.2f}\n",
            n, t[n / 2], t[n * 9 / 10], strlen(plain), raw[n / 2], (pad[n / 2] - raw[n / 2]) / PAD);
        free(t);
        free(raw);
        free(pad);
        qmp_free(q);
        return 0;
}
