/* vmi-diff: the pure VMI → live operations diff, its JSON, the dispatcher onto hotplug.c, and the
 * status.volumeStatus entries. */
#include "vmi-diff.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl-protocol.h"
#include "hotplug.h"
#include "jfield.h"

const char *liveop_kind_name(liveop_kind k)
{
        static const ctl_verb verbs[] = {
            [LIVEOP_DISK_REMOVE] = CTL_VERB_UNPLUG_DISK, [LIVEOP_NIC_REMOVE] = CTL_VERB_UNPLUG_NIC,
            [LIVEOP_DISK_ADD] = CTL_VERB_HOTPLUG_DISK,   [LIVEOP_NIC_ADD] = CTL_VERB_HOTPLUG_NIC,
            [LIVEOP_CPU_SET] = CTL_VERB_SET_CPUS,        [LIVEOP_MEMORY_SET] = CTL_VERB_SET_MEMORY};
        return ctl_verb_name(verbs[k]);
}

static int plan_add(liveop_plan *p, liveop_kind kind, const char *name, size_t index, uint64_t value,
                    kv_error *err)
{
        liveop *ops = realloc(p->ops, (p->n + 1) * sizeof(*ops));
        if (!ops)
                return kv_error_set(err, ENOMEM, "out of memory");
        p->ops = ops;
        ops[p->n] = (liveop){.kind = kind, .index = index, .value = value};
        snprintf(ops[p->n].name, sizeof(ops[p->n].name), "%s", name ? name : "");
        p->n++;
        return 0;
}

static const vmi_disk *find_disk(const vmi *v, const char *name)
{
        for (size_t i = 0; i < v->n_disks; i++)
                if (!strcmp(v->disks[i].name, name))
                        return &v->disks[i];
        return NULL;
}

static const vmi_interface *find_nic(const vmi *v, const char *name)
{
        for (size_t i = 0; i < v->n_interfaces; i++)
                if (!strcmp(v->interfaces[i].name, name))
                        return &v->interfaces[i];
        return NULL;
}

static bool str_eq(const char *a, const char *b)
{
        return (!a && !b) || (a && b && !strcmp(a, b));
}

/* Same volume source: the fields that pick the image. */
static bool volume_same(const vmi_volume *a, const vmi_volume *b)
{
        return a->kind == b->kind && str_eq(a->image, b->image) && str_eq(a->image_path, b->image_path) &&
               str_eq(a->claim_name, b->claim_name) && str_eq(a->host_path, b->host_path) &&
               a->capacity == b->capacity && str_eq(a->user_data, b->user_data) &&
               str_eq(a->source_name, b->source_name);
}

/* virtiofs shares are fixed for the life of QEMU (a daemon and a vhost-user device each). */
static int diff_filesystems(const vmi *o, const vmi *n, kv_error *err)
{
        bool same = o->n_filesystems == n->n_filesystems;
        for (size_t i = 0; same && i < n->n_filesystems; i++)
                same =
                    !strcmp(o->filesystems[i].name, n->filesystems[i].name) &&
                    volume_same(&o->volumes[o->filesystems[i].volume], &n->volumes[n->filesystems[i].volume]);
        return same ? 0
                    : kv_error_set(err, EINVAL,
                                   "spec.domain.devices.filesystems: cannot change on a running VMI");
}

static int diff_disks(const vmi *o, const vmi *n, liveop_plan *p, kv_error *err)
{
        for (size_t i = 0; i < o->n_disks; i++)
                if (!find_disk(n, o->disks[i].name))
                        JF_TRY(plan_add(p, LIVEOP_DISK_REMOVE, o->disks[i].name, i, 0, err));
        for (size_t i = 0; i < n->n_disks; i++) {
                const vmi_disk *nd = &n->disks[i], *od = find_disk(o, nd->name);
                if (!od) {
                        if (nd->bus != BUS_VIRTIO && nd->bus != BUS_SCSI)
                                return kv_error_set(
                                    err, EINVAL,
                                    "spec.domain.devices.disks[%zu].disk.bus: only virtio and scsi disks "
                                    "can be hot-plugged",
                                    i);
                        if (nd->kind != DISK_DISK)
                                return kv_error_set(
                                    err, EINVAL,
                                    "spec.domain.devices.disks[%zu]: only disks (not cdroms) can be "
                                    "hot-plugged",
                                    i);
                        JF_TRY(plan_add(p, LIVEOP_DISK_ADD, nd->name, i, 0, err));
                        continue;
                }
                if (od->bus != nd->bus || od->kind != nd->kind || od->readonly != nd->readonly ||
                    !volume_same(&o->volumes[od->volume], &n->volumes[nd->volume]))
                        return kv_error_set(
                            err, EINVAL,
                            "spec.domain.devices.disks[%zu] (%s): changed in place; remove it and add "
                            "it under a new name instead",
                            i, nd->name);
        }
        return 0;
}

static int diff_nics(const vmi *o, const vmi *n, liveop_plan *p, kv_error *err)
{
        for (size_t i = 0; i < o->n_interfaces; i++)
                if (!find_nic(n, o->interfaces[i].name))
                        JF_TRY(plan_add(p, LIVEOP_NIC_REMOVE, o->interfaces[i].name, i, 0, err));
        for (size_t i = 0; i < n->n_interfaces; i++) {
                const vmi_interface *ni = &n->interfaces[i], *oi = find_nic(o, ni->name);
                if (!oi)
                        JF_TRY(plan_add(p, LIVEOP_NIC_ADD, ni->name, i, 0, err));
                else if (oi->model != ni->model || oi->binding != ni->binding || !str_eq(oi->mac, ni->mac))
                        return kv_error_set(
                            err, EINVAL,
                            "spec.domain.devices.interfaces[%zu] (%s): changed in place; remove it and "
                            "add it under a new name instead",
                            i, ni->name);
        }
        return 0;
}

static int diff_cpu_memory(const vmi *o, const vmi *n, liveop_plan *p, kv_error *err)
{
        if (n->sockets < o->sockets)
                return kv_error_set(
                    err, EINVAL,
                    "spec.domain.cpu.sockets: lowering %u to %u is refused: vCPU hot-unplug crashes "
                    "QEMU 7.2 under TCG",
                    o->sockets, n->sockets);
        if (n->sockets > o->sockets) {
                if (n->sockets > o->max_sockets)
                        return kv_error_set(err, EINVAL,
                                            "spec.domain.cpu.sockets: %u is above maxSockets (%u)",
                                            n->sockets, o->max_sockets);
                JF_TRY(plan_add(p, LIVEOP_CPU_SET, NULL, 0, n->sockets, err));
        }
        if (n->memory != o->memory) {
                if (!o->max_memory || n->memory > o->max_memory)
                        return kv_error_set(
                            err, EINVAL, "spec.domain.memory.guest: %llu MiB is above maxGuest (%llu MiB)",
                            (unsigned long long)(n->memory >> 20), (unsigned long long)(o->max_memory >> 20));
                JF_TRY(plan_add(p, LIVEOP_MEMORY_SET, NULL, 0, n->memory, err));
        }
        return 0;
}

/* Fields that shape the machine itself: a change is reported, not applied (KubeVirt: RestartRequired). */
static void restart_fields(const vmi *o, const vmi *n, liveop_plan *p)
{
        const char *what = o->cores != n->cores               ? "spec.domain.cpu.cores"
                           : o->threads != n->threads         ? "spec.domain.cpu.threads"
                           : o->max_sockets != n->max_sockets ? "spec.domain.cpu.maxSockets"
                           : o->max_memory != n->max_memory   ? "spec.domain.memory.maxGuest"
                           : o->cpu_model != n->cpu_model || !str_eq(o->cpu_model_name, n->cpu_model_name)
                               ? "spec.domain.cpu.model"
                           : !str_eq(o->machine, n->machine)           ? "spec.domain.machine.type"
                           : o->firmware != n->firmware                ? "spec.domain.firmware"
                           : !str_eq(o->kernel_image, n->kernel_image) ? "spec.domain.firmware.kernelBoot"
                                                                       : NULL;
        if (what)
                snprintf(p->restart_reason, sizeof(p->restart_reason),
                         "%s changed: takes effect after a restart", what);
}

int vmi_diff(const vmi *o, const vmi *n, liveop_plan *plan, kv_error *err)
{
        *plan = (liveop_plan){0};
        int r = diff_disks(o, n, plan, err);
        if (r >= 0)
                r = diff_filesystems(o, n, err);
        if (r >= 0)
                r = diff_nics(o, n, plan, err);
        if (r >= 0)
                r = diff_cpu_memory(o, n, plan, err);
        if (r < 0) {
                liveop_plan_free(plan);
                return r;
        }
        /* Removals before additions: a name moved to another bus frees its port first. */
        for (size_t i = 1; i < plan->n; i++)
                for (size_t j = i; j > 0 && plan->ops[j].kind < plan->ops[j - 1].kind; j--) {
                        liveop t = plan->ops[j];
                        plan->ops[j] = plan->ops[j - 1];
                        plan->ops[j - 1] = t;
                }
        restart_fields(o, n, plan);
        return 0;
}

void liveop_plan_free(liveop_plan *plan)
{
        free(plan->ops);
        *plan = (liveop_plan){0};
}

cJSON *liveop_plan_to_json(const liveop_plan *plan)
{
        cJSON *o = cJSON_CreateObject(), *ops = cJSON_AddArrayToObject(o, "operations");
        for (size_t i = 0; i < plan->n; i++) {
                const liveop *op = &plan->ops[i];
                cJSON *e = cJSON_CreateObject();
                cJSON_AddStringToObject(e, "op", liveop_kind_name(op->kind));
                if (op->name[0])
                        cJSON_AddStringToObject(e, "name", op->name);
                if (op->kind == LIVEOP_CPU_SET)
                        cJSON_AddNumberToObject(e, "sockets", (double)op->value);
                if (op->kind == LIVEOP_MEMORY_SET)
                        cJSON_AddNumberToObject(e, "bytes", (double)op->value);
                cJSON_AddItemToArray(ops, e);
        }
        if (plan->restart_reason[0])
                cJSON_AddStringToObject(o, "restartRequired", plan->restart_reason);
        return o;
}

int liveop_hp_op(const vmi *v, const liveop *op, int timeout_ms, hp_op *o, kv_error *err)
{
        *o = (hp_op){0};
        switch (op->kind) {
        case LIVEOP_DISK_REMOVE:
        case LIVEOP_NIC_REMOVE:
                hp_unplug_init(o, op->kind == LIVEOP_DISK_REMOVE, op->name, timeout_ms);
                return 0;
        case LIVEOP_DISK_ADD: {
                const vmi_disk *d = &v->disks[op->index];
                const volume_prep *p = &v->volumes[d->volume].prep;
                hp_disk hd = {.name = d->name,
                              .path = p->path,
                              .format = p->format,
                              .bus = d->bus,
                              .readonly = d->readonly || p->read_only,
                              .serial = d->serial};
                return hp_disk_add_init(o, &hd, err);
        }
        case LIVEOP_NIC_ADD: {
                const vmi_interface *i = &v->interfaces[op->index];
                hp_nic hn = {.name = i->name, .mac = i->mac, .model = i->model, .hostname = v->hostname};
                hp_nic_add_init(o, &hn);
                return 0;
        }
        case LIVEOP_CPU_SET:
                hp_cpus_init(o, (unsigned)op->value);
                return 0;
        case LIVEOP_MEMORY_SET:
                hp_memory_init(o, op->value, v->max_memory, timeout_ms, true);
                return 0;
        }
        return kv_error_set(err, EINVAL, "unknown live operation");
}

void volume_status_set(cJSON *vs, const char *name, const char *phase, const char *reason,
                       const char *message, bool hotplug)
{
        int i = 0;
        cJSON *e;
        cJSON_ArrayForEach(e, vs)
        {
                const cJSON *n = cJSON_GetObjectItem(e, "name");
                if (cJSON_IsString(n) && !strcmp(n->valuestring, name))
                        break;
                i++;
        }
        if (e)
                cJSON_DeleteItemFromArray(vs, i);
        if (!phase)
                return;
        e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "name", name);
        cJSON_AddStringToObject(e, "target", "");
        cJSON_AddStringToObject(e, "phase", phase);
        if (reason)
                cJSON_AddStringToObject(e, "reason", reason);
        if (message)
                cJSON_AddStringToObject(e, "message", message);
        if (hotplug)
                cJSON_AddObjectToObject(e, "hotplugVolume");
        cJSON_AddItemToArray(vs, e);
}
