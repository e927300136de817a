/* The profile as data: its empty state and its JSON form (golden files, `kvmcheck --profile`,
 * `--replay`). One field table drives both directions, so the two can never disagree. */
#include "profile-json.h"
#include "caps.h"
#include "json.h"
#include "macro.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

void kvm_profile_init(kvm_profile *p)
{
        memset(p, 0, sizeof(*p));
        p->device.api_version = -1;
        p->device.create_vm_errno = -1;
        p->device.open_errno = -1;
        for (size_t i = 0; i < KVM_PROFILE_CAPS_MAX; i++)
                p->caps.value[i] = -1;
}

typedef enum { F_BOOL, F_INT, F_U32, F_HEX32, F_U64, F_STR } field_type;

typedef struct field {
        const char *path; /* "section.member", dots are JSON object nesting */
        field_type type;
        size_t off, size;
} field;

#define FIELD(path, type)                                                                                    \
        {                                                                                                    \
#path, type, offsetof(kvm_profile, path), sizeof(((kvm_profile *)0)->path)                   \
        }

static const field fields[] = {
    FIELD(host.arch, F_STR),
    FIELD(host.cpuinfo_read, F_BOOL),
    FIELD(host.vmx, F_BOOL),
    FIELD(host.svm, F_BOOL),
    FIELD(host.hypervisor, F_BOOL),
    FIELD(host.cpu_model, F_STR),
    FIELD(host.modules, F_STR),
    FIELD(device.exists, F_BOOL),
    FIELD(device.is_chardev, F_BOOL),
    FIELD(device.mode, F_U32),
    FIELD(device.uid, F_U32),
    FIELD(device.gid, F_U32),
    FIELD(device.open_errno, F_INT),
    FIELD(device.api_version, F_INT),
    FIELD(device.create_vm_errno, F_INT),
    FIELD(caps.probed, F_BOOL),
    FIELD(cpuid.probed, F_BOOL),
    FIELD(cpuid.err, F_INT),
    FIELD(cpuid.host.l1_ecx, F_HEX32),
    FIELD(cpuid.host.l1_edx, F_HEX32),
    FIELD(cpuid.host.l7_ebx, F_HEX32),
    FIELD(cpuid.host.l7_ecx, F_HEX32),
    FIELD(cpuid.host.e1_ecx, F_HEX32),
    FIELD(cpuid.host.e1_edx, F_HEX32),
    FIELD(cpuid.supported.l1_ecx, F_HEX32),
    FIELD(cpuid.supported.l1_edx, F_HEX32),
    FIELD(cpuid.supported.l7_ebx, F_HEX32),
    FIELD(cpuid.supported.l7_ecx, F_HEX32),
    FIELD(cpuid.supported.e1_ecx, F_HEX32),
    FIELD(cpuid.supported.e1_edx, F_HEX32),
    FIELD(smoke.probed, F_BOOL),
    FIELD(smoke.error, F_STR),
    FIELD(smoke.finished, F_BOOL),
    FIELD(smoke.timed_out, F_BOOL),
    FIELD(smoke.watchdog_ms, F_U32),
    FIELD(smoke.elapsed_us, F_U64),
    FIELD(smoke.iterations, F_U64),
    FIELD(smoke.iterations_done, F_U64),
    FIELD(smoke.stats.available, F_BOOL),
    FIELD(irq.probed, F_BOOL),
    FIELD(irq.error, F_STR),
    FIELD(irq.timed_out, F_BOOL),
    FIELD(irq.watchdog_ms, F_U32),
    FIELD(irq.ticks_wanted, F_U32),
    FIELD(irq.ticks, F_U32),
    FIELD(irq.elapsed_us, F_U64),
};

static cJSON *parent_of(cJSON *root, const char *path, const char **leaf, bool create);

static const cJSON *get_path(const cJSON *root, const char *path)
{
        const char *leaf;
        const cJSON *parent = parent_of((cJSON *)root, path, &leaf, false);
        return cJSON_GetObjectItemCaseSensitive(parent, leaf);
}

static void add_path(cJSON *root, const char *path, cJSON *item)
{
        const char *leaf;
        cJSON *parent = parent_of(root, path, &leaf, true);
        if (!parent || !cJSON_AddItemToObject(parent, leaf, item))
                cJSON_Delete(item);
}

/* The object that holds the last path component, created on the way when `create`. */
static cJSON *parent_of(cJSON *root, const char *path, const char **leaf, bool create)
{
        char part[64];
        const char *dot;
        cJSON *o = root;
        while (o && (dot = strchr(path, '.'))) {
                snprintf(part, sizeof(part), "%.*s", (int)(dot - path), path);
                cJSON *next = cJSON_GetObjectItemCaseSensitive(o, part);
                if (!next && create)
                        next = cJSON_AddObjectToObject(o, part);
                o = cJSON_IsObject(next) ? next : NULL;
                path = dot + 1;
        }
        *leaf = path;
        return o;
}

static cJSON *field_to_json(const field *f, const void *at)
{
        char hex[16];
        uint32_t u32;
        uint64_t u64;
        int i;
        switch (f->type) {
        case F_BOOL:
                return cJSON_CreateBool(*(const bool *)at);
        case F_INT:
                memcpy(&i, at, sizeof(i));
                return cJSON_CreateNumber(i);
        case F_U32:
                memcpy(&u32, at, sizeof(u32));
                return cJSON_CreateNumber(u32);
        case F_HEX32:
                memcpy(&u32, at, sizeof(u32));
                snprintf(hex, sizeof(hex), "0x%08x", u32);
                return cJSON_CreateString(hex);
        case F_U64:
                memcpy(&u64, at, sizeof(u64));
                return cJSON_CreateNumber((double)u64);
        case F_STR:
                return cJSON_CreateString(at);
        }
        return NULL;
}

static cJSON *named_values(const char *const *names, const int64_t *values, size_t n)
{
        cJSON *o = cJSON_CreateObject();
        for (size_t i = 0; o && i < n; i++)
                cJSON_AddNumberToObject(o, names[i], (double)values[i]);
        return o;
}

static void add_tables(cJSON *root, const kvm_profile *p)
{
        const char *names[KVM_PROFILE_CAPS_MAX > KVM_PROFILE_STATS_MAX ? KVM_PROFILE_CAPS_MAX
                                                                       : KVM_PROFILE_STATS_MAX];
        int64_t values[ARRAY_SIZE(names)];
        size_t n = 0;
        for (size_t i = 0; p->caps.probed && i < kvm_caps_count; i++, n++) {
                names[n] = kvm_caps[i].name;
                values[n] = p->caps.value[i];
        }
        add_path(root, "caps.values", named_values(names, values, n));
        n = 0;
        for (int i = 0; i < p->smoke.stats.n; i++, n++) {
                names[n] = p->smoke.stats.s[i].name;
                values[n] = (int64_t)p->smoke.stats.s[i].value;
        }
        add_path(root, "smoke.stats.values", named_values(names, values, n));
}

cJSON *kvm_profile_to_cjson(const kvm_profile *p)
{
        cJSON *root = cJSON_CreateObject();
        if (!root)
                return NULL;
        for (size_t i = 0; i < ARRAY_SIZE(fields); i++)
                add_path(root, fields[i].path, field_to_json(&fields[i], (const char *)p + fields[i].off));
        add_tables(root, p);
        return root;
}

static int field_from_json(const field *f, const cJSON *v, void *at, kv_error *err)
{
        bool ok = f->type == F_BOOL                        ? cJSON_IsBool(v)
                  : f->type == F_STR || f->type == F_HEX32 ? cJSON_IsString(v)
                                                           : cJSON_IsNumber(v);
        if (!ok)
                return kv_error_set(err, EINVAL, "profile field %s: wrong type", f->path);
        double d = cJSON_IsNumber(v) ? v->valuedouble : 0;
        if (f->type != F_INT && d < 0)
                return kv_error_set(err, EINVAL, "profile field %s: negative", f->path);
        /* converted only inside the type's range: a double out of range is undefined behaviour (an F_INT
         * field such as api_version is -1 on a host without /dev/kvm, which must never reach the unsigned
         * casts) */
        uint32_t u32 = d >= 0 && d <= UINT32_MAX ? (uint32_t)d : UINT32_MAX;
        uint64_t u64 = d >= 0 && d < 1.8e19 ? (uint64_t)d : UINT64_MAX;
        int i = d > -1e9 && d < 1e9 ? (int)d : -1;
        switch (f->type) {
        case F_BOOL:
                *(bool *)at = cJSON_IsTrue(v);
                return 0;
        case F_INT:
                memcpy(at, &i, sizeof(i));
                return 0;
        case F_U32:
                memcpy(at, &u32, sizeof(u32));
                return 0;
        case F_HEX32:
                if (sscanf(v->valuestring, "0x%x", &u32) != 1)
                        return kv_error_set(err, EINVAL, "profile field %s: not a 0x hex number", f->path);
                memcpy(at, &u32, sizeof(u32));
                return 0;
        case F_U64:
                memcpy(at, &u64, sizeof(u64));
                return 0;
        case F_STR:
                snprintf(at, f->size, "%s", v->valuestring);
                return 0;
        }
        return 0;
}

static int tables_from_json(const cJSON *root, kvm_profile *p, kv_error *err)
{
        const cJSON *caps = get_path(root, "caps.values");
        for (size_t i = 0; i < kvm_caps_count; i++) {
                const cJSON *v = cJSON_GetObjectItemCaseSensitive(caps, kvm_caps[i].name);
                if (v && !cJSON_IsNumber(v))
                        return kv_error_set(err, EINVAL, "profile field caps.values.%s: not a number",
                                            kvm_caps[i].name);
                p->caps.value[i] = (int)json_clamp_i64(v, INT_MIN, INT_MAX, p->caps.probed ? 0 : -1);
        }
        const cJSON *stats = get_path(root, "smoke.stats.values");
        const cJSON *v;
        cJSON_ArrayForEach(v, stats)
        {
                if (p->smoke.stats.n >= KVM_PROFILE_STATS_MAX || !cJSON_IsNumber(v) || v->valuedouble < 0)
                        return kv_error_set(err, EINVAL, "profile field smoke.stats.values.%s: bad",
                                            v->string);
                kvm_profile_stat *s = &p->smoke.stats.s[p->smoke.stats.n++];
                snprintf(s->name, sizeof(s->name), "%s", v->string);
                s->value = (uint64_t)json_clamp_i64(v, 0, INT64_MAX, 0);
        }
        return 0;
}

int kvm_profile_from_json(const char *text, kvm_profile *p, kv_error *err)
{
        kvm_profile_init(p);
        cJSON *root = cJSON_Parse(text);
        if (!cJSON_IsObject(root)) {
                cJSON_Delete(root);
                return kv_error_set(err, EINVAL, "profile: not a JSON object");
        }
        int r = 0;
        for (size_t i = 0; r == 0 && i < ARRAY_SIZE(fields); i++) {
                const cJSON *v = get_path(root, fields[i].path);
                if (v) /* absent fields keep their "not probed" defaults */
                        r = field_from_json(&fields[i], v, (char *)p + fields[i].off, err);
        }
        if (r == 0)
                r = tables_from_json(root, p, err);
        cJSON_Delete(root);
        return r;
}
