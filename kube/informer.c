/* The informer's libcurl transport: lists through a kube_client, the watch as a transfer of the caller's
 * multi handle; see informer.h. */
#include "informer.h"
#include "macro.h"

#include <stdlib.h>
#include <string.h>

static int curl_list(kube_informer *inf, const char *path, cJSON **out, kv_error *err)
{
        return kube_request(inf->client, "GET", path, NULL, NULL, out, err);
}

static void curl_watch_stop(kube_informer *inf)
{
        curl_multi_remove_handle(inf->multi, inf->watch);
        curl_easy_cleanup(inf->watch);
        curl_slist_free_all(inf->headers);
        inf->watch = NULL;
        inf->headers = NULL;
}

static size_t watch_write(char *data, size_t size, size_t nmemb, void *ud)
{
        kube_informer *inf = ud;
        long http = inf->http;
        if (http == 0)
                curl_easy_getinfo(inf->watch, CURLINFO_RESPONSE_CODE, &http);
        return kube_informer_watch_data(inf, http, data, size * nmemb);
}

static int curl_watch_start(kube_informer *inf, const char *path, kv_error *err)
{
        _cleanup_free_ char *url = NULL;
        if (asprintf(&url, "%s%s", inf->client->cfg->server, path) < 0)
                return kv_error_errno(err, ENOMEM, "watch %s", inf->res->plural);
        CURL *e = curl_easy_init();
        if (!e)
                return kv_error_errno(err, ENOMEM, "watch %s", inf->res->plural);
        int r = kube_easy_setup(inf->client->cfg, e, url, &inf->headers, err);
        if (r < 0) {
                curl_easy_cleanup(e);
                return r;
        }
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, watch_write);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, inf);
        curl_easy_setopt(e, CURLOPT_PRIVATE, inf);
        inf->watch = e;
        curl_multi_add_handle(inf->multi, e);
        return 0;
}

static void curl_free_client(kube_informer *inf)
{
        if (inf->client)
                kube_client_free(inf->client);
        inf->client = NULL;
}

static const kube_informer_transport curl_transport = {.list = curl_list,
                                                       .watch_start = curl_watch_start,
                                                       .watch_stop = curl_watch_stop,
                                                       .free = curl_free_client};

int kube_informer_init(kube_informer *inf, kube_config *cfg, CURLM *multi, const kube_resource *res,
                       const char *ns, const char *label_selector, const kube_store_ops *ops,
                       kube_informer_fn fn, void *ud)
{
        int r = kube_informer_setup(inf, &curl_transport, res, ns, label_selector, ops, fn, ud);
        inf->multi = multi;
        inf->client = kube_client_new(cfg);
        if (r < 0 || !inf->client)
                return -ENOMEM;
        return 0;
}

bool kube_informer_transfer_done(kube_informer *inf, CURL *e, CURLcode result, uint64_t now_ms)
{
        if (e != inf->watch)
                return false;
        long http = inf->http;
        if (!http)
                curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &http);
        curl_watch_stop(inf);
        kube_informer_watch_done(inf, http, result == CURLE_OK ? NULL : curl_easy_strerror(result), now_ms);
        return true;
}
