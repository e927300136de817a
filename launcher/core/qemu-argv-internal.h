/* qemu-argv-internal: the builder state shared by qemu-argv.c (machine, CPU, memory, firmware, chardevs)
 * and qemu-argv-devices.c (disks, NICs, inputs, root ports). */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "json.h"

#include "qemu-argv.h"

typedef struct argv_builder {
        const vmi *v;
        const qemu_argv_opts *o;
        strv *argv;
        strv devs;     /* -device/-blockdev/... args that need root ports: emitted after the ports */
        int next_port; /* next free pcie-root-port index */
        /* Devices placed by a pciAddress on pcie.0 (slots ROOT_FIRST_FREE_SLOT-0x1e): one bit per function.
         * wanted holds every pciAddress of the spec (so that function 0 of a slot shared with others is
         * made multifunction), placed those given out so far. */
        uint8_t root_fns_wanted[0x20], root_fns_placed[0x20];
        bool root_fns_planned;
        kv_error *err;
} argv_builder;

/* Push "-opt" followed by the unformatted JSON (consumes obj). */
int push_json(strv *s, const char *opt, cJSON *obj, kv_error *err);
/* Push "-opt" followed by printf-formatted text (callers escape values with qemu_opt_escape). */
int push_optf(strv *s, const char *opt, kv_error *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The next root port's id ("rp<N>"), for a device that wants its own port. */
const char *builder_take_port(argv_builder *b, char buf[static 16]);

int argv_add_disks(argv_builder *b);
int argv_add_interfaces(argv_builder *b);
int argv_add_misc_devices(argv_builder *b); /* rng, balloon, inputs */
int argv_add_filesystems(argv_builder *b);  /* virtiofs (qemu-argv-fs.c) */
int argv_add_root_ports(argv_builder *b);   /* b->next_port used + o->hotplug_ports free */
