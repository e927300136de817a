/* libFuzzer: MigrationPolicies as virt-controller reads them from the API (controller/migrationpolicy.c):
 * the choice among policies for a VMI and its namespace, and the effective configuration with its
 * quantity and timeout checks. Input: [policies, vmiLabels, namespaceLabels] or one policy object. */
#include "migrationpolicy.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void resolve(const cJSON *policy)
{
        kv_error err = {0};
        cJSON *config = NULL;
        if (migration_config_resolve(policy, &config, &err) == 0 && !config)
                abort();
        cJSON_Delete(config);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        cJSON *in = cJSON_ParseWithLength((const char *)data, size);
        if (cJSON_IsArray(in)) {
                const cJSON *policies = cJSON_GetArrayItem(in, 0), *chosen = NULL;
                kv_error err = {0};
                (void)migration_policies_use_namespace(policies);
                if (migration_policy_select(policies, cJSON_GetArrayItem(in, 1), cJSON_GetArrayItem(in, 2),
                                            &chosen, &err) == 0 &&
                    chosen)
                        resolve(chosen);
        } else if (in) {
                resolve(in);
        }
        cJSON_Delete(in);
        return 0;
}
