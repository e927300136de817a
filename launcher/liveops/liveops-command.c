/* liveops-command: the verb → library call table shared by the control socket and liveops-driver. */
#include "liveops-command.h"

#include <errno.h>
#include <string.h>

#include "hotplug.h"
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

void liveops_read_migration_config(const cJSON *c, migration_config *m)
{
        *m = (migration_config){
            .bandwidth = (uint64_t)jnum_or(c, "bandwidthPerMigration", 0),
            .completion_timeout_per_gib = (unsigned)jnum_or(c, "completionTimeoutPerGiB", 0),
            .progress_timeout = (unsigned)jnum_or(c, "progressTimeout", 0),
            .allow_auto_converge = cJSON_IsTrue(cJSON_GetObjectItem(c, "allowAutoConverge")),
            .allow_post_copy = cJSON_IsTrue(cJSON_GetObjectItem(c, "allowPostCopy")),
            .parallel_threads = (unsigned)jnum_or(c, "parallelMigrationThreads", 0),
            .disable_multifd = cJSON_IsTrue(cJSON_GetObjectItem(c, "disableMultifd")),
            .downtime_ms = (unsigned)jnum_or(c, "downtimeMs", 0),
        };
}

static int do_disk_add(qmp *q, const cJSON *a, kv_error *err)
{
        hp_disk d = {.name = jstr_or(a, "name", NULL),
                     .path = jstr_or(a, "path", NULL),
                     .readonly = cJSON_IsTrue(cJSON_GetObjectItem(a, "readonly")),
                     .serial = jstr_or(a, "serial", NULL),
                     .format = strcmp(jstr_or(a, "format", "qcow2"), "raw") ? IMG_QCOW2 : IMG_RAW,
                     .bus = strcmp(jstr_or(a, "bus", "virtio"), "scsi") ? BUS_VIRTIO : BUS_SCSI};
        if (!d.name)
                return kv_error_set(err, EINVAL, "hotplug-disk: \"name\" is required");
        return hotplug_disk_add(q, &d, err);
}

static int run_migrate(qmp *q, const cJSON *a, cJSON **result, kv_error *err)
{
        migration_config c;
        liveops_read_migration_config(cJSON_GetObjectItem(a, "config"), &c);
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
        int t = (int)jnum_or(a, "timeoutMs", 10000);
        const char *name = jstr_or(a, "name", ""), *tag = jstr_or(a, "tag", "");
        if (!strcmp(verb, "hotplug-disk"))
                return do_disk_add(q, a, err);
        if (!strcmp(verb, "unplug-disk"))
                return hotplug_disk_remove(q, name, t, err);
        if (!strcmp(verb, "hotplug-nic")) {
                hp_nic n = {.name = name, .mac = jstr_or(a, "mac", NULL), .model = NIC_VIRTIO};
                return hotplug_nic_add(q, &n, err);
        }
        if (!strcmp(verb, "unplug-nic"))
                return hotplug_nic_remove(q, name, t, err);
        if (!strcmp(verb, "set-cpus"))
                return hotplug_set_cpus(q, (unsigned)jnum_or(a, "sockets", 1), err);
        if (!strcmp(verb, "set-memory"))
                return hotplug_set_memory(q, (uint64_t)jnum_or(a, "bytes", 0), (uint64_t)jnum_or(a, "max", 0),
                                          t, err);
        if (!strcmp(verb, "snapshot-save"))
                return snapshot_save(q, tag, SNAPSHOT_TIMEOUT_MS, err);
        if (!strcmp(verb, "snapshot-load"))
                return snapshot_load(q, tag, SNAPSHOT_TIMEOUT_MS, err);
        if (!strcmp(verb, "snapshot-delete"))
                return snapshot_delete(q, tag, SNAPSHOT_TIMEOUT_MS, err);
        if (!strcmp(verb, "snapshot-list")) {
                cJSON *list = NULL;
                int r = snapshot_list(q, &list, err);
                *result = cJSON_CreateObject();
                if (r >= 0)
                        cJSON_AddItemToObject(*result, "snapshots", list);
                return r;
        }
        if (!strcmp(verb, "migrate-target")) {
                migration_config c;
                liveops_read_migration_config(cJSON_GetObjectItem(a, "config"), &c);
                return migration_target_prepare(q, &c, jstr_or(a, "uri", ""), "127.0.0.1",
                                                (int)jnum_or(a, "nbdPort", 0), err);
        }
        if (!strcmp(verb, "migrate-target-finish"))
                return migration_target_finish(q, (int)jnum_or(a, "timeoutMs", 120000), err);
        if (!strcmp(verb, "migrate"))
                return run_migrate(q, a, result, err);
        return kv_error_set(err, EINVAL, "unknown verb \"%s\"", verb);
}
