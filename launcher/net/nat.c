/* SNAT (masquerade) of the guest's traffic out of the Pod interface and DNAT of the Pod IP's inbound
 * traffic to the guest: every port, or only spec ports[], except the live-migration ports, which belong
 * to the launcher's QEMU. One table per family: "ip", and "ip6" when the Pod has an IPv6 address. The text
 * handed to libnftables is built only from addresses, numbers and an interface name checked against
 * [A-Za-z0-9._-]. */
#include "nat.h"
#include "macro.h"
#include "migration-ports.h"

#include <arpa/inet.h>
#include <errno.h>
#include <nftables/libnftables.h>
#include <stdarg.h>
#include <string.h>

typedef struct buf {
        char *p;
        size_t len, cap;
        bool overflow;
} buf;

static void add(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(buf *b, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0 || (size_t)n >= b->cap - b->len)
                b->overflow = true;
        else
                b->len += (size_t)n;
}

/* One DNAT rule per protocol listing its ports as an anonymous set. fam is "ip" or "ip6": both the
 * table family and the address match keyword. */
static void add_port_rules(buf *b, const char *fam, const char *ifname, const char *pod, const char *guest,
                           const net_port *ports, size_t n, int protocol)
{
        const char *sep = "";
        bool any = false;
        for (size_t i = 0; i < n; i++) {
                if (ports[i].protocol != protocol)
                        continue;
                if (!any)
                        add(b, "add rule %s " NAT_TABLE " prerouting iifname \"%s\" %s daddr %s %s dport { ",
                            fam, ifname, fam, pod, protocol == IPPROTO_TCP ? "tcp" : "udp");
                add(b, "%s%u", sep, ports[i].port);
                sep = ", ";
                any = true;
        }
        if (any)
                add(b, " } dnat to %s\n", guest);
}

static bool ifname_ok(const char *s)
{
        return s[0] && strlen(s) < 16 &&
               strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == strlen(s);
}

/* The table of one family: the same rules for IPv4 ("ip") and IPv6 ("ip6"). */
static void render_family(buf *b, const char *fam, const char *ifname, const char *pod, const char *guest,
                          const net_port *ports, size_t n_ports)
{
        /* add+delete first so that a second run replaces the table instead of failing or doubling rules */
        add(b, "add table %s " NAT_TABLE "\ndelete table %s " NAT_TABLE "\nadd table %s " NAT_TABLE "\n", fam,
            fam, fam);
        add(b,
            "add chain %s " NAT_TABLE
            " prerouting { type nat hook prerouting priority dstnat; policy accept; }\n",
            fam);
        add(b,
            "add chain %s " NAT_TABLE
            " postrouting { type nat hook postrouting priority srcnat; policy accept; }\n",
            fam);
        add(b, "add rule %s " NAT_TABLE " postrouting %s saddr %s oifname \"%s\" masquerade\n", fam, fam,
            guest, ifname);
        /* First: a migration target's QEMU listens on these in the Pod itself (KubeVirt keeps them too);
         * accept ends the nat hook, so no DNAT below applies, even for ports[] listing them. */
        add(b,
            "add rule %s " NAT_TABLE " prerouting iifname \"%s\" %s daddr %s tcp dport { %d, %d } accept\n",
            fam, ifname, fam, pod, KV_MIGRATION_PORT, KV_MIGRATION_NBD_PORT);
        if (n_ports == 0) {
                add(b, "add rule %s " NAT_TABLE " prerouting iifname \"%s\" %s daddr %s dnat to %s\n", fam,
                    ifname, fam, pod, guest);
        } else {
                add_port_rules(b, fam, ifname, pod, guest, ports, n_ports, IPPROTO_TCP);
                add_port_rules(b, fam, ifname, pod, guest, ports, n_ports, IPPROTO_UDP);
        }
}

int nat_render(const char *ifname, const nat_addrs *a, const net_port *ports, size_t n_ports, char *out,
               size_t outsz)
{
        if (!ifname_ok(ifname))
                return -EINVAL;
        char pod[INET6_ADDRSTRLEN], guest[INET6_ADDRSTRLEN];
        buf b = {.p = out, .cap = outsz};
        inet_ntop(AF_INET, &a->pod4, pod, sizeof(pod));
        inet_ntop(AF_INET, &a->guest4, guest, sizeof(guest));
        render_family(&b, "ip", ifname, pod, guest, ports, n_ports);
        if (a->has6) {
                inet_ntop(AF_INET6, &a->pod6, pod, sizeof(pod));
                inet_ntop(AF_INET6, &a->guest6, guest, sizeof(guest));
                render_family(&b, "ip6", ifname, pod, guest, ports, n_ports);
        }
        return b.overflow ? -ENOBUFS : (int)b.len;
}

static void nft_ctx_freep(struct nft_ctx **ctx)
{
        if (*ctx)
                nft_ctx_free(*ctx);
}

/* Loads rules in one transaction. */
static int nft_load(const char *rules, kv_error *err)
{
        _cleanup_(nft_ctx_freep) struct nft_ctx *ctx = nft_ctx_new(NFT_CTX_DEFAULT);
        if (!ctx)
                return kv_error_set(err, ENOMEM, "nftables: no context");
        nft_ctx_buffer_output(ctx);
        nft_ctx_buffer_error(ctx);
        if (nft_run_cmd_from_buffer(ctx, rules) != 0) {
                const char *msg = nft_ctx_get_error_buffer(ctx);
                return kv_error_set(err, EPERM, "nftables: %s", msg && *msg ? msg : "ruleset rejected");
        }
        return 0;
}

int nat_apply(const char *ifname, const nat_addrs *a, const net_port *ports, size_t n_ports, kv_error *err)
{
        char rules[16384];
        int r = nat_render(ifname, a, ports, n_ports, rules, sizeof(rules));
        if (r < 0)
                return kv_error_errno(err, -r, "nftables: render rules for interface \"%s\"", ifname);
        return nft_load(rules, err);
}

int nat_bridge_local_render(const char *tap, const uint8_t m[6], struct in_addr local, char *out,
                            size_t outsz)
{
        char addr[INET_ADDRSTRLEN];
        buf b = {.p = out, .cap = outsz};
        if (!ifname_ok(tap))
                return -EINVAL;
        inet_ntop(AF_INET, &local, addr, sizeof(addr));
        add(&b, "add table bridge " BRIDGE_LOCAL_TABLE "\ndelete table bridge " BRIDGE_LOCAL_TABLE
                "\nadd table bridge " BRIDGE_LOCAL_TABLE "\n");
        add(&b, "add chain bridge " BRIDGE_LOCAL_TABLE
                " prerouting { type filter hook prerouting priority -300; policy accept; }\n");
        add(&b,
            "add rule bridge " BRIDGE_LOCAL_TABLE " prerouting iifname \"%s\" ip daddr %s "
            "ether daddr set %02x:%02x:%02x:%02x:%02x:%02x meta pkttype set host\n",
            tap, addr, m[0], m[1], m[2], m[3], m[4], m[5]);
        return b.overflow ? -ENOBUFS : (int)b.len;
}

int nat_bridge_local_apply(const char *tap, const uint8_t bridge_mac[6], struct in_addr local, kv_error *err)
{
        char rules[1024];
        int r = nat_bridge_local_render(tap, bridge_mac, local, rules, sizeof(rules));
        if (r < 0)
                return kv_error_errno(err, -r, "nftables: render rules for interface \"%s\"", tap);
        return nft_load(rules, err);
}
