/* MAC addresses: parse, format, and the address a guest NIC gets when the spec names none. */
#pragma once

#include <stdint.h>

int mac_parse(const char *s, uint8_t out[6]); /* "aa:bb:cc:dd:ee:ff" or with '-'; -EINVAL otherwise */
void mac_format(const uint8_t mac[6], char out[18]);
/* 52:54:00:xx:xx:xx (QEMU's prefix, what libvirt gives KubeVirt guests) derived from seed, so a restarted
 * launcher gives the guest the same MAC. */
void mac_from_seed(const char *seed, uint8_t out[6]);
/* A random locally administered unicast MAC (for the Pod's eth0 once the guest took its MAC). */
int mac_random(uint8_t out[6]);
