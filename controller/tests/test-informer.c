/* Driver for test_informer.py: one VMI informer (namespace and field selector from argv) on a curl multi
 * loop, as virt-controller and virt-launcher-reporter drive theirs. Prints one JSON line per event, and
 * the informer's counters and store size when stdin closes. Usage: test-informer KUBECONFIG NS SELECTOR */
#include "informer.h"
#include "macro.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void on_event(kube_informer *inf, enum kube_event_type type, const cJSON *obj, void *ud)
{
        (void)inf;
        (void)ud;
        printf("{\"event\":\"%s\",\"name\":\"%s\",\"namespace\":\"%s\",\"mark\":\"%s\"}\n",
               kube_event_type_name(type), kube_str(obj, "metadata.name") ?: "",
               kube_str(obj, "metadata.namespace") ?: "", kube_str(obj, "metadata.labels.mark") ?: "");
        fflush(stdout);
}

static bool stdin_open(void)
{
        char buf[64];
        return read(STDIN_FILENO, buf, sizeof(buf)) > 0;
}

static void drain_transfers(kube_informer *inf, CURLM *multi)
{
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(multi, &left)))
                if (m->msg == CURLMSG_DONE &&
                    !kube_informer_transfer_done(inf, m->easy_handle, m->data.result, kv_now_ms()))
                        fprintf(stderr, "a transfer that is not the informer's\n");
}

static int run(kube_config *cfg, const char *ns, const char *selector)
{
        CURLM *multi = curl_multi_init();
        kube_informer inf;
        if (!multi || kube_informer_init(&inf, cfg, multi, &kube_vmi, ns, NULL, NULL, on_event, NULL) < 0)
                return 1;
        /* the setter replaces and clears */
        if (kube_informer_set_field_selector(&inf, "metadata.name=other") < 0 ||
            kube_informer_set_field_selector(&inf, NULL) < 0 || inf.field_selector ||
            kube_informer_set_field_selector(&inf, *selector ? selector : NULL) < 0)
                return 1;
        inf.client->max_attempts = 1;
        for (bool open = true; open;) {
                long timeout = kube_informer_tick(&inf, kv_now_ms());
                struct curl_waitfd in = {.fd = STDIN_FILENO, .events = CURL_WAIT_POLLIN};
                int running;
                curl_multi_poll(multi, &in, 1, timeout < 0 || timeout > 200 ? 200 : (int)timeout, NULL);
                curl_multi_perform(multi, &running);
                drain_transfers(&inf, multi);
                if (in.revents)
                        open = stdin_open();
        }
        printf("{\"lists\":%lu,\"watches\":%lu,\"expired\":%lu,\"store\":%zu,\"synced\":%s}\n", inf.lists,
               inf.watches, inf.expired, kube_store_size(&inf.store), inf.synced ? "true" : "false");
        kube_informer_free(&inf);
        curl_multi_cleanup(multi);
        return 0;
}

int main(int argc, char **argv)
{
        if (argc != 4) {
                fprintf(stderr, "usage: test-informer KUBECONFIG NAMESPACE FIELD_SELECTOR\n");
                return 2;
        }
        kube_config cfg;
        kv_error err = {0};
        if (kube_config_from_file(&cfg, argv[1], NULL, &err) < 0) {
                fprintf(stderr, "%s\n", err.msg);
                kube_config_free(&cfg);
                return 1;
        }
        curl_global_init(CURL_GLOBAL_DEFAULT);
        int code = run(&cfg, argv[2], argv[3]);
        kube_config_free(&cfg);
        curl_global_cleanup();
        return code;
}
