/* cli: what every virtctl command shares: its exit codes, its error line, the API's words and the owner of
 * what it creates. */
#pragma once

#include <cjson/cJSON.h>

#include "error.h"

#define SUBRES "/apis/subresources.kubevirt.io/v1"

/* KubeVirt's virtctl exits 1 on every error (cobra), usage errors included. */
enum { EXIT_OK = 0, EXIT_FAIL = 1 };

/* "Error: <what>" on stderr, as KubeVirt's virtctl prints it; returns EXIT_FAIL. */
int die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The Status message of an API error (libkube's "METHOD PATH: CODE Reason: message"). */
const char *api_message(const kv_error *err);

/* An ownerReferences entry naming obj (a kubevirt.io/v1 `kind`) as controller, blockOwnerDeletion false. */
cJSON *owner_ref(const cJSON *obj, const char *kind);

/* A command's own flags and arguments, cobra's way: "--" ends the flags, "-" alone is an argument. flag
 * handles argv[*i] (and may take argv[++*i] as its value): 0, or what it returns ends the parse. The
 * arguments go to args, at most max ("too many arguments" beyond), their number to *n. */
typedef int cli_flag_fn(void *ctx, int argc, char **argv, int *i);
int cli_split(int argc, char **argv, cli_flag_fn *flag, void *ctx, const char **args, int max, int *n);
