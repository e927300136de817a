/* Router advertisements and DHCPv6 replies for the one guest behind the masquerade bridge (v6-packet.h). */
#include "v6-packet.h"

#include <errno.h>
#include <string.h>

#define ND_ROUTER_SOLICIT 133
#define ND_ROUTER_ADVERT 134
#define ND_OPT_SOURCE_LLADDR 1
#define ND_OPT_PREFIX_INFO 3
#define ND_OPT_MTU 5
#define RA_MANAGED 0x80 /* addresses from DHCPv6 */
#define RA_OTHER 0x40   /* other configuration from DHCPv6 */
#define PREFIX_ON_LINK 0x80

#define OPT_CLIENTID 1
#define OPT_SERVERID 2
#define OPT_IA_NA 3
#define OPT_IAADDR 5
#define OPT_STATUS_CODE 13
#define OPT_RAPID_COMMIT 14
#define OPT_DNS_SERVERS 23
#define OPT_DOMAIN_LIST 24
#define DUID_LL 3
#define HW_ETHERNET 1
#define DUID_MAX 130 /* RFC 8415 11.1 */
#define INFINITE 0xffffffffu

typedef struct wbuf {
        uint8_t *p;
        size_t len, cap;
        bool overflow;
} wbuf;

static void put(wbuf *b, const void *data, size_t n)
{
        if (b->overflow || n > b->cap - b->len) {
                b->overflow = true;
                return;
        }
        memcpy(b->p + b->len, data, n);
        b->len += n;
}

static void put8(wbuf *b, uint8_t v)
{
        put(b, &v, 1);
}

static void put16(wbuf *b, uint16_t v)
{
        put(b, (uint8_t[]){(uint8_t)(v >> 8), (uint8_t)v}, 2);
}

static void put32(wbuf *b, uint32_t v)
{
        put(b, (uint8_t[]){(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v}, 4);
}

static uint16_t get16(const uint8_t *p)
{
        return (uint16_t)(p[0] << 8 | p[1]);
}

size_t v6_ra_build(const v6_lease *lease, uint8_t *out, size_t outsz)
{
        wbuf b = {.p = out, .cap = outsz};
        put8(&b, ND_ROUTER_ADVERT), put8(&b, 0), put16(&b, 0); /* type, code, checksum (kernel's) */
        put8(&b, 64);                                          /* the hop limit the guest should use */
        put8(&b, RA_MANAGED | RA_OTHER);
        put16(&b, V6_ROUTER_LIFETIME);
        put32(&b, 0), put32(&b, 0); /* reachable time, retransmission timer: unspecified */
        put8(&b, ND_OPT_SOURCE_LLADDR), put8(&b, 1), put(&b, lease->server_mac, 6);
        if (lease->mtu)
                put8(&b, ND_OPT_MTU), put8(&b, 1), put16(&b, 0), put32(&b, lease->mtu);
        /* On-link, not autonomous: the address comes from DHCPv6 (KubeVirt's /120 is no SLAAC prefix) */
        put8(&b, ND_OPT_PREFIX_INFO), put8(&b, 4), put8(&b, (uint8_t)lease->prefix_len);
        put8(&b, PREFIX_ON_LINK), put32(&b, INFINITE), put32(&b, INFINITE), put32(&b, 0);
        put(&b, &lease->prefix, 16);
        return b.overflow ? 0 : b.len;
}

bool v6_is_router_solicit(const uint8_t *in, size_t n)
{
        if (n < 8 || in[0] != ND_ROUTER_SOLICIT || in[1] != 0)
                return false;
        /* options: each a multiple of 8 bytes, none of length 0 (RFC 4861 6.1.1) */
        for (size_t at = 8; at < n;) {
                if (n - at < 2 || in[at + 1] == 0 || (size_t)in[at + 1] * 8 > n - at)
                        return false;
                at += (size_t)in[at + 1] * 8;
        }
        return true;
}

typedef struct dhcp6_msg {
        int type;
        const uint8_t *xid; /* 3 bytes */
        const uint8_t *client_id;
        size_t client_id_len;
        const uint8_t *server_id;
        size_t server_id_len;
        bool has_ia_na, rapid_commit;
        uint8_t iaid[4];
} dhcp6_msg;

static int parse(const uint8_t *in, size_t n, dhcp6_msg *m)
{
        if (n < 4)
                return -EINVAL;
        *m = (dhcp6_msg){.type = in[0], .xid = in + 1};
        for (size_t at = 4; at < n;) {
                if (n - at < 4)
                        return -EINVAL;
                uint16_t code = get16(in + at), len = get16(in + at + 2);
                const uint8_t *v = in + at + 4;
                if (len > n - at - 4)
                        return -EINVAL;
                if (code == OPT_CLIENTID || code == OPT_SERVERID) {
                        if (len == 0 || len > DUID_MAX)
                                return -EINVAL;
                        if (code == OPT_CLIENTID)
                                m->client_id = v, m->client_id_len = len;
                        else
                                m->server_id = v, m->server_id_len = len;
                } else if (code == OPT_IA_NA && !m->has_ia_na) {
                        if (len < 12)
                                return -EINVAL;
                        memcpy(m->iaid, v, 4);
                        m->has_ia_na = true;
                } else if (code == OPT_RAPID_COMMIT) {
                        m->rapid_commit = true;
                }
                at += 4 + (size_t)len;
        }
        return 0;
}

static void put_duid(wbuf *b, const v6_lease *lease)
{
        put16(b, OPT_SERVERID), put16(b, 10);
        put16(b, DUID_LL), put16(b, HW_ETHERNET), put(b, lease->server_mac, 6);
}

static bool is_our_duid(const v6_lease *lease, const uint8_t *id, size_t len)
{
        return len == 10 && get16(id) == DUID_LL && get16(id + 2) == HW_ETHERNET &&
               memcmp(id + 4, lease->server_mac, 6) == 0;
}

static void put_status(wbuf *b, uint16_t code)
{
        put16(b, OPT_STATUS_CODE), put16(b, 2), put16(b, code);
}

/* IA_NA with our one address, lifetimes infinite: the guest never has to renew. */
static void put_ia_na(wbuf *b, const v6_lease *lease, const uint8_t iaid[4])
{
        put16(b, OPT_IA_NA), put16(b, 12 + 4 + 24);
        put(b, iaid, 4), put32(b, INFINITE), put32(b, INFINITE);
        put16(b, OPT_IAADDR), put16(b, 24), put(b, &lease->addr, 16), put32(b, INFINITE), put32(b, INFINITE);
}

ssize_t dhcp6_reply(const v6_lease *lease, const uint8_t *in, size_t n, uint8_t *out, size_t outsz, int *type,
                    bool *leased)
{
        dhcp6_msg m;
        *type = 0, *leased = false;
        if (parse(in, n, &m) < 0)
                return -EINVAL;
        switch (m.type) {
        case DHCP6_SOLICIT:
        case DHCP6_REQUEST:
        case DHCP6_CONFIRM:
        case DHCP6_RENEW:
        case DHCP6_REBIND:
        case DHCP6_RELEASE:
        case DHCP6_DECLINE:
        case DHCP6_INFORMATION_REQUEST:
                break;
        default: /* a server's message, or a relay's */
                return 0;
        }
        if (m.server_id && !is_our_duid(lease, m.server_id, m.server_id_len))
                return 0; /* the client chose another server */
        if (!m.client_id && m.type != DHCP6_INFORMATION_REQUEST)
                return 0;
        int reply = m.type == DHCP6_SOLICIT && !m.rapid_commit ? DHCP6_ADVERTISE : DHCP6_REPLY;
        wbuf b = {.p = out, .cap = outsz};
        put8(&b, (uint8_t)reply), put(&b, m.xid, 3);
        if (m.client_id)
                put16(&b, OPT_CLIENTID), put16(&b, (uint16_t)m.client_id_len),
                    put(&b, m.client_id, m.client_id_len);
        put_duid(&b, lease);
        if (m.type == DHCP6_SOLICIT && m.rapid_commit)
                put16(&b, OPT_RAPID_COMMIT), put16(&b, 0);
        bool offer = m.has_ia_na && (m.type == DHCP6_SOLICIT || m.type == DHCP6_REQUEST ||
                                     m.type == DHCP6_RENEW || m.type == DHCP6_REBIND);
        if (offer)
                put_ia_na(&b, lease, m.iaid);
        bool config = m.type != DHCP6_RELEASE && m.type != DHCP6_DECLINE;
        if (config && lease->n_dns) {
                size_t nd = lease->n_dns < V6_MAX_DNS ? lease->n_dns : V6_MAX_DNS;
                put16(&b, OPT_DNS_SERVERS), put16(&b, (uint16_t)(16 * nd)), put(&b, lease->dns, 16 * nd);
        }
        if (config && lease->search_len) {
                size_t ns = lease->search_len < V6_SEARCH_MAX ? lease->search_len : V6_SEARCH_MAX;
                put16(&b, OPT_DOMAIN_LIST), put16(&b, (uint16_t)ns), put(&b, lease->search, ns);
        }
        if (!(config && (lease->n_dns || lease->search_len)) && m.type != DHCP6_INFORMATION_REQUEST)
                put_status(&b, 0); /* Success: CONFIRM (the address is on-link), RELEASE, DECLINE */
        if (b.overflow)
                return -EINVAL;
        *type = reply;
        *leased = offer && reply == DHCP6_REPLY;
        return (ssize_t)b.len;
}
