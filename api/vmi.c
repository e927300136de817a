/* vmi: load a VirtualMachineInstance manifest and read identity, CPU, memory, machine and firmware into
 * the model; devices and volumes live in vmi-devices.c. */
#include "vmi.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "instancetype.h"
#include "json.h"
#include "macro.h"
#include "quantity.h"
#include "vmi-parse.h"
#include "yamljson.h"

#define MANIFEST_MAX (4u << 20)

const char *image_format_name(image_format f)
{
        return f == IMG_QCOW2 ? "qcow2" : "raw";
}

void *vmi_grow(void **array, size_t *n, size_t elem_size)
{
        char *a = realloc(*array, (*n + 1) * elem_size);
        if (!a)
                return NULL;
        memset(a + *n * elem_size, 0, elem_size);
        *array = a;
        return a + (*n)++ * elem_size;
}

static bool is_uuid(const char *s)
{
        static const char shape[] = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";
        if (strlen(s) != sizeof(shape) - 1)
                return false;
        for (size_t i = 0; shape[i]; i++) {
                bool hex = (s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') ||
                           (s[i] >= 'A' && s[i] <= 'F');
                if (shape[i] == '-' ? s[i] != '-' : !hex)
                        return false;
        }
        return true;
}

static int parse_labels(vmi *v, const cJSON *meta, kv_error *err)
{
        const cJSON *labels = NULL, *l;
        JF_TRY(jf_object(meta, "metadata", "labels", &labels, err));
        cJSON_ArrayForEach(l, labels)
        {
                char p[JPATH_MAX], d[64];
                if (!cJSON_IsString(l))
                        return jf_error(err, jpath_key(p, "metadata.labels", l->string),
                                        "expected a string, got %s", jf_describe(l, d, sizeof(d)));
        }
        if (labels) {
                cJSON_Delete(v->labels);
                v->labels = cJSON_Duplicate(labels, true);
                if (!v->labels)
                        return kv_error_set(err, ENOMEM, "out of memory");
        }
        return 0;
}

static int parse_metadata(vmi *v, const cJSON *root, kv_error *err)
{
        static const char *const allowed[] = {"name", "namespace", "uid", "labels", NULL};
        static const char *const ignored[] = {"annotations",
                                              "creationTimestamp",
                                              "generation",
                                              "resourceVersion",
                                              "finalizers",
                                              "ownerReferences",
                                              "managedFields",
                                              "selfLink",
                                              "generateName",
                                              "deletionTimestamp",
                                              "deletionGracePeriodSeconds",
                                              NULL};
        const cJSON *meta = NULL;
        JF_TRY(jf_object(root, "", "metadata", &meta, err));
        if (!meta)
                return jf_error(err, "metadata", "is required");
        JF_TRY(jf_check_keys(meta, "metadata", allowed, ignored, err));
        /* Hook sidecars rewrite libvirt's domain XML; KubeVirt admits them only with its Sidecar feature
         * gate, which is off by default, and kvlite has no domain XML: refused as KubeVirt's admission does.
         */
        const cJSON *ann = cJSON_GetObjectItemCaseSensitive(meta, "annotations");
        if (cJSON_IsObject(ann) && cJSON_GetObjectItemCaseSensitive(ann, "hooks.kubevirt.io/hookSidecars"))
                return jf_error(err, "metadata.annotations.hooks.kubevirt.io/hookSidecars",
                                "the Sidecar feature gate is not enabled (KubeVirt's admission refuses hook "
                                "sidecars without it; kvlite has no libvirt domain XML for them to edit)");
        JF_TRY(jf_string(meta, "metadata", "name", true, &v->name, err));
        if (!jf_is_dns_subdomain(v->name))
                return jf_error(err, "metadata.name", "\"%.64s\" is not a valid name (DNS subdomain)",
                                v->name);
        JF_TRY(jf_string(meta, "metadata", "namespace", false, &v->namespace, err));
        if (!v->namespace && !(v->namespace = strdup("default")))
                return kv_error_set(err, ENOMEM, "out of memory");
        if (!jf_is_dns_label(v->namespace))
                return jf_error(err, "metadata.namespace", "\"%.64s\" is not a valid namespace",
                                v->namespace);
        JF_TRY(jf_string(meta, "metadata", "uid", false, &v->uid, err));
        if (v->uid && jf_has_control_chars(v->uid))
                return jf_error(err, "metadata.uid", "must not contain control characters");
        return parse_labels(v, meta, err);
}

/* spec.domain.resources: memory and cpu requests/limits (cpu only sizes the guest without a topology). */
static int parse_resources(vmi *v, const cJSON *domain, long double *cpu_count, kv_error *err)
{
        static const char *const allowed[] = {"requests", "limits", "overcommitGuestOverhead", NULL};
        static const char *const kinds[] = {"limits", "requests"}; /* limits win, as in KubeVirt */
        static const char *const res[] = {"memory", "cpu", "ephemeral-storage", NULL};
        const cJSON *r = NULL;
        JF_TRY(jf_object(domain, "spec.domain", "resources", &r, err));
        if (!r)
                return 0;
        JF_TRY(jf_check_keys(r, "spec.domain.resources", allowed, NULL, err));
        bool overcommit = false;
        JF_TRY(jf_bool(r, "spec.domain.resources", "overcommitGuestOverhead", &overcommit, err));
        uint64_t mem_limit = 0, mem_request = 0;
        for (size_t k = 0; k < 2; k++) {
                char path[JPATH_MAX], p[JPATH_MAX];
                const cJSON *set = NULL, *q;
                JF_TRY(jf_object(r, "spec.domain.resources", kinds[k], &set, err));
                if (!set)
                        continue;
                jpath_key(path, "spec.domain.resources", kinds[k]);
                JF_TRY(jf_check_keys(set, path, res, NULL, err));
                if ((q = cJSON_GetObjectItemCaseSensitive(set, "memory")))
                        JF_TRY(quantity_bytes(q, jpath_key(p, path, "memory"), k ? &mem_request : &mem_limit,
                                              err));
                if ((q = cJSON_GetObjectItemCaseSensitive(set, "cpu"))) {
                        long double c;
                        JF_TRY(quantity_parse(q, jpath_key(p, path, "cpu"), &c, err));
                        if (c <= 0)
                                return jf_error(err, p, "must be positive");
                        if (*cpu_count == 0)
                                *cpu_count = c;
                }
                if ((q = cJSON_GetObjectItemCaseSensitive(set, "ephemeral-storage")))
                        JF_TRY(
                            quantity_bytes(q, jpath_key(p, path, "ephemeral-storage"), &(uint64_t){0}, err));
        }
        if (!v->memory)
                v->memory = mem_request ? mem_request : mem_limit;
        return 0;
}

unsigned vmi_vcpus(const vmi *v)
{
        return v->sockets * v->cores * v->threads;
}

/* memory.hugepages.pageSize: the guest RAM comes from a hugetlbfs of that page size (KubeVirt: 2Mi, 1Gi). */
static int parse_hugepages(vmi *v, const cJSON *m, kv_error *err)
{
        static const char *const allowed[] = {"pageSize", NULL};
        const cJSON *h = NULL, *q;
        JF_TRY(jf_object(m, "spec.domain.memory", "hugepages", &h, err));
        if (!h)
                return 0;
        JF_TRY(jf_check_keys(h, "spec.domain.memory.hugepages", allowed, NULL, err));
        if (!(q = cJSON_GetObjectItemCaseSensitive(h, "pageSize")))
                return jf_error(err, "spec.domain.memory.hugepages.pageSize", "is required");
        JF_TRY(quantity_bytes(q, "spec.domain.memory.hugepages.pageSize", &v->hugepage_size, err));
        if (v->hugepage_size != (2u << 20) && v->hugepage_size != (1u << 30))
                return jf_error(err, "spec.domain.memory.hugepages.pageSize",
                                "must be 2Mi or 1Gi (the x86 huge page sizes)");
        return 0;
}

static int parse_memory(vmi *v, const cJSON *domain, kv_error *err)
{
        static const char *const allowed[] = {"guest", "maxGuest", "hugepages", NULL};
        const cJSON *m = NULL, *q;
        JF_TRY(jf_object(domain, "spec.domain", "memory", &m, err));
        if (m) {
                JF_TRY(jf_check_keys(m, "spec.domain.memory", allowed, NULL, err));
                JF_TRY(parse_hugepages(v, m, err));
                if ((q = cJSON_GetObjectItemCaseSensitive(m, "guest")))
                        JF_TRY(quantity_bytes(q, "spec.domain.memory.guest", &v->memory, err));
                if ((q = cJSON_GetObjectItemCaseSensitive(m, "maxGuest")))
                        JF_TRY(quantity_bytes(q, "spec.domain.memory.maxGuest", &v->max_memory, err));
        }
        return 0;
}

/* Round memory up to MiB and check sizes once guest memory is known from memory.guest or resources. */
static int check_memory(vmi *v, kv_error *err)
{
        const uint64_t mib = 1 << 20, max = (uint64_t)16 << 40;
        if (!v->memory)
                return jf_error(err, "spec.domain.memory.guest",
                                "no guest memory: set memory.guest or resources.requests.memory");
        v->memory = (v->memory + mib - 1) / mib * mib;
        v->max_memory = (v->max_memory + mib - 1) / mib * mib;
        if (v->memory < 16 * mib || v->memory > max)
                return jf_error(err, "spec.domain.memory.guest", "%llu MiB is out of range [16 MiB, 16 TiB]",
                                (unsigned long long)(v->memory / mib));
        if (v->max_memory && (v->max_memory < v->memory || v->max_memory > max))
                return jf_error(err, "spec.domain.memory.maxGuest",
                                "must be between memory.guest and 16 TiB");
        if (v->hugepage_size && v->memory % v->hugepage_size)
                return jf_error(err, "spec.domain.memory.guest", "%llu MiB is not a multiple of the %s pages",
                                (unsigned long long)(v->memory >> 20),
                                v->hugepage_size >> 30 ? "1Gi" : "2Mi");
        if (v->hugepage_size && v->max_memory > v->memory)
                return jf_error(err, "spec.domain.memory.maxGuest",
                                "memory hot-plug with hugepages is not supported");
        return 0;
}

static int parse_cpu_features(vmi *v, const cJSON *cpu, kv_error *err)
{
        static const char *const allowed[] = {"name", "policy", NULL};
        static const char *const policies[] = {"force", "require", "optional", "disable", "forbid", NULL};
        const cJSON *features = NULL, *f;
        JF_TRY(jf_array(cpu, "spec.domain.cpu", "features", &features, err));
        if (!features)
                return 0;
        size_t n = 0, i = 0;
        v->cpu_features = calloc(cJSON_GetArraySize(features) + 1, sizeof(char *));
        if (!v->cpu_features)
                return kv_error_set(err, ENOMEM, "out of memory");
        cJSON_ArrayForEach(f, features)
        {
                char path[JPATH_MAX];
                _cleanup_free_ char *name = NULL;
                int policy = 1; /* require */
                jpath_index(path, "spec.domain.cpu.features", i++);
                if (!cJSON_IsObject(f))
                        return jf_error(err, path, "expected an object");
                JF_TRY(jf_check_keys(f, path, allowed, NULL, err));
                JF_TRY(jf_string(f, path, "name", true, &name, err));
                JF_TRY(jf_enum(f, path, "policy", policies, &policy, err));
                for (const char *c = name; *c; c++)
                        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' ||
                              *c == '_' || *c == '.'))
                                return jf_error(err, path, "name \"%.64s\" is not a CPU feature name", name);
                if (policy == 2) /* optional: leave it to the model */
                        continue;
                if (asprintf(&v->cpu_features[n], "%c%s", policy <= 1 ? '+' : '-', name) < 0)
                        return kv_error_set(err, ENOMEM, "out of memory");
                n++;
        }
        return 0;
}

static int parse_cpu_model(vmi *v, const cJSON *cpu, kv_error *err)
{
        _cleanup_free_ char *model = NULL;
        JF_TRY(jf_string(cpu, "spec.domain.cpu", "model", false, &model, err));
        if (!model)
                return 0;
        if (!strcmp(model, "host-passthrough")) {
                v->cpu_model = CPU_MODEL_HOST_PASSTHROUGH;
        } else if (!strcmp(model, "host-model")) {
                v->cpu_model = CPU_MODEL_HOST_MODEL;
        } else {
                for (const char *c = model; *c; c++)
                        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                              (*c >= '0' && *c <= '9') || *c == '-' || *c == '_' || *c == '.'))
                                return jf_error(err, "spec.domain.cpu.model",
                                                "\"%.64s\" is not a CPU model name", model);
                if (!*model)
                        return jf_error(err, "spec.domain.cpu.model", "must not be empty");
                v->cpu_model = CPU_MODEL_NAMED;
                v->cpu_model_name = TAKE_PTR(model);
        }
        return 0;
}

/* dedicatedCpuPlacement, isolateEmulatorThread, realtime, numa (KubeVirt's rules: the last three need the
 * first; guestMappingPassthrough also needs hugepages). */
static int parse_cpu_placement(vmi *v, const cJSON *cpu, kv_error *err)
{
        static const char *const numa_keys[] = {"guestMappingPassthrough", NULL};
        static const char *const rt_keys[] = {NULL};
        const cJSON *numa = NULL, *rt = NULL, *pass = NULL;
        JF_TRY(jf_bool(cpu, "spec.domain.cpu", "dedicatedCpuPlacement", &v->dedicated_cpus, err));
        JF_TRY(jf_bool(cpu, "spec.domain.cpu", "isolateEmulatorThread", &v->isolate_emulator_thread, err));
        JF_TRY(jf_object(cpu, "spec.domain.cpu", "realtime", &rt, err));
        JF_TRY(jf_object(cpu, "spec.domain.cpu", "numa", &numa, err));
        if (rt) {
                if (cJSON_GetObjectItemCaseSensitive(rt, "mask"))
                        return jf_error(err, "spec.domain.cpu.realtime.mask",
                                        "is not supported (every vCPU runs realtime)");
                JF_TRY(jf_check_keys(rt, "spec.domain.cpu.realtime", rt_keys, NULL, err));
                v->realtime = true;
        }
        if (numa) {
                JF_TRY(jf_check_keys(numa, "spec.domain.cpu.numa", numa_keys, NULL, err));
                JF_TRY(jf_object(numa, "spec.domain.cpu.numa", "guestMappingPassthrough", &pass, err));
                v->numa_passthrough = pass != NULL;
        }
        const char *needs = v->isolate_emulator_thread ? "spec.domain.cpu.isolateEmulatorThread"
                            : v->realtime              ? "spec.domain.cpu.realtime"
                            : v->numa_passthrough      ? "spec.domain.cpu.numa.guestMappingPassthrough"
                                                       : NULL;
        if (needs && !v->dedicated_cpus)
                return jf_error(err, needs, "requires spec.domain.cpu.dedicatedCpuPlacement: true");
        if (v->numa_passthrough && !v->hugepage_size)
                return jf_error(err, "spec.domain.cpu.numa.guestMappingPassthrough",
                                "requires spec.domain.memory.hugepages");
        return 0;
}

static int parse_cpu(vmi *v, const cJSON *domain, long double cpu_count, kv_error *err)
{
        static const char *const allowed[] = {"cores",
                                              "sockets",
                                              "threads",
                                              "maxSockets",
                                              "model",
                                              "features",
                                              "dedicatedCpuPlacement",
                                              "isolateEmulatorThread",
                                              "realtime",
                                              "numa",
                                              NULL};
        const cJSON *cpu = NULL;
        int64_t cores = 0, sockets = 0, threads = 0, max_sockets = 0;
        JF_TRY(jf_object(domain, "spec.domain", "cpu", &cpu, err));
        if (cpu) {
                JF_TRY(jf_check_keys(cpu, "spec.domain.cpu", allowed, NULL, err));
                JF_TRY(jf_int(cpu, "spec.domain.cpu", "cores", 1, 512, &cores, NULL, err));
                JF_TRY(jf_int(cpu, "spec.domain.cpu", "sockets", 1, 512, &sockets, NULL, err));
                JF_TRY(jf_int(cpu, "spec.domain.cpu", "threads", 1, 8, &threads, NULL, err));
                JF_TRY(jf_int(cpu, "spec.domain.cpu", "maxSockets", 1, 512, &max_sockets, NULL, err));
                JF_TRY(parse_cpu_model(v, cpu, err));
                JF_TRY(parse_cpu_features(v, cpu, err));
                JF_TRY(parse_cpu_placement(v, cpu, err));
        }
        /* KubeVirt: without any topology the vCPU count comes from the cpu limit/request, as sockets. */
        if (!cores && !sockets && !threads && cpu_count > 0)
                sockets = (int64_t)ceill(cpu_count);
        v->cores = cores ? cores : 1;
        v->sockets = sockets ? sockets : 1;
        v->threads = threads ? threads : 1;
        if (v->sockets > 512)
                return jf_error(err, "spec.domain.resources", "more than 512 vCPUs requested");
        if (max_sockets && max_sockets < v->sockets)
                return jf_error(err, "spec.domain.cpu.maxSockets", "%lld is less than sockets (%u)",
                                (long long)max_sockets, v->sockets);
        if ((uint64_t)(max_sockets ? max_sockets : v->sockets) * v->cores * v->threads > 1024)
                return jf_error(err, "spec.domain.cpu", "more than 1024 vCPUs");
        v->max_sockets = max_sockets;
        if (v->dedicated_cpus && cpu_count > 0 && cpu_count != (long double)vmi_vcpus(v))
                return jf_error(
                    err, "spec.domain.resources",
                    "dedicatedCpuPlacement needs a cpu request of whole CPUs equal to the vCPUs (%u)",
                    vmi_vcpus(v));
        if (v->dedicated_cpus && max_sockets)
                return jf_error(err, "spec.domain.cpu.maxSockets",
                                "CPU hot-plug with dedicatedCpuPlacement is not supported");
        return 0;
}

static int parse_machine(vmi *v, const cJSON *domain, kv_error *err)
{
        static const char *const allowed[] = {"type", NULL};
        const cJSON *m = NULL;
        JF_TRY(jf_object(domain, "spec.domain", "machine", &m, err));
        if (m) {
                JF_TRY(jf_check_keys(m, "spec.domain.machine", allowed, NULL, err));
                JF_TRY(jf_string(m, "spec.domain.machine", "type", false, &v->machine, err));
        }
        if (v->machine && !*v->machine) /* what `kubectl get -o yaml` prints: KubeVirt's default, q35 */
                free(v->machine), v->machine = NULL;
        if (!v->machine && !(v->machine = strdup("q35")))
                return kv_error_set(err, ENOMEM, "out of memory");
        const char *t = v->machine;
        bool versioned = !strncmp(t, "pc-q35-", 7) && t[7] >= '0' && t[7] <= '9' &&
                         strspn(t + 7, "0123456789.") == strlen(t + 7);
        if (strcmp(t, "q35") && !versioned)
                return jf_error(err, "spec.domain.machine.type",
                                "\"%.64s\" is not supported (supported: q35, pc-q35-X.Y)", t);
        return 0;
}

/* Append "name=value" to the -cpu properties the features and timers set. */
static int add_cpu_prop(vmi *v, kv_error *err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int add_cpu_prop(vmi *v, kv_error *err, const char *fmt, ...)
{
        size_t n = 0;
        while (v->cpu_props && v->cpu_props[n])
                n++;
        char **p = realloc(v->cpu_props, (n + 2) * sizeof(char *));
        if (!p)
                return kv_error_set(err, ENOMEM, "out of memory");
        v->cpu_props = p;
        va_list ap;
        va_start(ap, fmt);
        int r = vasprintf(&p[n], fmt, ap);
        va_end(ap);
        if (r < 0)
                return p[n] = NULL, kv_error_set(err, ENOMEM, "out of memory");
        p[n + 1] = NULL;
        return 0;
}

/* A KubeVirt FeatureState at parent.key: {enabled: bool}, where present without "enabled" means on.
 * keys: the members allowed (NULL: just "enabled"); *out stays TRI_DEFAULT when absent. */
static int feature_state(const cJSON *parent, const char *path, const char *key, const char *const *keys,
                         tristate *out, const cJSON **obj, kv_error *err)
{
        static const char *const state[] = {"enabled", NULL};
        const cJSON *s = NULL;
        char p[JPATH_MAX];
        JF_TRY(jf_object(parent, path, key, &s, err));
        if (obj)
                *obj = s;
        if (!s)
                return 0;
        JF_TRY(jf_check_keys(s, jpath_key(p, path, key), keys ? keys : state, NULL, err));
        bool on = true;
        JF_TRY(jf_bool(s, p, "enabled", &on, err));
        *out = on ? TRI_ON : TRI_OFF;
        return 0;
}

/* Hyper-V enlightenments as QEMU's hv-* CPU properties (libvirt's mapping). QEMU sets the Hyper-V CPUID
 * leaves only under KVM; hv-vpindex it even refuses under TCG, so a VMI asking for it needs KVM. */
static int parse_hyperv(vmi *v, const cJSON *features, kv_error *err)
{
        static const struct {
                const char *key, *prop;
                const char *kvm_only; /* the JSON path when QEMU refuses it under TCG */
        } simple[] = {
            {"relaxed", "hv-relaxed", NULL},
            {"vapic", "hv-vapic", NULL},
            {"vpindex", "hv-vpindex", "spec.domain.features.hyperv.vpindex"},
            {"runtime", "hv-runtime", NULL},
            {"synic", "hv-synic", NULL},
            {"reset", "hv-reset", NULL},
            {"frequencies", "hv-frequencies", NULL},
            {"reenlightenment", "hv-reenlightenment", NULL},
            {"tlbflush", "hv-tlbflush", NULL},
            {"ipi", "hv-ipi", NULL},
            {"evmcs", "hv-evmcs", NULL},
        };
        static const char *const allowed[] = {"relaxed",    "vapic",    "vpindex",     "runtime",
                                              "synic",      "reset",    "frequencies", "reenlightenment",
                                              "tlbflush",   "ipi",      "evmcs",       "spinlocks",
                                              "synictimer", "vendorid", NULL};
        static const char *const spin_keys[] = {"enabled", "spinlocks", NULL};
        static const char *const stimer_keys[] = {"enabled", "direct", NULL};
        static const char *const vendor_keys[] = {"enabled", "vendorid", NULL};
        const char *path = "spec.domain.features.hyperv";
        const cJSON *h = NULL, *o = NULL;
        JF_TRY(jf_object(features, "spec.domain.features", "hyperv", &h, err));
        if (!h)
                return 0;
        JF_TRY(jf_check_keys(h, path, allowed, NULL, err));
        for (size_t i = 0; i < ARRAY_SIZE(simple); i++) {
                tristate t = TRI_DEFAULT;
                JF_TRY(feature_state(h, path, simple[i].key, NULL, &t, NULL, err));
                if (t == TRI_DEFAULT)
                        continue;
                JF_TRY(add_cpu_prop(v, err, "%s=%s", simple[i].prop, t == TRI_ON ? "on" : "off"));
                if (t == TRI_ON && simple[i].kvm_only && !v->kvm_only)
                        v->kvm_only = simple[i].kvm_only;
        }
        tristate t = TRI_DEFAULT;
        JF_TRY(feature_state(h, path, "spinlocks", spin_keys, &t, &o, err));
        if (t == TRI_ON) { /* retries before the guest notifies the hypervisor; libvirt's default 4096 */
                int64_t n = 4096;
                JF_TRY(jf_int(o, "spec.domain.features.hyperv.spinlocks", "spinlocks", 4096, UINT32_MAX, &n,
                              NULL, err));
                JF_TRY(add_cpu_prop(v, err, "hv-spinlocks=0x%llx", (unsigned long long)n));
        }
        t = TRI_DEFAULT;
        JF_TRY(feature_state(h, path, "synictimer", stimer_keys, &t, &o, err));
        if (t != TRI_DEFAULT) {
                tristate direct = TRI_DEFAULT;
                JF_TRY(add_cpu_prop(v, err, "hv-stimer=%s", t == TRI_ON ? "on" : "off"));
                JF_TRY(feature_state(o, "spec.domain.features.hyperv.synictimer", "direct", NULL, &direct,
                                     NULL, err));
                if (direct != TRI_DEFAULT)
                        JF_TRY(add_cpu_prop(v, err, "hv-stimer-direct=%s", direct == TRI_ON ? "on" : "off"));
        }
        t = TRI_DEFAULT;
        JF_TRY(feature_state(h, path, "vendorid", vendor_keys, &t, &o, err));
        if (t == TRI_ON) {
                _cleanup_free_ char *id = NULL;
                const char *vp = "spec.domain.features.hyperv.vendorid.vendorid";
                JF_TRY(jf_string(o, "spec.domain.features.hyperv.vendorid", "vendorid", true, &id, err));
                size_t n = strlen(id);
                if (!n || n > 12 ||
                    strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") != n)
                        return jf_error(err, vp, "must be 1-12 letters or digits");
                JF_TRY(add_cpu_prop(v, err, "hv-vendor-id=%s", id));
        }
        return 0;
}

/* spec.domain.features: acpi (default on), smm, apic, hyperv, kvm, pvspinlock, hypervPassthrough. */
static int parse_features(vmi *v, const cJSON *domain, bool *smm_given, kv_error *err)
{
        static const char *const allowed[] = {
            "acpi", "smm", "apic", "hyperv", "kvm", "pvspinlock", "hypervPassthrough", NULL};
        static const char *const apic_keys[] = {"enabled", "endOfInterrupt", NULL};
        static const char *const kvm_keys[] = {"hidden", NULL};
        const char *path = "spec.domain.features";
        const cJSON *f = NULL, *o = NULL;
        JF_TRY(jf_object(domain, "spec.domain", "features", &f, err));
        if (!f)
                return 0;
        JF_TRY(jf_check_keys(f, path, allowed, NULL, err));
        tristate acpi = TRI_DEFAULT, smm = TRI_DEFAULT, apic = TRI_DEFAULT, pvspin = TRI_DEFAULT,
                 hvpass = TRI_DEFAULT;
        JF_TRY(feature_state(f, path, "acpi", NULL, &acpi, NULL, err));
        JF_TRY(feature_state(f, path, "smm", NULL, &smm, NULL, err));
        if (acpi != TRI_DEFAULT)
                v->acpi = acpi == TRI_ON;
        if (smm != TRI_DEFAULT)
                v->smm = smm == TRI_ON, *smm_given = true;
        /* q35 always has a local APIC: enabled is the only state; endOfInterrupt is KVM's PV EOI. */
        JF_TRY(feature_state(f, path, "apic", apic_keys, &apic, &o, err));
        if (apic == TRI_OFF)
                return jf_error(err, "spec.domain.features.apic.enabled",
                                "false is not supported (a q35 machine always has a local APIC)");
        const cJSON *eoi = o ? cJSON_GetObjectItemCaseSensitive(o, "endOfInterrupt") : NULL;
        if (eoi) {
                bool on = false;
                JF_TRY(jf_bool(o, "spec.domain.features.apic", "endOfInterrupt", &on, err));
                JF_TRY(add_cpu_prop(v, err, "kvm-pv-eoi=%s", on ? "on" : "off"));
        }
        JF_TRY(parse_hyperv(v, f, err));
        JF_TRY(feature_state(f, path, "hypervPassthrough", NULL, &hvpass, NULL, err));
        if (hvpass == TRI_ON)
                JF_TRY(add_cpu_prop(v, err, "hv-passthrough=on"));
        JF_TRY(jf_object(f, path, "kvm", &o, err));
        if (o) {
                bool hidden = false;
                JF_TRY(jf_check_keys(o, "spec.domain.features.kvm", kvm_keys, NULL, err));
                JF_TRY(jf_bool(o, "spec.domain.features.kvm", "hidden", &hidden, err));
                if (hidden) /* no KVM signature in CPUID */
                        JF_TRY(add_cpu_prop(v, err, "kvm=off"));
        }
        JF_TRY(feature_state(f, path, "pvspinlock", NULL, &pvspin, NULL, err));
        if (pvspin != TRI_DEFAULT)
                JF_TRY(add_cpu_prop(v, err, "kvm-pv-unhalt=%s", pvspin == TRI_ON ? "on" : "off"));
        return 0;
}

/* A timer's "present" (default true) into *out. */
static int timer_present(const cJSON *t, const char *path, tristate *out, kv_error *err)
{
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(t, "present");
        bool on = true;
        if (!p)
                return 0;
        JF_TRY(jf_bool(t, path, "present", &on, err));
        *out = on ? TRI_ON : TRI_OFF;
        return 0;
}

/* spec.domain.clock.timer: hpet and pit as machine properties, rtc as -rtc driftfix/clock, kvm and hyperv
 * as the kvmclock / hv-time CPU properties (libvirt's mapping). */
static int parse_timers(vmi *v, const cJSON *clock, kv_error *err)
{
        static const char *const hpet_keys[] = {"present", "tickPolicy", NULL};
        static const char *const rtc_keys[] = {"present", "tickPolicy", "track", NULL};
        static const char *const present_keys[] = {"present", NULL};
        static const char *const allowed[] = {"hpet", "pit", "rtc", "kvm", "hyperv", NULL};
        static const char *const pit_policies[] = {"delay", "catchup", "discard", NULL};
        static const char *const pit_qemu[] = {"delay", "slew", "discard"};
        static const char *const rtc_policies[] = {"delay", "catchup", NULL};
        static const char *const tracks[] = {"guest", "wall", NULL};
        const char *path = "spec.domain.clock.timer";
        const cJSON *t = NULL, *o = NULL;
        JF_TRY(jf_object(clock, "spec.domain.clock", "timer", &t, err));
        if (!t)
                return 0;
        JF_TRY(jf_check_keys(t, path, allowed, NULL, err));
        JF_TRY(jf_object(t, path, "hpet", &o, err));
        if (o) {
                JF_TRY(jf_check_keys(o, "spec.domain.clock.timer.hpet", hpet_keys, NULL, err));
                if (cJSON_GetObjectItemCaseSensitive(o, "tickPolicy"))
                        return jf_error(err, "spec.domain.clock.timer.hpet.tickPolicy",
                                        "is not supported (QEMU's HPET has no tick policy)");
                v->hpet = TRI_ON;
                JF_TRY(timer_present(o, "spec.domain.clock.timer.hpet", &v->hpet, err));
        }
        o = NULL;
        JF_TRY(jf_object(t, path, "pit", &o, err));
        if (o) {
                int policy = -1;
                JF_TRY(jf_check_keys(o, "spec.domain.clock.timer.pit", hpet_keys, NULL, err));
                JF_TRY(jf_enum(o, "spec.domain.clock.timer.pit", "tickPolicy", pit_policies, &policy, err));
                v->pit = TRI_ON;
                JF_TRY(timer_present(o, "spec.domain.clock.timer.pit", &v->pit, err));
                v->pit_policy = policy >= 0 ? pit_qemu[policy] : NULL;
        }
        o = NULL;
        JF_TRY(jf_object(t, path, "rtc", &o, err));
        if (o) {
                int policy = -1, track = -1;
                tristate present = TRI_ON;
                JF_TRY(jf_check_keys(o, "spec.domain.clock.timer.rtc", rtc_keys, NULL, err));
                JF_TRY(timer_present(o, "spec.domain.clock.timer.rtc", &present, err));
                if (present == TRI_OFF)
                        return jf_error(err, "spec.domain.clock.timer.rtc.present",
                                        "false is not supported (a q35 machine always has its RTC)");
                JF_TRY(jf_enum(o, "spec.domain.clock.timer.rtc", "tickPolicy", rtc_policies, &policy, err));
                JF_TRY(jf_enum(o, "spec.domain.clock.timer.rtc", "track", tracks, &track, err));
                v->rtc_driftfix_slew = policy == 1;
                v->rtc_clock = track < 0 ? NULL : track == 0 ? "vm" : "host";
        }
        const char *const cpu_timers[][2] = {{"kvm", "kvmclock"}, {"hyperv", "hv-time"}};
        for (size_t i = 0; i < ARRAY_SIZE(cpu_timers); i++) {
                char p[JPATH_MAX];
                tristate present = TRI_ON;
                o = NULL;
                JF_TRY(jf_object(t, path, cpu_timers[i][0], &o, err));
                if (!o)
                        continue;
                jpath_key(p, path, cpu_timers[i][0]);
                JF_TRY(jf_check_keys(o, p, present_keys, NULL, err));
                JF_TRY(timer_present(o, p, &present, err));
                JF_TRY(add_cpu_prop(v, err, "%s=%s", cpu_timers[i][1], present == TRI_ON ? "on" : "off"));
        }
        return 0;
}

/* spec.domain.clock: utc (with offsetSeconds) or timezone sets where the RTC starts; timers. */
static int parse_clock(vmi *v, const cJSON *domain, kv_error *err)
{
        static const char *const allowed[] = {"utc", "timezone", "timer", NULL};
        static const char *const utc_keys[] = {"offsetSeconds", NULL};
        const cJSON *c = NULL, *utc = NULL;
        JF_TRY(jf_object(domain, "spec.domain", "clock", &c, err));
        if (!c)
                return 0;
        JF_TRY(jf_check_keys(c, "spec.domain.clock", allowed, NULL, err));
        JF_TRY(jf_object(c, "spec.domain.clock", "utc", &utc, err));
        JF_TRY(jf_string(c, "spec.domain.clock", "timezone", false, &v->timezone, err));
        if (utc && v->timezone)
                return jf_error(err, "spec.domain.clock", "only one of utc and timezone may be set");
        if (utc) {
                JF_TRY(jf_check_keys(utc, "spec.domain.clock.utc", utc_keys, NULL, err));
                JF_TRY(jf_int(utc, "spec.domain.clock.utc", "offsetSeconds", -(int64_t)100 * 366 * 86400,
                              (int64_t)100 * 366 * 86400, &v->rtc_offset, NULL, err));
        }
        if (v->timezone) { /* a name under /usr/share/zoneinfo, resolved by vmi_prepare */
                const char *tz = v->timezone;
                if (tz[0] == '/' || jf_check_image_path(tz, "spec.domain.clock.timezone", err) < 0)
                        return jf_error(err, "spec.domain.clock.timezone", "\"%.64s\" is not a timezone name",
                                        tz);
        }
        return parse_timers(v, c, err);
}

/* spec.domain.chassis: SMBIOS type 3 strings. */
static int parse_chassis(vmi *v, const cJSON *domain, kv_error *err)
{
        static const char *const allowed[] = {"manufacturer", "version", "serial", "asset", "sku", NULL};
        const cJSON *c = NULL, *m;
        JF_TRY(jf_object(domain, "spec.domain", "chassis", &c, err));
        if (!c)
                return 0;
        JF_TRY(jf_check_keys(c, "spec.domain.chassis", allowed, NULL, err));
        cJSON_ArrayForEach(m, c)
        {
                char p[JPATH_MAX], d[64];
                jpath_key(p, "spec.domain.chassis", m->string);
                if (!cJSON_IsString(m))
                        return jf_error(err, p, "expected a string, got %s", jf_describe(m, d, sizeof(d)));
                if (jf_has_control_chars(m->valuestring) || strlen(m->valuestring) > 256)
                        return jf_error(err, p, "must be at most 256 printable characters");
        }
        if (cJSON_GetArraySize(c) && !(v->chassis = cJSON_Duplicate(c, true)))
                return kv_error_set(err, ENOMEM, "out of memory");
        return 0;
}

static int parse_kernel_boot(vmi *v, const cJSON *fw, kv_error *err)
{
        static const char *const allowed[] = {"kernelArgs", "container", NULL};
        static const char *const container_allowed[] = {"image", "kernelPath", "initrdPath", NULL};
        static const char *const container_ignored[] = {"imagePullPolicy", "imagePullSecret", NULL};
        const char *kb_path = "spec.domain.firmware.kernelBoot",
                   *c_path = "spec.domain.firmware.kernelBoot.container";
        const cJSON *kb = NULL, *c = NULL;
        JF_TRY(jf_object(fw, "spec.domain.firmware", "kernelBoot", &kb, err));
        if (!kb)
                return 0;
        JF_TRY(jf_check_keys(kb, kb_path, allowed, NULL, err));
        JF_TRY(jf_string(kb, kb_path, "kernelArgs", false, &v->kernel_args, err));
        JF_TRY(jf_object(kb, kb_path, "container", &c, err));
        if (!c)
                return jf_error(err, "spec.domain.firmware.kernelBoot.container", "is required");
        JF_TRY(jf_check_keys(c, c_path, container_allowed, container_ignored, err));
        JF_TRY(jf_string(c, c_path, "image", true, &v->kernel_image, err));
        JF_TRY(jf_string(c, c_path, "kernelPath", false, &v->kernel_path, err));
        JF_TRY(jf_string(c, c_path, "initrdPath", false, &v->initrd_path, err));
        if (!*v->kernel_image || jf_has_control_chars(v->kernel_image))
                return jf_error(err, "spec.domain.firmware.kernelBoot.container.image",
                                "is not a valid image reference");
        if (!v->kernel_path && !v->initrd_path)
                return jf_error(err, c_path, "kernelPath or initrdPath is required");
        if (v->kernel_args && !v->kernel_path)
                return jf_error(err, "spec.domain.firmware.kernelBoot.kernelArgs",
                                "requires container.kernelPath");
        if (v->kernel_args && jf_has_control_chars(v->kernel_args))
                return jf_error(err, "spec.domain.firmware.kernelBoot.kernelArgs",
                                "must not contain control characters");
        if (v->kernel_path)
                JF_TRY(jf_check_image_path(v->kernel_path,
                                           "spec.domain.firmware.kernelBoot.container.kernelPath", err));
        if (v->initrd_path)
                JF_TRY(jf_check_image_path(v->initrd_path,
                                           "spec.domain.firmware.kernelBoot.container.initrdPath", err));
        v->kernel_boot = true;
        return 0;
}

static int parse_bootloader(vmi *v, const cJSON *fw, kv_error *err)
{
        static const char *const allowed[] = {"bios", "efi", NULL};
        static const char *const bios_allowed[] = {"useSerial", NULL};
        static const char *const efi_allowed[] = {"secureBoot", "persistent", NULL};
        const char *path = "spec.domain.firmware.bootloader";
        const cJSON *bl = NULL, *bios = NULL, *efi = NULL;
        JF_TRY(jf_object(fw, "spec.domain.firmware", "bootloader", &bl, err));
        if (!bl)
                return 0;
        JF_TRY(jf_check_keys(bl, path, allowed, NULL, err));
        JF_TRY(jf_object(bl, path, "bios", &bios, err));
        JF_TRY(jf_object(bl, path, "efi", &efi, err));
        if (bios && efi)
                return jf_error(err, path, "only one of bios and efi may be set");
        if (bios) {
                JF_TRY(jf_check_keys(bios, "spec.domain.firmware.bootloader.bios", bios_allowed, NULL, err));
                JF_TRY(jf_bool(bios, "spec.domain.firmware.bootloader.bios", "useSerial", &v->bios_use_serial,
                               err));
        }
        if (efi) {
                v->firmware = FW_EFI;
                v->efi_secure_boot = true; /* KubeVirt's default */
                JF_TRY(jf_check_keys(efi, "spec.domain.firmware.bootloader.efi", efi_allowed, NULL, err));
                JF_TRY(jf_bool(efi, "spec.domain.firmware.bootloader.efi", "secureBoot", &v->efi_secure_boot,
                               err));
                JF_TRY(jf_bool(efi, "spec.domain.firmware.bootloader.efi", "persistent", &v->efi_persistent,
                               err));
        }
        return 0;
}

static int parse_firmware(vmi *v, const cJSON *domain, kv_error *err)
{
        static const char *const allowed[] = {"uuid", "serial", "bootloader", "kernelBoot", NULL};
        const cJSON *fw = NULL;
        JF_TRY(jf_object(domain, "spec.domain", "firmware", &fw, err));
        if (fw) {
                JF_TRY(jf_check_keys(fw, "spec.domain.firmware", allowed, NULL, err));
                JF_TRY(jf_string(fw, "spec.domain.firmware", "uuid", false, &v->fw_uuid, err));
                if (v->fw_uuid && !is_uuid(v->fw_uuid))
                        return jf_error(err, "spec.domain.firmware.uuid", "\"%.64s\" is not a UUID",
                                        v->fw_uuid);
                JF_TRY(jf_string(fw, "spec.domain.firmware", "serial", false, &v->fw_serial, err));
                if (v->fw_serial && (jf_has_control_chars(v->fw_serial) || strlen(v->fw_serial) > 256))
                        return jf_error(err, "spec.domain.firmware.serial",
                                        "must be at most 256 printable characters");
                JF_TRY(parse_bootloader(v, fw, err));
                JF_TRY(parse_kernel_boot(v, fw, err));
        }
        /* Without firmware.uuid KubeVirt derives one; the VMI uid is the stable choice here. */
        if (!v->fw_uuid && v->uid && is_uuid(v->uid) && !(v->fw_uuid = strdup(v->uid)))
                return kv_error_set(err, ENOMEM, "out of memory");
        return 0;
}

static int parse_domain(vmi *v, const cJSON *spec, kv_error *err)
{
        static const char *const allowed[] = {"resources", "cpu",   "memory",  "machine", "firmware",
                                              "features",  "clock", "devices", "chassis", NULL};
        const cJSON *domain = NULL, *devices = NULL;
        long double cpu_count = 0;
        bool smm_given = false;
        JF_TRY(jf_object(spec, "spec", "domain", &domain, err));
        if (!domain)
                return jf_error(err, "spec.domain", "is required");
        if (cJSON_GetObjectItemCaseSensitive(domain, "launchSecurity"))
                return jf_error(
                    err, "spec.domain.launchSecurity",
                    "needs confidential-computing hardware (AMD SEV, Intel TDX), which this host lacks");
        JF_TRY(jf_check_keys(domain, "spec.domain", allowed, NULL, err));
        JF_TRY(parse_memory(v, domain, err));
        JF_TRY(parse_resources(v, domain, &cpu_count, err));
        JF_TRY(check_memory(v, err));
        JF_TRY(parse_cpu(v, domain, cpu_count, err));
        JF_TRY(parse_machine(v, domain, err));
        JF_TRY(parse_features(v, domain, &smm_given, err));
        JF_TRY(parse_clock(v, domain, err));
        JF_TRY(parse_chassis(v, domain, err));
        JF_TRY(parse_firmware(v, domain, err));
        if (v->firmware == FW_EFI && v->efi_secure_boot) {
                if (smm_given && !v->smm)
                        return jf_error(err, "spec.domain.features.smm", "secure boot requires SMM");
                v->smm = true;
        }
        JF_TRY(jf_object(domain, "spec.domain", "devices", &devices, err));
        return vmi_parse_devices(v, devices, "spec.domain.devices", err);
}

static int parse_start_strategy(vmi *v, const cJSON *spec, kv_error *err)
{
        static const char *const strategies[] = {"Paused", NULL};
        int s = -1;
        JF_TRY(jf_enum(spec, "spec", "startStrategy", strategies, &s, err));
        v->start_paused = s == 0;
        return 0;
}

static int parse_spec(vmi *v, const cJSON *root, kv_error *err)
{
        static const char *const allowed[] = {"domain",
                                              "volumes",
                                              "networks",
                                              "terminationGracePeriodSeconds",
                                              "startStrategy",
                                              "hostname",
                                              "readinessProbe",
                                              "livenessProbe",
                                              "evictionStrategy",
                                              "accessCredentials",
                                              NULL};
        /* Scheduling and DNS settings: they place or configure the Pod, not the guest. */
        static const char *const ignored[] = {"nodeSelector",      "affinity",
                                              "tolerations",       "schedulerName",
                                              "priorityClassName", "topologySpreadConstraints",
                                              "subdomain",         "dnsPolicy",
                                              "dnsConfig",         NULL};
        const cJSON *spec = NULL;
        JF_TRY(jf_object(root, "", "spec", &spec, err));
        if (!spec)
                return jf_error(err, "spec", "is required");
        if (cJSON_GetObjectItemCaseSensitive(spec, "resourceClaims"))
                return jf_error(
                    err, "spec.resourceClaims",
                    "needs devices allocated by Dynamic Resource Allocation (GPUs, host devices), "
                    "which this host lacks");
        JF_TRY(jf_check_keys(spec, "spec", allowed, ignored, err));
        v->grace_seconds = VMI_DEFAULT_GRACE_SECONDS;
        JF_TRY(jf_int(spec, "spec", "terminationGracePeriodSeconds", 0, 86400 * 7, &v->grace_seconds, NULL,
                      err));
        JF_TRY(parse_start_strategy(v, spec, err));
        /* what a Pod eviction does (virt-api's pods/eviction webhook, virt-controller's evacuation) */
        static const char *const eviction[] = {"None", "LiveMigrate", "LiveMigrateIfPossible", "External",
                                               NULL};
        int es = -1;
        JF_TRY(jf_enum(spec, "spec", "evictionStrategy", eviction, &es, err));
        JF_TRY(jf_string(spec, "spec", "hostname", false, &v->hostname, err));
        if (v->hostname && !jf_is_dns_label(v->hostname))
                return jf_error(err, "spec.hostname", "\"%.64s\" is not a valid hostname (DNS label)",
                                v->hostname);
        if (!v->hostname && !(v->hostname = strndup(v->name, strcspn(v->name, "."))))
                return kv_error_set(err, ENOMEM, "out of memory");
        JF_TRY(parse_domain(v, spec, err));
        JF_TRY(vmi_parse_probes(v, spec, err));
        JF_TRY(vmi_parse_volumes(v, spec, err));
        for (size_t i = 0; v->kernel_boot && i < v->n_volumes; i++) {
                char p[JPATH_MAX];
                snprintf(p, sizeof(p), "spec.volumes[%zu].name", i);
                if (!strcmp(v->volumes[i].name, VMI_KERNEL_BOOT_IMAGE_NAME))
                        return jf_error(err, p, "\"%s\" is reserved for the kernelBoot image",
                                        VMI_KERNEL_BOOT_IMAGE_NAME);
        }
        JF_TRY(vmi_parse_access_credentials(v, spec, err));
        return vmi_parse_networks(v, spec, err);
}

static int check_type(const cJSON *root, kv_error *err)
{
        static const char *const allowed[] = {"apiVersion", "kind", "metadata", "spec", NULL};
        static const char *const ignored[] = {"status", NULL};
        const cJSON *api = cJSON_GetObjectItemCaseSensitive(root, "apiVersion");
        const cJSON *kind = cJSON_GetObjectItemCaseSensitive(root, "kind");
        if (!cJSON_IsObject(root))
                return kv_error_set(err, EINVAL, "the manifest must be an object");
        if (!cJSON_IsString(api) ||
            (strcmp(api->valuestring, "kubevirt.io/v1") && strcmp(api->valuestring, "kubevirt.io/v1alpha3")))
                return jf_error(err, "apiVersion", "must be \"kubevirt.io/v1\"");
        if (!cJSON_IsString(kind) || strcmp(kind->valuestring, "VirtualMachineInstance"))
                return jf_error(err, "kind", "must be \"VirtualMachineInstance\"");
        return jf_check_keys(root, "", allowed, ignored, err);
}

int vmi_from_json(const cJSON *root, vmi **out, kv_error *err)
{
        _cleanup_(vmi_freep) vmi *v = calloc(1, sizeof(*v));
        if (!v || !(v->labels = cJSON_CreateObject()))
                return kv_error_set(err, ENOMEM, "out of memory");
        v->acpi = v->serial_console = v->graphics = v->mem_balloon = true;
        JF_TRY(check_type(root, err));
        JF_TRY(parse_metadata(v, root, err));
        JF_TRY(parse_spec(v, root, err));
        *out = TAKE_PTR(v);
        return 0;
}

static int read_all(int fd, char **out, size_t *len);

static int load_buffer(const char *buf, size_t len, vmi **out, kv_error *err)
{
        cJSON *root = NULL;
        int r = yaml_or_json_parse(buf, len, &root, err);
        if (r < 0)
                return r;
        r = vmi_from_json(root, out, err);
        cJSON_Delete(root);
        return r;
}

int vmi_load_json_string(const char *json, vmi **out, kv_error *err)
{
        return load_buffer(json, strlen(json), out, err);
}

/* Every document of a bundle file appended to bundle. */
static int load_bundle_file(const char *path, cJSON *bundle, kv_error *err)
{
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT ? 0 : kv_error_errno(err, errno, "open %s", path);
        _cleanup_free_ char *buf = NULL;
        size_t len = 0;
        int r = read_all(fd, &buf, &len);
        if (r < 0)
                return kv_error_errno(err, -r, "read %s", path);
        _cleanup_json_ cJSON *docs = NULL;
        if ((r = yaml_to_json_all(buf, len, &docs, err)) < 0)
                return kv_error_wrap(err, "%s", path), r;
        for (cJSON *d; (d = cJSON_DetachItemFromArray(docs, 0));)
                cJSON_AddItemToArray(bundle, d);
        return 0;
}

static bool is_single_vmi(const cJSON *docs)
{
        const char *kind =
            cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(docs, 0), "kind"));
        return cJSON_GetArraySize(docs) == 1 && (!kind || !strcmp(kind, "VirtualMachineInstance"));
}

static int load_any_buffer(const char *buf, size_t len, const char *const *bundle_paths, vmi **out,
                           kv_error *err)
{
        size_t skip = strspn(buf, " \t\r\n");
        _cleanup_json_ cJSON *docs = NULL, *vmi_json = NULL, *bundle = NULL;
        int r;
        if (skip < len && buf[skip] == '{') {
                cJSON *one = NULL;
                if ((r = yaml_or_json_parse(buf, len, &one, err)) < 0)
                        return r;
                docs = cJSON_CreateArray();
                cJSON_AddItemToArray(docs, one);
        } else if ((r = yaml_to_json_all(buf, len, &docs, err)) < 0)
                return r;
        if (!docs)
                return kv_error_set(err, ENOMEM, "out of memory");
        if (is_single_vmi(docs))
                return vmi_from_json(cJSON_GetArrayItem(docs, 0), out, err);
        /* the bundled common instancetypes are read only for a VM that may need them */
        if (!(bundle = cJSON_CreateArray()))
                return kv_error_set(err, ENOMEM, "out of memory");
        for (const char *const *p = bundle_paths; p && *p; p++)
                JF_TRY(load_bundle_file(*p, bundle, err));
        JF_TRY(it_vmi_from_docs(docs, bundle, &vmi_json, err));
        return vmi_from_json(vmi_json, out, err);
}

int vmi_load_any_string(const char *text, const char *const *bundle_paths, vmi **out, kv_error *err)
{
        return load_any_buffer(text, strlen(text), bundle_paths, out, err);
}

static int read_all(int fd, char **out, size_t *len)
{
        size_t cap = 65536, n = 0;
        _cleanup_free_ char *buf = malloc(cap);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                if (n == cap) {
                        if (cap >= MANIFEST_MAX)
                                return -EFBIG;
                        char *b = realloc(buf, cap *= 2);
                        if (!b)
                                return -ENOMEM;
                        buf = b;
                }
                ssize_t k = read(fd, buf + n, cap - n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                if (k == 0)
                        break;
                n += k;
        }
        *len = n;
        *out = TAKE_PTR(buf);
        return 0;
}

/* The whole of path ("-" = standard input), loaded as one VMI or (any) as whatever vmi_load_any takes; errors
 * name the path. */
static int load_path(const char *path, bool any, const char *const *bundle_paths, vmi **out, kv_error *err)
{
        bool stdin_ = !strcmp(path, "-");
        const char *what = stdin_ ? "stdin" : path;
        _cleanup_close_ int fd = stdin_ ? -1 : open(path, O_RDONLY | O_CLOEXEC);
        if (!stdin_ && fd < 0)
                return kv_error_errno(err, errno, "open %s", path);
        _cleanup_free_ char *buf = NULL;
        size_t len = 0;
        int r = read_all(stdin_ ? STDIN_FILENO : fd, &buf, &len);
        if (r < 0)
                return kv_error_errno(err, -r, "read %s", what);
        r = any ? load_any_buffer(buf, len, bundle_paths, out, err) : load_buffer(buf, len, out, err);
        if (r < 0)
                kv_error_wrap(err, "%s", what);
        return r;
}

int vmi_load(const char *path, vmi **out, kv_error *err)
{
        return load_path(path, false, NULL, out, err);
}

int vmi_load_any(const char *path, const char *const *bundle_paths, vmi **out, kv_error *err)
{
        return load_path(path, true, bundle_paths, out, err);
}

void vmi_free(vmi *v)
{
        if (!v)
                return;
        free(v->name), free(v->namespace), free(v->uid), free(v->hostname);
        cJSON_Delete(v->labels);
        free(v->cpu_model_name);
        for (char **f = v->cpu_features; f && *f; f++)
                free(*f);
        free(v->cpu_features);
        for (char **f = v->cpu_props; f && *f; f++)
                free(*f);
        free(v->cpu_props), free(v->timezone), free(v->watchdog_name);
        cJSON_Delete(v->chassis);
        free(v->machine), free(v->fw_uuid), free(v->fw_serial), free(v->efi_vars);
        free(v->kernel_image), free(v->kernel_path), free(v->initrd_path), free(v->kernel_args);
        free(v->kernel_file), free(v->initrd_file);
        vmi_free_devices(v);
        vmi_probe_free(&v->readiness), vmi_probe_free(&v->liveness);
        vmi_access_creds_free(v);
        free(v);
}
