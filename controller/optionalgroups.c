/* Optional API groups: a discovery GET of each optional controller's group version (as client-go's
 * discovery does), every discovery interval and at once when its informer fails, starts or stops it. */
#include "optionalgroups.h"
#include "controller.h"
#include "log.h"

#include <string.h>

#define DISCOVERY_INTERVAL_MS 10000

/* the snapshot controller writes contents too */
static const char *const snapshot_res[] = {"virtualmachinesnapshots", "virtualmachinesnapshotcontents", NULL};
static const char *const restore_res[] = {"virtualmachinerestores", NULL};
static const char *const policy_res[] = {"migrationpolicies", NULL};
static const char *const cdi_res[] = {"datavolumes", NULL};
static const char *const datasource_res[] = {"datasources", NULL};
/* kubevirt.io itself is served; its replica sets' CRD may be missing from an older crds/ */
static const char *const replicaset_res[] = {"virtualmachineinstancereplicasets", NULL};
static const char *const pool_res[] = {"virtualmachinepools", NULL};

void optional_groups_init(controller *c)
{
        const struct {
                const char *name;
                const char *const *resources;
                kube_informer *inf;
        } table[OPT__MAX] = {[OPT_SNAPSHOT] = {"snapshot", snapshot_res, &c->snapshots},
                             [OPT_RESTORE] = {"restore", restore_res, &c->restores},
                             [OPT_POLICY] = {"migration-policy", policy_res, &c->policies},
                             [OPT_CDI] = {"datavolume", cdi_res, &c->dvs},
                             [OPT_DATASOURCE] = {"datasource", datasource_res, &c->datasources},
                             [OPT_REPLICASET] = {"replicaset", replicaset_res, &c->replicasets},
                             [OPT_POOL] = {"pool", pool_res, &c->pools}};
        for (int k = 0; k < OPT__MAX; k++) {
                optional_ctl *o = &c->optional[k];
                o->name = table[k].name;
                o->resources = table[k].resources;
                o->inf = table[k].inf;
                atomic_init(&o->state, OPT_ABSENT);
                kube_informer_pause(o->inf);
        }
}

enum optional_state optional_state(controller *c, enum optional_kind k)
{
        return (enum optional_state)atomic_load(&c->optional[k].state);
}

static const char *group_version(const optional_ctl *o)
{
        return o->inf->res->prefix + strlen("/apis/");
}

static bool lists(const cJSON *resource_list, const char *plural)
{
        const cJSON *r;
        cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(resource_list, "resources"))
        {
                const char *name = kube_str(r, "name");
                if (name && !strcmp(name, plural))
                        return true;
        }
        return false;
}

/* The first required resource discovery does not list (*missing = NULL: all served); <0 when discovery
 * did not answer (the state stays as it is). A 404 for the group version is an answer: nothing served. */
static int discover(optional_ctl *o, const char **missing, kv_error *err)
{
        cJSON *list = NULL;
        int r = kube_request(o->inf->client, "GET", o->inf->res->prefix, NULL, NULL, &list, err);
        if (r < 0 && r != -KUBE_ENOTFOUND)
                return r;
        *missing = NULL;
        for (const char *const *p = o->resources; *p && !*missing; p++)
                if (!list || !lists(list, *p))
                        *missing = *p;
        cJSON_Delete(list);
        return 0;
}

static void transition(optional_ctl *o, const char *missing)
{
        enum optional_state st = (enum optional_state)atomic_load(&o->state);
        if (!missing && st == OPT_ABSENT) {
                kube_informer_resume(o->inf);
                atomic_store(&o->state, OPT_STARTING);
                log_info("%s served; %s controller started", group_version(o), o->name);
        } else if (missing && st != OPT_ABSENT) {
                atomic_store(&o->state, OPT_ABSENT);
                kube_informer_pause(o->inf);
                log_info("%s controller stopped: %s %s not served; it waits for its CRDs", o->name,
                         group_version(o), missing);
        } else if (missing && !o->checked) {
                log_info("%s %s not served; %s controller waits for its CRDs", group_version(o), missing,
                         o->name);
        }
        o->checked = true;
}

static void check(controller *c, optional_ctl *o, uint64_t now_ms)
{
        unsigned interval =
            c->opts.discovery_interval_ms ? c->opts.discovery_interval_ms : DISCOVERY_INTERVAL_MS;
        o->next_check_ms = now_ms + interval;
        kv_error err = {0};
        const char *missing;
        if (discover(o, &missing, &err) < 0) {
                log_debug("%s controller: discovery of %s failed: %s", o->name, group_version(o), err.msg);
                return;
        }
        transition(o, missing);
}

long optional_groups_tick(controller *c, uint64_t now_ms)
{
        long next = -1;
        for (int k = 0; k < OPT__MAX; k++) {
                optional_ctl *o = &c->optional[k];
                /* a list or watch that failed may mean the CRD was deleted: ask discovery now, not in 10 s */
                if (o->inf->failures > o->seen_failures && atomic_load(&o->state) != OPT_ABSENT)
                        o->next_check_ms = now_ms;
                o->seen_failures = o->inf->failures;
                if (now_ms >= o->next_check_ms)
                        check(c, o, now_ms);
                long wait = (long)(o->next_check_ms - now_ms);
                if (atomic_load(&o->state) == OPT_STARTING) {
                        if (o->inf->synced) /* workers waiting for this cache go on */
                                atomic_store(&o->state, OPT_RUNNING);
                        else if (wait > 100) /* its first list runs in this pass's ticks */
                                wait = 100;
                }
                next = next < 0 || wait < next ? wait : next;
        }
        return next;
}
