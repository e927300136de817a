/* liveops-command: the verb → library call table shared by the control socket and liveops-driver. */
#include "liveops-command.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ctl-protocol.h"
#include "hotplug.h"
#include "qmp-helpers.h"
#include "quantity.h"
#include "snapshot.h"

static const char *jstr_or(const cJSON *a, const char *k, const char *dflt)
{
        const cJSON *v = cJSON_GetObjectItem(a, k);
        return cJSON_IsString(v) ? v->valuestring : dflt;
}

static double jnum_or(const cJSON *a, const char *k, double dflt)
{
        const cJSON *v = cJSON_GetObjectItem(a, k);
        return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

/* A whole number in [0, max] or absent; `where` prefixes the field in errors ("--incoming-config"). */
static int config_uint(const cJSON *c, const char *key, double max, const char *where, unsigned *out,
                       kv_error *err)
{
        const cJSON *v = cJSON_GetObjectItem(c, key);
        if (!v || cJSON_IsNull(v))
                return 0;
        if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < 0 ||
            v->valuedouble > max)
                return kv_error_set(err, EINVAL, "%s: %s: must be a whole number from 0 to %.0f", where, key,
                                    max);
        *out = (unsigned)v->valuedouble;
        return 0;
}

static int config_bool(const cJSON *c, const char *key, const char *where, bool *out, kv_error *err)
{
        const cJSON *v = cJSON_GetObjectItem(c, key);
        if (!v || cJSON_IsNull(v))
                return 0;
        if (!cJSON_IsBool(v))
                return kv_error_set(err, EINVAL, "%s: %s: must be true or false", where, key);
        *out = cJSON_IsTrue(v);
        return 0;
}

int liveops_parse_migration_config(const cJSON *c, const char *where, migration_config *m, kv_error *err)
{
        *m = (migration_config){0};
        if (!c || cJSON_IsNull(c))
                return 0;
        if (!cJSON_IsObject(c))
                return kv_error_set(err, EINVAL,
                                    "%s: must be a JSON object (KubeVirt's MigrationConfiguration)", where);
        const cJSON *bw = cJSON_GetObjectItem(c, "bandwidthPerMigration");
        char path[160];
        snprintf(path, sizeof(path), "%s: bandwidthPerMigration", where);
        int r = 0;
        if (bw && !cJSON_IsNull(bw))
                r = quantity_bytes(bw, path, &m->bandwidth, err);
        if (r >= 0)
                r = config_uint(c, "completionTimeoutPerGiB", 1e6, where, &m->completion_timeout_per_gib,
                                err);
        if (r >= 0)
                r = config_uint(c, "progressTimeout", 1e6, where, &m->progress_timeout, err);
        if (r >= 0)
                r = config_uint(c, "parallelMigrationThreads", 255, where, &m->parallel_threads, err);
        if (r >= 0)
                r = config_uint(c, "downtimeMs", 1e6, where, &m->downtime_ms, err);
        if (r >= 0)
                r = config_bool(c, "allowAutoConverge", where, &m->allow_auto_converge, err);
        if (r >= 0)
                r = config_bool(c, "allowPostCopy", where, &m->allow_post_copy, err);
        if (r >= 0)
                r = config_bool(c, "disableMultifd", where, &m->disable_multifd, err);
        return r;
}

int liveops_hp_op(const char *verb, const cJSON *a, hp_op *o, kv_error *err)
{
        int t = (int)jnum_or(a, "timeoutMs", LO_CMD_TIMEOUT_MS);
        const char *name = jstr_or(a, "name", NULL);
        ctl_verb v = ctl_verb_from_name(verb);
        *o = (hp_op){0};
        bool named = v == CTL_VERB_HOTPLUG_DISK || v == CTL_VERB_HOTPLUG_NIC || v == CTL_VERB_UNPLUG_DISK ||
                     v == CTL_VERB_UNPLUG_NIC;
        if (named && (!name || !name[0]))
                return kv_error_set(err, EINVAL, "%s: args.name is required", verb);
        switch (v) {
        case CTL_VERB_HOTPLUG_DISK: {
                hp_disk d = {.name = name,
                             .path = jstr_or(a, "path", NULL),
                             .readonly = cJSON_IsTrue(cJSON_GetObjectItem(a, "readonly")),
                             .serial = jstr_or(a, "serial", NULL),
                             .format = strcmp(jstr_or(a, "format", "qcow2"), "raw") ? IMG_QCOW2 : IMG_RAW,
                             .bus = strcmp(jstr_or(a, "bus", "virtio"), "scsi") ? BUS_VIRTIO : BUS_SCSI};
                return hp_disk_add_init(o, &d, err);
        }
        case CTL_VERB_HOTPLUG_NIC: {
                hp_nic n = {.name = name, .mac = jstr_or(a, "mac", NULL), .model = NIC_VIRTIO};
                hp_nic_add_init(o, &n);
                return 0;
        }
        case CTL_VERB_UNPLUG_DISK:
        case CTL_VERB_UNPLUG_NIC:
                hp_unplug_init(o, v == CTL_VERB_UNPLUG_DISK, name, t);
                return 0;
        case CTL_VERB_SET_CPUS:
                hp_cpus_init(o, (unsigned)jnum_or(a, "sockets", 1));
                return 0;
        case CTL_VERB_SET_MEMORY:
                hp_memory_init(o, (uint64_t)jnum_or(a, "bytes", 0), (uint64_t)jnum_or(a, "max", 0), t, true);
                return 0;
        default:
                return kv_error_set(err, ENOENT, "%s is not a hot-plug operation", verb);
        }
}

static int run_migrate(qmp *q, const cJSON *a, cJSON **result, kv_error *err)
{
        migration_config c;
        if (liveops_parse_migration_config(cJSON_GetObjectItem(a, "config"), "migrate: config", &c, err) < 0)
                return -EINVAL;
        migration_state st;
        int r = migration_run(q, &c, jstr_or(a, "uri", ""), "127.0.0.1", (int)jnum_or(a, "nbdPort", 0),
                              (int)jnum_or(a, "timeoutMs", 120000), &st, err);
        *result = cJSON_CreateObject();
        cJSON_AddItemToObject(*result, "migrationState", migration_state_to_json(&st));
        migration_state_free(&st);
        return r;
}

int liveops_command(qmp *q, const char *verb, const cJSON *a, cJSON **result, kv_error *err)
{
        const char *tag = jstr_or(a, "tag", "");
        switch (ctl_verb_from_name(verb)) {
        case CTL_VERB_HOTPLUG_DISK:
        case CTL_VERB_UNPLUG_DISK:
        case CTL_VERB_HOTPLUG_NIC:
        case CTL_VERB_UNPLUG_NIC:
        case CTL_VERB_SET_CPUS:
        case CTL_VERB_SET_MEMORY: {
                hp_op o;
                int r = liveops_hp_op(verb, a, &o, err);
                if (r >= 0)
                        r = lo_seq_run(q, hp_step, &o, err);
                hp_op_free(&o);
                return r;
        }
        case CTL_VERB_SNAPSHOT_SAVE:
                return snapshot_save(q, tag, SNAPSHOT_TIMEOUT_MS, err);
        case CTL_VERB_SNAPSHOT_LOAD:
                return snapshot_load(q, tag, SNAPSHOT_TIMEOUT_MS, err);
        case CTL_VERB_SNAPSHOT_DELETE:
                return snapshot_delete(q, tag, SNAPSHOT_TIMEOUT_MS, err);
        case CTL_VERB_SNAPSHOT_LIST: {
                cJSON *list = NULL;
                int r = snapshot_list(q, &list, err);
                *result = cJSON_CreateObject();
                if (r >= 0)
                        cJSON_AddItemToObject(*result, "snapshots", list);
                return r;
        }
        case CTL_VERB_MIGRATION_TARGET: {
                migration_config c;
                if (liveops_parse_migration_config(cJSON_GetObjectItem(a, "config"),
                                                   "migration-target: config", &c, err) < 0)
                        return -EINVAL;
                return migration_target_prepare(q, &c, jstr_or(a, "uri", ""), "127.0.0.1",
                                                (int)jnum_or(a, "nbdPort", 0), err);
        }
        case CTL_VERB_MIGRATION_TARGET_FINISH:
                return migration_target_finish(q, (int)jnum_or(a, "timeoutMs", 120000), err);
        case CTL_VERB_MIGRATE:
                return run_migrate(q, a, result, err);
        default:
                return kv_error_set(err, EINVAL, "unknown verb \"%s\"", verb);
        }
}
