/* liveops-driver: one live operation per run against a QMP socket, result as one JSON line on stdout.
 * The integration tests and bench/migration-* drive libkvliveops through it. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "liveops-command.h"
#include "macro.h"
#include "qmp-helpers.h"
#include "snapshot.h"
#include "vmi-diff.h"

enum { EXIT_OP_FAILED = 1, EXIT_USAGE = 2 };

static const char usage[] =
    "usage: liveops-driver QMP_SOCKET VERB [ARGS_JSON]\n"
    "       liveops-driver --diff OLD_VMI NEW_VMI\n"
    "       liveops-driver --offline create|apply|delete|list IMAGE [TAG]\n"
    "verbs: hotplug-disk {name,path,format,bus} | unplug-disk {name} | hotplug-nic {name,mac} | unplug-nic "
    "{name}\n"
    "       set-cpus {sockets} | set-memory {bytes,max} | snapshot-save|snapshot-load|snapshot-delete {tag}\n"
    "       snapshot-list | migration-target {uri,nbdPort,config} | migration-target-finish\n"
    "       migrate {uri,nbdPort,config,timeoutMs}   (config: KubeVirt MigrationConfiguration names)\n";

static int print_result(int r, cJSON *result, const kv_error *err)
{
        cJSON *o = result ? result : cJSON_CreateObject();
        cJSON_AddBoolToObject(o, "ok", r >= 0);
        if (r < 0)
                cJSON_AddStringToObject(o, "error", err->msg);
        char *s = cJSON_PrintUnformatted(o);
        printf("%s\n", s);
        free(s);
        cJSON_Delete(o);
        return r < 0 ? EXIT_OP_FAILED : 0;
}

static int run_diff(const char *old_path, const char *new_path)
{
        kv_error err = {0};
        _cleanup_(vmi_freep) vmi *o = NULL;
        _cleanup_(vmi_freep) vmi *n = NULL;
        liveop_plan plan = {0};
        int r = vmi_load(old_path, &o, &err);
        if (r >= 0)
                r = vmi_load(new_path, &n, &err);
        if (r >= 0)
                r = vmi_diff(o, n, &plan, &err);
        cJSON *res = r >= 0 ? liveop_plan_to_json(&plan) : NULL;
        liveop_plan_free(&plan);
        return print_result(r, res, &err);
}

static int run_offline(int argc, char **argv)
{
        kv_error err = {0};
        cJSON *list = NULL, *res = cJSON_CreateObject();
        int r = snapshot_offline(NULL, argv[2], argv[3], argc > 4 ? argv[4] : NULL, &list, &err);
        if (list)
                cJSON_AddItemToObject(res, "snapshots", list);
        return print_result(r, res, &err);
}

int main(int argc, char **argv)
{
        if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
                fputs(usage, argc < 2 ? stderr : stdout);
                return argc < 2 ? EXIT_USAGE : 0;
        }
        if (!strcmp(argv[1], "--diff") && argc == 4)
                return run_diff(argv[2], argv[3]);
        if (!strcmp(argv[1], "--offline") && argc >= 4)
                return run_offline(argc, argv);
        if (argc < 3 || argc > 4 || argv[1][0] == '-') {
                fputs(usage, stderr);
                return EXIT_USAGE;
        }
        _cleanup_json_ cJSON *args = argc == 4 ? cJSON_Parse(argv[3]) : cJSON_CreateObject();
        if (!cJSON_IsObject(args)) {
                fprintf(stderr, "liveops-driver: ARGS_JSON: not a JSON object\n");
                return EXIT_USAGE;
        }
        kv_error err = {0};
        qmp *q = NULL;
        cJSON *result = NULL;
        int r = qmp_connect_unix(&q, argv[1], 5000, &err);
        if (r >= 0)
                r = qmp_handshake(q, 5000, &err);
        if (r >= 0)
                r = liveops_command(q, argv[2], args, &result, &err);
        if (q)
                qmp_free(q);
        return print_result(r, result, &err);
}
