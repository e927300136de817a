/* Cleanup attributes and small macros shared by every component: one owner per resource, released on
 * every path. */
#pragma once

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static inline void freep(void *p)
{
        free(*(void **)p);
}

static inline void closep(int *fd)
{
        if (*fd >= 0) {
                int saved = errno;
                close(*fd);
                errno = saved;
        }
}

static inline void fclosep(FILE **f)
{
        if (*f)
                fclose(*f);
}

#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)
#define _cleanup_fclose_ _cleanup_(fclosep)

/* Hand ownership out of a cleanup variable. */
#define TAKE_PTR(p)                                                                                          \
        ({                                                                                                   \
                __typeof__(p) _tmp = (p);                                                                    \
                (p) = NULL;                                                                                  \
                _tmp;                                                                                        \
        })
#define TAKE_FD(fd)                                                                                          \
        ({                                                                                                   \
                int _tmp = (fd);                                                                             \
                (fd) = -1;                                                                                   \
                _tmp;                                                                                        \
        })
