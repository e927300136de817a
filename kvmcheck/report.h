/* Renders a kvmcheck report: human-readable text, JSON, and node labels. */
#pragma once

#include <cjson/cJSON.h>
#include <stdio.h>

#include "kvmcheck.h"

/* Node labels a node labeller sets from the verdict (documented in docs/kvmcheck.md). */
#define KVMCHECK_LABEL_SCHEDULABLE "kubevirt.io/schedulable"
#define KVMCHECK_LABEL_USABLE "kvlite.io/kvm-usable"
#define KVMCHECK_LABEL_VERDICT "kvlite.io/kvm-verdict"

/* {"verdict","reason","exit_code","checks":[{"id","name","status","evidence"}],"profile":{...}} */
cJSON *kvm_report_to_cjson(const kvm_report *r, const kvm_profile *p);
void kvm_report_print_human(FILE *f, const kvm_report *r);
void kvm_report_print_labels(FILE *f, const kvm_report *r);
