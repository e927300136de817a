/* `virt-launcher ctl --run-dir DIR COMMAND [ARGS-JSON]` sends one request and prints the reply line;
 * `virt-launcher console --run-dir DIR` attaches to the serial console (Ctrl-] detaches). */
#include "tty.h"
#include "control-client.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "ctl-protocol.h"
#include "fdio.h"
#include "macro.h"
#include "supervisor.h"
#include "unixsock.h"

#define ESCAPE_KEY 0x1d /* Ctrl-] */

typedef struct client_usage {
        const char *text;
        int min_args, max_args; /* operands after the options */
} client_usage;

/* Parses --run-dir/--help and the operand count, then connects to the control socket. Returns an exit
 * code to stop with, or -1 with *fd connected and optind at the first operand. */
static int client_open(int argc, char **argv, const client_usage *u, int *fd)
{
        static const struct option longopts[] = {
            {"run-dir", required_argument, NULL, 'r'},
            {"help", no_argument, NULL, 'h'},
            {0},
        };
        const char *run_dir = NULL;
        int c;
        optind = 1;
        while ((c = getopt_long(argc, argv, "+r:h", longopts, NULL)) != -1) {
                if (c != 'r') {
                        fputs(u->text, c == 'h' ? stdout : stderr);
                        return c == 'h' ? 0 : EXIT_INVALID;
                }
                run_dir = optarg;
        }
        if (!run_dir || argc - optind < u->min_args || argc - optind > u->max_args) {
                fprintf(stderr, "virt-launcher: %s\n%s",
                        run_dir ? "wrong number of arguments" : "--run-dir is required", u->text);
                return EXIT_INVALID;
        }
        char path[4200];
        snprintf(path, sizeof(path), "%s/control.sock", run_dir);
        kv_error err = {0};
        *fd = unix_connect(path, &err);
        if (*fd < 0) {
                fprintf(stderr, "virt-launcher: %s\n", err.msg);
                return EXIT_SETUP;
        }
        return -1;
}

static int send_request(int fd, const char *cmd, const char *args_json)
{
        cJSON *req = cJSON_CreateObject();
        cJSON_AddStringToObject(req, "cmd", cmd);
        if (args_json) {
                cJSON *args = cJSON_Parse(args_json);
                if (!cJSON_IsObject(args)) {
                        cJSON_Delete(args);
                        cJSON_Delete(req);
                        fprintf(stderr, "virt-launcher: ARGS must be a JSON object\n");
                        return -EINVAL;
                }
                cJSON_AddItemToObject(req, "args", args);
        }
        _cleanup_free_ char *text = cJSON_PrintUnformatted(req);
        cJSON_Delete(req);
        if (!text)
                return -ENOMEM;
        size_t len = strlen(text);
        text[len] = '\n';
        return send(fd, text, len + 1, MSG_NOSIGNAL) == (ssize_t)(len + 1) ? 0 : -EIO;
}

/* Reads one reply line byte by byte (so nothing after it, e.g. console output, is consumed). */
static int read_line(int fd, char *buf, size_t size)
{
        size_t n = 0;
        while (n + 1 < size) {
                ssize_t r = read(fd, buf + n, 1);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r <= 0)
                        return -EIO;
                if (buf[n] == '\n')
                        break;
                n++;
        }
        buf[n] = '\0';
        return 0;
}

static bool reply_ok(const char *line)
{
        cJSON *reply = cJSON_Parse(line);
        bool ok = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "ok"));
        cJSON_Delete(reply);
        return ok;
}

/* `apply FILE|-`: the VMI text (JSON or YAML, parsed by the launcher) as {"vmi": TEXT}. */
static char *apply_args(const char *path)
{
        FILE *f = strcmp(path, "-") ? fopen(path, "re") : stdin;
        if (!f) {
                fprintf(stderr, "virt-launcher: apply: cannot open %s: %m\n", path);
                return NULL;
        }
        static char text[48 * 1024]; /* the escaped request must fit a control line (CTL_LINE_MAX) */
        size_t n = fread(text, 1, sizeof(text) - 1, f);
        bool too_big = n == sizeof(text) - 1 && !feof(f);
        if (f != stdin)
                fclose(f);
        if (too_big) {
                fprintf(stderr, "virt-launcher: apply: %s is larger than %zu bytes\n", path,
                        sizeof(text) - 1);
                return NULL;
        }
        text[n] = '\0';
        cJSON *a = cJSON_CreateObject();
        cJSON_AddStringToObject(a, "vmi", text);
        char *json = cJSON_PrintUnformatted(a);
        cJSON_Delete(a);
        return json;
}

int ctl_client_main(int argc, char **argv)
{
        static const client_usage usage = {
            "Usage: virt-launcher ctl --run-dir DIR COMMAND [ARGS-JSON]\n"
            "Sends one request to the launcher's control socket and prints the JSON reply.\n"
            "Commands: status, pause, unpause, shutdown, help (the launcher lists every command).\n"
            "`apply FILE|-` sends a changed VMI (JSON or YAML): the launcher hot-plugs what differs.\n"
            "Exit: 0 ok, 1 the launcher refused, 2 usage, 3 cannot connect.\n",
            1, 2};
        _cleanup_close_ int fd = -1;
        int r = client_open(argc, argv, &usage, &fd);
        if (r >= 0)
                return r;
        const char *args = optind + 1 < argc ? argv[optind + 1] : NULL;
        _cleanup_free_ char *apply = NULL;
        bool is_apply = ctl_verb_from_name(argv[optind]) == CTL_VERB_APPLY;
        if (is_apply && args && args[0] != '{' && !(args = apply = apply_args(args)))
                return EXIT_INVALID;
        if (send_request(fd, argv[optind], args) < 0)
                return EXIT_INVALID;
        static char line[1024 * 1024];
        if (read_line(fd, line, sizeof(line)) < 0) {
                fprintf(stderr, "virt-launcher: no reply from the launcher\n");
                return EXIT_SETUP;
        }
        puts(line);
        return reply_ok(line) ? 0 : EXIT_FAILED;
}

/* ---- console ---------------------------------------------------------------------------------- */

/* Keyboard → launcher; returns 1 on the escape key, 0 to go on, -1 on EOF. */
static int pump_stdin(int sock, bool *stdin_open)
{
        char buf[4096];
        ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
        if (n <= 0) {
                *stdin_open = false;
                shutdown(sock, SHUT_WR); /* half-close: output keeps coming */
                return 0;
        }
        char *esc = kv_tty_is_raw() ? memchr(buf, ESCAPE_KEY, (size_t)n) : NULL;
        size_t len = esc ? (size_t)(esc - buf) : (size_t)n;
        if (len && fd_write_all(sock, buf, len) < 0)
                return -1;
        return esc ? 1 : 0;
}

static int console_loop(int sock)
{
        bool stdin_open = true;
        for (;;) {
                struct pollfd p[2] = {{.fd = sock, .events = POLLIN}, {.fd = STDIN_FILENO, .events = POLLIN}};
                if (poll(p, stdin_open ? 2 : 1, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        return EXIT_SETUP;
                }
                if (p[0].revents) {
                        char buf[16384];
                        ssize_t n = read(sock, buf, sizeof(buf));
                        if (n <= 0)
                                return 0; /* the launcher is gone */
                        if (fd_write_all(STDOUT_FILENO, buf, (size_t)n) < 0)
                                return 0;
                }
                if (stdin_open && p[1].revents) {
                        int r = pump_stdin(sock, &stdin_open);
                        if (r != 0)
                                return 0;
                }
        }
}

int console_client_main(int argc, char **argv)
{
        static const client_usage usage = {
            "Usage: virt-launcher console --run-dir DIR\n"
            "Attaches to the VM's serial console through the launcher (recent output is replayed).\n"
            "Ctrl-] detaches. Without a terminal on stdin, stdin is forwarded until EOF and output is\n"
            "printed until the launcher closes the connection.\n",
            0, 0};
        _cleanup_close_ int fd = -1;
        int r = client_open(argc, argv, &usage, &fd);
        if (r >= 0)
                return r;
        char line[4096];
        if (send_request(fd, ctl_verb_name(CTL_VERB_CONSOLE), NULL) < 0 ||
            read_line(fd, line, sizeof(line)) < 0) {
                fprintf(stderr, "virt-launcher: no reply from the launcher\n");
                return EXIT_SETUP;
        }
        if (!reply_ok(line)) {
                fprintf(stderr, "virt-launcher: %s\n", line);
                return EXIT_FAILED;
        }
        if (isatty(STDIN_FILENO))
                fprintf(stderr, "Connected to the serial console. Escape character is ^]\r\n");
        kv_tty_make_raw();
        r = console_loop(fd);
        kv_tty_restore();
        if (isatty(STDIN_FILENO))
                fprintf(stderr, "\nDetached.\n");
        return r;
}
