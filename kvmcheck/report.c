/* Output forms of a report. All three come from the same kvm_report, so they cannot disagree. */
#include "report.h"
#include "profile-json.h"

cJSON *kvm_report_to_cjson(const kvm_report *r, const kvm_profile *p)
{
        cJSON *root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "verdict", kvm_verdict_name(r->verdict));
        cJSON_AddStringToObject(root, "reason", r->reason);
        cJSON_AddNumberToObject(root, "exit_code", kvmcheck_exit_code(r->verdict));
        cJSON *checks = cJSON_AddArrayToObject(root, "checks");
        if (!checks) {
                cJSON_Delete(root);
                return NULL;
        }
        for (int i = 0; i < KVM_CHECK_COUNT; i++) {
                cJSON *c = cJSON_CreateObject();
                cJSON_AddNumberToObject(c, "id", i + 1);
                cJSON_AddStringToObject(c, "name", kvm_check_name(i));
                cJSON_AddStringToObject(c, "status", kvm_check_status_name(r->checks[i].status));
                cJSON_AddStringToObject(c, "evidence", r->checks[i].reason);
                cJSON_AddItemToArray(checks, c);
        }
        cJSON_AddItemToObject(root, "profile", kvm_profile_to_cjson(p));
        return root;
}

void kvm_report_print_human(FILE *f, const kvm_report *r)
{
        static const char *const what[] = {
            [KVM_VERDICT_USABLE] = "KVM is usable",
            [KVM_VERDICT_UNUSABLE] = "KVM is present but unusable (use TCG)",
            [KVM_VERDICT_ABSENT] = "KVM is absent (use TCG)",
        };
        fprintf(f, "%s: %s\n\n", what[r->verdict], r->reason);
        for (int i = 0; i < KVM_CHECK_COUNT; i++)
                fprintf(f, "  %d %-7s %-5s %s\n", i + 1, kvm_check_name(i),
                        kvm_check_status_name(r->checks[i].status), r->checks[i].reason);
        fprintf(f, "\nverdict: %s (exit code %d)\n", kvm_verdict_name(r->verdict),
                kvmcheck_exit_code(r->verdict));
}

void kvm_report_print_labels(FILE *f, const kvm_report *r)
{
        /* the node can always run VMs: without usable KVM the launcher falls back to TCG */
        fprintf(f, "%s=true\n", KVMCHECK_LABEL_SCHEDULABLE);
        fprintf(f, "%s=%s\n", KVMCHECK_LABEL_USABLE, r->verdict == KVM_VERDICT_USABLE ? "true" : "false");
        fprintf(f, "%s=%s\n", KVMCHECK_LABEL_VERDICT, kvm_verdict_name(r->verdict));
}
