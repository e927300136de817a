/* The informer (informer-core.h) over libcurl: lists with a kube_client, the watch as a transfer of the
 * caller's curl multi handle (virt-controller's loop). */
#pragma once

#include <curl/curl.h>
#include <stdbool.h>
#include <stdint.h>

#include "api.h"
#include "informer-core.h"

int kube_informer_init(kube_informer *inf, kube_config *cfg, CURLM *multi, const kube_resource *res,
                       const char *ns, const char *label_selector, const kube_store_ops *ops,
                       kube_informer_fn fn, void *ud);
/* Hands over a finished transfer; returns true if it was this informer's. */
bool kube_informer_transfer_done(kube_informer *inf, CURL *e, CURLcode result, uint64_t now_ms);
