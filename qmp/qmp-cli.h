/* Shared between the `qmp` CLI's one-shot mode (qmp-cli.c) and its interactive shell (qmp-shell.c). */
#pragma once

#include <stdbool.h>

#include "qmp.h"

enum { CLI_OK = 0, CLI_QMP_ERROR = 1, CLI_USAGE = 2 }; /* exit codes; CLI_USAGE also means "connection" */

typedef struct cli_opts {
        bool pretty, hmp, events, interactive;
        int timeout_ms;
        const char *socket;
        char **words; /* COMMAND and its arguments */
        int nwords;
} cli_opts;

/* Run one request given as words (a QMP command with key=value/JSON arguments, a transaction, or in
 * HMP mode a monitor command line) and print the result; returns an exit code. */
int cli_execute_words(qmp *q, const cli_opts *o, char *const *words, int n);
/* Print (with --events) or discard the events queued so far. */
void cli_flush_events(qmp *q, const cli_opts *o);

int qmp_shell_run(qmp *q, const cli_opts *o);
