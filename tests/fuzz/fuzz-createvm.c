/* libFuzzer target: bytes → the flags of `virtctl create vm` (NUL-separated words) → createvm_main(). Any
 * flags give exit 0 (a manifest, sent to /dev/null) or exit 1, never a crash or a leak. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "createvm.h"

/* virtctl.c's die() prints; the fuzzer only needs its exit code. */
int die(const char *fmt, ...)
{
        (void)fmt;
        return EXIT_FAIL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static bool quiet;
        if (!quiet)
                quiet = freopen("/dev/null", "w", stdout) != NULL;
        /* --password-file would open any path the input names (a FIFO blocks): not this target's business */
        if (size > 4096 || memmem(data, size, "password", 8))
                return 0;
        char *buf = malloc(size + 1), *argv[66] = {"vm"};
        if (!buf)
                return 0;
        memcpy(buf, data, size);
        buf[size] = '\0';
        int argc = 1;
        for (char *p = buf; p < buf + size && argc < 64; p += strlen(p) + 1)
                argv[argc++] = p;
        argv[argc] = NULL;
        int r = createvm_main(argc, argv);
        free(buf);
        if (r != EXIT_OK && r != EXIT_FAIL)
                abort();
        return 0;
}
