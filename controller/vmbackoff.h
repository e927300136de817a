/* A VM's start-failure backoff (KubeVirt's status.startFailure): which finished VMI counts as a failed start,
 * how long the next start waits, and when the record is cleared. Pure: time and jitter are arguments. */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define VM_BACKOFF_MAX_SECONDS 300 /* KubeVirt's defaultMaxCrashLoopBackoffDelaySeconds */
/* A VMI Running this long has started successfully: its VM's failure record is cleared. */
#define VM_STABLE_RUN_SECONDS 60

/* Seconds to wait after the fail_count-th consecutive failure, as KubeVirt computes it: max(10, max/30)·n²
 * plus up to half of that again (jitter % (half + 1), so VMs failing together spread out), capped at
 * max_seconds. fail_count 0 counts as 1. */
unsigned vm_start_backoff_seconds(unsigned fail_count, unsigned max_seconds, unsigned jitter);

/* Whether runStrategy restarts a failed VMI (Always, RerunOnFailure): only those back off. */
bool vm_strategy_restarts(const char *strategy);

/* "YYYY-MM-DDTHH:MM:SS[.frac]Z" → seconds since the epoch; -1 when s is not such a time. */
time_t vm_parse_rfc3339(const char *s);

/* The VM's next status.startFailure given its current one (may be NULL), its VMI (may be NULL) and the time:
 * - NULL (cleared) when the strategy does not restart, or the VMI ran successfully (Running for
 *   VM_STABLE_RUN_SECONDS, or Succeeded after reaching Running);
 * - a new record when the VMI is finished after a failed start (never Running, or Failed within
 *   VM_STABLE_RUN_SECONDS of Running) and is not yet counted (lastFailedVMIUID):
 *   {consecutiveFailCount: n+1, lastFailedVMIUID, retryAfterTimestamp: now + backoff};
 * - a copy of the current one otherwise. *counted says a new failure was recorded. */
cJSON *vm_start_failure_next(const cJSON *current, const cJSON *vmi, const char *strategy, time_t now,
                             unsigned jitter, bool *counted);

/* Milliseconds until the record's retryAfterTimestamp (0 when past or absent). now_ms: realtime. */
uint64_t vm_start_backoff_left_ms(const cJSON *start_failure, uint64_t now_ms);

/* Milliseconds until a Running VMI has run VM_STABLE_RUN_SECONDS (0 when not Running or already there). */
uint64_t vm_stable_run_left_ms(const cJSON *vmi, uint64_t now_ms);
