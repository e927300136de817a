/* The controllers whose API groups a cluster may not serve (snapshot.kubevirt.io, migrations.kubevirt.io,
 * cdi.kubevirt.io): their informers run only while discovery lists their resources, so a missing CRD never
 * holds back the VMI/VM/VMIM/Pod machinery (docs/controller.md, "Optional API groups"). */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "informer.h"

enum optional_kind {
        OPT_SNAPSHOT,
        OPT_RESTORE,
        OPT_POLICY,
        OPT_CDI,
        OPT_DATASOURCE,
        OPT_REPLICASET,
        OPT_POOL,
        OPT__MAX
};
/* ABSENT: not served (or not yet checked), informer paused, cache empty; STARTING: served, informer listing;
 * RUNNING: its cache is complete. */
enum optional_state { OPT_ABSENT, OPT_STARTING, OPT_RUNNING };

typedef struct optional_ctl {
        const char *name;             /* "snapshot": the controller, in logs */
        const char *const *resources; /* plurals that must all be served, NULL-terminated */
        kube_informer *inf;           /* paused while ABSENT; its res->prefix is the group version */
        atomic_int state;             /* enum optional_state; written by the loop thread, read by workers */
        bool checked;                 /* one discovery answer seen: the first ABSENT is logged too */
        uint64_t next_check_ms;
        unsigned seen_failures; /* inf->failures at the last check: a new failure rechecks at once */
} optional_ctl;

typedef struct controller controller;
/* Pauses the optional informers until the first discovery check (after controller_init's informers). */
void optional_groups_init(controller *c);
/* Loop thread, each pass: discovery checks that are due, start/stop on a change (logged once each time).
 * Returns ms until the next check. */
long optional_groups_tick(controller *c, uint64_t now_ms);
/* For workers: the state of one optional controller. */
enum optional_state optional_state(controller *c, enum optional_kind k);
