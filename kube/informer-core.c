/* Informer: list, then watch from the list's resourceVersion, over either transport; see informer-core.h. */
#include "informer-core.h"
#include "log.h"
#include "macro.h"
#include "strv.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

int kube_informer_setup(kube_informer *inf, const kube_informer_transport *tp, const kube_resource *res,
                        const char *ns, const char *label_selector, const kube_store_ops *ops,
                        kube_informer_fn fn, void *ud)
{
        memset(inf, 0, sizeof(*inf));
        inf->tp = tp;
        inf->res = res;
        inf->fn = fn;
        inf->ud = ud;
        inf->page_size = 500;
        inf->ns = ns ? strdup(ns) : NULL;
        inf->label_selector = label_selector ? strdup(label_selector) : NULL;
        if ((ns && !inf->ns) || (label_selector && !inf->label_selector))
                return -ENOMEM;
        inf->need_relist = true;
        return kube_store_init(&inf->store, ops);
}

static void stop_watch(kube_informer *inf)
{
        if (inf->watch)
                inf->tp->watch_stop(inf);
}

int kube_informer_set_field_selector(kube_informer *inf, const char *field_selector)
{
        char *copy = field_selector ? strdup(field_selector) : NULL;
        if (field_selector && !copy)
                return -ENOMEM;
        free(inf->field_selector);
        inf->field_selector = copy;
        return 0;
}

void kube_informer_free(kube_informer *inf)
{
        stop_watch(inf);
        kube_watchstream_free(&inf->ws);
        kube_store_free(&inf->store);
        if (inf->tp && inf->tp->free)
                inf->tp->free(inf);
        free(inf->ns);
        free(inf->label_selector);
        free(inf->field_selector);
        free(inf->rv);
}

static void set_rv(kube_informer *inf, const char *rv)
{
        if (!rv || !*rv)
                return;
        char *n = strdup(rv);
        if (n) {
                free(inf->rv);
                inf->rv = n;
        }
}

static void apply(kube_informer *inf, enum kube_event_type type, cJSON *obj)
{
        _cleanup_free_ char *key = kube_object_key(obj);
        if (!key)
                return;
        if (type == KUBE_DELETED) {
                kube_store_delete(&inf->store, key);
        } else {
                if (type == KUBE_ADDED && kube_store_has(&inf->store, key))
                        type = KUBE_MODIFIED;
                if (kube_store_upsert(&inf->store, obj) < 0)
                        log_error("informer %s: out of memory caching %s", inf->res->plural, key);
        }
        inf->events++;
        if (inf->fn)
                inf->fn(inf, type, obj, inf->ud);
}

static int cmp_str(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

typedef struct stale_scan {
        strv *listed; /* sorted */
        strv stale;
} stale_scan;

static void collect_stale(const char *key, const char *tag, void *ud)
{
        stale_scan *sc = ud;
        if (sc->listed->n == 0 || !bsearch(&key, sc->listed->v, sc->listed->n, sizeof(char *), cmp_str))
                strv_push(&sc->stale, key);
}

/* After a relist: objects the list no longer has were deleted while we were not watching. */
static void drop_unlisted(kube_informer *inf, strv *listed)
{
        stale_scan sc = {.listed = listed};
        if (listed->n)
                qsort(listed->v, listed->n, sizeof(char *), cmp_str);
        kube_store_foreach(&inf->store, collect_stale, &sc);
        for (size_t i = 0; i < sc.stale.n; i++) {
                cJSON *last = kube_store_get(&inf->store, sc.stale.v[i]);
                if (last)
                        apply(inf, KUBE_DELETED, last);
                cJSON_Delete(last);
        }
        strv_free(&sc.stale);
}

void kube_informer_pause(kube_informer *inf)
{
        strv none = {0};
        stop_watch(inf);
        drop_unlisted(inf, &none);
        free(inf->rv);
        inf->rv = NULL;
        inf->synced = false;
        inf->need_relist = true;
        inf->failures = 0;
        inf->paused = true;
}

void kube_informer_resume(kube_informer *inf)
{
        inf->paused = false;
        inf->due_ms = 0;
}

static int list_page(kube_informer *inf, const char *cont, strv *listed, char **rv, char **next,
                     kv_error *err)
{
        _cleanup_free_ char *path = kube_path(inf->res, inf->ns, NULL, NULL), *q = NULL;
        char limit[16];
        snprintf(limit, sizeof(limit), "%u", inf->page_size);
        if (path)
                q = kube_path_query(path, "labelSelector", inf->label_selector, "fieldSelector",
                                    inf->field_selector, "limit", limit, "continue", cont, NULL);
        if (!q)
                return kv_error_errno(err, ENOMEM, "list %s", inf->res->plural);
        cJSON *list = NULL;
        int r = inf->tp->list(inf, q, &list, err);
        if (r < 0)
                return r;
        const char *lrv = kube_str(list, "metadata.resourceVersion"),
                   *c = kube_str(list, "metadata.continue");
        if (!*rv && lrv)
                *rv = strdup(lrv);
        *next = c && *c ? strdup(c) : NULL;
        cJSON *items = cJSON_GetObjectItemCaseSensitive(list, "items"), *it;
        cJSON_ArrayForEach(it, items)
        {
                /* list items of built-in kinds carry no kind; fill it so handlers see the same shape as
                 * watches */
                if (!cJSON_GetObjectItemCaseSensitive(it, "kind"))
                        cJSON_AddStringToObject(it, "kind", inf->res->kind);
                _cleanup_free_ char *key = kube_object_key(it);
                if (key)
                        strv_push(listed, key);
                apply(inf, KUBE_ADDED, it);
        }
        cJSON_Delete(list);
        return 0;
}

static int relist(kube_informer *inf, kv_error *err)
{
        strv listed = {0};
        _cleanup_free_ char *rv = NULL, *cont = NULL;
        int r;
        inf->lists++;
        do {
                char *next = NULL;
                r = list_page(inf, cont, &listed, &rv, &next, err);
                free(cont);
                cont = next;
        } while (r == 0 && cont);
        if (r == 0) {
                drop_unlisted(inf, &listed);
                set_rv(inf, rv);
                inf->synced = true;
                inf->need_relist = false;
                log_info("informer %s: listed %zu objects at resourceVersion %s", inf->res->plural, listed.n,
                         rv ? rv : "?");
        }
        strv_free(&listed);
        return r;
}

static int on_event(enum kube_event_type type, cJSON *obj, void *ud)
{
        kube_informer *inf = ud;
        if (type == KUBE_ERROR) {
                const cJSON *code = cJSON_GetObjectItemCaseSensitive(obj, "code");
                const char *reason = kube_status_reason(obj);
                if ((cJSON_IsNumber(code) && (code->valueint == 410)) || !strcmp(reason, "Expired") ||
                    !strcmp(reason, "Gone")) {
                        inf->expired++;
                        inf->need_relist = true;
                        log_info("informer %s: watch expired (410), relisting", inf->res->plural);
                } else {
                        /* e.g. "Too large resource version" after the server lost its history: our RV means
                         * nothing there any more, so start over from a list */
                        inf->watch_errors++;
                        inf->need_relist = true;
                        log_warning("informer %s: watch error event (%s), relisting", inf->res->plural,
                                    reason);
                }
                cJSON_Delete(obj);
                inf->aborted = true;
                return -1;
        }
        set_rv(inf, kube_str(obj, "metadata.resourceVersion"));
        if (type != KUBE_BOOKMARK)
                apply(inf, type, obj);
        cJSON_Delete(obj);
        return 0;
}

size_t kube_informer_watch_data(kube_informer *inf, long http, const char *data, size_t n)
{
        if (inf->http == 0)
                inf->http = http;
        if (inf->http != 200) { /* keep the Status body for the log */
                size_t room = sizeof(inf->errbody) - 1 - inf->errlen, take = n < room ? n : room;
                memcpy(inf->errbody + inf->errlen, data, take);
                inf->errlen += take;
                inf->errbody[inf->errlen] = '\0';
                return n;
        }
        unsigned long bad = inf->ws.bad_lines;
        if (kube_watchstream_feed(&inf->ws, data, n) < 0 || inf->aborted)
                return 0;
        if (inf->ws.bad_lines != bad) {
                /* an event may have been lost in that line: resume from the last good resourceVersion */
                log_warning("informer %s: %s; restarting the watch", inf->res->plural, inf->ws.last_error);
                inf->watch_errors++;
                inf->aborted = true;
                return 0;
        }
        return n;
}

static int start_watch(kube_informer *inf, kv_error *err)
{
        _cleanup_free_ char *path = kube_path(inf->res, inf->ns, NULL, NULL), *q = NULL;
        char timeout[16];
        snprintf(timeout, sizeof(timeout), "%u",
                 inf->watch_timeout_s ? inf->watch_timeout_s : 300 + (unsigned)(random() % 300));
        if (path)
                q = kube_path_query(path, "watch", "true", "allowWatchBookmarks", "true", "resourceVersion",
                                    inf->rv, "timeoutSeconds", timeout, "labelSelector", inf->label_selector,
                                    "fieldSelector", inf->field_selector, NULL);
        if (!q)
                return kv_error_errno(err, ENOMEM, "watch %s", inf->res->plural);
        kube_watchstream_free(&inf->ws);
        kube_watchstream_init(&inf->ws, on_event, inf);
        inf->http = 0;
        inf->errlen = 0;
        inf->aborted = false;
        int r = inf->tp->watch_start(inf, q, err);
        if (r < 0)
                return r;
        inf->watches++;
        return 0;
}

static void retry_later(kube_informer *inf, uint64_t now_ms, const char *what, const char *why)
{
        unsigned delay = kube_backoff_ms(200, 30000, inf->failures++);
        if (inf->failures >= 3) /* the server may have restarted without our history: relist when back */
                inf->need_relist = true;
        inf->due_ms = now_ms + delay;
        log_warning("informer %s: %s failed (%s); retrying in %u ms", inf->res->plural, what, why, delay);
}

long kube_informer_tick(kube_informer *inf, uint64_t now_ms)
{
        if (inf->watch || inf->paused)
                return -1;
        if (inf->due_ms > now_ms)
                return (long)(inf->due_ms - now_ms);
        kv_error err = {0};
        if (inf->need_relist && relist(inf, &err) < 0) {
                retry_later(inf, now_ms, "list", err.msg);
                return (long)(inf->due_ms - now_ms);
        }
        if (start_watch(inf, &err) < 0) {
                retry_later(inf, now_ms, "watch", err.msg);
                return (long)(inf->due_ms - now_ms);
        }
        return -1;
}

void kube_informer_watch_done(kube_informer *inf, long http, const char *failure, uint64_t now_ms)
{
        bool aborted = inf->aborted;
        inf->due_ms = now_ms;
        if (http == 410) {
                inf->expired++;
                inf->need_relist = true;
        } else if (aborted || inf->need_relist) {
                /* ERROR event or garbage: restart promptly, but back off if it keeps happening */
                if (!inf->need_relist)
                        inf->due_ms = now_ms + kube_backoff_ms(100, 5000, inf->failures++);
        } else if (failure || http != 200) {
                char why[1200];
                snprintf(why, sizeof(why), "%s, HTTP %ld %s", failure ? failure : "No error", http,
                         inf->errbody);
                retry_later(inf, now_ms, "watch", why);
        } else {
                inf->failures = 0; /* server closed the stream at timeoutSeconds: resume at once */
        }
}
