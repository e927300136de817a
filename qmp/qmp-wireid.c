/* libqmp wire ids: the "id" each command carries on the socket. QEMU 7.2 reads its monitor socket one
 * byte per main-loop pass (monitor_can_read() returns 1), about 3.6 µs a byte on the CI machines, so
 * every byte of a command is latency: ids are the smallest free number (one digit for up to ten
 * commands in flight) rather than an ever-growing counter. An id is reused only once its reply came: a
 * cancelled or expired command keeps its id as an orphan until the late reply arrives, so that reply
 * can never be taken for a newer command's. The API's ids (qmp_send's return) stay unique. */
#include "qmp-internal.h"

#define SMALL_IDS 64

int64_t qmp_wire_id_alloc(qmp *q)
{
        if (q->wire_busy == UINT64_MAX) /* 64 in flight or orphaned: count up, never reuse */
                return SMALL_IDS + q->wire_next_big++;
        int id = __builtin_ctzll(~q->wire_busy);
        q->wire_busy |= 1ull << id;
        return id;
}

void qmp_wire_id_release(qmp *q, int64_t wire_id)
{
        if (wire_id >= 0 && wire_id < SMALL_IDS) {
                q->wire_busy &= ~(1ull << wire_id);
                q->wire_orphan &= ~(1ull << wire_id);
        }
}

void qmp_wire_id_orphan(qmp *q, int64_t wire_id)
{
        if (wire_id >= 0 && wire_id < SMALL_IDS)
                q->wire_orphan |= 1ull << wire_id;
}

bool qmp_wire_id_take_orphan(qmp *q, int64_t wire_id)
{
        if (wire_id < 0 || wire_id >= SMALL_IDS || !(q->wire_orphan & (1ull << wire_id)))
                return false;
        qmp_wire_id_release(q, wire_id);
        return true;
}
