/* MigrationPolicy selection (KubeVirt's precedence) and the effective configuration, with the errors a bad
 * policy gives (migrationpolicy.c). */
#undef NDEBUG
#include "macro.h"
#include "migrationpolicy.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

static const char *POLICIES =
    "[{\"metadata\":{\"name\":\"any\"},\"spec\":{\"selectors\":{}}},"
    " {\"metadata\":{\"name\":\"db\"},\"spec\":{\"selectors\":{\"virtualMachineInstanceSelector\":{\"app\":"
    "\"db\"}}}},"
    " {\"metadata\":{\"name\":\"b-ns\"},\"spec\":{\"selectors\":{\"namespaceSelector\":{\"tier\":\"gold\"}}}}"
    ","
    " {\"metadata\":{\"name\":\"a-ns\"},\"spec\":{\"selectors\":{\"namespaceSelector\":{\"matchLabels\":"
    "{\"tier\":\"gold\"}}}}},"
    " {\"metadata\":{\"name\":\"db-gold\"},\"spec\":{\"selectors\":{\"virtualMachineInstanceSelector\":"
    "{\"app\":\"db\"},\"namespaceSelector\":{\"tier\":\"gold\"}}}},"
    " {\"metadata\":{\"name\":\"db-big\"},\"spec\":{\"selectors\":{\"virtualMachineInstanceSelector\":"
    "{\"app\":\"db\",\"size\":\"big\"}}}}]";

static const char *select_name(const char *policies, const char *vmi_labels, const char *ns_labels)
{
        static char name[64];
        cJSON *p = cJSON_Parse(policies), *v = cJSON_Parse(vmi_labels), *n = cJSON_Parse(ns_labels);
        const cJSON *out;
        kv_error err = {0};
        assert(migration_policy_select(p, v, n, &out, &err) == 0);
        snprintf(name, sizeof(name), "%s",
                 out ? cJSON_GetObjectItem(cJSON_GetObjectItem(out, "metadata"), "name")->valuestring : "");
        cJSON_Delete(p);
        cJSON_Delete(v);
        cJSON_Delete(n);
        return name;
}

static void test_select(void)
{
        assert(!strcmp(select_name("[]", "{}", "{}"), ""));
        assert(!strcmp(select_name(POLICIES, "{}", "{}"), "any")); /* empty selectors match everything */
        assert(!strcmp(select_name(POLICIES, "{\"app\":\"db\"}", "{}"), "db"));
        assert(!strcmp(select_name(POLICIES, "{\"app\":\"web\"}", "{}"), "any")); /* a different value */
        /* one namespace label each: a tie broken by name (a-ns < b-ns), matchLabels or flat alike */
        assert(!strcmp(select_name(POLICIES, "{}", "{\"tier\":\"gold\"}"), "a-ns"));
        /* two labels beat one */
        assert(!strcmp(select_name(POLICIES, "{\"app\":\"db\"}", "{\"tier\":\"gold\"}"), "db-gold"));
        /* two labels each: the one matching more VMI labels wins */
        assert(!strcmp(select_name(POLICIES, "{\"app\":\"db\",\"size\":\"big\"}", "{\"tier\":\"gold\"}"),
                       "db-big"));
        assert(!strcmp(select_name(POLICIES, "{\"app\":\"db\",\"size\":\"big\"}", NULL), "db-big"));
        /* the namespace is not read when no policy selects by it */
        cJSON *p = cJSON_Parse(POLICIES),
              *q = cJSON_Parse("[{\"spec\":{\"selectors\":{\"namespaceSelector\":{}}}}]");
        assert(migration_policies_use_namespace(p) && !migration_policies_use_namespace(q));
        cJSON_Delete(p);
        cJSON_Delete(q);
}

static void expect_select_error(const char *policies, const char *msg)
{
        cJSON *p = cJSON_Parse(policies);
        const cJSON *out;
        kv_error err = {0};
        assert(migration_policy_select(p, NULL, NULL, &out, &err) == -EINVAL);
        if (strcmp(err.msg, msg))
                fprintf(stderr, "got: %s\n", err.msg);
        assert(!strcmp(err.msg, msg));
        cJSON_Delete(p);
}

static char *resolve(const char *policy, kv_error *err)
{
        cJSON *p = policy ? cJSON_Parse(policy) : NULL, *c = NULL;
        int r = migration_config_resolve(p, &c, err);
        cJSON_Delete(p);
        char *text = r < 0 ? NULL : cJSON_PrintUnformatted(c);
        cJSON_Delete(c);
        return text;
}

static void expect_resolve_error(const char *spec, const char *msg)
{
        char policy[512];
        snprintf(policy, sizeof(policy), "{\"metadata\":{\"name\":\"p\"},\"spec\":%s}", spec);
        kv_error err = {0};
        assert(!resolve(policy, &err));
        if (strcmp(err.msg, msg))
                fprintf(stderr, "got: %s\n", err.msg);
        assert(!strcmp(err.msg, msg));
}

static void test_resolve(void)
{
        kv_error err = {0};
        _cleanup_free_ char *defaults = resolve(NULL, &err);
        assert(!strcmp(defaults,
                       "{\"allowAutoConverge\":false,\"allowPostCopy\":false,\"bandwidthPerMigration\":0,"
                       "\"completionTimeoutPerGiB\":150,\"progressTimeout\":150}"));
        _cleanup_free_ char *slow =
            resolve("{\"metadata\":{\"name\":\"slow\"},\"spec\":{\"allowAutoConverge\":true,"
                    "\"bandwidthPerMigration\":\"64Mi\",\"completionTimeoutPerGiB\":23,"
                    "\"allowPostCopy\":false,\"selectors\":{}}}",
                    &err);
        assert(!strcmp(
            slow, "{\"allowAutoConverge\":true,\"allowPostCopy\":false,\"bandwidthPerMigration\":67108864,"
                  "\"completionTimeoutPerGiB\":23,\"progressTimeout\":150}"));
        /* post-copy: the target launcher gets the configuration too (--incoming-config) */
        _cleanup_free_ char *postcopy = resolve("{\"spec\":{\"allowPostCopy\":true}}", &err);
        assert(strstr(postcopy, "\"allowPostCopy\":true,"));
        _cleanup_free_ char *plain = resolve("{\"spec\":{\"bandwidthPerMigration\":1000}}", &err);
        assert(strstr(plain, "\"bandwidthPerMigration\":1000,"));
        _cleanup_free_ char *decimal = resolve("{\"spec\":{\"bandwidthPerMigration\":\"1.5M\"}}", &err);
        assert(strstr(decimal, "\"bandwidthPerMigration\":1500000,"));

        expect_resolve_error(
            "{\"bandwidthPerMigration\":\"64 MB\"}",
            "MigrationPolicy p: spec.bandwidthPerMigration: \"64 MB\" is not a valid quantity "
            "(e.g. \"512Mi\", \"1G\", \"2\")");
        expect_resolve_error("{\"bandwidthPerMigration\":\"-1Mi\"}",
                             "MigrationPolicy p: spec.bandwidthPerMigration: must not be negative");
        expect_resolve_error(
            "{\"bandwidthPerMigration\":true}",
            "MigrationPolicy p: spec.bandwidthPerMigration: expected a quantity such as \"1Gi\", got true");
        expect_resolve_error(
            "{\"completionTimeoutPerGiB\":-5}",
            "MigrationPolicy p: spec.completionTimeoutPerGiB: must be a whole number of seconds, at least 1");
        expect_resolve_error(
            "{\"completionTimeoutPerGiB\":\"60\"}",
            "MigrationPolicy p: spec.completionTimeoutPerGiB: must be a whole number of seconds, at least 1");
        expect_resolve_error(
            "{\"completionTimeoutPerGiB\":1.5}",
            "MigrationPolicy p: spec.completionTimeoutPerGiB: must be a whole number of seconds, at least 1");
        expect_resolve_error("{\"allowAutoConverge\":\"yes\"}",
                             "MigrationPolicy p: spec.allowAutoConverge: expected true or false");
        expect_resolve_error("{\"allowPostCopy\":1}",
                             "MigrationPolicy p: spec.allowPostCopy: expected true or false");
        expect_resolve_error("{\"progressTimeout\":5}",
                             "MigrationPolicy p: spec.progressTimeout: not supported");
        expect_resolve_error("[\"h\"]", "MigrationPolicy p: spec: must be an object"); /* found by fuzzing */
        expect_select_error(
            "[{\"metadata\":{\"name\":\"m\"},\"spec\":{\"selectors\":{\"namespaceSelector\":"
            "{\"matchExpressions\":[]}}}}]",
            "MigrationPolicy m: spec.selectors.namespaceSelector.matchExpressions: not supported "
            "(KubeVirt's selectors are label maps)");
        expect_select_error(
            "[{\"metadata\":{\"name\":\"m\"},\"spec\":{\"selectors\":{"
            "\"virtualMachineInstanceSelector\":{\"app\":1}}}}]",
            "MigrationPolicy m: spec.selectors.virtualMachineInstanceSelector.app: label values are "
            "strings");
        expect_select_error(
            "[{\"metadata\":{\"name\":\"m\"},\"spec\":{\"selectors\":{\"namespaceSelector\":\"x\"}}}]",
            "MigrationPolicy m: spec.selectors.namespaceSelector: expected a label map");
}

int main(void)
{
        test_select();
        test_resolve();
        printf("ok\n");
        return 0;
}
