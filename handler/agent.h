/* The node agent's loop: decides with kvmcheck what the node offers, keeps the Node's labels and the device
 * plugins in line with it, and re-checks periodically. */
#pragma once

#include <signal.h>
#include <stdbool.h>

#include "client.h"
#include "devices.h"
#include "error.h"
#include "kvmcheck.h"

typedef struct agent_config {
        const char *node_name;
        const char *plugin_dir; /* the kubelet's device-plugins directory */
        const char *dev_dir;    /* where the host's device nodes are seen (/dev, or the DaemonSet's mount) */
        unsigned count;         /* devices advertised per kind */
        const dp_kind *kinds[8];
        size_t n_kinds;
        unsigned recheck_s;     /* seconds between kvmcheck runs and relabelling */
        const char *kvm_replay; /* a recorded kvmcheck profile instead of probing (tests, debugging) */
        kube_client *kube;      /* NULL: no labels */
} agent_config;

/* Whether <dev_dir>/<path without /dev/> exists. */
bool agent_device_exists(const char *dev_dir, const char *path);

/* Measures KVM (or replays the recorded profile). */
int agent_check_kvm(const char *replay, kvm_profile *p, kvm_report *r, kv_error *err);

/* Patches the Node's labels to node_labels_build()'s, removing stale CPU labels. */
int agent_label_node(kube_client *c, const char *node, const kvm_report *r, const kvm_profile *p,
                     kv_error *err);

/* Runs until *stop is set. Fails only when a plugin socket cannot be served. */
int agent_run(const agent_config *cfg, volatile sig_atomic_t *stop, kv_error *err);
