/* Blocking I/O over a GnuTLS session and a line reader shared with plain fds: the console channel between
 * virt-api and virt-handler (docs/console.md). Its own library (kvtlsio) so common_dep stays free of GnuTLS.
 */
#pragma once

#include <gnutls/gnutls.h>
#include <stddef.h>
#include <sys/types.h>

/* Sends all of buf (retrying interrupted and would-block records); 0 or -EIO. */
int kv_tls_send_all(gnutls_session_t s, const void *buf, size_t len);
/* One '\n'-terminated line (terminator dropped, NUL-terminated) read a byte at a time from the session; 0,
 * -EIO at an error or end of stream, -E2BIG when it does not fit size. */
int kv_tls_recv_line(gnutls_session_t s, char *line, size_t size);
/* The same from a plain fd (read(2), retrying EINTR). */
int kv_fd_recv_line(int fd, char *line, size_t size);
