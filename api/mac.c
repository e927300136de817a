/* MAC address helpers. */
#include "mac.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

int mac_parse(const char *s, uint8_t out[6])
{
        if (!s || strlen(s) != 17)
                return -EINVAL;
        char sep = s[2];
        if (sep != ':' && sep != '-')
                return -EINVAL;
        for (int i = 0; i < 6; i++) {
                const char *p = s + 3 * i;
                if (i < 5 && p[2] != sep)
                        return -EINVAL;
                unsigned v = 0;
                for (int k = 0; k < 2; k++) {
                        char c = p[k];
                        int d = c >= '0' && c <= '9'   ? c - '0'
                                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                                       : -1;
                        if (d < 0)
                                return -EINVAL;
                        v = v * 16 + (unsigned)d;
                }
                out[i] = (uint8_t)v;
        }
        return 0;
}

void mac_format(const uint8_t mac[6], char out[18])
{
        snprintf(out, 18, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
}

void mac_from_seed(const char *seed, uint8_t out[6])
{
        uint32_t h = 2166136261u; /* FNV-1a: stable, good enough spread for 24 bits */
        for (const char *p = seed ? seed : ""; *p; p++)
                h = (h ^ (uint8_t)*p) * 16777619u;
        out[0] = 0x52, out[1] = 0x54, out[2] = 0x00;
        out[3] = (uint8_t)(h >> 16), out[4] = (uint8_t)(h >> 8), out[5] = (uint8_t)h;
}

int mac_random(uint8_t out[6])
{
        if (getrandom(out, 6, 0) != 6)
                return -errno;
        out[0] = (uint8_t)((out[0] & 0xfe) | 0x02);
        return 0;
}
