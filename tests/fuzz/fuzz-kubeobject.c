/* libFuzzer: Kubernetes objects as virt-controller decodes them from the API: a VMI rendered into its
 * launcher Pod, the desired VMI status from the VMI and a Pod (launcher annotation included), object
 * keys, and API Status replies turned into errors. Input: one JSON value, or an array [vmi, pod, status]. */
#include "api.h"
#include "client.h"
#include "podrender.h"
#include "store.h"
#include "vmistatus.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void decode_vmi_and_pod(const cJSON *vmi, const cJSON *pod)
{
        static const pod_render_opts opts = {.launcher_image = "kvlite/virt-launcher:fuzz",
                                             .service_account = "kvlite-launcher"};
        const char *now = "2025-01-02T03:04:05Z";
        kv_error err = {0};
        cJSON *rendered = NULL;
        if (!vmi) /* the informers only hand over objects that exist */
                return;
        if (pod_render(vmi, &opts, &rendered, &err) == 0 && !pod)
                pod = rendered; /* a VMI with its own Pod: the usual path */
        cJSON_Delete(pod_launcher_vmi(vmi));
        cJSON_Delete(vmi_status_desired(vmi, pod, now));
        cJSON_Delete(vmi_status_desired(vmi, NULL, now));
        cJSON_Delete(vmi_status_failed(vmi, "fuzz", now));
        vmi_phase_is_final(vmi_phase(vmi));
        free(kube_object_key(vmi));
        free(kube_object_key(pod));
        cJSON_Delete(rendered);
}

static void decode_status(const cJSON *status, long code)
{
        kv_error err = {0};
        kube_status_error(status, code, "GET /api/v1/namespaces/default/pods/x", &err);
        kube_status_reason(status);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char *text = malloc(size + 1);
        if (!text)
                return 0;
        memcpy(text, data, size);
        text[size] = '\0';
        cJSON *doc = cJSON_ParseWithLength(text, size);
        free(text);
        if (!doc)
                return 0;
        if (cJSON_IsArray(doc)) {
                const cJSON *vmi = cJSON_GetArrayItem(doc, 0), *pod = cJSON_GetArrayItem(doc, 1);
                decode_vmi_and_pod(vmi, pod);
                decode_status(cJSON_GetArrayItem(doc, 2), 400 + (long)(size % 200));
        } else {
                decode_vmi_and_pod(doc, NULL);
                decode_status(doc, 500);
        }
        cJSON_Delete(doc);
        return 0;
}
