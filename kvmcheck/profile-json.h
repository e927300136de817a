/* JSON form of the kvmcheck profile (cJSON). */
#pragma once

#include <cjson/cJSON.h>

#include "error.h"
#include "profile.h"

cJSON *kvm_profile_to_cjson(const kvm_profile *p);
/* Parses a profile; fields that are absent keep kvm_profile_init()'s values. Wrong types are errors
 * naming the field. */
int kvm_profile_from_json(const char *text, kvm_profile *p, kv_error *err);
