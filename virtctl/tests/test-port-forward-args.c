/* `virtctl port-forward` arguments: targets and port specs (and `virtctl ssh`'s [USER@]TARGET) as KubeVirt's
 * virtctl reads them, and its words for the ones it refuses. The cases and what each gives are the golden
 * file port-forward-args.golden (KIND<TAB>ARGUMENT<TAB>RESULT lines); KV_UPDATE_GOLDEN=1 rewrites its
 * results. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "port-forward-args.h"
#include "test-util.h"

/* What virtctl makes of arg as a target or a port, in the golden file's words. */
static void result(const char *kind, const char *arg, char *out, size_t size)
{
        char why[256] = "", user[128];
        pf_target t;
        pf_port p;
        if (!strcmp(kind, "target") && pf_target_parse(arg, &t, why, sizeof(why)) == 0)
                snprintf(out, size, "%s %s %s", t.vm ? "vm" : "vmi", t.name, t.ns[0] ? t.ns : "-");
        else if (!strcmp(kind, "ssh") && pf_ssh_target_parse(arg, user, &t, why, sizeof(why)) == 0)
                snprintf(out, size, "%s %s %s %s", user[0] ? user : "-", t.vm ? "vm" : "vmi", t.name,
                         t.ns[0] ? t.ns : "-");
        else if (!strcmp(kind, "port") && pf_port_parse(arg, &p, why, sizeof(why)) == 0)
                snprintf(out, size, "%u %u %s", p.local, p.remote, p.protocol);
        else
                snprintf(out, size, "error: %s", why);
}

/* One golden line checked (and, updating, rewritten into out). */
static void check_line(char *line, FILE *out)
{
        char *kind = strsep(&line, "\t"), *arg = strsep(&line, "\t"), *want = line, got[600];
        if (!arg || !want) {
                CHECK_MSG(false, "a golden line is KIND<TAB>ARGUMENT<TAB>RESULT");
                return;
        }
        result(kind, arg, got, sizeof(got));
        if (out)
                fprintf(out, "%s\t%s\t%s\n", kind, arg, got);
        CHECK_MSG(!strcmp(got, want), arg);
        if (strcmp(got, want))
                fprintf(stderr, "  %s \"%s\": got \"%s\", want \"%s\"\n", kind, arg, got, want);
}

int main(int argc, char **argv)
{
        if (argc != 2)
                return fprintf(stderr, "usage: %s GOLDEN\n", argv[0]), 2;
        FILE *f = fopen(argv[1], "r");
        char *text = NULL;
        size_t cap = 0;
        if (!f || getdelim(&text, &cap, 0, f) < 0)
                return perror(argv[1]), 2;
        fclose(f);
        FILE *out = getenv("KV_UPDATE_GOLDEN") ? fopen(argv[1], "w") : NULL;
        for (char *rest = text, *line; (line = strsep(&rest, "\n"));) {
                if (*line == '#' && out)
                        fprintf(out, "%s\n", line);
                if (*line && *line != '#')
                        check_line(line, out);
        }
        if (out)
                fclose(out);
        free(text);

        bool b = false;
        CHECK(pf_bool_parse("true", &b) == 0 && b);
        CHECK(pf_bool_parse("T", &b) == 0 && b);
        CHECK(pf_bool_parse("0", &b) == 0 && !b);
        CHECK(pf_bool_parse("False", &b) == 0 && !b);
        CHECK(pf_bool_parse("yes", &b) == -EINVAL);
        CHECK(pf_bool_parse("", &b) == -EINVAL);
        return test_result("port-forward-args");
}
