/* cli: what every virtctl command shares: its exit codes and its error line. */
#pragma once

/* KubeVirt's virtctl exits 1 on every error (cobra), usage errors included. */
enum { EXIT_OK = 0, EXIT_FAIL = 1 };

/* "Error: <what>" on stderr, as KubeVirt's virtctl prints it; returns EXIT_FAIL. */
int die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
