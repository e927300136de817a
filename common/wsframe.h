/* RFC 6455 websocket framing, both sides: virt-api (server: unmasked frames out, masked frames in) and
 * virtctl (client: the other way round) carry the console and VNC byte streams in binary frames
 * (KubeVirt's subprotocol plain.kubevirt.io). Pure functions over buffers; no sockets. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { WS_CONT = 0x0, WS_TEXT = 0x1, WS_BINARY = 0x2, WS_CLOSE = 0x8, WS_PING = 0x9, WS_PONG = 0xa };

/* Longest frame header: 2 + 8 bytes of length + 4 of mask. */
#define WS_HEADER_MAX 14
/* Largest payload ws_frame_parse accepts: a peer sending more is broken or hostile. */
#define WS_PAYLOAD_MAX (1u << 20)

typedef struct ws_frame {
        unsigned opcode;
        bool fin;
        uint8_t *payload; /* inside the parsed buffer, unmasked in place */
        size_t len;
} ws_frame;

/* Writes the header of a final frame of `len` payload bytes into out; with a mask (a client's frame) the
 * caller masks the payload with ws_mask(). Returns the header's length. */
size_t ws_frame_header(uint8_t out[WS_HEADER_MAX], unsigned opcode, size_t len, const uint8_t mask[4]);

/* XORs n bytes with the 4-byte mask (the same call masks and unmasks). */
void ws_mask(uint8_t *p, size_t n, const uint8_t mask[4]);

/* Parses the frame at the start of buf[0..len). Returns its whole length (header and payload) with *f
 * filled and the payload unmasked in place, 0 when more bytes are needed, -EMSGSIZE for a payload over
 * WS_PAYLOAD_MAX, -EPROTO for reserved bits or a masked/unmasked frame where the other was required
 * (must_mask: frames from a client). */
long ws_frame_parse(uint8_t *buf, size_t len, bool must_mask, ws_frame *f);
