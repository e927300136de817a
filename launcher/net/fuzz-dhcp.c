/* libFuzzer target: any bytes as a DHCP client message must not crash the codec or overrun the reply. */
#include "dhcp-packet.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        dhcp_lease lease = {.prefix = 24, .mtu = 1500, .n_routes = 2, .hostname = "vm"};
        if (size >= 34)
                memcpy(lease.mac, data + 28, 6); /* let the fuzzer reach the reply path */
        lease.dns.n_search = 1;
        strcpy(lease.dns.search[0], "ns.svc.cluster.local");
        uint8_t out[DHCP_REPLY_MAX];
        int type;
        dhcp_reply(&lease, data, size, out, sizeof(out), &type);
        return 0;
}
