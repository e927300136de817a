/* Accelerator choice (see accel.h). */
#include "accel.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "kvmcheck.h"
#include "log.h"

int accel_parse(const char *name, accel_mode *out)
{
        static const char *const names[] = {[ACCEL_AUTO] = "auto", [ACCEL_KVM] = "kvm", [ACCEL_TCG] = "tcg"};
        for (int i = 0; i <= ACCEL_TCG; i++)
                if (strcmp(name, names[i]) == 0) {
                        *out = (accel_mode)i;
                        return 0;
                }
        return -EINVAL;
}

static const char *use_tcg(status *st, const char *reason, const char *message)
{
        snprintf(st->accel, sizeof(st->accel), "tcg");
        status_set_condition(st, COND_SOFTWARE_EMULATION, true, true, reason, message);
        return "tcg";
}

const char *accel_choose(accel_mode mode, status *st)
{
        if (mode == ACCEL_TCG)
                return use_tcg(st, "Requested", "--accel tcg: software emulation as requested");
        if (mode == ACCEL_KVM) {
                snprintf(st->accel, sizeof(st->accel), "kvm");
                return "kvm";
        }
        char why[512] = "";
        kvm_verdict v = kvmcheck_quick(why, sizeof(why));
        if (v == KVM_VERDICT_USABLE) {
                log_info("kvmcheck: KVM is usable: %s", why);
                snprintf(st->accel, sizeof(st->accel), "kvm");
                return "kvm";
        }
        char message[700];
        snprintf(message, sizeof(message), "KVM %s: %s", kvm_verdict_name(v), why);
        log_warning("falling back to TCG software emulation (slow): %s", message);
        return use_tcg(st, v == KVM_VERDICT_ABSENT ? "KVMAbsent" : "KVMUnusable", message);
}
