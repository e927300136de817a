/* The launcher's single epoll loop: fds registered with a callback each, and one-shot timers kept in a
 * list ordered by due time whose head bounds epoll_wait's timeout (with libqmp's command deadlines). */
#pragma once
#include <stdbool.h>
#include <stdint.h>

typedef struct loop loop;
typedef struct loop_source loop_source;
typedef void (*loop_cb)(loop_source *src, int fd, uint32_t events, void *data);

struct loop_source {
        int fd;
        loop_cb cb;
        void *data;
        bool dead;         /* removed; freed after the current dispatch */
        loop_source *next; /* every source of the loop, live or dead */
};

/* A one-shot timer. The owner embeds it (no allocation, so arming cannot fail) and must disarm it
 * before freeing it; the callback may arm it again. */
typedef struct loop_timer loop_timer;
typedef void (*loop_timer_cb)(loop_timer *t, void *data);
struct loop_timer {
        int64_t due_ms; /* CLOCK_MONOTONIC milliseconds */
        loop_timer_cb cb;
        void *data;
        bool armed;
        uint64_t seq;     /* arming order */
        loop_timer *next; /* in due order */
};

int loop_new(loop **out);
void loop_free(loop *l);
/* Register fd (not owned); returns the source in *out (may be NULL). */
int loop_add(loop *l, int fd, uint32_t events, loop_cb cb, void *data, loop_source **out);
int loop_modify(loop *l, loop_source *src, uint32_t events);
/* Unregister; safe from inside callbacks (the source is freed after the current dispatch). */
void loop_remove(loop *l, loop_source *src);
/* (Re)arm t to call cb(t, data) once, delay_ms (<= 0: at the next loop iteration) from now. */
void loop_timer_arm(loop *l, loop_timer *t, int64_t delay_ms, loop_timer_cb cb, void *data);
/* No-op when not armed. */
void loop_timer_disarm(loop *l, loop_timer *t);
/* Milliseconds until the earliest timer is due (0 if overdue), or -1 without timers. */
int loop_next_timer_ms(const loop *l);
int64_t loop_now_ms(void);
/* Wait at most timeout_ms (-1: forever) or until the next timer, dispatch ready fds, then run the timers
 * due by now (one armed by a timer callback waits for the next iteration). Returns <0 on epoll failure. */
int loop_run_once(loop *l, int timeout_ms);
