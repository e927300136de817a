/* Choosing the accelerator: --accel kvm|tcg as asked; auto asks libkvmcheck whether KVM really runs
 * guests here and falls back to TCG with a warning and a SoftwareEmulation condition. */
#pragma once
#include "status.h"

typedef enum { ACCEL_AUTO, ACCEL_KVM, ACCEL_TCG } accel_mode;

int accel_parse(const char *name, accel_mode *out); /* -EINVAL for anything else */
/* Returns "kvm" or "tcg" and records accel and conditions in st. */
const char *accel_choose(accel_mode mode, status *st);
