/* virt-handler's hot-plug agent (docs/hotplug-volumes.md): hands the disk images of claims mounted by
 * attachment Pods (hp-volume-*) on this node to the launcher Pods that own them. */
#pragma once

#include <stddef.h>

#include "error.h"

struct kube_config;

typedef struct hotplug_config {
        struct kube_config *kc;
        const char *node_name;
        const char *pods_dir; /* the kubelet's Pod directories (/var/lib/kubelet/pods) */
} hotplug_config;

/* The image of claim volume `volume` of Pod `uid` in the node's Pod directory: the kubelet stand-in's
 * <pods>/<uid>/volumes/<volume>/disk.img, or the kubelet's <pods>/<uid>/volumes/kubernetes.io~<type>/<dir>/
 * [mount/]disk.img with <dir> the volume or its PersistentVolume (pv_name, may be NULL). -EINVAL for a uid
 * or name that could leave the directory, -ENOENT when none exists. */
int hotplug_disk_path(const char *pods_dir, const char *uid, const char *volume, const char *pv_name,
                      char *out, size_t size);
/* Starts the agent's thread (its own informer over this node's attachment Pods). cfg is copied. */
int hotplug_agent_start(const hotplug_config *cfg, kv_error *err);
