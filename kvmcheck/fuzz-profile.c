/* libFuzzer target: any bytes as a recorded profile -> parse -> verdict -> every output form. The
 * profile parser reads files given to `kvmcheck --replay`, so it must survive anything. */
#include "kvmcheck.h"
#include "macro.h"
#include "profile-json.h"
#include "report.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        _cleanup_free_ char *text = malloc(size + 1);
        if (!text)
                return 0;
        memcpy(text, data, size);
        text[size] = '\0';
        kvm_profile p;
        kvm_report r;
        kv_error err = {0};
        if (kvm_profile_from_json(text, &p, &err) < 0)
                return 0;
        kvmcheck_decide(&p, &r);
        cJSON *json = kvm_report_to_cjson(&r, &p);
        _cleanup_free_ char *out = cJSON_PrintUnformatted(json);
        cJSON_Delete(json);
        _cleanup_fclose_ FILE *null = fopen("/dev/null", "we");
        if (null && out)
                fputs(out, null);
        if (null) {
                kvm_report_print_human(null, &r);
                kvm_report_print_labels(null, &r);
        }
        return 0;
}
