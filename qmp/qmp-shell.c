/* The `qmp` interactive shell: libedit line editing and history, tab completion of command names from
 * query-commands, multi-line transaction( ... ) blocks. Without a terminal it reads plain lines. */
#include <editline/readline.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "macro.h"
#include "qmp-cli-args.h"
#include "qmp-cli.h"

#define HISTORY_MAX 1000

static strv command_names; /* for the completion callbacks, which take no user data */

static int cmp_str(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

static void load_command_names(qmp *q, const cli_opts *o)
{
        cJSON *ret = NULL, *c;
        kv_error err = {0};
        if (qmp_execute(q, "query-commands", NULL, o->timeout_ms, &ret, &err) < 0)
                return; /* completion is a convenience; the shell still works */
        cJSON_ArrayForEach(c, ret)
        {
                const cJSON *name = cJSON_GetObjectItemCaseSensitive(c, "name");
                if (cJSON_IsString(name))
                        strv_push(&command_names, name->valuestring);
        }
        cJSON_Delete(ret);
        if (command_names.n)
                qsort(command_names.v, command_names.n, sizeof(char *), cmp_str);
}

static char *complete_next(const char *text, int state)
{
        static size_t i;
        if (state == 0)
                i = 0;
        for (size_t len = strlen(text); i < command_names.n; i++)
                if (!strncmp(command_names.v[i], text, len))
                        return strdup(command_names.v[i++]);
        return NULL;
}

static char **complete(const char *text, int start, int end)
{
        rl_attempted_completion_over = 1; /* never fall back to file names */
        return start == 0 ? rl_completion_matches(text, complete_next) : NULL;
}

static char *history_path(void)
{
        const char *home = getenv("HOME");
        char *path = NULL;
        if (home && *home && asprintf(&path, "%s/.qmp_history", home) < 0)
                path = NULL;
        return path;
}

/* One input line without its newline, or NULL at EOF. */
static char *read_line(bool tty, const char *prompt)
{
        if (tty)
                return readline(prompt);
        char *line = NULL;
        size_t cap = 0;
        ssize_t n = getline(&line, &cap, stdin);
        if (n < 0) {
                free(line);
                return NULL;
        }
        if (n > 0 && line[n - 1] == '\n')
                line[n - 1] = '\0';
        return line;
}

/* Read the lines of a transaction( block up to the one ending in ")", one action per line. */
static int read_transaction(bool tty, strv *words, kv_error *err)
{
        while (strcmp(words->v[words->n - 1], ")") != 0) {
                _cleanup_free_ char *line = read_line(tty, "... ");
                if (!line)
                        return kv_error_set(err, EINVAL, "transaction: end of input before ')'");
                strv more = {0};
                int r = qmp_cli_tokenize(line, &more, err);
                bool sep = r >= 0 && more.n > 0 && words->n > 1 && strcmp(more.v[0], ")") != 0 &&
                           strcmp(words->v[words->n - 1], ";") != 0;
                if (sep)
                        r = strv_push(words, ";");
                for (size_t i = 0; r >= 0 && i < more.n; i++)
                        r = strv_push(words, more.v[i]);
                strv_free(&more);
                if (r < 0)
                        return r == -ENOMEM ? kv_error_set(err, ENOMEM, "out of memory") : r;
        }
        return 0;
}

static int shell_line(qmp *q, const cli_opts *o, bool tty, const char *line)
{
        if (!line[strspn(line, " \t")])
                return 0;
        strv words = {0};
        kv_error err = {0};
        int r = o->hmp ? strv_push(&words, line) : qmp_cli_tokenize(line, &words, &err);
        if (r >= 0 && words.n > 0 && !o->hmp && !strcmp(words.v[0], "transaction("))
                r = read_transaction(tty, &words, &err);
        if (r < 0)
                fprintf(stderr, "qmp: %s\n", err.msg);
        else if (words.n > 0 && words.v[0][0] != '#')
                r = cli_execute_words(q, o, words.v, (int)words.n);
        strv_free(&words);
        return r;
}

int qmp_shell_run(qmp *q, const cli_opts *o)
{
        bool tty = isatty(STDIN_FILENO);
        _cleanup_free_ char *hist = tty ? history_path() : NULL;
        if (tty) {
                rl_readline_name = "qmp";
                rl_attempted_completion_function = complete;
                if (!o->hmp)
                        load_command_names(q, o);
                stifle_history(HISTORY_MAX);
                if (hist)
                        read_history(hist);
        }
        const char *prompt = o->hmp ? "(HMP) " : "(QEMU) ";
        for (;;) {
                cli_flush_events(q, o);
                _cleanup_free_ char *line = read_line(tty, prompt);
                if (!line)
                        break;
                if (tty && *line)
                        add_history(line);
                shell_line(q, o, tty, line);
                if (qmp_connection_error(q))
                        break;
        }
        cli_flush_events(q, o);
        if (hist)
                write_history(hist);
        strv_free(&command_names);
        if (tty)
                putchar('\n');
        return qmp_connection_error(q) ? CLI_USAGE : CLI_OK;
}
