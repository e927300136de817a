/* migration-params: KubeVirt's MigrationConfiguration → QEMU migration capabilities and parameters.
 * Pure; unit-tested in test-liveops-unit.c. */
#include "migration.h"

#define DEFAULT_COMPLETION_PER_GIB 150
#define DEFAULT_PROGRESS_TIMEOUT 150
#define DEFAULT_DOWNTIME_MS 300
#define MAX_CHANNELS 8
/* 8 multifd channels whatever the host: both QEMUs must use the same count (a target waiting for more
 * channels than the source opens hangs, one given fewer fails), and the two nodes of a migration need not
 * have the same CPU count, so the default must not depend on the local one. 8 measured best even on 2
 * cores (bench/migration-loopback.py: 8 <= 4 < 2 < 1 channel in total time; more channels keep more
 * packets in flight, so fewer cross-core wake-ups stall the sender), and it is what 25-100 GbE needs
 * (about one core's TCP stream per channel). docs/live-operations.md, "Benchmark". */
#define DEFAULT_CHANNELS 8

void migration_params_compute(const migration_config *c, migration_params *out)
{
        *out = (migration_params){
            .max_bandwidth = c->bandwidth ? c->bandwidth : MIGRATION_UNLIMITED_BW,
            .downtime_ms = c->downtime_ms ? c->downtime_ms : DEFAULT_DOWNTIME_MS,
            .completion_timeout_per_gib =
                c->completion_timeout_per_gib ? c->completion_timeout_per_gib : DEFAULT_COMPLETION_PER_GIB,
            .progress_timeout = c->progress_timeout ? c->progress_timeout : DEFAULT_PROGRESS_TIMEOUT,
            .auto_converge = c->allow_auto_converge,
            .postcopy = c->allow_post_copy,
        };
        /* Multifd halves the total time of a RAM-heavy guest (notes §6), but QEMU 7.2 cannot combine it with
         * postcopy-ram, so allowing post-copy turns it off. */
        out->multifd = !c->disable_multifd && !c->allow_post_copy;
        if (!out->multifd)
                return;
        unsigned n = c->parallel_threads ? c->parallel_threads : DEFAULT_CHANNELS;
        out->channels = n > MAX_CHANNELS ? MAX_CHANNELS : n;
}

static void add_cap(cJSON *caps, const char *name, bool state)
{
        cJSON *c = cJSON_CreateObject();
        cJSON_AddStringToObject(c, "capability", name);
        cJSON_AddBoolToObject(c, "state", state);
        cJSON_AddItemToArray(caps, c);
}

cJSON *migration_caps_json(const migration_params *p, bool source)
{
        cJSON *caps = cJSON_CreateArray();
        add_cap(caps, "events", true);
        add_cap(caps, "multifd", p->multifd);
        add_cap(caps, "postcopy-ram", p->postcopy);
        if (source)
                add_cap(caps, "auto-converge", p->auto_converge);
        return caps;
}

cJSON *migration_params_json(const migration_params *p, bool source)
{
        cJSON *a = cJSON_CreateObject();
        if (p->multifd)
                cJSON_AddNumberToObject(a, "multifd-channels", p->channels);
        if (!source)
                return a;
        cJSON_AddNumberToObject(a, "max-bandwidth", (double)p->max_bandwidth);
        cJSON_AddNumberToObject(a, "downtime-limit", p->downtime_ms);
        if (p->auto_converge) { /* KubeVirt/libvirt's defaults */
                cJSON_AddNumberToObject(a, "cpu-throttle-initial", 20);
                cJSON_AddNumberToObject(a, "cpu-throttle-increment", 10);
        }
        return a;
}

uint64_t migration_completion_timeout_ms(const migration_params *p, uint64_t bytes)
{
        uint64_t gib = (bytes + (1ull << 30) - 1) >> 30;
        return (gib ? gib : 1) * p->completion_timeout_per_gib * 1000ull;
}
