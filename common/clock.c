/* The monotonic clock and RFC 3339 timestamps (clock.h). */
#include "clock.h"

#include <stdio.h>

int64_t kv_now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void rfc3339_at(time_t t, char *buf, size_t size)
{
        struct tm tm;
        if (size && (!gmtime_r(&t, &tm) || !strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm)))
                buf[0] = '\0';
}

void rfc3339_now(char *buf, size_t size)
{
        rfc3339_at(time(NULL), buf, size);
}

void rfc3339_now_us(char *buf, size_t size)
{
        struct timespec now;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &now);
        size_t n = size && gmtime_r(&now.tv_sec, &tm) ? strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm) : 0;
        if (n)
                snprintf(buf + n, size - n, ".%06ldZ", now.tv_nsec / 1000);
        else if (size)
                buf[0] = '\0';
}
