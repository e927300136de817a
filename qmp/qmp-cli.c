/* `qmp`: a QMP debug client in the spirit of qmp-shell. One-shot commands, event streaming, and an
 * interactive shell (qmp-shell.c); the request language lives in qmp-cli-args.c. */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "macro.h"
#include "qmp-cli-args.h"
#include "qmp-cli.h"

#define DEFAULT_TIMEOUT_MS 60000

static const char usage_text[] =
    "Usage: qmp [OPTIONS] [SOCKET] [COMMAND [key=value... | JSON]]\n"
    "\n"
    "Talk to QEMU's QMP monitor. SOCKET is a unix socket path, HOST:PORT, unix:PATH or tcp:HOST:PORT;\n"
    "it defaults to $QMP_SOCKET (then the first word is SOCKET only if it contains '/', ':' or '.').\n"
    "Without COMMAND, and when stdin is a terminal (or with -i), an interactive shell starts: history,\n"
    "tab completion of command names (from query-commands), one request per line, Ctrl-D to leave.\n"
    "\n"
    "Arguments:\n"
    "  key=value          typed: a value that is valid JSON keeps its type (42, 1.5, true, false, null,\n"
    "                     \"quoted\", [..], {..}); anything else is a string\n"
    "  key:=value         always a string (node-name:=123 sends \"123\")\n"
    "  a.b.c=value        dotted keys build nested objects: file.driver=file file.filename=/x\n"
    "  '{...}'            a single JSON object is sent as the arguments unchanged\n"
    "  transaction( TYPE k=v ... ; TYPE k=v ... )\n"
    "                     builds {\"execute\":\"transaction\",\"arguments\":{\"actions\":[{\"type\":TYPE,\n"
    "                     \"data\":{..}},..]}}; '(' ';' ')' are separate words (quote the whole\n"
    "                     request in the shell: qmp SOCK 'transaction( a k=v ; b k=v )')\n"
    "\n"
    "Options:\n"
    "  -p, --pretty       indent the JSON output\n"
    "  -H, --hmp          HMP mode: COMMAND... is a human monitor command line (human-monitor-command)\n"
    "  -e, --events       print events as JSON lines as they arrive (alone: stream until QEMU exits)\n"
    "  -i, --interactive  start the shell even when stdin is not a terminal\n"
    "  -t, --timeout MS   per-command timeout (default 60000; 0 = none)\n"
    "  -h, --help         this text\n"
    "\n"
    "Output: the command's \"return\" value as JSON on stdout (HMP: the monitor's text).\n"
    "Exit status: 0 success, 1 QMP error reply (\"Class: desc\" on stderr), 2 usage, connection or\n"
    "timeout error.\n";

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        fputs("qmp: ", stderr);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputs("\nTry 'qmp --help'.\n", stderr);
        return CLI_USAGE;
}

static bool looks_like_socket(const char *word)
{
        return strpbrk(word, "/:.") != NULL;
}

/* 0 to go on, or an exit code (+100 so that 0 = --help is distinguishable). */
static int parse_options(int argc, char **argv, cli_opts *o)
{
        static const struct option longopts[] = {{"pretty", no_argument, NULL, 'p'},
                                                 {"hmp", no_argument, NULL, 'H'},
                                                 {"events", no_argument, NULL, 'e'},
                                                 {"interactive", no_argument, NULL, 'i'},
                                                 {"timeout", required_argument, NULL, 't'},
                                                 {"help", no_argument, NULL, 'h'},
                                                 {NULL, 0, NULL, 0}};
        *o = (cli_opts){.timeout_ms = DEFAULT_TIMEOUT_MS};
        int c;
        char *end;
        /* '+': options end at the first word, so COMMAND arguments may start with '-'. */
        opterr = 0;
        while ((c = getopt_long(argc, argv, "+pHeit:h", longopts, NULL)) != -1) {
                switch (c) {
                case 'p':
                        o->pretty = true;
                        break;
                case 'H':
                        o->hmp = true;
                        break;
                case 'e':
                        o->events = true;
                        break;
                case 'i':
                        o->interactive = true;
                        break;
                case 't':
                        errno = 0;
                        long t = strtol(optarg, &end, 10);
                        if (errno || *end || t < 0 || t > 86400000)
                                return 100 +
                                       usage_error("--timeout: expected milliseconds (0..86400000), got '%s'",
                                                   optarg);
                        o->timeout_ms = (int)t;
                        break;
                case 'h':
                        fputs(usage_text, stdout);
                        return 100 + CLI_OK;
                default:
                        return 100 + usage_error("invalid option '%s'", argv[optind - 1]);
                }
        }
        const char *env = getenv("QMP_SOCKET");
        if (optind < argc && (!env || !*env || looks_like_socket(argv[optind])))
                o->socket = argv[optind++];
        else
                o->socket = env && *env ? env : NULL;
        if (!o->socket)
                return 100 + usage_error("no SOCKET given and QMP_SOCKET is not set");
        o->words = argv + optind;
        o->nwords = argc - optind;
        return 0;
}

/* "host:port" / "tcp:host:port" / "[v6]:port" -> TCP; everything else (or "unix:") is a path. */
static int cli_connect(const char *spec, qmp **q, kv_error *err)
{
        if (!strncmp(spec, "unix:", 5))
                return qmp_connect_unix(q, spec + 5, 0, err);
        bool tcp = !strncmp(spec, "tcp:", 4);
        if (tcp)
                spec += 4;
        const char *colon = strrchr(spec, ':');
        if (!tcp && (!colon || strchr(spec, '/') || !colon[1] ||
                     strspn(colon + 1, "0123456789") != strlen(colon + 1)))
                return qmp_connect_unix(q, spec, 0, err);
        if (!colon)
                return kv_error_set(err, EINVAL, "socket '%s': expected HOST:PORT", spec);
        _cleanup_free_ char *host = strndup(spec, (size_t)(colon - spec));
        if (!host)
                return kv_error_set(err, ENOMEM, "out of memory");
        size_t hl = strlen(host);
        if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
                memmove(host, host + 1, hl - 2);
                host[hl - 2] = '\0';
        }
        char *end;
        long port = strtol(colon + 1, &end, 10);
        if (*end || port <= 0 || port > 65535)
                return kv_error_set(err, EINVAL, "socket '%s': bad port", spec);
        return qmp_connect_tcp(q, host, (int)port, 0, err);
}

static void print_json(const cJSON *json, bool pretty)
{
        _cleanup_free_ char *s = pretty ? cJSON_Print(json) : cJSON_PrintUnformatted(json);
        if (s)
                printf("%s\n", s);
        fflush(stdout);
}

void cli_flush_events(qmp *q, const cli_opts *o)
{
        cJSON *ev;
        while ((ev = qmp_event_pop(q))) {
                if (o->events)
                        print_json(ev, false);
                cJSON_Delete(ev);
        }
}

static int report(int r, const kv_error *err)
{
        fprintf(stderr, "qmp: %s\n", err->msg);
        return r == -EREMOTEIO ? CLI_QMP_ERROR : CLI_USAGE;
}

static int execute_hmp(qmp *q, const cli_opts *o, char *const *words, int n)
{
        kv_error err = {0};
        size_t len = 0;
        for (int i = 0; i < n; i++)
                len += strlen(words[i]) + 1;
        _cleanup_free_ char *line = calloc(1, len + 1);
        cJSON *args = cJSON_CreateObject();
        if (!line || !args || !cJSON_AddStringToObject(args, "command-line", "")) {
                cJSON_Delete(args);
                return report(kv_error_set(&err, ENOMEM, "out of memory"), &err);
        }
        for (int i = 0; i < n; i++)
                strcat(strcat(line, i ? " " : ""), words[i]);
        cJSON_SetValuestring(cJSON_GetObjectItem(args, "command-line"), line);
        cJSON *ret = NULL;
        int r = qmp_execute(q, "human-monitor-command", args, o->timeout_ms, &ret, &err);
        if (r < 0)
                return report(r, &err);
        if (cJSON_IsString(ret))
                fputs(ret->valuestring, stdout);
        fflush(stdout);
        cJSON_Delete(ret);
        return CLI_OK;
}

int cli_execute_words(qmp *q, const cli_opts *o, char *const *words, int n)
{
        if (o->hmp)
                return execute_hmp(q, o, words, n);
        kv_error err = {0};
        _cleanup_free_ char *command = NULL;
        cJSON *args = NULL, *ret = NULL;
        int r = qmp_cli_build_request(words, (size_t)n, &command, &args, &err);
        if (r < 0) {
                fprintf(stderr, "qmp: %s\n", err.msg);
                return CLI_USAGE;
        }
        r = qmp_execute(q, command, args, o->timeout_ms, &ret, &err);
        if (r < 0)
                return report(r, &err);
        print_json(ret, o->pretty);
        cJSON_Delete(ret);
        return CLI_OK;
}

/* A one-shot transaction usually arrives as one quoted word: split it like the shell would. */
static int one_shot(qmp *q, const cli_opts *o)
{
        if (o->hmp || strncmp(o->words[0], "transaction(", 12) != 0)
                return cli_execute_words(q, o, o->words, o->nwords);
        strv words = {0};
        kv_error err = {0};
        int r = 0;
        for (int i = 0; i < o->nwords && r >= 0; i++)
                r = qmp_cli_tokenize(o->words[i], &words, &err);
        if (r < 0) {
                strv_free(&words);
                return report(r, &err);
        }
        r = cli_execute_words(q, o, words.v, (int)words.n);
        strv_free(&words);
        return r;
}

/* --events: print events until QEMU goes away (a clean end, exit 0). */
static int stream_events(qmp *q, const cli_opts *o)
{
        for (;;) {
                kv_error err = {0};
                cJSON *ev = NULL;
                int r = qmp_wait_event(q, NULL, NULL, NULL, 0, &ev, &err);
                if (r == -ECONNRESET || r == -EPIPE)
                        return CLI_OK;
                if (r < 0)
                        return report(r, &err);
                print_json(ev, false);
                cJSON_Delete(ev);
        }
}

static int connect_and_negotiate(const cli_opts *o, qmp **q)
{
        kv_error err = {0};
        int r = cli_connect(o->socket, q, &err);
        if (r < 0)
                return report(r, &err);
        r = qmp_handshake(*q, o->timeout_ms, &err);
        if (r == -ETIMEDOUT)
                kv_error_wrap(&err,
                              "%s: no QMP greeting (a QMP socket serves one client at a time: is another "
                              "client connected?)",
                              o->socket);
        if (r < 0)
                return report(r, &err);
        return CLI_OK;
}

int main(int argc, char **argv)
{
        cli_opts o;
        int r = parse_options(argc, argv, &o);
        if (r)
                return r - 100;
        bool shell = o.nwords == 0 && (o.interactive || (!o.events && isatty(STDIN_FILENO)));
        if (o.nwords == 0 && !shell && !o.events)
                return usage_error("no COMMAND given (stdin is not a terminal; use -i for the shell)");
        qmp *q = NULL;
        r = connect_and_negotiate(&o, &q);
        if (r == CLI_OK) {
                if (shell)
                        r = qmp_shell_run(q, &o);
                else if (o.nwords > 0)
                        r = one_shot(q, &o);
                if (r == CLI_OK && !shell && o.events) {
                        cli_flush_events(q, &o);
                        r = stream_events(q, &o);
                }
        }
        qmp_free(q);
        return r;
}
