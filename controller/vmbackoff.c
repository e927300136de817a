/* VM start-failure backoff; see vmbackoff.h. */
#include "vmbackoff.h"
#include "api.h"
#include "vmistatus.h"

#include <stdio.h>
#include <string.h>

unsigned vm_start_backoff_seconds(unsigned fail_count, unsigned max_seconds, unsigned jitter)
{
        unsigned interval = max_seconds / 30 > 10 ? max_seconds / 30 : 10;
        uint64_t n = fail_count ? fail_count : 1;
        if (n > 1000) /* far past any cap; keeps n² from overflowing */
                n = 1000;
        uint64_t delay = interval * n * n;
        delay += jitter % (delay / 2 + 1);
        return delay > max_seconds ? max_seconds : (unsigned)delay;
}

bool vm_strategy_restarts(const char *strategy)
{
        return strategy && (!strcmp(strategy, "Always") || !strcmp(strategy, "RerunOnFailure"));
}

time_t vm_parse_rfc3339(const char *s)
{
        struct tm tm = {0};
        const char *rest = s ? strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
        if (!rest)
                return -1;
        if (*rest == '.')
                rest += 1 + strspn(rest + 1, "0123456789");
        if (strcmp(rest, "Z"))
                return -1;
        return timegm(&tm);
}

/* When the VMI last entered phase (from status.phaseTransitionTimestamps); -1 when never. */
static time_t phase_entered(const cJSON *vmi, const char *phase)
{
        time_t at = -1;
        const cJSON *t;
        cJSON_ArrayForEach(t, kube_obj(vmi, "status.phaseTransitionTimestamps"))
        {
                const char *p = kube_str(t, "phase");
                if (p && !strcmp(p, phase))
                        at = vm_parse_rfc3339(kube_str(t, "phaseTransitionTimestamp"));
        }
        return at;
}

/* Ran successfully: Running long enough (up to the end when finished), or powered off after Running. */
static bool ran_stable(const cJSON *vmi, time_t now)
{
        const char *phase = vmi_phase(vmi);
        time_t running = phase_entered(vmi, "Running");
        if (running < 0)
                return false;
        if (!strcmp(phase, "Succeeded"))
                return true;
        time_t end = !strcmp(phase, "Failed") ? phase_entered(vmi, "Failed") : now;
        return (end < 0 ? now : end) - running >= VM_STABLE_RUN_SECONDS;
}

static cJSON *new_failure(int count, const char *uid, time_t now, unsigned jitter)
{
        char ts[40];
        time_t retry = now + vm_start_backoff_seconds((unsigned)count, VM_BACKOFF_MAX_SECONDS, jitter);
        struct tm tm;
        gmtime_r(&retry, &tm);
        strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
        cJSON *sf = cJSON_CreateObject();
        cJSON_AddNumberToObject(sf, "consecutiveFailCount", count);
        cJSON_AddStringToObject(sf, "lastFailedVMIUID", uid);
        cJSON_AddStringToObject(sf, "retryAfterTimestamp", ts);
        return sf;
}

cJSON *vm_start_failure_next(const cJSON *current, const cJSON *vmi, const char *strategy, time_t now,
                             unsigned jitter, bool *counted)
{
        *counted = false;
        if (!vm_strategy_restarts(strategy) || (vmi && ran_stable(vmi, now)))
                return NULL;
        const char *uid = kube_str(vmi, "metadata.uid"), *last = kube_str(current, "lastFailedVMIUID");
        if (vmi && uid && vmi_phase_is_final(vmi_phase(vmi)) && !(last && !strcmp(last, uid))) {
                const cJSON *n = cJSON_GetObjectItemCaseSensitive(current, "consecutiveFailCount");
                *counted = true;
                return new_failure(cJSON_IsNumber(n) && n->valueint > 0 ? n->valueint + 1 : 1, uid, now,
                                   jitter);
        }
        return cJSON_IsObject(current) ? cJSON_Duplicate(current, 1) : NULL;
}

uint64_t vm_start_backoff_left_ms(const cJSON *start_failure, uint64_t now_ms)
{
        time_t retry = vm_parse_rfc3339(kube_str(start_failure, "retryAfterTimestamp"));
        if (retry < 0 || (uint64_t)retry * 1000 <= now_ms)
                return 0;
        return (uint64_t)retry * 1000 - now_ms;
}

uint64_t vm_stable_run_left_ms(const cJSON *vmi, uint64_t now_ms)
{
        time_t running = phase_entered(vmi, "Running");
        if (strcmp(vmi_phase(vmi), "Running") || running < 0)
                return 0;
        uint64_t at = ((uint64_t)running + VM_STABLE_RUN_SECONDS) * 1000;
        return at > now_ms ? at - now_ms : 0;
}
