/* Unit tests for libkvnet's pure parts: VMI network validation (each bad input names its field), the
 * DHCP codec, resolv.conf parsing and the NAT ruleset. */
#include "dhcp-packet.h"
#include "mac.h"
#include "nat.h"
#include "net.h"
#include "resolv.h"
#include "v6-packet.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test-util.h"

/* A spec with one pod network "default" and the given interface JSON. */
static cJSON *spec_with(const char *iface_json)
{
        char text[2048];
        snprintf(text, sizeof(text),
                 "{\"domain\":{\"devices\":{\"interfaces\":[%s]}},\"networks\":[{\"name\":\"default\","
                 "\"pod\":{}}]}",
                 iface_json);
        return cJSON_Parse(text);
}

static void expect_error(const char *spec_json, const char *needle)
{
        cJSON *spec = cJSON_Parse(spec_json);
        kv_error err = {0};
        int r = spec ? net_validate(spec, &err) : -1;
        if (r != -22 || !strstr(err.msg, needle)) {
                fprintf(stderr, "spec %s\n  expected error containing \"%s\", got %d \"%s\"\n", spec_json,
                        needle, r, err.msg);
                test_failures++;
        }
        cJSON_Delete(spec);
}

static void expect_iface_error(const char *iface_json, const char *needle)
{
        char text[2048];
        snprintf(text, sizeof(text),
                 "{\"domain\":{\"devices\":{\"interfaces\":[%s]}},\"networks\":[{\"name\":\"default\","
                 "\"pod\":{}}]}",
                 iface_json);
        expect_error(text, needle);
}

static void test_validate_good(void)
{
        cJSON *spec =
            spec_with("{\"name\":\"default\",\"masquerade\":{},\"macAddress\":\"DE-AD-00-00-BE-AF\","
                      "\"model\":\"e1000e\",\"ports\":[{\"name\":\"http\",\"port\":80},"
                      "{\"port\":53,\"protocol\":\"UDP\"}]}");
        net_request req;
        kv_error err = {0};
        CHECK(net_request_from_vmi(spec, &req, &err) == 0);
        CHECK(req.binding == NET_BINDING_MASQUERADE);
        CHECK(strcmp(req.mac, "de:ad:00:00:be:af") == 0);
        CHECK(strcmp(req.model, "e1000e") == 0);
        CHECK(req.n_ports == 2 && req.ports[0].port == 80 && req.ports[0].protocol == IPPROTO_TCP);
        CHECK(req.ports[1].protocol == IPPROTO_UDP);
        cJSON_Delete(spec);

        spec = spec_with("{\"name\":\"default\",\"binding\":{\"name\":\"passt\"}}");
        CHECK(net_request_from_vmi(spec, &req, &err) == 0 && req.binding == NET_BINDING_PASST);
        cJSON_Delete(spec);
        spec = spec_with("{\"name\":\"default\"}"); /* no binding: KubeVirt's default, bridge */
        CHECK(net_request_from_vmi(spec, &req, &err) == 0 && req.binding == NET_BINDING_BRIDGE);
        cJSON_Delete(spec);

        spec = cJSON_Parse("{\"domain\":{\"devices\":{}}}"); /* auto-attached pod interface */
        CHECK(net_request_from_vmi(spec, &req, &err) == 0 && req.binding == NET_BINDING_BRIDGE &&
              strcmp(req.iface_name, "default") == 0);
        cJSON_Delete(spec);
        spec = cJSON_Parse("{\"domain\":{\"devices\":{\"autoattachPodInterface\":false}}}");
        CHECK(net_request_from_vmi(spec, &req, &err) == 0 && req.binding == NET_BINDING_NONE);
        cJSON_Delete(spec);
}

/* Multus networks: KubeVirt 1.x's Pod interface names, the annotation, the migration blocker. */
static void test_validate_multus(void)
{
        kv_error err = {0};
        net_request req;
        cJSON *spec = cJSON_Parse(
            "{\"domain\":{\"devices\":{\"interfaces\":[{\"name\":\"default\",\"masquerade\":{}},"
            "{\"name\":\"net1\",\"bridge\":{},\"macAddress\":\"02:00:00:00:00:01\"},"
            "{\"name\":\"net2\",\"binding\":{\"name\":\"macvtap\"}}]}},"
            "\"networks\":[{\"name\":\"default\",\"pod\":{}},{\"name\":\"net1\",\"multus\":{"
            "\"networkName\":\"br\"}},{\"name\":\"net2\",\"multus\":{\"networkName\":\"other/mv\"}}]}");
        CHECK(net_request_from_vmi(spec, &req, &err) == 0);
        CHECK(req.binding == NET_BINDING_MASQUERADE && strcmp(req.iface_name, "default") == 0);
        CHECK(req.n_secondary == 2);
        CHECK(req.secondary[0].binding == NET_BINDING_BRIDGE && strcmp(req.secondary[0].network, "br") == 0);
        CHECK(strcmp(req.secondary[0].pod_ifname, "pod6c270ef2f25") == 0);
        CHECK(req.secondary[1].binding == NET_BINDING_MACVTAP);
        char *ann = net_multus_annotation(&req, "ns1");
        CHECK(ann && strstr(ann, "{\"name\":\"br\",\"namespace\":\"ns1\",\"mac\":\"02:00:00:00:00:01\","
                                 "\"interface\":\"pod6c270ef2f25\"}"));
        CHECK(ann && strstr(ann, "{\"name\":\"mv\",\"namespace\":\"other\",\"interface\":\"pod"));
        free(ann);
        CHECK(net_migration_blocker(&req, false) && strstr(net_migration_blocker(&req, false), "macvtap"));
        req.n_secondary = 0;
        CHECK(net_migration_blocker(&req, false) == NULL); /* masquerade on the pod network */
        req.binding = NET_BINDING_BRIDGE;
        CHECK(net_migration_blocker(&req, false) && strstr(net_migration_blocker(&req, false), "masquerade"));
        CHECK(net_migration_blocker(&req, true) == NULL);
        cJSON_Delete(spec);
}

static void test_validate_bad(void)
{
        expect_error("{\"domain\":{\"devices\":{\"interfaces\":[{\"name\":\"a\",\"masquerade\":{}},"
                     "{\"name\":\"a\",\"bridge\":{}}]}},\"networks\":[{\"name\":\"a\",\"pod\":{}}]}",
                     "spec.domain.devices.interfaces[1]: a second interface on the pod network");
        expect_error("{\"networks\":[{\"name\":\"a\",\"pod\":{}},{\"name\":\"b\",\"pod\":{}}]}",
                     "spec.networks[1].pod: a second pod network");
        expect_iface_error("{\"name\":\"default\",\"binding\":{\"name\":\"vhostuser\"}}",
                           "interfaces[0].binding.name: unknown binding \"vhostuser\"");
        expect_iface_error("{\"name\":\"default\",\"sriov\":{}}",
                           "interfaces[0].sriov: binding is not supported");
        expect_iface_error("{\"name\":\"default\",\"masquerade\":{},\"slirp\":{}}",
                           "interfaces[0]: both masquerade and slirp");
        expect_iface_error(
            "{\"name\":\"default\",\"masquerade\":{},\"ports\":[{\"port\":80},{\"port\":70000}]}",
            "interfaces[0].ports[1].port: 70000 is outside 1-65535");
        expect_iface_error("{\"name\":\"default\",\"masquerade\":{},\"ports\":[{\"port\":0}]}",
                           "interfaces[0].ports[0].port: 0 is outside 1-65535");
        expect_iface_error("{\"name\":\"default\",\"masquerade\":{},\"ports\":[{\"port\":\"80\"}]}",
                           "interfaces[0].ports[0].port: must be an integer");
        expect_iface_error(
            "{\"name\":\"default\",\"masquerade\":{},\"ports\":[{\"port\":80,\"protocol\":\"SCTP\"}]}",
            "interfaces[0].ports[0].protocol");
        expect_iface_error("{\"name\":\"default\",\"bridge\":{},\"ports\":[{\"port\":80}]}",
                           "interfaces[0].ports: only masquerade, passt and slirp");
        expect_iface_error("{\"name\":\"default\",\"masquerade\":{},\"macAddress\":\"de:ad:be:ef\"}",
                           "interfaces[0].macAddress: \"de:ad:be:ef\" is not a MAC address");
        expect_iface_error("{\"name\":\"default\",\"masquerade\":{},\"macAddress\":\"zz:ad:00:00:be:af\"}",
                           "interfaces[0].macAddress: \"zz:ad:00:00:be:af\"");
        expect_iface_error("{\"name\":\"default\",\"masquerade\":{},\"macAddress\":\"01:00:5e:00:00:01\"}",
                           "interfaces[0].macAddress: \"01:00:5e:00:00:01\" is a multicast address");
        expect_iface_error("{\"name\":\"default\",\"masquerade\":{},\"model\":\"ne2k\"}",
                           "interfaces[0].model: \"ne2k\" is not supported");
        expect_iface_error("{\"name\":\"default\",\"masquerade\":{},\"pciAddress\":\"01:00.0\"}",
                           "interfaces[0].pciAddress: must be a PCI address");
        expect_iface_error(
            "{\"name\":\"default\",\"masquerade\":{},\"dhcpOptions\":{\"ntpServers\":[\"::1\"]}}",
            "interfaces[0].dhcpOptions.ntpServers[0]: is not an IPv4 address");
        expect_iface_error("{\"name\":\"other\",\"masquerade\":{}}",
                           "interfaces[0].name: \"other\" has no spec.networks[] entry");
        expect_error("{\"networks\":[{\"name\":\"m\",\"multus\":{\"networkName\":\"x\",\"default\":true}}]}",
                     "spec.networks[0].multus.default: is not supported");
        expect_error("{\"networks\":[{\"name\":\"m\",\"multus\":{\"networkName\":\"x\"}}]}",
                     "spec.networks[0]: no spec.domain.devices.interfaces[]");
        expect_error("{\"domain\":{\"devices\":{\"interfaces\":[{\"name\":\"m\",\"masquerade\":{}}]}},"
                     "\"networks\":[{\"name\":\"m\",\"multus\":{\"networkName\":\"x\"}}]}",
                     "interfaces[0]: the masquerade binding needs the pod network");
        expect_error("{\"domain\":{\"devices\":{\"interfaces\":[{\"name\":\"m\",\"macvtap\":{}}]}},"
                     "\"networks\":[{\"name\":\"m\",\"pod\":{}}]}",
                     "interfaces[0].macvtap: needs a multus network");
        expect_error("{\"networks\":[{\"name\":\"m\",\"multus\":{\"networkName\":\"x\"},\"pod\":{}}]}",
                     "spec.networks[0]: both multus and pod are set");
        expect_error("{\"networks\":[{\"name\":\"d\",\"pod\":{\"vmNetworkCIDR\":\"10.1.0.0/24\"}}]}",
                     "spec.networks[0].pod.vmNetworkCIDR: is not supported");
        expect_error("{\"networks\":[{\"name\":\"d\",\"pod\":{}}]}",
                     "spec.networks[0]: no spec.domain.devices.interfaces[]");
}

/* A minimal client message: type, optional requested IP and server id. */
static size_t client_msg(uint8_t *m, const uint8_t mac[6], int type, const char *requested,
                         const char *server)
{
        memset(m, 0, 300);
        m[0] = 1, m[1] = 1, m[2] = 6;
        m[4] = 0xde, m[5] = 0xad, m[6] = 0xbe, m[7] = 0xef;
        memcpy(m + 28, mac, 6);
        memcpy(m + 236, (uint8_t[]){99, 130, 83, 99}, 4);
        size_t i = 240;
        m[i++] = 53, m[i++] = 1, m[i++] = (uint8_t)type;
        if (requested) {
                m[i++] = 50, m[i++] = 4;
                inet_pton(AF_INET, requested, m + i);
                i += 4;
        }
        if (server) {
                m[i++] = 54, m[i++] = 4;
                inet_pton(AF_INET, server, m + i);
                i += 4;
        }
        m[i++] = 255;
        return 300;
}

/* Finds option code in a reply (first instance); returns its length or -1. */
static int find_option(const uint8_t *p, size_t n, uint8_t code, const uint8_t **val)
{
        for (size_t i = 240; i + 1 < n && p[i] != 255;) {
                if (p[i] == 0) {
                        i++;
                        continue;
                }
                if (p[i] == code) {
                        *val = p + i + 2;
                        return p[i + 1];
                }
                i += 2 + p[i + 1];
        }
        return -1;
}

static void test_dhcp(void)
{
        dhcp_lease l = {.prefix = 24, .mtu = 1400, .hostname = "vm1"};
        mac_parse("52:54:00:12:34:56", l.mac);
        inet_pton(AF_INET, "10.0.2.1", &l.server_id);
        inet_pton(AF_INET, "10.0.2.2", &l.yiaddr);
        l.router = l.server_id;
        resolv_conf_parse("# pod\nnameserver 10.96.0.10\nnameserver fd00::10\nsearch ns.svc.cluster.local "
                          "svc.cluster.local\n"
                          "options ndots:5\n",
                          &l.dns);
        CHECK(l.dns.n_dns == 1 && l.dns.n_search == 2 && l.dns.n_dns6 == 1);
        uint8_t in[300], out[DHCP_REPLY_MAX];
        const uint8_t *v;
        int type = 0;
        ssize_t n = dhcp_reply(&l, in, client_msg(in, l.mac, 1, NULL, NULL), out, sizeof(out), &type);
        CHECK(n >= 300 && type == 2 && out[0] == 2);
        CHECK(memcmp(out + 4, "\xde\xad\xbe\xef", 4) == 0);
        CHECK(memcmp(out + 16, "\x0a\x00\x02\x02", 4) == 0); /* yiaddr */
        CHECK(find_option(out, (size_t)n, 1, &v) == 4 && memcmp(v, "\xff\xff\xff\x00", 4) == 0);
        CHECK(find_option(out, (size_t)n, 3, &v) == 4 && memcmp(v, "\x0a\x00\x02\x01", 4) == 0);
        CHECK(find_option(out, (size_t)n, 6, &v) == 4 && memcmp(v, "\x0a\x60\x00\x0a", 4) == 0);
        CHECK(find_option(out, (size_t)n, 26, &v) == 2 && v[0] == 0x05 && v[1] == 0x78);
        CHECK(find_option(out, (size_t)n, 12, &v) == 3 && memcmp(v, "vm1", 3) == 0);
        CHECK(find_option(out, (size_t)n, 119, &v) == 41 && memcmp(v,
                                                                   "\x02ns\x03svc\x07"
                                                                   "cluster\x05local\x00",
                                                                   22) == 0);
        CHECK(find_option(out, (size_t)n, 121, &v) == -1);

        n = dhcp_reply(&l, in, client_msg(in, l.mac, 3, "10.0.2.2", "10.0.2.1"), out, sizeof(out), &type);
        CHECK(n > 0 && type == 5);
        n = dhcp_reply(&l, in, client_msg(in, l.mac, 3, "10.0.2.9", NULL), out, sizeof(out), &type);
        CHECK(n > 0 && type == 6 && find_option(out, (size_t)n, 3, &v) == -1);
        CHECK(dhcp_reply(&l, in, client_msg(in, l.mac, 3, "10.0.2.2", "10.0.2.7"), out, sizeof(out), &type) ==
              0);
        uint8_t other[6] = {0x52, 0x54, 0, 0, 0, 1};
        CHECK(dhcp_reply(&l, in, client_msg(in, other, 1, NULL, NULL), out, sizeof(out), &type) == 0);
        CHECK(dhcp_reply(&l, in, 100, out, sizeof(out), &type) < 0);
        client_msg(in, l.mac, 1, NULL, NULL);
        in[241] = 200; /* option length past the end */
        CHECK(dhcp_reply(&l, in, 300, out, sizeof(out), &type) < 0);

        /* routes: option 121 with the default route, /32 on-link gateway (Calico style) */
        inet_pton(AF_INET, "169.254.1.1", &l.routes[0].dst);
        l.routes[0].prefix = 32;
        inet_pton(AF_INET, "169.254.1.1", &l.routes[1].gateway);
        l.n_routes = 2;
        n = dhcp_reply(&l, in, client_msg(in, l.mac, 1, NULL, NULL), out, sizeof(out), &type);
        CHECK(find_option(out, (size_t)n, 121, &v) == 14);
        CHECK(v[0] == 32 && memcmp(v + 1, "\xa9\xfe\x01\x01\x00\x00\x00\x00", 8) == 0 && v[9] == 0);
        /* interfaces[].dhcpOptions: TFTP server 66, boot file 67, NTP 42, private 224-254 */
        snprintf(l.extra.tftp_server, sizeof(l.extra.tftp_server), "tftp.example");
        snprintf(l.extra.boot_file, sizeof(l.extra.boot_file), "pxelinux.0");
        inet_pton(AF_INET, "192.0.2.1", &l.extra.ntp[0]);
        l.extra.n_ntp = 1;
        l.extra.priv[0].code = 240;
        snprintf(l.extra.priv[0].value, sizeof(l.extra.priv[0].value), "secret");
        l.extra.n_priv = 1;
        n = dhcp_reply(&l, in, client_msg(in, l.mac, 1, NULL, NULL), out, sizeof(out), &type);
        CHECK(find_option(out, (size_t)n, 66, &v) == 12 && memcmp(v, "tftp.example", 12) == 0);
        CHECK(find_option(out, (size_t)n, 67, &v) == 10 && memcmp(v, "pxelinux.0", 10) == 0);
        CHECK(find_option(out, (size_t)n, 42, &v) == 4 && memcmp(v, "\xc0\x00\x02\x01", 4) == 0);
        CHECK(find_option(out, (size_t)n, 240, &v) == 6 && memcmp(v, "secret", 6) == 0);
}

static void test_nat(void)
{
        nat_addrs a = {0};
        inet_pton(AF_INET, "10.200.0.2", &a.pod4);
        inet_pton(AF_INET, "10.0.2.2", &a.guest4);
        net_port ports[] = {{IPPROTO_TCP, 80}, {IPPROTO_UDP, 53}, {IPPROTO_TCP, 8080}};
        char out[8192];
        CHECK(nat_render("eth0", &a, ports, 3, out, sizeof(out)) > 0);
        CHECK(strstr(out, "iifname \"eth0\" ip daddr 10.200.0.2 tcp dport { 80, 8080 } dnat to 10.0.2.2\n"));
        CHECK(strstr(out, "udp dport { 53 } dnat to 10.0.2.2\n"));
        CHECK(strstr(out, "ip saddr 10.0.2.2 oifname \"eth0\" masquerade\n"));
        CHECK(!strstr(out, "ip6"));
        CHECK(nat_render("eth0", &a, NULL, 0, out, sizeof(out)) > 0);
        CHECK(strstr(out, "iifname \"eth0\" ip daddr 10.200.0.2 dnat to 10.0.2.2\n"));
        /* the migration ports stay with the launcher, and come before any DNAT */
        const char *keep = strstr(out, "ip daddr 10.200.0.2 tcp dport { 49152, 49153 } accept\n");
        CHECK(keep && keep < strstr(out, "dnat to"));
        CHECK(nat_render("eth0\"; flush ruleset", &a, NULL, 0, out, sizeof(out)) == -22);
        CHECK(nat_render("eth0", &a, NULL, 0, out, 20) == -105);
        /* dual stack: an ip6 table with the same rules */
        a.has6 = true;
        inet_pton(AF_INET6, "fd00:10:244::5", &a.pod6);
        inet_pton(AF_INET6, "fd10:0:2::2", &a.guest6);
        CHECK(nat_render("eth0", &a, ports, 3, out, sizeof(out)) > 0);
        CHECK(strstr(out, "add table ip6 kvlite_nat\n"));
        CHECK(strstr(
            out, "add rule ip6 kvlite_nat postrouting ip6 saddr fd10:0:2::2 oifname \"eth0\" masquerade\n"));
        CHECK(strstr(
            out, "iifname \"eth0\" ip6 daddr fd00:10:244::5 tcp dport { 80, 8080 } dnat to fd10:0:2::2\n"));
        keep = strstr(out, "ip6 daddr fd00:10:244::5 tcp dport { 49152, 49153 } accept\n");
        CHECK(keep && keep < strstr(out, "ip6 daddr fd00:10:244::5 tcp dport { 80"));
        CHECK(strstr(out, "ip daddr 10.200.0.2 udp dport { 53 } dnat to 10.0.2.2\n"));
}

/* The bridge binding's rule for port-forward: frames from the tap to the bridge's address become the Pod's.
 */
static void test_bridge_local(void)
{
        static const uint8_t mac[6] = {0x02, 0x4a, 0x0b, 0xc1, 0xd2, 0xe3};
        struct in_addr local;
        char out[1024];
        inet_pton(AF_INET, "169.254.75.10", &local);
        CHECK(nat_bridge_local_render("tap0", mac, local, out, sizeof(out)) > 0);
        CHECK_STR(out,
                  "add table bridge kvlite_local\ndelete table bridge kvlite_local\n"
                  "add table bridge kvlite_local\n"
                  "add chain bridge kvlite_local prerouting { type filter hook prerouting priority -300; "
                  "policy accept; }\n"
                  "add rule bridge kvlite_local prerouting iifname \"tap0\" ip daddr 169.254.75.10 "
                  "ether daddr set 02:4a:0b:c1:d2:e3 meta pkttype set host\n");
        CHECK(nat_bridge_local_render("tap0\"; flush ruleset", mac, local, out, sizeof(out)) == -EINVAL);
        CHECK(nat_bridge_local_render("tap0", mac, local, out, 40) == -ENOBUFS);
}

/* A DHCPv6 client message: type, transaction id 0xabcdef, then the given options. */
static size_t dhcp6_msg(uint8_t *m, int type, const uint8_t *opts, size_t n)
{
        m[0] = (uint8_t)type, m[1] = 0xab, m[2] = 0xcd, m[3] = 0xef;
        if (n)
                memcpy(m + 4, opts, n);
        return 4 + n;
}

/* The option code's value in a DHCPv6 message (top level), its length, or -1. */
static int dhcp6_find(const uint8_t *m, size_t n, int code, const uint8_t **v)
{
        for (size_t at = 4; at + 4 <= n;) {
                int c = m[at] << 8 | m[at + 1], len = m[at + 2] << 8 | m[at + 3];
                if (c == code) {
                        *v = m + at + 4;
                        return len;
                }
                at += 4 + (size_t)len;
        }
        return -1;
}

static void test_v6(void)
{
        v6_lease lease = {.server_mac = {0x02, 0, 0, 0, 0, 0x01}, .prefix_len = 120, .mtu = 1450};
        inet_pton(AF_INET6, "fd10:0:2::2", &lease.addr);
        inet_pton(AF_INET6, "fd10:0:2::", &lease.prefix);
        uint8_t ra[V6_REPLY_MAX];
        size_t n = v6_ra_build(&lease, ra, sizeof(ra));
        /* header 16, source link-layer 8, MTU 8, prefix 32; managed + other flags; lifetime 1800 */
        CHECK(n == 64 && ra[0] == 134 && ra[5] == 0xc0 && (ra[6] << 8 | ra[7]) == 1800);
        CHECK(ra[16] == 1 && memcmp(ra + 18, lease.server_mac, 6) == 0);
        CHECK(ra[24] == 5 && ra[31] == (1450 & 0xff));
        CHECK(ra[32] == 3 && ra[34] == 120 && ra[35] == 0x80 && memcmp(ra + 48, &lease.prefix, 16) == 0);
        CHECK(v6_ra_build(&lease, ra, 40) == 0);
        CHECK(v6_is_router_solicit((const uint8_t *)"\x85\0\0\0\0\0\0\0", 8));
        CHECK(v6_is_router_solicit((const uint8_t *)"\x85\0\0\0\0\0\0\0\x01\x01\x02\0\0\0\0\x01", 16));
        CHECK(!v6_is_router_solicit((const uint8_t *)"\x85\0\0\0\0\0\0\0\x01\x00", 10)); /* length 0 */
        CHECK(!v6_is_router_solicit((const uint8_t *)"\x86\0\0\0\0\0\0\0", 8));

        /* SOLICIT with a client id and IA_NA (IAID 7) -> ADVERTISE with our DUID-LL and the address */
        const uint8_t solicit[] = {0, 1, 0, 4, 0xde, 0xad, 0xbe, 0xef, 0, 3, 0, 12,
                                   0, 0, 0, 7, 0,    0,    0,    0,    0, 0, 0, 0};
        uint8_t in[256], out[V6_REPLY_MAX];
        const uint8_t *v;
        int type;
        bool leased;
        ssize_t len = dhcp6_reply(&lease, in, dhcp6_msg(in, 1, solicit, sizeof(solicit)), out, sizeof(out),
                                  &type, &leased);
        CHECK(len > 0 && type == 2 && !leased && out[0] == 2 && memcmp(out + 1, "\xab\xcd\xef", 3) == 0);
        CHECK(dhcp6_find(out, (size_t)len, 1, &v) == 4 && memcmp(v, "\xde\xad\xbe\xef", 4) == 0);
        CHECK(dhcp6_find(out, (size_t)len, 2, &v) == 10 &&
              memcmp(v, "\0\x03\0\x01\x02\0\0\0\0\x01", 10) == 0);
        CHECK(dhcp6_find(out, (size_t)len, 3, &v) == 40 && v[3] == 7 && (v[12] << 8 | v[13]) == 5 &&
              memcmp(v + 16, &lease.addr, 16) == 0 && memcmp(v + 32, "\xff\xff\xff\xff", 4) == 0);
        CHECK(dhcp6_find(out, (size_t)len, 23, &v) < 0); /* no IPv6 name server in the Pod */
        /* REQUEST naming our server id -> REPLY that leases */
        uint8_t request[64];
        memcpy(request, solicit, sizeof(solicit));
        memcpy(request + sizeof(solicit), "\0\x02\0\x0a\0\x03\0\x01\x02\0\0\0\0\x01", 14);
        len = dhcp6_reply(&lease, in, dhcp6_msg(in, 3, request, sizeof(solicit) + 14), out, sizeof(out),
                          &type, &leased);
        CHECK(len > 0 && type == 7 && leased);
        /* ... another server's id: not for us */
        request[sizeof(solicit) + 13] = 0x02;
        CHECK(dhcp6_reply(&lease, in, dhcp6_msg(in, 3, request, sizeof(solicit) + 14), out, sizeof(out),
                          &type, &leased) == 0);
        /* SOLICIT with rapid commit -> REPLY at once */
        memcpy(request, solicit, sizeof(solicit));
        memcpy(request + sizeof(solicit), "\0\x0e\0\0", 4);
        len = dhcp6_reply(&lease, in, dhcp6_msg(in, 1, request, sizeof(solicit) + 4), out, sizeof(out), &type,
                          &leased);
        CHECK(len > 0 && type == 7 && leased && dhcp6_find(out, (size_t)len, 14, &v) == 0);
        /* no client id; a server's message; truncated option; oversized client id */
        CHECK(dhcp6_reply(&lease, in, dhcp6_msg(in, 1, solicit + 8, 16), out, sizeof(out), &type, &leased) ==
              0);
        CHECK(dhcp6_reply(&lease, in, dhcp6_msg(in, 7, solicit, sizeof(solicit)), out, sizeof(out), &type,
                          &leased) == 0);
        CHECK(dhcp6_reply(&lease, in, dhcp6_msg(in, 1, solicit, 10), out, sizeof(out), &type, &leased) ==
              -22);
        CHECK(dhcp6_reply(&lease, in, dhcp6_msg(in, 1, (const uint8_t *)"\0\x01\0\xff", 4), out, sizeof(out),
                          &type, &leased) == -22);
        /* INFORMATION-REQUEST without client id: our id, no address */
        len = dhcp6_reply(&lease, in, dhcp6_msg(in, 11, NULL, 0), out, sizeof(out), &type, &leased);
        CHECK(len == 18 && type == 7 && !leased && dhcp6_find(out, (size_t)len, 3, &v) < 0);
        /* the Pod's IPv6 name servers (option 23) */
        inet_pton(AF_INET6, "fd00:10:96::a", &lease.dns[0]);
        lease.n_dns = 1;
        len = dhcp6_reply(&lease, in, dhcp6_msg(in, 11, NULL, 0), out, sizeof(out), &type, &leased);
        CHECK(len == 38 && dhcp6_find(out, (size_t)len, 23, &v) == 16 && memcmp(v, &lease.dns[0], 16) == 0);
        /* the Pod's search domains (option 24, RFC 3646), as DNS labels; in a SOLICIT's answer too */
        resolv_conf rc;
        resolv_conf_parse("search default.svc.cluster.local cluster.local\n", &rc);
        lease.search_len = dhcp_search_encode(&rc, lease.search, sizeof(lease.search));
        static const char labels[] = "\7default\3svc\7cluster\5local\0\7cluster\5local";
        CHECK(lease.search_len == sizeof(labels) && memcmp(lease.search, labels, sizeof(labels)) == 0);
        len = dhcp6_reply(&lease, in, dhcp6_msg(in, 1, solicit, sizeof(solicit)), out, sizeof(out), &type,
                          &leased);
        CHECK(len > 0 && dhcp6_find(out, (size_t)len, 24, &v) == (int)sizeof(labels) &&
              memcmp(v, labels, sizeof(labels)) == 0 && dhcp6_find(out, (size_t)len, 23, &v) == 16);
        /* only whole domains that fit; none with an empty label */
        CHECK(dhcp_search_encode(&rc, lease.search, 30) == 27);
        resolv_conf_parse("search bad..domain\n", &rc);
        CHECK(dhcp_search_encode(&rc, lease.search, sizeof(lease.search)) == 0);
}

static void test_mac(void)
{
        uint8_t a[6], b[6];
        mac_from_seed("ns/vm", a);
        mac_from_seed("ns/vm", b);
        CHECK(memcmp(a, b, 6) == 0 && a[0] == 0x52 && a[1] == 0x54 && a[2] == 0);
        CHECK(mac_random(a) == 0 && (a[0] & 3) == 2);
        CHECK(mac_parse("52:54:00:12:34:5", a) < 0 && mac_parse("52:54-00:12:34:56", a) < 0);
}

int main(void)
{
        test_validate_good();
        test_validate_bad();
        test_validate_multus();
        test_dhcp();
        test_nat();
        test_bridge_local();
        test_v6();
        test_mac();
        if (test_failures) {
                fprintf(stderr, "%d check(s) failed\n", test_failures);
                return 1;
        }
        printf("all kvnet unit tests passed\n");
        return 0;
}
