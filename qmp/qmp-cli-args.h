/* The `qmp` CLI's request language, pure: shell-like tokenizing, key=value arguments (dotted keys,
 * typed values, key:=string) and the transaction( ... ; ... ) syntax. */
#pragma once

#include <cjson/cJSON.h>
#include <stddef.h>

#include "error.h"
#include "strv.h"

/* Split a line into words: whitespace separates, '...' is literal, "..." knows \" and \\, a backslash
 * outside quotes escapes the next character. -EINVAL on an unterminated quote. */
int qmp_cli_tokenize(const char *line, strv *out, kv_error *err);

/* Build the arguments object from words: one JSON object word ({...}), or key=value / key:=value words.
 * *args is NULL when there are no words. -EINVAL names the offending word. */
int qmp_cli_build_args(char *const *words, size_t n, cJSON **args, kv_error *err);

/* A whole request: words[0] is the command, the rest its arguments; words[0] == "transaction(" starts
 * the transaction syntax "transaction( TYPE k=v ... ; TYPE k=v ... )". */
int qmp_cli_build_request(char *const *words, size_t n, char **command, cJSON **args, kv_error *err);
