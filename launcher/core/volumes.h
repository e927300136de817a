/* volumes: everything on the host filesystem that the QEMU argv refers to. Resolves image directories,
 * creates qcow2 overlays / empty disks (qemu-img via posix_spawn, never a shell), sparse hostDisk files,
 * the ISOs (cloud-init seeds, configMap/secret/... disks; libisofs), the EFI VARS copy and the kernelBoot
 * files. Fills vmi.volumes[].prep, vmi.efi_vars, vmi.kernel_file/initrd_file. */
#pragma once

#include "error.h"
#include "vmi.h"

/* A downwardMetrics volume's disk: vhostmd's 16-byte header and the metrics XML fit with room to spare */
#define VOLUMES_METRICS_DISK_SIZE (1 << 20)

#define VOLUMES_DEFAULT_SECRET_ROOT "/var/run/kvlite/secrets"
#define VOLUMES_DEFAULT_PVC_ROOT "/var/run/kvlite/pvc"

typedef struct launcher_paths {
        const char *run_dir;    /* required, absolute: overlays, empty disks, cidata, EFI vars go here */
        const char *image_root; /* NULL = none; containerDisk V resolves to <image_root>/V if it exists */
        const char *fallback_image_root; /* NULL = none; consulted last, for references that are neither in
                                          * image_root nor an absolute directory: <fallback>/V if it exists */
        const char *pvc_root;            /* NULL = "/var/run/kvlite/pvc"; PVC V is <pvc_root>/<V>/disk.img */
        const char *secret_root; /* NULL = "/var/run/kvlite/secrets"; the keys of data volume V (configMap,
                                  * secret, ...) and cloud-init Secrets of volume V (userdata/userData,
                                  * networkdata/...) are the files in <secret_root>/<V> */
        const char *ovmf_dir;    /* NULL = "/usr/share/OVMF" */
        const char *qemu_img;    /* NULL = "qemu-img" looked up on PATH */
        /* A migration target (--incoming): a hotpluggable claim not found under pvc_root is deferred (its
         * attachment Pod and virt-handler bring it, docs/hotplug-volumes.md) instead of an error. */
        bool defer_hotplug;
} launcher_paths;

/* Prepare every volume, the kernelBoot image and EFI vars. Errors naming the field: -EINVAL (bad
 * reference, missing image, path escaping the image); other -errno for I/O failures. Idempotent enough
 * to re-run into the same run dir (files the launcher creates are recreated). */
int vmi_prepare(vmi *v, const launcher_paths *p, kv_error *err);

/* The volume half of vmi_prepare (exported for tests). */
int volumes_prepare(vmi *v, const launcher_paths *p, kv_error *err);

/* <pvc_root>/persistent-state-for-<VMI name>/<sub> (KubeVirt's backend storage: api/vmi.h), created; NULL
 * with err set when it cannot be. */
char *volumes_backend_dir(const launcher_paths *p, const vmi *v, const char *sub, kv_error *err);

/* The keys of the Secret or ConfigMap the kubelet mounted at dir (what: its name, for errors; fld: the
 * field that names it) as an object {key: text}; -EINVAL naming fld when missing or a key is not text. */
int volumes_read_keys(const char *dir, const char *fld, const char *what, cJSON **out, kv_error *err);

/* Read an image header: qcow2 magic → IMG_QCOW2, anything else → IMG_RAW. A qcow2 with an external data
 * file is refused (-EINVAL): it could make QEMU open an arbitrary host file. */
int image_detect_format(const char *path, image_format *out, uint64_t *virtual_size, kv_error *err);
