/* seccomp-filter: builds and loads a seccomp filter from a table of rules, the one place that talks to
 * libseccomp. Every filter built here also lets the sanitizer runtimes (ASan/LSan) do their work in
 * sanitizer builds. Policies live with their process: sandbox.c (virt-launcher), reporter-sandbox.c
 * (virt-launcher-reporter). */
#pragma once
#include <seccomp.h>
#include <stdbool.h>
#include <stddef.h>

#include "error.h"

typedef struct seccomp_rule {
        int nr;
        uint32_t action;
        bool has_arg; /* the rule applies only when arg matches */
        struct scmp_arg_cmp arg;
        bool has_arg2; /* ... and arg2 too (with has_arg) */
        struct scmp_arg_cmp arg2;
} seccomp_rule;

/* clang-format off */
#define SECCOMP_ALLOW(name) {.nr = SCMP_SYS(name), .action = SCMP_ACT_ALLOW}
/* Allowed only when argument n equals value. */
#define SECCOMP_ALLOW_EQ(name, n, value)                                                                     \
        {.nr = SCMP_SYS(name), .action = SCMP_ACT_ALLOW, .has_arg = true,                                    \
         .arg = {.arg = (n), .op = SCMP_CMP_EQ, .datum_a = (value)}}
/* Allowed only when (argument n & mask) == value. */
#define SECCOMP_ALLOW_MASKED(name, n, mask, value)                                                           \
        {.nr = SCMP_SYS(name), .action = SCMP_ACT_ALLOW, .has_arg = true,                                    \
         .arg = {.arg = (n), .op = SCMP_CMP_MASKED_EQ, .datum_a = (mask), .datum_b = (value)}}
/* Fails with errno e instead of the default action: for calls a library only probes. */
#define SECCOMP_ERRNO(name, e) {.nr = SCMP_SYS(name), .action = SCMP_ACT_ERRNO(e)}
/* Fails with errno e when argument n is below value and (argument m & mask) == bits. */
#define SECCOMP_ERRNO_LT_MASKED(name, e, n, value, m, mask, bits)                                            \
        {.nr = SCMP_SYS(name), .action = SCMP_ACT_ERRNO(e), .has_arg = true,                                 \
         .arg = {.arg = (n), .op = SCMP_CMP_LT, .datum_a = (value)}, .has_arg2 = true,                       \
         .arg2 = {.arg = (m), .op = SCMP_CMP_MASKED_EQ, .datum_a = (mask), .datum_b = (bits)}}
/* clang-format on */

/* Loads a filter for the calling thread (and the threads it creates later): the rules, then in sanitizer
 * builds the sanitizer runtime's calls; any other call gets default_action. Rules for one call combine
 * (libseccomp): several conditional ones are alternatives, an unconditional one covers them all, and of
 * two unconditional ones the first wins. */
int seccomp_filter_load(uint32_t default_action, const seccomp_rule *rules, size_t n, kv_error *err);
