/* DHCPv4 codec. The lease is infinite (0xffffffff): the guest's address cannot change while the Pod
 * lives, and no renewal has to reach a server that the bridge binding only fakes on a link-local IP. */
#include "dhcp-packet.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#define BOOTP_FIXED 236
#define MAGIC_OFF BOOTP_FIXED
#define OPTIONS_OFF (BOOTP_FIXED + 4)
#define BOOTP_MIN 300 /* RFC 1542: some clients drop shorter replies */
static const uint8_t magic[4] = {99, 130, 83, 99};

enum {
        OPT_PAD = 0,
        OPT_MASK = 1,
        OPT_ROUTER = 3,
        OPT_DNS = 6,
        OPT_HOSTNAME = 12,
        OPT_DOMAIN = 15,
        OPT_MTU = 26,
        OPT_REQUESTED_IP = 50,
        OPT_LEASE = 51,
        OPT_MSG_TYPE = 53,
        OPT_SERVER_ID = 54,
        OPT_NTP = 42,
        OPT_TFTP_SERVER = 66,
        OPT_BOOT_FILE = 67,
        OPT_SEARCH = 119,
        OPT_ROUTES = 121,
        OPT_END = 255,
};

typedef struct request_info {
        int type;
        struct in_addr requested, server_id;
} request_info;

typedef struct writer {
        uint8_t *buf;
        size_t len, cap;
        bool overflow;
} writer;

static void put(writer *w, const void *data, size_t n)
{
        if (w->len + n > w->cap) {
                w->overflow = true;
                return;
        }
        memcpy(w->buf + w->len, data, n);
        w->len += n;
}

/* Options longer than 255 bytes are split into several instances of the same code (RFC 3396). */
static void put_option(writer *w, uint8_t code, const void *data, size_t n)
{
        const uint8_t *p = data;
        do {
                uint8_t chunk = (uint8_t)(n > 255 ? 255 : n);
                put(w, &code, 1);
                put(w, &chunk, 1);
                put(w, p, chunk);
                p += chunk;
                n -= chunk;
        } while (n > 0);
}

static void put_u32(writer *w, uint8_t code, uint32_t host_order)
{
        uint32_t v = htonl(host_order);
        put_option(w, code, &v, 4);
}

static void put_addr(writer *w, uint8_t code, struct in_addr a)
{
        put_option(w, code, &a, 4);
}

size_t dhcp_search_encode(const resolv_conf *dns, uint8_t *out, size_t cap)
{
        size_t len = 0;
        for (size_t i = 0; i < dns->n_search; i++) {
                size_t start = len;
                for (const char *d = dns->search[i]; *d;) {
                        size_t label = strcspn(d, ".");
                        if (label == 0 || label > 63)
                                return 0;
                        if (len + label + 2 > cap)
                                return start; /* the domains that fit */
                        out[len++] = (uint8_t)label;
                        memcpy(out + len, d, label);
                        len += label;
                        d += label + (d[label] == '.');
                }
                out[len++] = 0;
        }
        return len;
}

/* RFC 3442: width, the significant octets of the destination, the router. */
static size_t encode_routes(const dhcp_lease *l, uint8_t *out)
{
        size_t len = 0;
        for (size_t i = 0; i < l->n_routes; i++) {
                const dhcp_route *r = &l->routes[i];
                size_t octets = (size_t)(r->prefix + 7) / 8;
                out[len++] = (uint8_t)r->prefix;
                memcpy(out + len, &r->dst, octets);
                len += octets;
                memcpy(out + len, &r->gateway, 4);
                len += 4;
        }
        return len;
}

/* KubeVirt's dhcpOptions: TFTP server name, boot file name, NTP servers, private options as given. */
static void put_extra_options(writer *w, const net_dhcp_options *x)
{
        if (x->tftp_server[0])
                put_option(w, OPT_TFTP_SERVER, x->tftp_server,
                           strnlen(x->tftp_server, sizeof(x->tftp_server)));
        if (x->boot_file[0])
                put_option(w, OPT_BOOT_FILE, x->boot_file, strnlen(x->boot_file, sizeof(x->boot_file)));
        if (x->n_ntp)
                put_option(w, OPT_NTP, x->ntp,
                           4 * (x->n_ntp < NET_DHCP_MAX_NTP ? x->n_ntp : NET_DHCP_MAX_NTP));
        for (size_t i = 0; i < x->n_priv && i < NET_DHCP_MAX_PRIVATE; i++)
                put_option(w, x->priv[i].code, x->priv[i].value,
                           strnlen(x->priv[i].value, sizeof(x->priv[i].value)));
}

static void put_lease_options(writer *w, const dhcp_lease *l)
{
        put_u32(w, OPT_LEASE, 0xffffffffu);
        put_u32(w, OPT_MASK, l->prefix ? 0xffffffffu << (32 - l->prefix) : 0);
        if (l->router.s_addr)
                put_addr(w, OPT_ROUTER, l->router);
        if (l->n_routes) {
                uint8_t routes[DHCP_MAX_ROUTES * 9];
                put_option(w, OPT_ROUTES, routes, encode_routes(l, routes));
        }
        if (l->dns.n_dns)
                put_option(w, OPT_DNS, l->dns.dns, 4 * l->dns.n_dns);
        if (l->dns.n_search) {
                put_option(w, OPT_DOMAIN, l->dns.search[0], strlen(l->dns.search[0]));
                uint8_t search[RESOLV_MAX_SEARCH * (RESOLV_DOMAIN_MAX + 2)];
                size_t n = dhcp_search_encode(&l->dns, search, sizeof(search));
                if (n)
                        put_option(w, OPT_SEARCH, search, n);
        }
        if (l->mtu) {
                uint16_t mtu = htons((uint16_t)l->mtu);
                put_option(w, OPT_MTU, &mtu, 2);
        }
        if (l->hostname[0])
                put_option(w, OPT_HOSTNAME, l->hostname, strlen(l->hostname));
        put_extra_options(w, &l->extra);
}

static int parse_options(const uint8_t *in, size_t n, request_info *info)
{
        if (n < OPTIONS_OFF || memcmp(in + MAGIC_OFF, magic, 4) != 0)
                return -EINVAL;
        for (size_t i = OPTIONS_OFF; i < n;) {
                uint8_t code = in[i++];
                if (code == OPT_PAD)
                        continue;
                if (code == OPT_END)
                        break;
                if (i >= n || i + 1 + in[i] > n)
                        return -EINVAL;
                uint8_t len = in[i++];
                if (code == OPT_MSG_TYPE && len == 1)
                        info->type = in[i];
                else if (code == OPT_REQUESTED_IP && len == 4)
                        memcpy(&info->requested, in + i, 4);
                else if (code == OPT_SERVER_ID && len == 4)
                        memcpy(&info->server_id, in + i, 4);
                i += len;
        }
        return info->type ? 0 : -EINVAL;
}

/* Which reply a request earns: 0 = none. */
static int reply_type(const dhcp_lease *l, const uint8_t *in, const request_info *info)
{
        struct in_addr ciaddr;
        memcpy(&ciaddr, in + 12, 4);
        switch (info->type) {
        case DHCP_DISCOVER:
                return DHCP_OFFER;
        case DHCP_REQUEST:
                if (info->server_id.s_addr && info->server_id.s_addr != l->server_id.s_addr)
                        return 0; /* the client chose another server */
                if (info->requested.s_addr)
                        return info->requested.s_addr == l->yiaddr.s_addr ? DHCP_ACK : DHCP_NAK;
                return ciaddr.s_addr == l->yiaddr.s_addr ? DHCP_ACK : DHCP_NAK;
        case DHCP_INFORM:
                return DHCP_ACK;
        default:
                return 0;
        }
}

ssize_t dhcp_reply(const dhcp_lease *l, const uint8_t *in, size_t n, uint8_t *out, size_t outsz, int *type)
{
        request_info info = {0};
        if (n < OPTIONS_OFF || in[0] != 1 /* BOOTREQUEST */ || in[1] != 1 || in[2] != 6)
                return -EINVAL;
        if (parse_options(in, n, &info) < 0)
                return -EINVAL;
        if (memcmp(in + 28, l->mac, 6) != 0)
                return 0;
        *type = reply_type(l, in, &info);
        if (!*type)
                return 0;
        if (outsz < BOOTP_MIN)
                return -ENOBUFS;
        memset(out, 0, BOOTP_MIN);
        writer w = {.buf = out, .cap = outsz};
        uint8_t head[4] = {2 /* BOOTREPLY */, 1, 6, 0};
        put(&w, head, 4);
        put(&w, in + 4, 8);  /* xid, secs, flags */
        put(&w, in + 12, 4); /* ciaddr */
        struct in_addr yiaddr = {0};
        if (*type != DHCP_NAK && info.type != DHCP_INFORM)
                yiaddr = l->yiaddr;
        put(&w, &yiaddr, 4);
        put(&w, &(struct in_addr){0}, 4); /* siaddr: no boot server */
        put(&w, in + 24, 4);              /* giaddr */
        put(&w, in + 28, 16);             /* chaddr */
        w.len = MAGIC_OFF;                /* sname and file stay zero */
        put(&w, magic, 4);
        uint8_t t = (uint8_t)*type;
        put_option(&w, OPT_MSG_TYPE, &t, 1);
        put_addr(&w, OPT_SERVER_ID, l->server_id);
        if (*type != DHCP_NAK)
                put_lease_options(&w, l);
        put(&w, &(uint8_t){OPT_END}, 1);
        if (w.overflow)
                return -ENOBUFS;
        return (ssize_t)(w.len < BOOTP_MIN ? BOOTP_MIN : w.len);
}
