/* migrationpolicy: MigrationPolicy selection and the effective migration configuration; see
 * migrationpolicy.h. */
#include "migrationpolicy.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "quantity.h"

/* The launcher's defaults (docs/live-operations.md "Live migration"), written out so that the VMI's
 * migrationConfiguration shows what the migration really runs with. */
#define DEFAULT_COMPLETION_TIMEOUT_PER_GIB 150
#define DEFAULT_PROGRESS_TIMEOUT 150

static const char *name_of(const cJSON *policy)
{
        const char *n = cJSON_GetStringValue(
            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(policy, "metadata"), "name"));
        return n ? n : "";
}

static const cJSON *spec_item(const cJSON *policy, const char *key)
{
        return cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(policy, "spec"), key);
}

/* The label map of a selector (KubeVirt's flat map, or matchLabels), NULL when absent. */
static int selector_labels(const cJSON *policy, const char *which, const cJSON **out, kv_error *err)
{
        const cJSON *sel = cJSON_GetObjectItemCaseSensitive(spec_item(policy, "selectors"), which);
        *out = NULL;
        if (!sel || cJSON_IsNull(sel))
                return 0;
        if (!cJSON_IsObject(sel))
                return kv_error_set(err, EINVAL,
                                    "MigrationPolicy %s: spec.selectors.%s: expected a label map",
                                    name_of(policy), which);
        if (cJSON_GetObjectItemCaseSensitive(sel, "matchExpressions"))
                return kv_error_set(err, EINVAL,
                                    "MigrationPolicy %s: spec.selectors.%s.matchExpressions: not supported "
                                    "(KubeVirt's selectors are label maps)",
                                    name_of(policy), which);
        const cJSON *ml = cJSON_GetObjectItemCaseSensitive(sel, "matchLabels");
        bool nested = cJSON_IsObject(ml);
        const cJSON *labels = nested ? ml : sel, *l;
        cJSON_ArrayForEach(l, labels)
        {
                if (!cJSON_IsString(l))
                        return kv_error_set(
                            err, EINVAL,
                            "MigrationPolicy %s: spec.selectors.%s%s.%s: label values are strings",
                            name_of(policy), which, nested ? ".matchLabels" : "", l->string);
        }
        *out = labels;
        return 0;
}

/* Matching labels of a selector, or -1 when one of them is missing or different. */
static int count_matching(const cJSON *selector, const cJSON *labels)
{
        int n = 0;
        const cJSON *l;
        cJSON_ArrayForEach(l, selector)
        {
                const char *have = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(labels, l->string));
                if (!have || strcmp(have, l->valuestring))
                        return -1;
                n++;
        }
        return n;
}

typedef struct score {
        int vmi, ns;
} score;

static bool better(score a, const char *aname, score b, const char *bname)
{
        if (a.vmi + a.ns != b.vmi + b.ns)
                return a.vmi + a.ns > b.vmi + b.ns;
        if (a.vmi != b.vmi)
                return a.vmi > b.vmi;
        return strcmp(aname, bname) < 0;
}

int migration_policy_select(const cJSON *policies, const cJSON *vmi_labels, const cJSON *ns_labels,
                            const cJSON **out, kv_error *err)
{
        *out = NULL;
        score best = {0, 0};
        const cJSON *p;
        cJSON_ArrayForEach(p, policies)
        {
                const cJSON *vsel, *nsel;
                int r = selector_labels(p, "virtualMachineInstanceSelector", &vsel, err);
                if (r < 0 || (r = selector_labels(p, "namespaceSelector", &nsel, err)) < 0)
                        return r;
                score s = {count_matching(vsel, vmi_labels), count_matching(nsel, ns_labels)};
                if (s.vmi < 0 || s.ns < 0)
                        continue;
                if (!*out || better(s, name_of(p), best, name_of(*out))) {
                        *out = p;
                        best = s;
                }
        }
        return 0;
}

bool migration_policies_use_namespace(const cJSON *policies)
{
        const cJSON *p;
        cJSON_ArrayForEach(p, policies)
        {
                const cJSON *ns =
                    cJSON_GetObjectItemCaseSensitive(spec_item(p, "selectors"), "namespaceSelector");
                if (cJSON_GetArraySize(ns) > 0)
                        return true;
        }
        return false;
}

/* ---- the configuration ---- */

static int bad(const cJSON *policy, const char *field, const char *what, kv_error *err)
{
        return kv_error_set(err, EINVAL, "MigrationPolicy %s: spec.%s: %s", name_of(policy), field, what);
}

static int apply_bool(const cJSON *policy, const char *field, cJSON *config, kv_error *err)
{
        const cJSON *v = spec_item(policy, field);
        if (!v || cJSON_IsNull(v))
                return 0;
        if (!cJSON_IsBool(v))
                return bad(policy, field, "expected true or false", err);
        cJSON_ReplaceItemInObjectCaseSensitive(config, field, cJSON_CreateBool(cJSON_IsTrue(v)));
        return 0;
}

static int apply_bandwidth(const cJSON *policy, cJSON *config, kv_error *err)
{
        const cJSON *v = spec_item(policy, "bandwidthPerMigration");
        if (!v || cJSON_IsNull(v))
                return 0;
        char path[300];
        uint64_t bytes;
        snprintf(path, sizeof(path), "MigrationPolicy %s: spec.bandwidthPerMigration", name_of(policy));
        int r = quantity_bytes(v, path, &bytes, err);
        if (r < 0)
                return r;
        cJSON_ReplaceItemInObjectCaseSensitive(config, "bandwidthPerMigration",
                                               cJSON_CreateNumber((double)bytes));
        return 0;
}

static int apply_seconds(const cJSON *policy, const char *field, cJSON *config, kv_error *err)
{
        const cJSON *v = spec_item(policy, field);
        if (!v || cJSON_IsNull(v))
                return 0;
        if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < 1 ||
            v->valuedouble > UINT32_MAX)
                return bad(policy, field, "must be a whole number of seconds, at least 1", err);
        cJSON_ReplaceItemInObjectCaseSensitive(config, field, cJSON_CreateNumber(v->valuedouble));
        return 0;
}

/* Fields of KubeVirt's MigrationPolicySpec that are not applied are refused, never ignored. */
static int check_known(const cJSON *policy, kv_error *err)
{
        static const char *const known[] = {"allowAutoConverge",       "bandwidthPerMigration",
                                            "completionTimeoutPerGiB", "allowPostCopy",
                                            "allowWorkloadDisruption", "selectors"};
        const cJSON *spec = cJSON_GetObjectItemCaseSensitive(policy, "spec"), *f;
        if (spec && !cJSON_IsObject(spec)) /* an array's items have no names */
                return kv_error_set(err, EINVAL, "MigrationPolicy %s: spec: must be an object",
                                    name_of(policy));
        cJSON_ArrayForEach(f, spec)
        {
                size_t i = 0;
                while (i < sizeof(known) / sizeof(known[0]) && strcmp(known[i], f->string))
                        i++;
                if (i == sizeof(known) / sizeof(known[0]))
                        return bad(policy, f->string, "not supported", err);
        }
        if (cJSON_IsTrue(spec_item(policy, "allowWorkloadDisruption")))
                return bad(policy, "allowWorkloadDisruption", "true is not supported", err);
        return 0;
}

int migration_config_resolve(const cJSON *policy, cJSON **config, kv_error *err)
{
        cJSON *c = cJSON_CreateObject();
        *config = NULL;
        if (!c)
                return kv_error_errno(err, ENOMEM, "migration configuration");
        cJSON_AddBoolToObject(c, "allowAutoConverge", false);
        cJSON_AddBoolToObject(c, "allowPostCopy", false);
        cJSON_AddNumberToObject(c, "bandwidthPerMigration", 0); /* unlimited */
        cJSON_AddNumberToObject(c, "completionTimeoutPerGiB", DEFAULT_COMPLETION_TIMEOUT_PER_GIB);
        cJSON_AddNumberToObject(c, "progressTimeout", DEFAULT_PROGRESS_TIMEOUT);
        int r = 0;
        if (policy && ((r = check_known(policy, err)) < 0 ||
                       (r = apply_bool(policy, "allowAutoConverge", c, err)) < 0 ||
                       (r = apply_bool(policy, "allowPostCopy", c, err)) < 0 ||
                       (r = apply_bandwidth(policy, c, err)) < 0 ||
                       (r = apply_seconds(policy, "completionTimeoutPerGiB", c, err)) < 0)) {
                cJSON_Delete(c);
                return r;
        }
        *config = c;
        return 0;
}
