/* Time as the project uses it: a monotonic clock in milliseconds for deadlines and back-off, and RFC 3339
 * UTC timestamps as KubeVirt prints them. */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* CLOCK_MONOTONIC in milliseconds. */
int64_t kv_now_ms(void);
/* "2006-01-02T15:04:05Z": now, or at t ("" if t cannot be shown). */
void rfc3339_now(char *buf, size_t size);
void rfc3339_at(time_t t, char *buf, size_t size);
/* "2006-01-02T15:04:05.000000Z": now, to the microsecond (log lines). */
void rfc3339_now_us(char *buf, size_t size);
