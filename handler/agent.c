/* The node agent: kvmcheck verdict -> labels and device plugins. */
#include "agent.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "clock.h"
#include "log.h"
#include "json.h"
#include "macro.h"
#include "nodelabels.h"
#include "plugins.h"
#include "profile-json.h"

bool agent_device_exists(const char *dev_dir, const char *path)
{
        char full[4096];
        const char *rel = !strncmp(path, "/dev/", 5) ? path + 5 : path;
        snprintf(full, sizeof(full), "%s/%s", dev_dir, rel);
        struct stat st;
        return stat(full, &st) == 0 && S_ISCHR(st.st_mode);
}

static char *slurp(const char *path, kv_error *err)
{
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        if (!f) {
                kv_error_errno(err, errno, "--kvm-replay %s", path);
                return NULL;
        }
        char *buf = NULL;
        size_t len = 0;
        _cleanup_fclose_ FILE *mem = open_memstream(&buf, &len);
        char chunk[4096];
        size_t n;
        while (mem && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
                fwrite(chunk, 1, n, mem);
        if (!mem || ferror(f)) {
                kv_error_errno(err, errno ? errno : EIO, "--kvm-replay %s", path);
                return NULL;
        }
        fclose(TAKE_PTR(mem));
        return buf;
}

int agent_check_kvm(const char *replay, kvm_profile *p, kvm_report *r, kv_error *err)
{
        kvm_profile_init(p);
        if (replay) {
                _cleanup_free_ char *text = slurp(replay, err);
                if (!text)
                        return -err->code;
                if (kvm_profile_from_json(text, p, err) < 0)
                        return kv_error_wrap(err, "--kvm-replay %s", replay);
        } else {
                kvmcheck_probe(p);
        }
        kvmcheck_decide(p, r);
        return 0;
}

int agent_label_node(kube_client *c, const char *node, const kvm_report *r, const kvm_profile *p,
                     kv_error *err)
{
        char path[512];
        snprintf(path, sizeof(path), "/api/v1/nodes/%s", node);
        _cleanup_json_ cJSON *cur = NULL;
        int ret = kube_request(c, "GET", path, NULL, NULL, &cur, err);
        if (ret < 0)
                return kv_error_wrap(err, "node %s", node);
        const cJSON *labels =
            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(cur, "metadata"), "labels");
        _cleanup_json_ cJSON *want = node_labels_build(r, p);
        _cleanup_json_ cJSON *patch = want ? node_labels_patch(labels, want) : NULL;
        _cleanup_free_ char *body = patch ? cJSON_PrintUnformatted(patch) : NULL;
        if (!body)
                return kv_error_errno(err, ENOMEM, "node %s labels", node);
        ret = kube_request(c, "PATCH", path, "application/merge-patch+json", body, NULL, err);
        if (ret < 0)
                return kv_error_wrap(err, "label node %s", node);
        log_info("node %s labelled: kvm %s", node, kvm_verdict_name(r->verdict));
        return 0;
}

/* Runs kvmcheck, relabels and updates what each plugin advertises. */
static void refresh(const agent_config *cfg, plugins *ps, bool *labelled)
{
        kvm_profile p;
        kvm_report r;
        kv_error err = {0};
        if (agent_check_kvm(cfg->kvm_replay, &p, &r, &err) < 0) {
                log_error("%s", err.msg);
                return;
        }
        log_info("kvmcheck: %s: %s", kvm_verdict_name(r.verdict), r.reason);
        for (size_t i = 0; i < cfg->n_kinds; i++) {
                const dp_kind *k = cfg->kinds[i];
                plugins_set_advertised(
                    ps, k, dp_advertised(k, agent_device_exists(cfg->dev_dir, k->path), r.verdict));
        }
        if (cfg->kube) {
                *labelled = agent_label_node(cfg->kube, cfg->node_name, &r, &p, &err) == 0;
                if (!*labelled)
                        log_warning("%s", err.msg);
        }
}

int agent_run(const agent_config *cfg, volatile sig_atomic_t *stop, kv_error *err)
{
        plugins_config pc = {
            .dir = cfg->plugin_dir, .count = cfg->count, .kinds = cfg->kinds, .n_kinds = cfg->n_kinds};
        plugins *ps = plugins_start(&pc, err);
        if (!ps)
                return -err->code;
        bool labelled = false;
        refresh(cfg, ps, &labelled);
        int64_t next_check = kv_now_ms() + (int64_t)cfg->recheck_s * 1000, next_register = 0;
        unsigned attempt = 0;
        while (!*stop) {
                int64_t now = kv_now_ms();
                if (now >= next_register) {
                        /* also notices a restarted kubelet (a new kubelet.sock) */
                        int failed = plugins_register(ps);
                        attempt = failed ? attempt + 1 : 0;
                        next_register = now + (failed ? kube_backoff_ms(500, 10000, attempt) : 1000);
                }
                /* a failed labelling is retried at the next registration tick's pace, not the recheck's */
                if (now >= next_check || (!labelled && cfg->kube && now >= next_register - 1000)) {
                        refresh(cfg, ps, &labelled);
                        next_check = now + (int64_t)cfg->recheck_s * 1000;
                }
                plugins_run(ps, 200);
        }
        log_info("stopping: closing the device plugins");
        plugins_stop(ps);
        return 0;
}
