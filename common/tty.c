/* See tty.h. */
#include "tty.h"

#include <stdbool.h>
#include <stdlib.h>
#include <termios.h>
#include <unistd.h>

static struct termios saved_tio;
static bool tty_raw;

void kv_tty_restore(void)
{
        if (tty_raw)
                tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tio);
        tty_raw = false;
}

bool kv_tty_is_raw(void)
{
        return tty_raw;
}

void kv_tty_make_raw(void)
{
        if (tty_raw || !isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &saved_tio) < 0)
                return;
        struct termios raw = saved_tio;
        cfmakeraw(&raw);
        if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw) == 0) {
                tty_raw = true;
                atexit(kv_tty_restore);
        }
}
