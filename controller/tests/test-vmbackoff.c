/* The VM start-failure backoff (vmbackoff.c): KubeVirt's delay formula, which finished VMI counts as a failed
 * start, when the record is cleared, and the time left. */
#undef NDEBUG
#include "vmbackoff.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const time_t NOW = 1700000000; /* 2023-11-14T22:13:20Z */

static void test_delay(void)
{
        /* max(10, 300/30)·n², plus jitter % (half + 1) */
        assert(vm_start_backoff_seconds(1, 300, 0) == 10);
        assert(vm_start_backoff_seconds(0, 300, 0) == 10);
        assert(vm_start_backoff_seconds(1, 300, 5) == 15);
        assert(vm_start_backoff_seconds(1, 300, 6) == 10); /* 6 % 6 */
        assert(vm_start_backoff_seconds(2, 300, 0) == 40);
        assert(vm_start_backoff_seconds(2, 300, 20) == 60);
        assert(vm_start_backoff_seconds(3, 300, 0) == 90);
        assert(vm_start_backoff_seconds(5, 300, 0) == 250);
        assert(vm_start_backoff_seconds(6, 300, 0) == 300); /* 360 capped */
        assert(vm_start_backoff_seconds(5, 300, 100) == 300);
        assert(vm_start_backoff_seconds(4000000000u, 300, 4000000000u) == 300);
        assert(vm_start_backoff_seconds(1, 900, 0) == 30); /* a larger cap stretches the interval */
        for (unsigned n = 1; n < 20; n++)                  /* never shrinks, always within the cap */
                for (unsigned j = 0; j < 100; j += 7) {
                        unsigned d = vm_start_backoff_seconds(n, 300, j);
                        assert(d >= vm_start_backoff_seconds(n - 1 ? n - 1 : 1, 300, 0) && d <= 300);
                }
}

static void test_parse(void)
{
        assert(vm_parse_rfc3339("2023-11-14T22:13:20Z") == NOW);
        assert(vm_parse_rfc3339("2023-11-14T22:13:20.123456Z") == NOW);
        assert(vm_parse_rfc3339("2023-11-14T22:13:20") == -1);
        assert(vm_parse_rfc3339("2023-11-14T22:13:20+01:00") == -1);
        assert(vm_parse_rfc3339("yesterday") == -1);
        assert(vm_parse_rfc3339(NULL) == -1);
}

/* A VMI with its phase and transition times, seconds before NOW ("Running@-30" = Running 30 s ago). */
static cJSON *vmi(const char *uid, const char *phase, const char *transitions)
{
        char buf[1024], *p = buf;
        p += sprintf(
            p, "{\"metadata\":{\"uid\":\"%s\"},\"status\":{\"phase\":\"%s\",\"phaseTransitionTimestamps\":[",
            uid, phase);
        char copy[256];
        snprintf(copy, sizeof(copy), "%s", transitions);
        const char *sep = "";
        for (char *save = NULL, *t = strtok_r(copy, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
                char *at = strchr(t, '@');
                *at = '\0';
                time_t when = NOW + atol(at + 1);
                struct tm tm;
                char ts[40];
                gmtime_r(&when, &tm);
                strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
                p += sprintf(p, "%s{\"phase\":\"%s\",\"phaseTransitionTimestamp\":\"%s\"}", sep, t, ts);
                sep = ",";
        }
        sprintf(p, "]}}");
        cJSON *v = cJSON_Parse(buf);
        assert(v);
        return v;
}

static int count_of(const cJSON *sf)
{
        return cJSON_GetObjectItem(sf, "consecutiveFailCount")->valueint;
}

static void test_next(void)
{
        bool counted;
        cJSON *failed1 = vmi("u1", "Failed", "Pending@-5 Scheduling@-4 Failed@-1");
        /* the first failed start: count 1, retry 10 s (jitter 0) from now */
        cJSON *sf = vm_start_failure_next(NULL, failed1, "Always", NOW, 0, &counted);
        assert(counted && count_of(sf) == 1);
        assert(!strcmp(cJSON_GetObjectItem(sf, "lastFailedVMIUID")->valuestring, "u1"));
        assert(vm_parse_rfc3339(cJSON_GetObjectItem(sf, "retryAfterTimestamp")->valuestring) == NOW + 10);
        assert(vm_start_backoff_left_ms(sf, (uint64_t)NOW * 1000) == 10000);
        assert(vm_start_backoff_left_ms(sf, (uint64_t)(NOW + 9) * 1000 + 500) == 500);
        assert(vm_start_backoff_left_ms(sf, (uint64_t)(NOW + 10) * 1000) == 0);
        assert(vm_start_backoff_left_ms(NULL, 0) == 0);
        /* the same VMI seen again is not counted twice */
        cJSON *again = vm_start_failure_next(sf, failed1, "Always", NOW + 3, 0, &counted);
        assert(!counted && cJSON_Compare(again, sf, true));
        /* the next VMI fails too (Succeeded without ever running counts as well): count 2, 40 s */
        cJSON *failed2 = vmi("u2", "Succeeded", "Pending@-2 Succeeded@-1");
        cJSON *sf2 = vm_start_failure_next(sf, failed2, "RerunOnFailure", NOW, 0, &counted);
        assert(counted && count_of(sf2) == 2);
        assert(vm_parse_rfc3339(cJSON_GetObjectItem(sf2, "retryAfterTimestamp")->valuestring) == NOW + 40);
        /* no VMI (waiting), or one still starting: the record stays */
        cJSON *kept = vm_start_failure_next(sf2, NULL, "Always", NOW, 0, &counted);
        assert(!counted && cJSON_Compare(kept, sf2, true));
        cJSON *starting = vmi("u3", "Scheduling", "Pending@-2 Scheduling@-1");
        cJSON *kept2 = vm_start_failure_next(sf2, starting, "Always", NOW, 0, &counted);
        assert(!counted && cJSON_Compare(kept2, sf2, true));
        /* Running, but not long yet: kept, and the time until it has run long enough */
        cJSON *young = vmi("u3", "Running", "Pending@-20 Running@-10");
        cJSON *kept3 = vm_start_failure_next(sf2, young, "Always", NOW, 0, &counted);
        assert(!counted && cJSON_Compare(kept3, sf2, true));
        assert(vm_stable_run_left_ms(young, (uint64_t)NOW * 1000) == (VM_STABLE_RUN_SECONDS - 10) * 1000);
        assert(vm_stable_run_left_ms(failed1, (uint64_t)NOW * 1000) == 0);
        /* failed soon after Running: still a failed start (count 3, 90 s) */
        cJSON *crashed = vmi("u3", "Failed", "Pending@-20 Running@-10 Failed@-1");
        cJSON *sf3 = vm_start_failure_next(sf2, crashed, "Always", NOW, 0, &counted);
        assert(counted && count_of(sf3) == 3);
        assert(vm_parse_rfc3339(cJSON_GetObjectItem(sf3, "retryAfterTimestamp")->valuestring) == NOW + 90);
        /* cleared: Running long enough, failed only after running long enough, powered off after Running */
        cJSON *stable = vmi("u4", "Running", "Running@-61");
        assert(!vm_start_failure_next(sf3, stable, "Always", NOW, 0, &counted) && !counted);
        assert(vm_stable_run_left_ms(stable, (uint64_t)NOW * 1000) == 0);
        cJSON *late = vmi("u5", "Failed", "Running@-200 Failed@-100");
        assert(!vm_start_failure_next(sf3, late, "Always", NOW, 0, &counted) && !counted);
        cJSON *off = vmi("u6", "Succeeded", "Running@-5 Succeeded@-1");
        assert(!vm_start_failure_next(sf3, off, "Always", NOW, 0, &counted) && !counted);
        /* strategies that do not restart keep no record */
        assert(!vm_start_failure_next(sf3, failed1, "Halted", NOW, 0, &counted) && !counted);
        assert(!vm_start_failure_next(NULL, failed1, "Once", NOW, 0, &counted) && !counted);
        assert(!vm_start_failure_next(sf3, NULL, "Manual", NOW, 0, &counted));
        assert(vm_strategy_restarts("Always") && vm_strategy_restarts("RerunOnFailure"));
        assert(!vm_strategy_restarts("Once") && !vm_strategy_restarts(NULL));
        cJSON *all[] = {failed1, sf,    again,   failed2, sf2,    kept, starting, kept2,
                        young,   kept3, crashed, sf3,     stable, late, off};
        for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
                cJSON_Delete(all[i]);
}

int main(void)
{
        test_delay();
        test_parse();
        test_next();
        printf("ok vmbackoff\n");
        return 0;
}
