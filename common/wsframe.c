/* RFC 6455 frame headers, masking and parsing (see wsframe.h). */
#include "wsframe.h"

#include <errno.h>
#include <string.h>

size_t ws_frame_header(uint8_t out[WS_HEADER_MAX], unsigned opcode, size_t len, const uint8_t mask[4])
{
        size_t h = 2;
        out[0] = (uint8_t)(0x80 | (opcode & 0x0f));
        uint8_t m = mask ? 0x80 : 0;
        if (len < 126) {
                out[1] = (uint8_t)(m | len);
        } else if (len <= 0xffff) {
                out[1] = m | 126;
                out[2] = (uint8_t)(len >> 8);
                out[3] = (uint8_t)len;
                h = 4;
        } else {
                out[1] = m | 127;
                for (int i = 0; i < 8; i++)
                        out[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
                h = 10;
        }
        if (mask) {
                memcpy(out + h, mask, 4);
                h += 4;
        }
        return h;
}

void ws_mask(uint8_t *p, size_t n, const uint8_t mask[4])
{
        for (size_t i = 0; i < n; i++)
                p[i] ^= mask[i & 3];
}

long ws_frame_parse(uint8_t *buf, size_t len, bool must_mask, ws_frame *f)
{
        if (len < 2)
                return 0;
        if (buf[0] & 0x70)
                return -EPROTO; /* no extension was negotiated */
        bool masked = buf[1] & 0x80;
        if (masked != must_mask)
                return -EPROTO;
        uint64_t plen = buf[1] & 0x7f;
        size_t h = 2;
        if (plen == 126) {
                if (len < 4)
                        return 0;
                plen = (uint64_t)buf[2] << 8 | buf[3];
                h = 4;
        } else if (plen == 127) {
                if (len < 10)
                        return 0;
                plen = 0;
                for (int i = 0; i < 8; i++)
                        plen = plen << 8 | buf[2 + i];
                h = 10;
        }
        if (plen > WS_PAYLOAD_MAX)
                return -EMSGSIZE;
        size_t mask_at = h;
        if (masked)
                h += 4;
        if (len < h + plen)
                return 0;
        f->opcode = buf[0] & 0x0f;
        f->fin = buf[0] & 0x80;
        f->payload = buf + h;
        f->len = (size_t)plen;
        if (masked)
                ws_mask(f->payload, f->len, buf + mask_at);
        return (long)(h + plen);
}
