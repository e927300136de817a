/* How many bytes this network namespace's TCP sockets to a port have sent but not yet seen acknowledged
 * (/proc/net/tcp's tx_queue). A migration source reads it before quitting: QEMU calls a migration completed
 * once its last bytes are in the kernel's send buffers, and a Pod whose network goes with its last process
 * would drop bytes the target never received (the target then waits for the end of the stream forever). */
#pragma once

#include <stdint.h>

/* Sums tx_queue over the lines of a /proc/net/tcp or /proc/net/tcp6 text whose remote port is `port`.
 * Pure; lines that do not parse are skipped. */
uint64_t tcp_unacked_in(const char *proc_net_tcp, unsigned port);
/* The same over /proc/self/net/tcp and tcp6; 0 when neither can be read. */
uint64_t tcp_unacked_to_port(unsigned port);
/* The port of a migration URI ("tcp:HOST:PORT", "HOST:PORT", "tcp:[v6]:PORT"), or 0. */
unsigned tcp_uri_port(const char *uri);
