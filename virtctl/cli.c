/* cli: the argument splitting the commands with flags of their own share (cli.h). */
#include "cli.h"

#include <stdbool.h>
#include <string.h>

int cli_split(int argc, char **argv, cli_flag_fn *flag, void *ctx, const char **args, int max, int *n)
{
        bool only_args = false;
        *n = 0;
        for (int i = 0; i < argc; i++) {
                int r = 0;
                if (!only_args && !strcmp(argv[i], "--"))
                        only_args = true;
                else if (!only_args && argv[i][0] == '-' && argv[i][1])
                        r = flag(ctx, argc, argv, &i);
                else if (*n == max)
                        return die("too many arguments (at most %d)", max);
                else
                        args[(*n)++] = argv[i];
                if (r)
                        return r;
        }
        return 0;
}
