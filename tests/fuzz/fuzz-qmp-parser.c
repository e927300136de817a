/* libFuzzer target for the QMP reply/event parser: bytes from a (hostile) peer go through the line
 * framer, in pieces whose size the first input byte picks, and every complete line through
 * qmp_msg_parse, as in libqmp's transport. Must never crash, leak or read out of bounds. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "qmp-codec.h"
#include "qmp-framer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void consume_lines(qmp_framer *f, int *dead)
{
        const char *line;
        size_t len;
        kv_error err;
        int r;
        while ((r = qmp_framer_next(f, &line, &len, &err)) > 0) {
                qmp_msg m;
                if (qmp_msg_parse(line, len, &m, &err) < 0) {
                        *dead = 1;
                        return;
                }
                if (m.kind == QMP_MSG_EVENT)
                        (void)qmp_event_matches(m.json, m.event, "device", "vdisk1");
                qmp_msg_done(&m);
        }
        if (r < 0)
                *dead = 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size == 0)
                return 0;
        size_t piece = (size_t)data[0] % 64 + 1;
        data++;
        size--;
        qmp_framer f;
        qmp_framer_init(&f, 65536); /* small cap so the fuzzer reaches the E2BIG path */
        int dead = 0;
        for (size_t off = 0; off < size && !dead; off += piece) {
                size_t n = size - off < piece ? size - off : piece;
                if (qmp_framer_feed(&f, data + off, n) < 0)
                        break;
                consume_lines(&f, &dead);
        }
        qmp_framer_free(&f);
        return 0;
}
