/* libqmp side of the qmp-roundtrip benchmark: N blocking query-status calls over SOCKET, prints the
 * median and p90 round trip in microseconds as one JSON line. Then, on the same connection, the floor:
 * the same request as a fixed string with a blocking write()/read() and no JSON work at all, i.e. what
 * QEMU itself costs. */
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

/* One request with no library and no JSON: the id is fixed, the socket is ours alone. -1 on error. */
static double raw_round_trip(int fd)
{
	static const char req[] = "{\"execute\":\"query-status\",\"id\":999999999}\n";
	char buf[4096];
	size_t got = 0;
	double start = now_us();
	if (write(fd, req, sizeof(req) - 1) != (ssize_t)(sizeof(req) - 1))
		return -1;
	while (got == 0 || buf[got - 1] != '\n') {
		ssize_t r = read(fd, buf + got, sizeof(buf) - got);
		if (r < 0 && errno == EAGAIN) /* libqmp made the socket non-blocking: spin, the floor is a floor */
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
	for (int i = -200; i < n; i++) { /* the first 200 warm caches up and are not counted */
		double start = now_us();
		if (qmp_execute(q, "query-status", NULL, 10000, NULL, &err) < 0) {
			fprintf(stderr, "bench-qmp: %s\n", err.msg);
			return 1;
		}
		if (i >= 0)
			t[i] = now_us() - start;
	}
	for (int i = 0; i < n; i++)
		raw[i] = raw_round_trip(qmp_fd(q));
	qsort(raw, (size_t)n, sizeof(double), cmp_double);
	qsort(t, (size_t)n, sizeof(double), cmp_double);
	printf("{\"calls\":%d,\"median_us\":%.1f,\"p90_us\":%.1f,\"floor_median_us\":%.1f}\n", n, t[n / 2],
	       t[n * 9 / 10], raw[n / 2]);
	free(t);
	free(raw);
	qmp_free(q);
	return 0;
}
