/* The launcher's single epoll loop: fds registered with a callback each; one timeout source hook so
 * libqmp's command deadlines bound the wait. */
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

int loop_new(loop **out);
void loop_free(loop *l);
/* Register fd (not owned); returns the source in *out (may be NULL). */
int loop_add(loop *l, int fd, uint32_t events, loop_cb cb, void *data, loop_source **out);
int loop_modify(loop *l, loop_source *src, uint32_t events);
/* Unregister; safe from inside callbacks (the source is freed after the current dispatch). */
void loop_remove(loop *l, loop_source *src);
/* Wait at most timeout_ms (-1: forever) and dispatch. Returns <0 on epoll failure. */
int loop_run_once(loop *l, int timeout_ms);
