/* libFuzzer target: any bytes as a DHCPv6 client message or an ICMPv6 router solicitation must not crash
 * the codec or overrun the reply. */
#include "v6-packet.h"

#include <arpa/inet.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        v6_lease lease = {.server_mac = {0x52, 0x54, 0, 1, 2, 3}, .prefix_len = 120, .mtu = 1500};
        inet_pton(AF_INET6, "fd10:0:2::2", &lease.addr);
        lease.n_dns = V6_MAX_DNS; /* the longest replies: every name server and a full search list */
        lease.search_len = V6_SEARCH_MAX;
        if (size >= 18 && data[0] == 3) /* let the fuzzer match our server id */
                memcpy(lease.server_mac, data + 12, 6);
        uint8_t out[V6_REPLY_MAX];
        int type;
        bool leased;
        dhcp6_reply(&lease, data, size, out, sizeof(out), &type, &leased);
        /* a reply too small for what it must carry fails cleanly */
        dhcp6_reply(&lease, data, size, out, 40, &type, &leased);
        v6_is_router_solicit(data, size);
        return 0;
}
