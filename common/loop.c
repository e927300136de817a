/* epoll wrapper with deferred removal, so a callback may drop any source (its own or another's), and
 * one-shot timers in a due-ordered list (a handful are armed at a time: the stop escalation, a migration
 * poll, a snapshot's deadline), so a sorted insert is cheaper than a heap's bookkeeping. */
#include "loop.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#define LOOP_MAX_EVENTS 32

struct loop {
        int epfd;
        loop_source *sources;
        bool have_dead;
        loop_timer *timers; /* armed, earliest first */
        uint64_t timer_seq; /* arming counter */
};

int64_t loop_now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void loop_timer_disarm(loop *l, loop_timer *t)
{
        if (!t->armed)
                return;
        for (loop_timer **p = &l->timers; *p; p = &(*p)->next)
                if (*p == t) {
                        *p = t->next;
                        break;
                }
        t->armed = false;
        t->next = NULL;
}

void loop_timer_arm(loop *l, loop_timer *t, int64_t delay_ms, loop_timer_cb cb, void *data)
{
        loop_timer_disarm(l, t);
        *t = (loop_timer){.due_ms = loop_now_ms() + (delay_ms > 0 ? delay_ms : 0),
                          .cb = cb,
                          .data = data,
                          .seq = l->timer_seq++};
        loop_timer **p = &l->timers;
        while (*p && (*p)->due_ms <= t->due_ms) /* equal due times fire in arming order */
                p = &(*p)->next;
        t->next = *p;
        t->armed = true;
        *p = t;
}

int loop_next_timer_ms(const loop *l)
{
        if (!l->timers)
                return -1;
        int64_t left = l->timers->due_ms - loop_now_ms();
        return left <= 0 ? 0 : left > INT32_MAX ? INT32_MAX : (int)left;
}

/* Runs the timers due by `now`; a timer armed meanwhile for `now` or later waits for the next round,
 * so a callback that re-arms itself with delay 0 cannot starve the fds. */
static void loop_run_timers(loop *l, int64_t now)
{
        uint64_t first_new = l->timer_seq;
        while (l->timers && l->timers->due_ms <= now) {
                loop_timer *t = l->timers;
                if (t->seq >= first_new) /* armed by a callback of this round: the later ones are too */
                        break;
                l->timers = t->next;
                t->armed = false;
                t->next = NULL;
                t->cb(t, t->data);
        }
}

int loop_new(loop **out)
{
        loop *l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        l->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (l->epfd < 0) {
                int r = -errno;
                free(l);
                return r;
        }
        *out = l;
        return 0;
}

static void loop_reap(loop *l, bool all)
{
        for (loop_source **p = &l->sources; *p;) {
                loop_source *s = *p;
                if (s->dead || all) {
                        *p = s->next;
                        free(s);
                } else
                        p = &s->next;
        }
        l->have_dead = false;
}

void loop_free(loop *l)
{
        if (!l)
                return;
        loop_reap(l, true);
        close(l->epfd);
        free(l);
}

int loop_add(loop *l, int fd, uint32_t events, loop_cb cb, void *data, loop_source **out)
{
        loop_source *s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        *s = (loop_source){.fd = fd, .cb = cb, .data = data};
        struct epoll_event ev = {.events = events, .data.ptr = s};
        if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
                int r = -errno;
                free(s);
                return r;
        }
        s->next = l->sources;
        l->sources = s;
        if (out)
                *out = s;
        return 0;
}

int loop_modify(loop *l, loop_source *src, uint32_t events)
{
        struct epoll_event ev = {.events = events, .data.ptr = src};
        return epoll_ctl(l->epfd, EPOLL_CTL_MOD, src->fd, &ev) < 0 ? -errno : 0;
}

void loop_remove(loop *l, loop_source *src)
{
        if (!src || src->dead)
                return;
        epoll_ctl(l->epfd, EPOLL_CTL_DEL, src->fd, NULL);
        src->dead = true;
        l->have_dead = true;
}

int loop_run_once(loop *l, int timeout_ms)
{
        struct epoll_event evs[LOOP_MAX_EVENTS];
        int next = loop_next_timer_ms(l);
        if (next >= 0 && (timeout_ms < 0 || next < timeout_ms))
                timeout_ms = next;
        int n = epoll_wait(l->epfd, evs, LOOP_MAX_EVENTS, timeout_ms);
        if (n < 0)
                return errno == EINTR ? 0 : -errno;
        int64_t now = loop_now_ms();
        for (int i = 0; i < n; i++) {
                loop_source *s = evs[i].data.ptr;
                if (!s->dead)
                        s->cb(s, s->fd, evs[i].events, s->data);
        }
        loop_run_timers(l, now);
        if (l->have_dead)
                loop_reap(l, false);
        return n;
}
