/* Test helper: start a real QEMU (TCG) with a QMP unix socket, optionally booting the test guest, and
 * make sure it dies on every path (PR_SET_PDEATHSIG, explicit kill, a watchdog alarm). */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "qmp.h"

typedef struct test_qemu {
        pid_t pid;
        char dir[128];
        char sock[192];
        char serial[192];
} test_qemu;

#define TEST_SKIP 77

/* guest: boot $KV_GUEST_DIR's kernel + initrd with `append` (TEST_SKIP when it is not built);
 * otherwise an empty machine stopped with -S. Returns 0, TEST_SKIP or -errno. */
int test_qemu_start(test_qemu *t, bool guest, const char *append);
/* Connect and negotiate (retries while QEMU creates the socket). */
qmp *test_qemu_connect(test_qemu *t);
/* Wait up to timeout_ms for QEMU to exit; returns its wait status or -1 (then it is killed). */
int test_qemu_wait(test_qemu *t, int timeout_ms);
void test_qemu_stop(test_qemu *t);
/* Wait until the serial log contains `marker`. */
bool test_qemu_serial_wait(test_qemu *t, const char *marker, int timeout_ms);
