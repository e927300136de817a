/* strv: growable argv; always NULL terminated so it can go straight to execve(). */
#include "strv.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int strv_push_take(strv *s, char *str)
{
        if (!str)
                return -ENOMEM;
        if (s->n + 2 > s->cap) {
                size_t cap = s->cap ? s->cap * 2 : 16;
                char **v = realloc(s->v, cap * sizeof(*v));
                if (!v) {
                        free(str);
                        return -ENOMEM;
                }
                s->v = v;
                s->cap = cap;
        }
        s->v[s->n++] = str;
        s->v[s->n] = NULL;
        return 0;
}

int strv_push(strv *s, const char *str)
{
        return strv_push_take(s, strdup(str));
}

int strv_pushf(strv *s, const char *fmt, ...)
{
        char *str = NULL;
        va_list ap;
        va_start(ap, fmt);
        int r = vasprintf(&str, fmt, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        return strv_push_take(s, str);
}

void strv_free(strv *s)
{
        for (size_t i = 0; i < s->n; i++)
                free(s->v[i]);
        free(s->v);
        s->v = NULL;
        s->n = s->cap = 0;
}

bool strv_contains(const strv *s, const char *str)
{
        for (size_t i = 0; i < s->n; i++)
                if (!strcmp(s->v[i], str))
                        return true;
        return false;
}
