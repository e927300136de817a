/* virtctl ssh (ssh.h), as KubeVirt's (pkg/virtctl/ssh): ssh -o ProxyCommand='VIRTCTL port-forward
 * --stdio=true TYPE/NAME[/NS] PORT' [--local-ssh-opts...] [-i FILE] [USER@]TYPE.NAME[.NS] [COMMAND]. ssh
 * expands %-tokens in the ProxyCommand and hands it to a shell, so every word of it is quoted for both. */
#include "ssh.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "macro.h"
#include "port-forward-args.h"

#define LOCAL_OPTS_MAX 32

typedef struct ssh_opts {
        const char *username, *identity, *command, *target;
        const char *local_opts[LOCAL_OPTS_MAX];
        size_t n_local;
        unsigned port;
} ssh_opts;

static void usage(void)
{
        fputs("Open a SSH connection to a virtual machine instance: the local ssh, with\n"
              "`virtctl port-forward --stdio=true` as its ProxyCommand.\n\n"
              "Usage:\n  virtctl ssh [USER@]TYPE/NAME[/NAMESPACE] [flags]\n\n"
              "Examples:\n  virtctl ssh jdoe@vmi/testvmi -i ~/.ssh/id_ed25519\n"
              "  virtctl ssh jdoe@vm/testvm/mynamespace -c 'uname -a'\n\n"
              "Flags:\n"
              "  -c, --command string              the command to run in the VM\n"
              "  -i, --identity-file string        the private key (passed to ssh when given)\n"
              "      --known-hosts string          accepted for KubeVirt's native client; unused\n"
              "      --local-ssh                   the local ssh client (the only one; =false is refused)\n"
              "  -t, --local-ssh-opts stringArray  more options for ssh, each one argument ('-o Opt=val')\n"
              "  -p, --port int                    the port on the VM (default 22)\n"
              "  -l, --username string             the user (default $USER)\n",
              stdout);
}

/* A value flag's value into o; 0, or EXIT_FAIL printed. */
static int set(ssh_opts *o, const char *name, const char *v)
{
        char *end;
        unsigned long port;
        if (!strcmp(name, "username"))
                o->username = v;
        else if (!strcmp(name, "identity-file"))
                o->identity = v;
        else if (!strcmp(name, "command"))
                o->command = v;
        else if (!strcmp(name, "known-hosts"))
                return 0; /* KubeVirt's native client's; the local ssh keeps its own */
        else if (!strcmp(name, "local-ssh-opts")) {
                if (o->n_local == LOCAL_OPTS_MAX)
                        return die("too many --local-ssh-opts (at most %d)", LOCAL_OPTS_MAX);
                o->local_opts[o->n_local++] = v;
        } else {
                port = strtoul(v, &end, 10);
                if (!*v || *end || port < 1 || port > 65535)
                        return die("invalid argument \"%s\" for \"-p, --port\" flag: expected 1-65535", v);
                o->port = (unsigned)port;
        }
        return 0;
}

/* The long name of a value flag, by its long or short form; NULL when there is none such. */
static const char *value_flag(const char *arg, size_t len)
{
        static const char *const names[] = {"username",       "identity-file", "port",
                                            "local-ssh-opts", "command",       "known-hosts"};
        static const char shorts[] = "liptc"; /* by names[] */
        for (size_t i = 0; i < ARRAY_SIZE(names); i++)
                if (len == 1 ? i < 5 && arg[0] == shorts[i]
                             : strlen(names[i]) == len && !strncmp(arg, names[i], len))
                        return names[i];
        return NULL;
}

/* One flag at argv[*i] (its value may be the next argument); 0, -1 after --help, or EXIT_FAIL printed. */
static int flag(void *ctx, int argc, char **argv, int *i)
{
        ssh_opts *o = ctx;
        const char *a = argv[*i], *eq = strchr(a, '=');
        bool lng = a[1] == '-', b;
        const char *name = lng ? a + 2 : a + 1;
        size_t len = lng ? (eq ? (size_t)(eq - name) : strlen(name)) : 1;
        if (!strcmp(a, "-h") || !strcmp(a, "--help"))
                return usage(), -1;
        if (lng && len == 9 && !strncmp(name, "local-ssh", 9)) {
                if (eq && pf_bool_parse(eq + 1, &b) < 0)
                        return die("invalid argument \"%s\" for \"--local-ssh\" flag", eq + 1);
                return eq && !b ? die("only the local ssh client is supported (--local-ssh=true)") : 0;
        }
        const char *f = value_flag(name, len);
        if (!f)
                return lng ? die("unknown flag: --%.*s", (int)len, name)
                           : die("unknown shorthand flag: '%c' in %s", *name, a);
        const char *v = lng ? (eq ? eq + 1 : NULL) : (name[1] ? name + 1 : NULL);
        if (!v && *i + 1 >= argc)
                return die("flag needs an argument: %s", a);
        return set(o, f, v ? v : argv[++*i]);
}

static int parse(int argc, char **argv, ssh_opts *o)
{
        const char *args[8];
        int n = 0, r = cli_split(argc, argv, flag, o, args, (int)ARRAY_SIZE(args), &n);
        if (r)
                return r;
        o->target = args[0];
        return n == 1 ? 0 : die("accepts 1 arg(s), received %d", n);
}

/* s as one word of the ProxyCommand: single-quoted for the shell, '%' doubled for ssh's tokens. */
static void quoted(FILE *m, const char *s)
{
        fputc('\'', m);
        for (; *s; s++) {
                if (*s == '\'')
                        fputs("'\\''", m);
                else if (*s == '%')
                        fputs("%%", m);
                else
                        fputc(*s, m);
        }
        fputc('\'', m);
}

static char *proxy_command(const ssh_globals *g, const pf_target *t, unsigned port)
{
        char self[4096], *out = NULL;
        size_t len = 0;
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        snprintf(self + (n > 0 ? n : 0), sizeof(self) - (size_t)(n > 0 ? n : 0), "%s",
                 n > 0 ? "" : "virtctl");
        FILE *m = open_memstream(&out, &len);
        if (!m)
                return NULL;
        fputs("ProxyCommand=", m);
        quoted(m, self);
        const char *flags[][2] = {{"--kubeconfig", g->kubeconfig}, {"--context", g->context}, {"-n", g->ns}};
        for (size_t i = 0; i < ARRAY_SIZE(flags); i++) {
                if (flags[i][1]) {
                        fprintf(m, " %s ", flags[i][0]);
                        quoted(m, flags[i][1]);
                }
        }
        fprintf(m, " port-forward --stdio=true %s/", t->vm ? "vm" : "vmi");
        quoted(m, t->name);
        if (t->ns[0]) {
                fputc('/', m);
                quoted(m, t->ns);
        }
        fprintf(m, " %u", port);
        return fclose(m) == 0 ? out : (free(out), NULL);
}

int ssh_main(int argc, char **argv, const ssh_globals *g)
{
        ssh_opts o = {.port = 22};
        pf_target t;
        char user[128], why[300], host[800];
        int r = parse(argc, argv, &o);
        if (r)
                return r < 0 ? EXIT_OK : r;
        if (pf_ssh_target_parse(o.target, user, &t, why, sizeof(why)) < 0)
                return die("%s", why);
        const char *u = user[0]          ? user
                        : o.username     ? o.username
                        : getenv("USER") ? getenv("USER")
                                         : getenv("LOGNAME");
        const char *ns = t.ns[0] ? t.ns : g->ns;
        _cleanup_free_ char *proxy = proxy_command(g, &t, o.port);
        snprintf(host, sizeof(host), "%s%s%s.%s%s%s", u && *u ? u : "", u && *u ? "@" : "",
                 t.vm ? "vm" : "vmi", t.name, ns ? "." : "", ns ? ns : "");
        const char *args[LOCAL_OPTS_MAX + 8] = {"ssh", "-o", proxy};
        size_t n = 3;
        for (size_t i = 0; i < o.n_local; i++)
                args[n++] = o.local_opts[i];
        if (o.identity) {
                args[n++] = "-i";
                args[n++] = o.identity;
        }
        args[n++] = host;
        if (o.command)
                args[n++] = o.command;
        args[n] = NULL;
        if (!proxy)
                return die("out of memory");
        execvp("ssh", (char **)args);
        return die("exec ssh: %s", strerror(errno));
}
