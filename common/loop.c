/* epoll wrapper with deferred removal, so a callback may drop any source (its own or another's). */
#include "loop.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#define LOOP_MAX_EVENTS 32

struct loop {
        int epfd;
        loop_source *sources;
        bool have_dead;
};

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
        int n = epoll_wait(l->epfd, evs, LOOP_MAX_EVENTS, timeout_ms);
        if (n < 0)
                return errno == EINTR ? 0 : -errno;
        for (int i = 0; i < n; i++) {
                loop_source *s = evs[i].data.ptr;
                if (!s->dead)
                        s->cb(s, s->fd, evs[i].events, s->data);
        }
        if (l->have_dead)
                loop_reap(l, false);
        return n;
}
