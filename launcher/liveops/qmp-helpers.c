/* qmp-helpers: shared QMP idioms of the live operations (see qmp-helpers.h). */
#include "qmp-helpers.h"
#include "qmp-seq.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int lo_exec(qmp *q, const char *command, cJSON *args, cJSON **ret, kv_error *err)
{
        int r = qmp_execute(q, command, args, LO_CMD_TIMEOUT_MS, ret, err);
        if (r < 0 && err)
                kv_error_wrap(err, "%s", command);
        return r;
}

int lo_for_each_block_node(qmp *q, lo_block_fn fn, void *ud, kv_error *err)
{
        _cleanup_json_ cJSON *ret = NULL;
        int r = lo_exec(q, "query-block", NULL, &ret, err);
        return r < 0 ? r : lo_walk_block_nodes(ret, fn, ud, err);
}

int lo_walk_block_nodes(const cJSON *blocks, lo_block_fn fn, void *ud, kv_error *err)
{
        int r;
        const cJSON *b;
        cJSON_ArrayForEach(b, blocks)
        {
                const cJSON *in = cJSON_GetObjectItem(b, "inserted");
                const cJSON *nn = cJSON_GetObjectItem(in, "node-name");
                if (cJSON_IsString(nn) && (r = fn(b, in, nn->valuestring, ud, err)) != 0)
                        return r;
        }
        return 0;
}

int lo_device_deleted_timeout(const char *id, int timeout_ms, kv_error *err)
{
        return kv_error_set(err, ETIMEDOUT,
                            "device %s: the guest did not release it within %d ms (it must run and cooperate "
                            "with ACPI hot-plug); the unplug stays pending",
                            id, timeout_ms);
}

bool lo_device_in(const cJSON *qom_list, const char *id)
{
        const cJSON *p;
        cJSON_ArrayForEach(p, qom_list)
        {
                const cJSON *name = cJSON_GetObjectItem(p, "name");
                if (cJSON_IsString(name) && !strcmp(name->valuestring, id))
                        return true;
        }
        return false;
}

/* A pcie-root-port (class 0x0604, Red Hat 1b36:000c) with an id. */
static bool is_root_port(const cJSON *dev)
{
        const cJSON *id = cJSON_GetObjectItem(cJSON_GetObjectItem(dev, "id"), "device");
        const cJSON *qdev = cJSON_GetObjectItem(dev, "qdev_id");
        return cJSON_IsNumber(id) && id->valueint == 0x000c && cJSON_IsString(qdev) && qdev->valuestring[0] &&
               cJSON_GetObjectItem(dev, "pci_bridge");
}

/* A pcie-root-port whose secondary bus holds no device. */
static bool port_is_free(const cJSON *dev)
{
        return is_root_port(dev) &&
               cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetObjectItem(dev, "pci_bridge"), "devices")) ==
                   0;
}

size_t lo_root_ports_in(const cJSON *query_pci, char (*ids)[16], size_t max)
{
        size_t n = 0;
        const cJSON *bus, *dev;
        cJSON_ArrayForEach(bus, query_pci) cJSON_ArrayForEach(dev, cJSON_GetObjectItem(bus, "devices"))
        {
                if (n < max && is_root_port(dev))
                        snprintf(ids[n++], sizeof(ids[0]), "%s",
                                 cJSON_GetObjectItem(dev, "qdev_id")->valuestring);
        }
        return n;
}

bool lo_bus_has_child(const cJSON *qom_list)
{
        const cJSON *p;
        cJSON_ArrayForEach(p, qom_list)
        {
                const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(p, "name"));
                if (name && !strncmp(name, "child[", strlen("child[")))
                        return true;
        }
        return false;
}

int lo_free_root_port_in(const cJSON *query_pci, char *out, size_t size, kv_error *err)
{
        const cJSON *bus, *dev;
        cJSON_ArrayForEach(bus, query_pci) cJSON_ArrayForEach(dev, cJSON_GetObjectItem(bus, "devices"))
        {
                if (port_is_free(dev)) {
                        snprintf(out, size, "%s", cJSON_GetObjectItem(dev, "qdev_id")->valuestring);
                        return 0;
                }
        }
        return kv_error_set(err, ENOSPC, "no free PCIe root port left for hot-plug (start the VM with more)");
}

static const cJSON *find_job(const cJSON *jobs, const char *id)
{
        const cJSON *j;
        cJSON_ArrayForEach(j, jobs)
        {
                const cJSON *jid = cJSON_GetObjectItem(j, "id");
                if (cJSON_IsString(jid) && !strcmp(jid->valuestring, id))
                        return j;
        }
        return NULL;
}

void lo_job_dismiss_stale(qmp *q, const char *id)
{
        kv_error ignored = {0};
        qmp_execute(q, "job-dismiss", jstr(cJSON_CreateObject(), "id", id), LO_CMD_TIMEOUT_MS, NULL,
                    &ignored);
}

int lo_job_outcome(const cJSON *jobs, const char *id, kv_error *err)
{
        const cJSON *job = find_job(jobs, id);
        if (!job)
                return kv_error_set(err, ENOENT, "job %s disappeared", id);
        const cJSON *st = cJSON_GetObjectItem(job, "status");
        if (!cJSON_IsString(st) || strcmp(st->valuestring, "concluded"))
                return 0;
        const cJSON *e = cJSON_GetObjectItem(job, "error");
        if (cJSON_IsString(e) && e->valuestring[0])
                return kv_error_set(err, EIO, "job %s failed: %s", id, e->valuestring);
        return 1;
}

int lo_job_finish(qmp *q, const char *id, int timeout_ms, kv_error *err)
{
        lo_job_seq j;
        lo_job_seq_init(&j, id, timeout_ms);
        return lo_seq_run(q, lo_job_step, &j, err);
}
