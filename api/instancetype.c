/* instancetype: VM + instancetype + preference → VMI, with KubeVirt's conflict rules (pkg/instancetype/apply)
 * and preference semantics (fill only what the VM leaves unset). */
#include "instancetype.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jfield.h"
#include "json.h"
#include "quantity.h"

#define VM_SPEC_PATH "spec.template.spec"
#define CONFLICTS_MAX 1024

static const struct {
        const char *kind, *plural;
        it_which which;
        bool cluster;
} kinds[] = {
    {"VirtualMachineInstancetype", "virtualmachineinstancetypes", IT_INSTANCETYPE, false},
    {"VirtualMachineClusterInstancetype", "virtualmachineclusterinstancetypes", IT_INSTANCETYPE, true},
    {"VirtualMachinePreference", "virtualmachinepreferences", IT_PREFERENCE, false},
    {"VirtualMachineClusterPreference", "virtualmachineclusterpreferences", IT_PREFERENCE, true},
};

static const char *matcher_key(it_which which)
{
        return which == IT_INSTANCETYPE ? "instancetype" : "preference";
}

int it_ref_get(const cJSON *vm, it_which which, it_ref *ref, kv_error *err)
{
        static const char *const allowed[] = {
            "name", "kind", "revisionName", "inferFromVolume", "inferFromVolumeFailurePolicy", NULL};
        const char *key = matcher_key(which);
        char path[JPATH_MAX], p[JPATH_MAX];
        const cJSON *spec = NULL, *m = NULL;
        JF_TRY(jf_object(vm, "", "spec", &spec, err));
        jpath_key(path, "spec", key);
        JF_TRY(jf_object(spec, "spec", key, &m, err));
        if (!m)
                return 0;
        JF_TRY(jf_check_keys(m, path, allowed, NULL, err));
        if (cJSON_GetObjectItemCaseSensitive(m, "inferFromVolume"))
                return jf_error(err, jpath_key(p, path, "inferFromVolume"),
                                "inferring the %s from a volume's labels is not supported", key);
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(m, "name"),
                    *kind = cJSON_GetObjectItemCaseSensitive(m, "kind"),
                    *rev = cJSON_GetObjectItemCaseSensitive(m, "revisionName");
        if (!cJSON_IsString(name) || !name->valuestring[0])
                return jf_error(err, jpath_key(p, path, "name"), "is required");
        if (kind && !cJSON_IsNull(kind) && !cJSON_IsString(kind))
                return jf_error(err, jpath_key(p, path, "kind"), "expected a string");
        if (rev && !cJSON_IsNull(rev) && !cJSON_IsString(rev))
                return jf_error(err, jpath_key(p, path, "revisionName"), "expected a string");
        /* KubeVirt accepts the Kind, the plural and the singular in any case; none means the cluster kind */
        const char *k = cJSON_IsString(kind) && kind->valuestring[0] ? kind->valuestring : NULL;
        *ref =
            (it_ref){.name = name->valuestring,
                     .revision_name = cJSON_IsString(rev) && rev->valuestring[0] ? rev->valuestring : NULL};
        for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
                if (kinds[i].which != which)
                        continue;
                size_t n = strlen(kinds[i].plural) - 1; /* the singular */
                bool match = k ? !strcasecmp(k, kinds[i].kind) || !strcasecmp(k, kinds[i].plural) ||
                                     (strlen(k) == n && !strncasecmp(k, kinds[i].plural, n))
                               : kinds[i].cluster;
                if (match) {
                        ref->kind = kinds[i].kind, ref->plural = kinds[i].plural;
                        ref->cluster = kinds[i].cluster;
                        return 1;
                }
        }
        return jf_error(err, jpath_key(p, path, "kind"), "\"%.64s\" is not a %s kind", k, key);
}

const cJSON *it_find(const cJSON *objs, const it_ref *ref, const char *ns)
{
        const cJSON *o;
        cJSON_ArrayForEach(o, objs)
        {
                const cJSON *md = cJSON_GetObjectItemCaseSensitive(o, "metadata");
                const char *kind = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "kind")),
                           *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(md, "name")),
                           *ons = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(md, "namespace"));
                if (!kind || !name || strcmp(kind, ref->kind) || strcmp(name, ref->name))
                        continue;
                if (ref->cluster || !strcmp(ons ? ons : "default", ns ? ns : "default"))
                        return o;
        }
        return NULL;
}

/* ---- small JSON editing helpers ---- */

static const cJSON *get(const cJSON *o, const char *key)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
        return cJSON_IsNull(v) ? NULL : v;
}

/* The member object key of o, created when absent. */
static cJSON *child(cJSON *o, const char *key)
{
        cJSON *c = cJSON_GetObjectItemCaseSensitive(o, key);
        if (cJSON_IsObject(c))
                return c;
        cJSON_DeleteItemFromObjectCaseSensitive(o, key);
        return cJSON_AddObjectToObject(o, key);
}

/* o[key] = item (owned). */
static void put(cJSON *o, const char *key, cJSON *item)
{
        cJSON_DeleteItemFromObjectCaseSensitive(o, key);
        cJSON_AddItemToObject(o, key, item);
}

static void set(cJSON *o, const char *key, const cJSON *v)
{
        put(o, key, cJSON_Duplicate(v, true));
}

/* Copies src[key] into dst[key] when src has it and dst does not: the preference rule. */
static void fill(cJSON *dst, const char *key, const cJSON *src, const char *src_key)
{
        const cJSON *v = get(src, src_key);
        if (v && !get(dst, key))
                set(dst, key, v);
}

static bool is_set(const cJSON *v)
{
        if (!v || cJSON_IsNull(v) || cJSON_IsFalse(v))
                return false;
        if (cJSON_IsNumber(v))
                return v->valuedouble != 0;
        if (cJSON_IsString(v))
                return v->valuestring[0] != 0;
        if (cJSON_IsArray(v))
                return cJSON_GetArraySize(v) > 0;
        return true;
}

typedef struct conflicts {
        char list[CONFLICTS_MAX];
        size_t n;
} conflicts;

static void conflict(conflicts *c, const char *sub)
{
        size_t len = strlen(c->list);
        snprintf(c->list + len, sizeof(c->list) - len, "%s%s.%s", c->n ? ", " : "", VM_SPEC_PATH, sub);
        c->n++;
}

/* ---- the instancetype (pkg/instancetype/apply) ---- */

static void check_cpu(const cJSON *it_cpu, const cJSON *domain, conflicts *c)
{
        const cJSON *cpu = get(domain, "cpu"), *res = get(domain, "resources");
        if (get(get(res, "requests"), "cpu"))
                conflict(c, "domain.resources.requests.cpu");
        if (get(get(res, "limits"), "cpu"))
                conflict(c, "domain.resources.limits.cpu");
        static const char *const topology[] = {"sockets", "cores", "threads"};
        static const char *const both[] = {"model", "dedicatedCPUPlacement", "isolateEmulatorThread", "numa",
                                           "realtime"};
        char sub[64];
        for (size_t i = 0; i < 3; i++)
                if (is_set(get(cpu, topology[i])))
                        conflict(c, (snprintf(sub, sizeof(sub), "domain.cpu.%s", topology[i]), sub));
        for (size_t i = 0; i < 5; i++)
                if (is_set(get(cpu, both[i])) && get(it_cpu, both[i]))
                        conflict(c, (snprintf(sub, sizeof(sub), "domain.cpu.%s", both[i]), sub));
}

/* PreferredCPUTopology, the deprecated preferX spellings mapped to the new ones; sockets by default. */
static const char *preferred_topology(const cJSON *pref)
{
        const char *t = cJSON_GetStringValue(get(get(pref, "cpu"), "preferredCPUTopology"));
        if (!t)
                return "sockets";
        static const char *const old[][2] = {{"preferSockets", "sockets"},
                                             {"preferCores", "cores"},
                                             {"preferThreads", "threads"},
                                             {"preferSpread", "spread"},
                                             {"preferAny", "any"}};
        for (size_t i = 0; i < 5; i++)
                if (!strcmp(t, old[i][0]))
                        return old[i][1];
        return t;
}

static int apply_topology(unsigned vcpus, const cJSON *pref, cJSON *cpu, kv_error *err)
{
        unsigned s = 1, co = 1, th = 1;
        const char *t = preferred_topology(pref);
        if (vcpus > 1 && !strcmp(t, "cores"))
                co = vcpus;
        else if (vcpus > 1 && !strcmp(t, "threads"))
                th = vcpus;
        else if (vcpus > 1 && !strcmp(t, "spread")) {
                const cJSON *so = get(get(pref, "cpu"), "spreadOptions");
                double r = cJSON_GetNumberValue(get(so, "ratio"));
                if (r != r)
                        r = cJSON_GetNumberValue(get(pref, "preferSpreadSocketToCoreRatio"));
                unsigned ratio = r == r && r >= 1 ? (unsigned)r : 2;
                const char *across = cJSON_GetStringValue(get(so, "across"));
                unsigned unit = across && !strcmp(across, "SocketsCoresThreads") ? 2 * ratio : ratio;
                if (vcpus % unit)
                        return jf_error(
                            err, "spec.preference",
                            "instancetype CPU guest %u is not divisible by the preference's spread "
                            "of %u vCPUs",
                            vcpus, unit);
                if (across && !strcmp(across, "CoresThreads"))
                        th = ratio, co = vcpus / ratio;
                else if (across && !strcmp(across, "SocketsCoresThreads"))
                        th = 2, co = ratio, s = vcpus / unit;
                else
                        co = ratio, s = vcpus / ratio;
        } else if (vcpus > 1)
                s = vcpus; /* sockets, any */
        put(cpu, "sockets", cJSON_CreateNumber(s));
        put(cpu, "cores", cJSON_CreateNumber(co));
        put(cpu, "threads", cJSON_CreateNumber(th));
        return 0;
}

static int apply_cpu(const cJSON *it, const cJSON *pref, cJSON *domain, conflicts *c, kv_error *err)
{
        const cJSON *it_cpu = get(it, "cpu");
        size_t before = c->n;
        check_cpu(it_cpu, domain, c);
        if (c->n > before)
                return 0;
        int64_t vcpus = 0;
        JF_TRY(jf_int(it_cpu, "spec.cpu", "guest", 1, 512, &vcpus, NULL, err));
        if (!vcpus)
                return jf_error(err, "spec.cpu.guest", "is required");
        cJSON *cpu = child(domain, "cpu");
        static const char *const copied[] = {
            "model", "dedicatedCPUPlacement", "isolateEmulatorThread", "numa", "realtime", "maxSockets"};
        for (size_t i = 0; i < 6; i++)
                if (get(it_cpu, copied[i]))
                        set(cpu, copied[i], get(it_cpu, copied[i]));
        return apply_topology((unsigned)vcpus, pref, cpu, err);
}

static int apply_memory(const cJSON *it, cJSON *domain, conflicts *c, kv_error *err)
{
        const cJSON *it_mem = get(it, "memory"), *res = get(domain, "resources");
        cJSON *mem = child(domain, "memory");
        if (get(mem, "guest"))
                return conflict(c, "domain.memory.guest"), 0;
        if (get(mem, "hugepages") && get(it_mem, "hugepages"))
                return conflict(c, "domain.memory.hugepages"), 0;
        if (get(mem, "maxGuest") && get(it_mem, "maxGuest"))
                return conflict(c, "domain.memory.maxGuest"), 0;
        if (get(get(res, "requests"), "memory"))
                return conflict(c, "domain.resources.requests.memory"), 0;
        if (get(get(res, "limits"), "memory"))
                return conflict(c, "domain.resources.limits.memory"), 0;
        const cJSON *guest = get(it_mem, "guest");
        uint64_t bytes;
        if (!guest)
                return jf_error(err, "spec.memory.guest", "is required");
        JF_TRY(quantity_bytes(guest, "spec.memory.guest", &bytes, err));
        set(mem, "guest", guest);
        int64_t pct = 0;
        JF_TRY(jf_int(it_mem, "spec.memory", "overcommitPercent", 0, 100, &pct, NULL, err));
        if (pct > 0) /* the Pod asks for less than the guest gets */
                put(child(child(domain, "resources"), "requests"), "memory",
                    cJSON_CreateNumber((double)(uint64_t)((double)bytes * (1.0 - (double)pct / 100.0))));
        if (get(it_mem, "hugepages"))
                set(mem, "hugepages", get(it_mem, "hugepages"));
        if (get(it_mem, "maxGuest"))
                set(mem, "maxGuest", get(it_mem, "maxGuest"));
        return 0;
}

/* Fields the instancetype sets whole, a conflict when the VM sets them too. */
static void apply_whole(const cJSON *it, const char *it_key, cJSON *dst, const char *dst_key, const char *sub,
                        conflicts *c)
{
        const cJSON *v = get(it, it_key);
        if (!v)
                return;
        if (is_set(get(dst, dst_key)))
                conflict(c, sub);
        else
                set(dst, dst_key, v);
}

/* Annotations the instancetype or preference carries reach the VMI unless the VM sets the same key. */
static void apply_annotations(const cJSON *src, cJSON *meta)
{
        const cJSON *a;
        cJSON_ArrayForEach(a, get(src, "annotations"))
        {
                cJSON *ann = child(meta, "annotations");
                if (!get(ann, a->string))
                        set(ann, a->string, a);
        }
}

static int apply_instancetype(const cJSON *it, const cJSON *pref, cJSON *spec, cJSON *meta, kv_error *err)
{
        static const char *const allowed[] = {"cpu",         "memory",          "gpus",
                                              "hostDevices", "ioThreadsPolicy", "launchSecurity",
                                              "annotations", "nodeSelector",    "schedulerName",
                                              NULL};
        JF_TRY(jf_check_keys(it, "spec", allowed, NULL, err));
        conflicts c = {0};
        cJSON *domain = child(spec, "domain"), *devices = child(domain, "devices");
        apply_whole(it, "nodeSelector", spec, "nodeSelector", "nodeSelector", &c);
        apply_whole(it, "schedulerName", spec, "schedulerName", "schedulerName", &c);
        JF_TRY(apply_cpu(it, pref, domain, &c, err));
        JF_TRY(apply_memory(it, domain, &c, err));
        apply_whole(it, "ioThreadsPolicy", domain, "ioThreadsPolicy", "domain.ioThreadsPolicy", &c);
        apply_whole(it, "launchSecurity", domain, "launchSecurity", "domain.launchSecurity", &c);
        apply_whole(it, "gpus", devices, "gpus", "domain.devices.gpus", &c);
        apply_whole(it, "hostDevices", devices, "hostDevices", "domain.devices.hostDevices", &c);
        if (!c.n) {
                apply_annotations(it, meta);
                return 0;
        }
        /* the first path leads, as the launcher's errors do; the words are KubeVirt's */
        char first[JPATH_MAX];
        snprintf(first, sizeof(first), "%.*s", (int)strcspn(c.list, ","), c.list);
        return kv_error_set(err, EINVAL, "%s: VM field(s) %s conflicts with selected instance type", first,
                            c.list);
}

/* ---- the preference (pkg/instancetype/preference/apply): fills only what the VM leaves unset ---- */

static void prefer_cpu(const cJSON *pref, cJSON *domain)
{
        const cJSON *feats = get(get(pref, "cpu"), "preferredCPUFeatures"), *f;
        if (!cJSON_GetArraySize(feats))
                return;
        cJSON *cpu = child(domain, "cpu"), *have = cJSON_GetObjectItemCaseSensitive(cpu, "features");
        if (!cJSON_IsArray(have)) {
                put(cpu, "features", cJSON_CreateArray());
                have = cJSON_GetObjectItemCaseSensitive(cpu, "features");
        }
        cJSON_ArrayForEach(f, feats)
        {
                const char *name = cJSON_GetStringValue(get(f, "name"));
                const cJSON *h;
                bool found = false;
                cJSON_ArrayForEach(h, have) found |=
                    name && !strcmp(cJSON_GetStringValue(get(h, "name")) ?: "", name);
                if (!found)
                        cJSON_AddItemToArray(have, cJSON_Duplicate(f, true));
        }
}

static bool has_key(const cJSON *o, const char *k)
{
        return get(o, k) != NULL;
}

static void prefer_disks(const cJSON *d, cJSON *devices)
{
        cJSON *disk;
        cJSON_ArrayForEach(disk, cJSON_GetObjectItemCaseSensitive(devices, "disks"))
        {
                if (!has_key(disk, "disk") && !has_key(disk, "cdrom") && !has_key(disk, "lun"))
                        put(disk, "disk", cJSON_CreateObject());
                if (has_key(disk, "disk")) {
                        cJSON *t = child(disk, "disk");
                        fill(t, "bus", d, "preferredDiskBus");
                        fill(disk, "blockSize", d, "preferredDiskBlockSize");
                        fill(disk, "cache", d, "preferredDiskCache");
                        fill(disk, "io", d, "preferredDiskIO");
                        const char *bus = cJSON_GetStringValue(get(t, "bus"));
                        if (bus && !strcmp(bus, "virtio"))
                                fill(disk, "dedicatedIOThread", d, "preferredDiskDedicatedIoThread");
                } else if (has_key(disk, "cdrom"))
                        fill(child(disk, "cdrom"), "bus", d, "preferredCdromBus");
                else
                        fill(child(disk, "lun"), "bus", d, "preferredLunBus");
        }
}

static bool on_pod_network(const cJSON *spec, const char *iface)
{
        const cJSON *n;
        cJSON_ArrayForEach(n, get(spec, "networks"))
        {
                if (iface && !strcmp(cJSON_GetStringValue(get(n, "name")) ?: "", iface))
                        return has_key(n, "pod");
        }
        return false;
}

static void prefer_interfaces(const cJSON *d, const cJSON *spec, cJSON *devices)
{
        static const char *const bindings[] = {"bridge", "masquerade", "sriov",  "slirp",
                                               "passt",  "macvtap",    "binding"};
        cJSON *i;
        cJSON_ArrayForEach(i, cJSON_GetObjectItemCaseSensitive(devices, "interfaces"))
        {
                fill(i, "model", d, "preferredInterfaceModel");
                bool unset = true;
                for (size_t k = 0; k < sizeof(bindings) / sizeof(bindings[0]); k++)
                        unset &= !has_key(i, bindings[k]);
                if (unset && on_pod_network(spec, cJSON_GetStringValue(get(i, "name"))))
                        fill(i, "masquerade", d, "preferredInterfaceMasquerade");
        }
}

static void prefer_devices(const cJSON *pref, const cJSON *spec, cJSON *domain)
{
        const cJSON *d = get(pref, "devices");
        if (!d)
                return;
        cJSON *devices = child(domain, "devices");
        static const char *const pairs[][2] = {
            {"useVirtioTransitional", "preferredUseVirtioTransitional"},
            {"blockMultiQueue", "preferredBlockMultiQueue"},
            {"networkInterfaceMultiqueue", "preferredNetworkInterfaceMultiQueue"},
            {"rng", "preferredRng"},
            {"tpm", "preferredTPM"},
            {"autoattachGraphicsDevice", "preferredAutoattachGraphicsDevice"},
            {"autoattachMemBalloon", "preferredAutoattachMemBalloon"},
            {"autoattachPodInterface", "preferredAutoattachPodInterface"},
            {"autoattachSerialConsole", "preferredAutoattachSerialConsole"},
            {"autoattachInputDevice", "preferredAutoattachInputDevice"},
        };
        for (size_t k = 0; k < sizeof(pairs) / sizeof(pairs[0]); k++)
                fill(devices, pairs[k][0], d, pairs[k][1]);
        if (get(d, "preferredDisableHotplug")) /* not a pointer in KubeVirt: the preference wins */
                set(devices, "disableHotplug", get(d, "preferredDisableHotplug"));
        cJSON *sound = cJSON_GetObjectItemCaseSensitive(devices, "sound");
        if (cJSON_IsObject(sound))
                fill(sound, "model", d, "preferredSoundModel");
        prefer_disks(d, devices);
        prefer_interfaces(d, spec, devices);
        cJSON *in;
        cJSON_ArrayForEach(in, cJSON_GetObjectItemCaseSensitive(devices, "inputs"))
        {
                fill(in, "bus", d, "preferredInputBus");
                fill(in, "type", d, "preferredInputType");
        }
}

static void prefer_features(const cJSON *pref, cJSON *domain)
{
        const cJSON *f = get(pref, "features");
        if (!f)
                return;
        cJSON *feat = child(domain, "features");
        if (get(f, "preferredAcpi")) /* not a pointer in KubeVirt: the preference wins */
                set(feat, "acpi", get(f, "preferredAcpi"));
        fill(feat, "apic", f, "preferredApic");
        fill(feat, "kvm", f, "preferredKvm");
        fill(feat, "pvspinlock", f, "preferredPvspinlock");
        fill(feat, "smm", f, "preferredSmm");
        const cJSON *hv = get(f, "preferredHyperv"), *e;
        const cJSON *pass = get(get(feat, "hypervPassthrough"), "enabled");
        if (hv && !cJSON_IsTrue(pass)) {
                cJSON *h = child(feat, "hyperv");
                cJSON_ArrayForEach(e, hv) fill(h, e->string, hv, e->string);
        }
}

static void prefer_firmware(const cJSON *pref, cJSON *domain)
{
        const cJSON *f = get(pref, "firmware");
        if (!f)
                return;
        cJSON *bl = child(child(domain, "firmware"), "bootloader");
        if (cJSON_IsTrue(get(f, "preferredUseBios")) && !has_key(bl, "bios") && !has_key(bl, "efi"))
                put(bl, "bios", cJSON_CreateObject());
        if (has_key(bl, "bios"))
                fill(child(bl, "bios"), "useSerial", f, "preferredUseBiosSerial");
        if (!has_key(bl, "efi") && !has_key(bl, "bios") && get(f, "preferredEfi")) {
                set(bl, "efi", get(f, "preferredEfi"));
                return;
        }
        if (cJSON_IsTrue(get(f, "preferredUseEfi")) && !has_key(bl, "efi") && !has_key(bl, "bios"))
                put(bl, "efi", cJSON_CreateObject());
        if (has_key(bl, "efi"))
                fill(child(bl, "efi"), "secureBoot", f, "preferredUseSecureBoot");
}

static void prefer_rest(const cJSON *pref, cJSON *spec, cJSON *domain)
{
        const char *mt = cJSON_GetStringValue(get(get(pref, "machine"), "preferredMachineType"));
        if (mt && *mt && !is_set(get(get(domain, "machine"), "type")))
                put(child(domain, "machine"), "type", cJSON_CreateString(mt));
        const cJSON *clk = get(pref, "clock");
        if (clk) {
                cJSON *clock = child(domain, "clock");
                const cJSON *off = get(clk, "preferredClockOffset");
                if (off && !has_key(clock, "utc") && !has_key(clock, "timezone")) {
                        const cJSON *e;
                        cJSON_ArrayForEach(e, off) set(clock, e->string, e);
                }
                fill(clock, "timer", clk, "preferredTimer");
        }
        const char *sub = cJSON_GetStringValue(get(pref, "preferredSubdomain"));
        if (sub && *sub && !is_set(get(spec, "subdomain")))
                put(spec, "subdomain", cJSON_CreateString(sub));
        fill(spec, "terminationGracePeriodSeconds", pref, "preferredTerminationGracePeriodSeconds");
}

/* preference.requirements against what the instancetype (or, without one, the VM) provides. */
static int check_requirements(const cJSON *pref, const cJSON *it, const cJSON *domain, kv_error *err)
{
        const cJSON *req = get(pref, "requirements");
        if (!req)
                return 0;
        int64_t need_cpu = 0;
        JF_TRY(jf_int(get(req, "cpu"), "spec.requirements.cpu", "guest", 0, 4096, &need_cpu, NULL, err));
        const cJSON *need_mem = get(get(req, "memory"), "guest");
        if (it) {
                double have = cJSON_GetNumberValue(get(get(it, "cpu"), "guest"));
                if (need_cpu && have < (double)need_cpu)
                        return kv_error_set(
                            err, EINVAL,
                            "spec.instancetype: insufficient CPU resources of %.0f vCPU provided by "
                            "instance type, preference requires %" PRId64 " vCPU",
                            have, need_cpu);
        } else if (need_cpu) {
                const cJSON *cpu = get(domain, "cpu");
                double s = cJSON_GetNumberValue(get(cpu, "sockets")),
                       c = cJSON_GetNumberValue(get(cpu, "cores")),
                       t = cJSON_GetNumberValue(get(cpu, "threads"));
                double have = (s == s && s ? s : 1) * (c == c && c ? c : 1) * (t == t && t ? t : 1);
                if (have < (double)need_cpu)
                        return kv_error_set(
                            err, EINVAL,
                            "%s.domain.cpu: insufficient CPU resources of %.0f vCPU provided by "
                            "VirtualMachine, preference requires %" PRId64 " vCPU",
                            VM_SPEC_PATH, have, need_cpu);
        }
        if (!need_mem)
                return 0;
        uint64_t need, have = 0;
        JF_TRY(quantity_bytes(need_mem, "spec.requirements.memory.guest", &need, err));
        const cJSON *hm = it ? get(get(it, "memory"), "guest") : get(get(domain, "memory"), "guest");
        if (hm)
                JF_TRY(quantity_bytes(hm, "memory.guest", &have, err));
        if (hm && have >= need)
                return 0;
        char hs[64], ns[64];
        snprintf(hs, sizeof(hs), "%s", cJSON_IsString(hm) ? hm->valuestring : "0");
        snprintf(ns, sizeof(ns), "%s", cJSON_IsString(need_mem) ? need_mem->valuestring : "?");
        if (it)
                return kv_error_set(
                    err, EINVAL,
                    "spec.instancetype: insufficient Memory resources of %s provided by instance "
                    "type, preference requires %s",
                    hs, ns);
        return kv_error_set(
            err, EINVAL,
            "%s.domain.memory: insufficient Memory resources of %s provided by VirtualMachine, "
            "preference requires %s",
            VM_SPEC_PATH, hs, ns);
}

static void apply_preference(const cJSON *pref, cJSON *spec, cJSON *meta)
{
        cJSON *domain = child(spec, "domain");
        prefer_cpu(pref, domain);
        prefer_devices(pref, spec, domain);
        prefer_features(pref, domain);
        prefer_firmware(pref, domain);
        prefer_rest(pref, spec, domain);
        apply_annotations(pref, meta);
}

/* kubevirt.io/[cluster-]instancetype-name, kubevirt.io/[cluster-]preference-name on the VMI. */
static void name_annotations(const cJSON *vm, cJSON *meta)
{
        for (it_which w = IT_INSTANCETYPE; w <= IT_PREFERENCE; w++) {
                it_ref ref;
                kv_error ignored = {0};
                if (it_ref_get(vm, w, &ref, &ignored) <= 0)
                        continue;
                char key[96];
                snprintf(key, sizeof(key), "kubevirt.io/%s%s-name", ref.cluster ? "cluster-" : "",
                         matcher_key(w));
                put(child(meta, "annotations"), key, cJSON_CreateString(ref.name));
        }
}

int it_expand_vm(const cJSON *vm, const cJSON *it_spec, const cJSON *pref_spec, cJSON **vmi_out,
                 kv_error *err)
{
        const cJSON *md = get(vm, "metadata"), *tmpl = get(get(vm, "spec"), "template");
        const cJSON *tmd = get(tmpl, "metadata"), *tspec = get(tmpl, "spec");
        if (!tspec || !cJSON_IsObject(tspec))
                return jf_error(err, "spec.template.spec", "is required");
        _cleanup_json_ cJSON *vmi = cJSON_CreateObject();
        cJSON *meta = child(vmi, "metadata");
        if (!meta)
                return kv_error_set(err, ENOMEM, "out of memory");
        cJSON_AddStringToObject(vmi, "apiVersion", "kubevirt.io/v1");
        cJSON_AddStringToObject(vmi, "kind", "VirtualMachineInstance");
        if (get(md, "name"))
                set(meta, "name", get(md, "name"));
        if (get(md, "namespace"))
                set(meta, "namespace", get(md, "namespace"));
        if (get(tmd, "labels"))
                set(meta, "labels", get(tmd, "labels"));
        if (get(tmd, "annotations"))
                set(meta, "annotations", get(tmd, "annotations"));
        set(vmi, "spec", tspec);
        cJSON *spec = cJSON_GetObjectItemCaseSensitive(vmi, "spec");
        if (!spec)
                return kv_error_set(err, ENOMEM, "out of memory");
        if (pref_spec)
                JF_TRY(check_requirements(pref_spec, it_spec, get(spec, "domain"), err));
        if (it_spec)
                JF_TRY(apply_instancetype(it_spec, pref_spec, spec, meta, err));
        if (pref_spec)
                apply_preference(pref_spec, spec, meta);
        name_annotations(vm, meta);
        *vmi_out = TAKE_PTR(vmi);
        return 0;
}

static const char *kind_of(const cJSON *doc)
{
        const char *k = cJSON_GetStringValue(get(doc, "kind"));
        return k ? k : "VirtualMachineInstance";
}

/* The spec of the object ref names, looked up in docs then bundle; -EINVAL naming the matcher if absent. */
static int resolve(const cJSON *vm, it_which w, const cJSON *docs, const cJSON *bundle, const cJSON **spec,
                   kv_error *err)
{
        it_ref ref;
        int r = it_ref_get(vm, w, &ref, err);
        *spec = NULL;
        if (r <= 0)
                return r;
        const char *ns = cJSON_GetStringValue(get(get(vm, "metadata"), "namespace"));
        const cJSON *o = it_find(docs, &ref, ns);
        if (!o)
                o = it_find(bundle, &ref, ns);
        char m[JPATH_MAX], p[JPATH_MAX];
        if (!o)
                return jf_error(
                    err, jpath_key(p, jpath_key(m, "spec", matcher_key(w)), "name"),
                    "%s.instancetype.kubevirt.io \"%.64s\" not found (neither in this file nor in "
                    "the bundled common instancetypes)",
                    ref.plural, ref.name);
        *spec = get(o, "spec");
        if (!cJSON_IsObject(*spec) && w == IT_INSTANCETYPE)
                return kv_error_set(err, EINVAL, "%s %s: spec: is required", ref.kind, ref.name);
        return 0;
}

int it_vmi_from_docs(const cJSON *docs, const cJSON *bundle, cJSON **vmi_out, kv_error *err)
{
        const cJSON *d, *vm = NULL, *vmi = NULL;
        cJSON_ArrayForEach(d, docs)
        {
                if (!cJSON_IsObject(d))
                        continue;
                if (!vm && !strcmp(kind_of(d), "VirtualMachine"))
                        vm = d;
                else if (!vmi && !strcmp(kind_of(d), "VirtualMachineInstance"))
                        vmi = d;
        }
        if (!vm) {
                if (!vmi)
                        return jf_error(err, "kind",
                                        "no VirtualMachine or VirtualMachineInstance in the file");
                *vmi_out = cJSON_Duplicate(vmi, true);
                return *vmi_out ? 0 : kv_error_set(err, ENOMEM, "out of memory");
        }
        const cJSON *it_spec, *pref_spec;
        JF_TRY(resolve(vm, IT_INSTANCETYPE, docs, bundle, &it_spec, err));
        JF_TRY(resolve(vm, IT_PREFERENCE, docs, bundle, &pref_spec, err));
        return it_expand_vm(vm, it_spec, pref_spec, vmi_out, err);
}
