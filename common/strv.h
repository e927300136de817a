/* A growable NULL-terminated array of owned strings (argv builder). */
#pragma once
#include <stdbool.h>
#include <stddef.h>

typedef struct strv {
        char **v;
        size_t n, cap;
} strv;

int strv_push(strv *s, const char *str); /* copies str; -ENOMEM on failure */
int strv_pushf(strv *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int strv_push_take(strv *s, char *str); /* takes ownership */
void strv_free(strv *s);
bool strv_contains(const strv *s, const char *str);
static inline char *const *strv_argv(const strv *s)
{
        return s->v;
}
