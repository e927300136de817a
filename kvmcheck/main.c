/* kvmcheck: tells whether KVM can really run guests on this host, and why not. A thin CLI over
 * libkvmcheck; exit code = verdict (0 usable, 1 unusable, 2 absent; 3 usage, 4 internal error). */
#include "kvmcheck.h"
#include "macro.h"
#include "profile-json.h"
#include "report.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

typedef enum { OUT_HUMAN, OUT_JSON, OUT_LABELS, OUT_PROFILE } output_form;

typedef struct options {
        output_form form;
        const char *replay;
} options;

static void usage(FILE *f)
{
        fprintf(
            f, "Usage: kvmcheck [--json | --node-labels | --profile] [--replay FILE]\n"
               "\n"
               "Decides whether KVM can really run guests here: /dev/kvm existing is not enough.\n"
               "Runs six checks (host CPU flags and KVM module, /dev/kvm access and API, capabilities,\n"
               "supported CPUID vs x86-64-v2, a 64-bit smoke guest under a watchdog, in-kernel\n"
               "irqchip+PIT timer interrupts) in under 2 s and prints a verdict with the evidence.\n"
               "\n"
               "  --json         the report as JSON (verdict, reason, checks, raw profile)\n"
               "  --node-labels  the node labels a labeller would set: " KVMCHECK_LABEL_SCHEDULABLE "=true,\n"
               "                 " KVMCHECK_LABEL_USABLE "=true|false, " KVMCHECK_LABEL_VERDICT "=<verdict>\n"
               "  --profile      only the raw measurements (the profile) as JSON\n"
               "  --replay FILE  decide from a recorded profile (JSON from --profile) instead of probing\n"
               "  -h, --help     this text\n"
               "\n"
               "Exit codes: 0 usable, 1 unusable (present but not fit: use TCG), 2 absent,\n"
               "            3 usage error, 4 internal error (e.g. unreadable --replay file).\n");
}

static int set_form(options *o, output_form form, const char *flag)
{
        if (o->form != OUT_HUMAN && o->form != form) {
                fprintf(stderr, "kvmcheck: %s: only one of --json, --node-labels, --profile may be given\n",
                        flag);
                return -1;
        }
        o->form = form;
        return 0;
}

/* Returns 0 to go on, or an exit code + 1. */
static int parse_args(int argc, char **argv, options *o)
{
        static const struct option longopts[] = {
            {"json", no_argument, NULL, 'j'},    {"node-labels", no_argument, NULL, 'l'},
            {"profile", no_argument, NULL, 'p'}, {"replay", required_argument, NULL, 'r'},
            {"help", no_argument, NULL, 'h'},    {0},
        };
        int c;
        opterr = 0;
        while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
                int r = 0;
                switch (c) {
                case 'j':
                        r = set_form(o, OUT_JSON, "--json");
                        break;
                case 'l':
                        r = set_form(o, OUT_LABELS, "--node-labels");
                        break;
                case 'p':
                        r = set_form(o, OUT_PROFILE, "--profile");
                        break;
                case 'r':
                        o->replay = optarg;
                        break;
                case 'h':
                        usage(stdout);
                        return KVMCHECK_EXIT_USABLE + 1;
                default:
                        fprintf(stderr, "kvmcheck: %s: %s (see --help)\n", argv[optind - 1],
                                optopt == 'r' ? "needs a FILE argument" : "unknown option");
                        return KVMCHECK_EXIT_USAGE + 1;
                }
                if (r < 0)
                        return KVMCHECK_EXIT_USAGE + 1;
        }
        if (optind < argc) {
                fprintf(stderr, "kvmcheck: %s: unexpected argument (see --help)\n", argv[optind]);
                return KVMCHECK_EXIT_USAGE + 1;
        }
        return 0;
}

static char *read_file(const char *path, kv_error *err)
{
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        if (!f) {
                kv_error_errno(err, errno, "--replay %s", path);
                return NULL;
        }
        size_t cap = 1 << 16, n = 0;
        char *buf = malloc(cap + 1);
        while (buf && (n += fread(buf + n, 1, cap - n, f)) == cap && cap < (1u << 24)) {
                char *more = realloc(buf, cap * 2 + 1);
                if (!more)
                        break;
                buf = more;
                cap *= 2;
        }
        if (!buf) {
                kv_error_errno(err, ENOMEM, "--replay %s", path);
                return NULL;
        }
        buf[n] = '\0';
        return buf;
}

static int load_profile(const options *o, kvm_profile *p)
{
        if (!o->replay) {
                kvmcheck_probe(p);
                return 0;
        }
        kv_error err = {0};
        _cleanup_free_ char *text = read_file(o->replay, &err);
        if (!text || kvm_profile_from_json(text, p, &err) < 0) {
                fprintf(stderr, "kvmcheck: %s%s\n", text ? "--replay: " : "", err.msg);
                return -1;
        }
        return 0;
}

static int print_json(cJSON *json)
{
        _cleanup_free_ char *s = json ? cJSON_Print(json) : NULL;
        cJSON_Delete(json);
        if (!s) {
                fprintf(stderr, "kvmcheck: out of memory rendering JSON\n");
                return -1;
        }
        puts(s);
        return 0;
}

int main(int argc, char **argv)
{
        options o = {OUT_HUMAN, NULL};
        int r = parse_args(argc, argv, &o);
        if (r > 0)
                return r - 1;
        kvm_profile p;
        kvm_report rep;
        if (load_profile(&o, &p) < 0)
                return KVMCHECK_EXIT_INTERNAL;
        kvmcheck_decide(&p, &rep);
        switch (o.form) {
        case OUT_HUMAN:
                kvm_report_print_human(stdout, &rep);
                break;
        case OUT_LABELS:
                kvm_report_print_labels(stdout, &rep);
                break;
        case OUT_JSON:
                r = print_json(kvm_report_to_cjson(&rep, &p));
                break;
        case OUT_PROFILE:
                r = print_json(kvm_profile_to_cjson(&p));
                break;
        }
        if (r < 0 || fflush(stdout) != 0)
                return KVMCHECK_EXIT_INTERNAL;
        return kvmcheck_exit_code(rep.verdict);
}
