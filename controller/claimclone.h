/* Claim clones for offline snapshots and restores (docs/cluster-snapshots.md): a short-lived Pod runs
 * kvlite-importer --pvc-source, which copies one claim's disk.img, sparse, into another claim; either end may
 * be a directory of a node instead (hostPath: a hostDisk's image). Each step looks at the API's objects only,
 * so a controller restart resumes where it was. */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "api.h"

#define CLONE_ANN_DONE "kvlite.io/cloned-by" /* on the destination claim: the clone Pod that filled it */
#define CLAIM_ANN_SELECTED_NODE "volume.kubernetes.io/selected-node" /* a local claim's node */

enum clone_state { CLONE_RUNNING, CLONE_DONE, CLONE_FAILED };

typedef struct controller controller;

typedef struct claim_clone {
        const char *ns;
        const char *src;          /* the claim copied */
        const char *src_file;     /* the file of src copied, NULL = disk.img (a running VM's backup) */
        const char *dst;          /* the claim filled */
        const char *pod;          /* the clone Pod's name, unique for this copy */
        const char *node;         /* pin the Pod to this node (nodeName), NULL = anywhere */
        const cJSON *owner;       /* ownerReference of the Pod */
        const cJSON *claim_owner; /* ownerReference of dst when created, NULL = none */
        bool create_dst;          /* dst is created like src (size, access modes); else it must exist */
        const char *src_host;     /* a node's directory read instead of claim src (src_file in it), or NULL */
        const char *src_size;     /* with src_host and create_dst: dst's storage request (ReadWriteOnce) */
        const char *dst_host;     /* a node's directory written instead of claim dst, or NULL: the Pod's
                                   * Succeeded phase records the copy (kept until its owner goes) */
        const char *dst_file;     /* with dst_host: the file written there (a hostDisk's name) */
} claim_clone;

/* One step of the copy: returns the state (msg says why on CLONE_FAILED) or a negative errno. */
int claim_clone_step(controller *c, kube_client *api, const claim_clone *cc, char *msg, size_t size,
                     kv_error *err);
/* The Pod and, when created for the copy, dst removed (a deleted snapshot's backups). */
int claim_clone_delete(kube_client *api, const char *ns, const char *dst, const char *pod, kv_error *err);
/* cc->dst as a new claim with src's size, access modes, storage class and volume mode, marked with its source
 * (kvlite.io/clone-source) and owned by cc->claim_owner. */
cJSON *claim_clone_claim(const claim_clone *cc, const cJSON *src);
/* A hostDisk volume's image split into its directory and file name (bufs of size), false when it has none. */
bool host_disk_parts(const cJSON *vol, char *dir, char *file, size_t size);
/* The node a claim's data is on: its volume.kubernetes.io/selected-node, which kube-scheduler writes on a
 * claim of a WaitForFirstConsumer storage class (local disks, a local-path provisioner); NULL for storage
 * every node reaches. */
const char *claim_node(const cJSON *pvc);
/* cc->node (into node, size bytes) for a copy between node-local claims: the node of src, or of dst when it
 * exists already; a node already in cc->node (a hostDisk's) stays. CLONE_FAILED (msg says why) when they are
 * on two nodes; a missing claim leaves the answer to claim_clone_step. */
int claim_clone_pin(kube_client *api, claim_clone *cc, char *node, size_t size, char *msg, size_t msize,
                    kv_error *err);
/* The claim a VM volume names (persistentVolumeClaim.claimName or dataVolume.name), or NULL. */
const char *volume_claim(const cJSON *vol);
