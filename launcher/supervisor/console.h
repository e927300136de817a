/* The serial console fan-out: the launcher holds the one connection QEMU's serial chardev accepts,
 * keeps the last 64 KiB in a ring and copies output to every attached console client. */
#pragma once
#include <stddef.h>

#include "supervisor.h"

/* Connects to <run-dir>/serial.sock (QEMU accepts it once its main loop runs; the socket was bound
 * before QEMU started, so no output is missed). */
int console_start(supervisor *s, const char *serial_path, kv_error *err);
void console_stop(supervisor *s);
/* Keyboard input from a client, best effort (dropped when QEMU does not keep up). */
void console_input(supervisor *s, const char *data, size_t len);
