/* migrationpolicy: KubeVirt's MigrationPolicy (migrations.kubevirt.io/v1alpha1, cluster-scoped) → the
 * migration configuration one VMI's migration runs with (docs/cluster-live-ops.md, "Migration policies").
 * Pure: selection by KubeVirt's precedence and the cluster defaults ← policy merge with validation;
 * unit-tested in controller/tests/test-migrationpolicy.c. */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "error.h"

/* The policy that applies (*out points into policies, a JSON array; NULL: none). A policy applies when
 * every label of its virtualMachineInstanceSelector is on the VMI and every label of its namespaceSelector
 * is on the VMI's namespace (empty selectors match everything). A selector is KubeVirt's label map
 * (`{key: value}`), or a `{matchLabels: {key: value}}` object. Among the policies that apply, KubeVirt's
 * precedence: the most matching labels in total, then the most VMI labels, then the first name in byte
 * order. A malformed selector (a value not a string, matchExpressions) fails naming the policy and field:
 * which VMIs it was meant for cannot be known, so no choice would be right. */
int migration_policy_select(const cJSON *policies, const cJSON *vmi_labels, const cJSON *ns_labels,
                            const cJSON **out, kv_error *err);
/* Whether any policy selects by namespace labels (only then is the namespace worth a GET). */
bool migration_policies_use_namespace(const cJSON *policies);
/* The effective configuration as KubeVirt writes it into status.migrationState.migrationConfiguration:
 * the cluster defaults (the launcher's: unlimited bandwidth, 150 s per GiB, 150 s progress timeout,
 * auto-converge and post-copy off) overridden by policy (NULL: none). bandwidthPerMigration is written as
 * the byte count per second (a JSON number is a valid Quantity), which is what the launcher's migrate
 * command reads. A bad value fails naming the policy and field:
 * `MigrationPolicy p: spec.bandwidthPerMigration: "x" is not a valid quantity (...)`. */
int migration_config_resolve(const cJSON *policy, cJSON **config, kv_error *err);
