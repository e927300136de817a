/* liveops-driver: one live operation per run against a QMP socket, result as one JSON line on stdout.
 * The integration tests and bench/migration-* drive libkvliveops through it. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "hotplug.h"
#include "macro.h"
#include "migration.h"
#include "qmp-helpers.h"
#include "snapshot.h"
#include "vmi-diff.h"

enum { EXIT_OP_FAILED = 1, EXIT_USAGE = 2 };

static const char usage[] =
    "usage: liveops-driver QMP_SOCKET VERB [ARGS_JSON]\n"
    "       liveops-driver --diff OLD_VMI NEW_VMI\n"
    "       liveops-driver --offline create|apply|delete|list IMAGE [TAG]\n"
    "verbs: disk-add {name,path,format,bus} | disk-remove {name} | nic-add {name,mac} | nic-remove {name}\n"
    "       set-cpus {sockets} | set-memory {bytes,max} | snapshot-save|snapshot-load|snapshot-delete {tag}\n"
    "       snapshot-list | migrate-target {uri,nbdPort,config} | migrate-target-finish\n"
    "       migrate {uri,nbdPort,config,timeoutMs}   (config: KubeVirt MigrationConfiguration names)\n";

static const char *jstr_or(const cJSON *a, const char *k, const char *dflt)
{
	const cJSON *v = cJSON_GetObjectItem(a, k);
	return cJSON_IsString(v) ? v->valuestring : dflt;
}

static double jnum_or(const cJSON *a, const char *k, double dflt)
{
	const cJSON *v = cJSON_GetObjectItem(a, k);
	return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

static void read_config(const cJSON *c, migration_config *m)
{
	*m = (migration_config){
	    .bandwidth = (uint64_t)jnum_or(c, "bandwidthPerMigration", 0),
	    .completion_timeout_per_gib = (unsigned)jnum_or(c, "completionTimeoutPerGiB", 0),
	    .progress_timeout = (unsigned)jnum_or(c, "progressTimeout", 0),
	    .allow_auto_converge = cJSON_IsTrue(cJSON_GetObjectItem(c, "allowAutoConverge")),
	    .allow_post_copy = cJSON_IsTrue(cJSON_GetObjectItem(c, "allowPostCopy")),
	    .parallel_threads = (unsigned)jnum_or(c, "parallelMigrationThreads", 0),
	    .disable_multifd = cJSON_IsTrue(cJSON_GetObjectItem(c, "disableMultifd")),
	    .downtime_ms = (unsigned)jnum_or(c, "downtimeMs", 0),
	};
}

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

static int do_disk_add(qmp *q, const cJSON *a, kv_error *err)
{
	hp_disk d = {.name = jstr_or(a, "name", NULL), .path = jstr_or(a, "path", NULL),
		     .format = strcmp(jstr_or(a, "format", "qcow2"), "raw") ? IMG_QCOW2 : IMG_RAW,
		     .bus = strcmp(jstr_or(a, "bus", "virtio"), "scsi") ? BUS_VIRTIO : BUS_SCSI};
	if (!d.name)
		return kv_error_set(err, EINVAL, "disk-add: \"name\" is required");
	return hotplug_disk_add(q, &d, err);
}

static int run_migrate(qmp *q, const cJSON *a, cJSON **result, kv_error *err)
{
	migration_config c;
	read_config(cJSON_GetObjectItem(a, "config"), &c);
	migration_state st;
	int r = migration_run(q, &c, jstr_or(a, "uri", ""), "127.0.0.1", (int)jnum_or(a, "nbdPort", 0),
			      (int)jnum_or(a, "timeoutMs", 120000), &st, err);
	*result = cJSON_CreateObject();
	cJSON_AddItemToObject(*result, "migrationState", migration_state_to_json(&st));
	migration_state_free(&st);
	return r;
}

static int run_verb(qmp *q, const char *verb, const cJSON *a, cJSON **result, kv_error *err)
{
	int t = (int)jnum_or(a, "timeoutMs", 10000);
	const char *name = jstr_or(a, "name", ""), *tag = jstr_or(a, "tag", "");
	if (!strcmp(verb, "disk-add"))
		return do_disk_add(q, a, err);
	if (!strcmp(verb, "disk-remove"))
		return hotplug_disk_remove(q, name, t, err);
	if (!strcmp(verb, "nic-add")) {
		hp_nic n = {.name = name, .mac = jstr_or(a, "mac", NULL), .model = NIC_VIRTIO};
		return hotplug_nic_add(q, &n, err);
	}
	if (!strcmp(verb, "nic-remove"))
		return hotplug_nic_remove(q, name, t, err);
	if (!strcmp(verb, "set-cpus"))
		return hotplug_set_cpus(q, (unsigned)jnum_or(a, "sockets", 1), err);
	if (!strcmp(verb, "set-memory"))
		return hotplug_set_memory(q, (uint64_t)jnum_or(a, "bytes", 0), (uint64_t)jnum_or(a, "max", 0), t, err);
	if (!strcmp(verb, "snapshot-save"))
		return snapshot_save(q, tag, SNAPSHOT_TIMEOUT_MS, err);
	if (!strcmp(verb, "snapshot-load"))
		return snapshot_load(q, tag, SNAPSHOT_TIMEOUT_MS, err);
	if (!strcmp(verb, "snapshot-delete"))
		return snapshot_delete(q, tag, SNAPSHOT_TIMEOUT_MS, err);
	if (!strcmp(verb, "snapshot-list")) {
		cJSON *list = NULL;
		int r = snapshot_list(q, &list, err);
		*result = cJSON_CreateObject();
		if (r >= 0)
			cJSON_AddItemToObject(*result, "snapshots", list);
		return r;
	}
	if (!strcmp(verb, "migrate-target")) {
		migration_config c;
		read_config(cJSON_GetObjectItem(a, "config"), &c);
		return migration_target_prepare(q, &c, jstr_or(a, "uri", ""), "127.0.0.1", (int)jnum_or(a, "nbdPort", 0),
						err);
	}
	if (!strcmp(verb, "migrate-target-finish"))
		return migration_target_finish(q, (int)jnum_or(a, "timeoutMs", 120000), err);
	if (!strcmp(verb, "migrate"))
		return run_migrate(q, a, result, err);
	return kv_error_set(err, EINVAL, "unknown verb \"%s\"", verb);
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
	_cleanup_cjson_ cJSON *args = argc == 4 ? cJSON_Parse(argv[3]) : cJSON_CreateObject();
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
		r = run_verb(q, argv[2], args, &result, &err);
	if (q)
		qmp_free(q);
	return print_result(r, result, &err);
}
