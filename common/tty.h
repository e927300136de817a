/* The controlling terminal in raw mode for an interactive console session (virtctl console, virt-launcher
 * ctl console): keys reach the guest as typed, Ctrl-] included. */
#pragma once

#include <stdbool.h>

/* Raw mode on stdin when it is a terminal (nothing otherwise); restored by kv_tty_restore or at exit. */
void kv_tty_make_raw(void);
void kv_tty_restore(void);
/* Whether stdin is in raw mode now (the escape key is then the user's way out). */
bool kv_tty_is_raw(void);
