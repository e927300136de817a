/* vmiwatch: list+watch of the reporter's own VMI; see vmiwatch.h. */
#include "vmiwatch.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "log.h"
#include "macro.h"

#define LIST_TIMEOUT_MS 5000
#define RETRY_BASE_MS 250
#define RETRY_CAP_MS 10000

int vmiwatch_init(vmiwatch *w, kube_config *cfg, CURLM *multi, const char *ns, const char *name,
                  vmiwatch_fn fn, void *ud, kv_error *err)
{
        *w = (vmiwatch){.multi = multi, .fn = fn, .ud = ud};
        w->client = kube_client_new(cfg);
        w->path = kube_path(&kube_vmi, ns, NULL, NULL);
        if (!w->client || !w->path || asprintf(&w->selector, "metadata.name=%s", name) < 0) {
                w->selector = NULL;
                return kv_error_set(err, ENOMEM, "out of memory");
        }
        w->client->max_attempts = 1; /* the relist is the retry, without blocking the loop meanwhile */
        w->client->timeout_ms = LIST_TIMEOUT_MS;
        return 0;
}

static void stop_watch(vmiwatch *w)
{
        if (!w->easy)
                return;
        curl_multi_remove_handle(w->multi, w->easy);
        curl_easy_cleanup(w->easy);
        curl_slist_free_all(w->headers);
        w->easy = NULL;
        w->headers = NULL;
}

void vmiwatch_free(vmiwatch *w)
{
        stop_watch(w);
        kube_watchstream_free(&w->ws);
        if (w->client)
                kube_client_free(w->client);
        free(w->path);
        free(w->selector);
        free(w->rv);
        *w = (vmiwatch){0};
}

static void set_rv(vmiwatch *w, const char *rv)
{
        char *copy = rv && *rv ? strdup(rv) : NULL;
        if (copy) {
                free(w->rv);
                w->rv = copy;
        }
}

static void retry_later(vmiwatch *w, int64_t now_ms, const char *what, const char *why)
{
        unsigned delay = kube_backoff_ms(RETRY_BASE_MS, RETRY_CAP_MS, w->failures++);
        w->due_ms = now_ms + delay;
        log_warning("vmi watch: %s failed (%s); retrying in %u ms", what, why, delay);
}

static int list(vmiwatch *w, kv_error *err)
{
        _cleanup_free_ char *q = kube_path_query(w->path, "fieldSelector", w->selector, NULL);
        if (!q)
                return kv_error_set(err, ENOMEM, "out of memory");
        cJSON *res = NULL;
        int r = kube_request(w->client, "GET", q, NULL, NULL, &res, err);
        if (r < 0)
                return r;
        w->lists++;
        const cJSON *items = cJSON_GetObjectItemCaseSensitive(res, "items");
        cJSON *vmi = cJSON_IsArray(items) ? cJSON_DetachItemFromArray((cJSON *)items, 0) : NULL;
        free(w->rv);
        w->rv = NULL;
        set_rv(w, kube_str(res, "metadata.resourceVersion"));
        cJSON_Delete(res);
        w->fn(cJSON_IsObject(vmi) ? vmi : NULL, w->ud);
        if (!cJSON_IsObject(vmi))
                cJSON_Delete(vmi);
        return 0;
}

static int on_event(enum kube_event_type type, cJSON *obj, void *ud)
{
        vmiwatch *w = ud;
        switch (type) {
        case KUBE_ERROR: /* 410 Expired and its kin: our resourceVersion means nothing any more */
                log_info("vmi watch: ERROR event (%s); relisting", kube_status_reason(obj));
                w->broken = true;
                cJSON_Delete(obj);
                return -1;
        case KUBE_BOOKMARK:
                set_rv(w, kube_str(obj, "metadata.resourceVersion"));
                cJSON_Delete(obj);
                return 0;
        case KUBE_DELETED:
                set_rv(w, kube_str(obj, "metadata.resourceVersion"));
                cJSON_Delete(obj);
                w->fn(NULL, w->ud);
                return 0;
        default:
                w->failures = 0; /* the stream works */
                set_rv(w, kube_str(obj, "metadata.resourceVersion"));
                if (!cJSON_IsObject(obj)) {
                        cJSON_Delete(obj);
                        return 0;
                }
                w->fn(obj, w->ud);
                return 0;
        }
}

static size_t on_data(char *data, size_t size, size_t nmemb, void *ud)
{
        vmiwatch *w = ud;
        size_t n = size * nmemb;
        if (!w->http)
                curl_easy_getinfo(w->easy, CURLINFO_RESPONSE_CODE, &w->http);
        if (w->http != 200)
                return n; /* a Status body; the code says enough */
        unsigned long bad = w->ws.bad_lines;
        if (kube_watchstream_feed(&w->ws, data, n) < 0 || w->broken)
                return 0;
        if (w->ws.bad_lines != bad) {
                log_warning("vmi watch: %s; relisting", w->ws.last_error);
                w->broken = true;
                return 0;
        }
        return n;
}

static int start_watch(vmiwatch *w, kv_error *err)
{
        char timeout[16];
        snprintf(timeout, sizeof(timeout), "%u", 240 + (unsigned)(random() % 120));
        _cleanup_free_ char *q = kube_path_query(w->path, "fieldSelector", w->selector, "watch", "true",
                                                 "allowWatchBookmarks", "true", "resourceVersion", w->rv,
                                                 "timeoutSeconds", timeout, NULL);
        _cleanup_free_ char *url = NULL;
        if (!q || asprintf(&url, "%s%s", w->client->cfg->server, q) < 0)
                return kv_error_set(err, ENOMEM, "out of memory");
        CURL *e = curl_easy_init();
        if (!e)
                return kv_error_set(err, ENOMEM, "curl_easy_init");
        int r = kube_easy_setup(w->client->cfg, e, url, &w->headers, err);
        if (r < 0) {
                curl_easy_cleanup(e);
                return r;
        }
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, w);
        kube_watchstream_free(&w->ws);
        kube_watchstream_init(&w->ws, on_event, w);
        w->http = 0;
        w->broken = false;
        w->easy = e;
        w->watches++;
        curl_multi_add_handle(w->multi, e);
        return 0;
}

long vmiwatch_tick(vmiwatch *w, int64_t now_ms)
{
        if (w->easy)
                return -1;
        if (w->due_ms > now_ms)
                return (long)(w->due_ms - now_ms);
        kv_error err = {0};
        if (list(w, &err) < 0) {
                retry_later(w, now_ms, "list", err.msg);
                return (long)(w->due_ms - now_ms);
        }
        if (start_watch(w, &err) < 0) {
                retry_later(w, now_ms, "watch", err.msg);
                return (long)(w->due_ms - now_ms);
        }
        return -1;
}

bool vmiwatch_done(vmiwatch *w, CURL *e, CURLcode result, int64_t now_ms)
{
        if (!w->easy || e != w->easy)
                return false;
        long http = w->http;
        if (!http)
                curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &http);
        bool broken = w->broken;
        stop_watch(w);
        w->due_ms = now_ms;
        if (broken || http == 410) {
                w->due_ms = now_ms + kube_backoff_ms(100, RETRY_CAP_MS, w->failures++); /* soon, unless it repeats */
        } else if (result != CURLE_OK || http != 200) {
                char why[160];
                snprintf(why, sizeof(why), "%s, HTTP %ld", curl_easy_strerror(result), http);
                retry_later(w, now_ms, "watch", why);
        } else {
                w->failures = 0; /* the server ended the stream at timeoutSeconds: relist at once */
        }
        return true;
}
