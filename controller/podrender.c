/* The launcher Pod for a VMI, per the cluster contract: container `compute` running virt-launcher with the
 * VMI in KVLITE_VMI, one volume per VMI volume that needs one, resources = guest + overhead. */
#include "podrender.h"
#include "api.h"
#include "macro.h"
#include "migration-ports.h"
#include "quantity.h"
#include "vmi.h"

#include <errno.h>
#include <libgen.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

#define MIB (1024ull * 1024ull)

uint64_t pod_memory_overhead(uint64_t guest_bytes, unsigned vcpus)
{
        uint64_t o = 4 * MIB;   /* virt-launcher: one process, RSS measured at ~2-3 MiB */
        o += 64 * MIB;          /* QEMU fixed: binary, device models, firmware, block and I/O buffers */
        o += 32 * MIB;          /* TCG translation cache (the node may have no usable KVM) */
        o += vcpus * 2 * MIB;   /* per vCPU: thread stack and per-CPU state */
        o += guest_bytes / 512; /* guest page tables and dirty bitmaps, as KubeVirt counts them */
        return (o + MIB - 1) / MIB * MIB;
}

static void add_copy(cJSON *dst, const char *key, const cJSON *src)
{
        if (src)
                cJSON_AddItemToObject(dst, key, cJSON_Duplicate(src, 1));
}

cJSON *pod_launcher_vmi(const cJSON *vobj)
{
        cJSON *out = cJSON_CreateObject(), *md = cJSON_CreateObject();
        const cJSON *smd = cJSON_GetObjectItemCaseSensitive(vobj, "metadata");
        cJSON_AddStringToObject(out, "apiVersion", "kubevirt.io/v1");
        cJSON_AddStringToObject(out, "kind", "VirtualMachineInstance");
        cJSON_AddItemToObject(out, "metadata", md);
        const char *keys[] = {"name", "namespace", "uid", "labels"};
        for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
                add_copy(md, keys[i], cJSON_GetObjectItemCaseSensitive(smd, keys[i]));
        const cJSON *ann = cJSON_GetObjectItemCaseSensitive(smd, "annotations");
        if (ann) {
                cJSON *a = cJSON_Duplicate(ann, 1);
                cJSON_DeleteItemFromObjectCaseSensitive(a,
                                                        "kubectl.kubernetes.io/last-applied-configuration");
                cJSON_AddItemToObject(md, "annotations", a);
        }
        add_copy(out, "spec", cJSON_GetObjectItemCaseSensitive(vobj, "spec"));
        return out;
}

static cJSON *env_field(const char *name, const char *field_path)
{
        cJSON *e = cJSON_CreateObject(), *vf = cJSON_CreateObject(), *fr = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "name", name);
        cJSON_AddItemToObject(e, "valueFrom", vf);
        cJSON_AddItemToObject(vf, "fieldRef", fr);
        cJSON_AddStringToObject(fr, "fieldPath", field_path);
        return e;
}

void pod_add_volume(cJSON *vols, cJSON *mounts, const char *name, const char *kind, cJSON *src,
                    const char *path, bool read_only)
{
        cJSON *v = cJSON_CreateObject(), *m = cJSON_CreateObject();
        cJSON_AddStringToObject(v, "name", name);
        cJSON_AddItemToObject(v, kind, src);
        cJSON_AddItemToArray(vols, v);
        cJSON_AddStringToObject(m, "name", name);
        cJSON_AddStringToObject(m, "mountPath", path);
        if (read_only)
                cJSON_AddBoolToObject(m, "readOnly", true);
        cJSON_AddItemToArray(mounts, m);
}

/* cloud-init Secrets go where the launcher reads them (<run>/secrets/V, keys userdata/networkdata); two
 * different Secrets (userDataSecretRef, networkDataSecretRef) are merged into that one directory by a
 * projected volume. Fills src; returns the volume source's kind. */
static const char *cloud_init_secret_source(const vmi_volume *v, cJSON *src)
{
        const char *u = v->user_data_secret, *n = v->network_data_secret;
        if (!u || !n || strcmp(u, n) == 0) {
                cJSON_AddStringToObject(src, "secretName", u ? u : n);
                return "secret";
        }
        cJSON *sources = cJSON_AddArrayToObject(src, "sources");
        const char *names[] = {u, n};
        for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
                cJSON *s = cJSON_CreateObject();
                cJSON_AddStringToObject(cJSON_AddObjectToObject(s, "secret"), "name", names[i]);
                cJSON_AddItemToArray(sources, s);
        }
        return "projected";
}

/* The standard service-account projection (token, ca.crt, namespace), as the kubelet mounts it in every Pod:
 * a serviceAccount volume's keys. The Pod runs as that account (KubeVirt's semantics). */
static void service_account_source(cJSON *src)
{
        cJSON *sources = cJSON_AddArrayToObject(src, "sources"), *s;
        s = cJSON_CreateObject();
        cJSON_AddStringToObject(cJSON_AddObjectToObject(s, "serviceAccountToken"), "path", "token");
        cJSON_AddItemToArray(sources, s);
        s = cJSON_CreateObject();
        cJSON *cm = cJSON_AddObjectToObject(s, "configMap"), *item = cJSON_CreateObject();
        cJSON_AddStringToObject(cm, "name", "kube-root-ca.crt");
        cJSON_AddStringToObject(item, "key", "ca.crt");
        cJSON_AddStringToObject(item, "path", "ca.crt");
        cJSON_AddItemToArray(cJSON_AddArrayToObject(cm, "items"), item);
        cJSON_AddItemToArray(sources, s);
        s = cJSON_CreateObject();
        item = cJSON_CreateObject();
        cJSON_AddStringToObject(item, "path", "namespace");
        cJSON_AddStringToObject(cJSON_AddObjectToObject(item, "fieldRef"), "fieldPath", "metadata.namespace");
        cJSON_AddItemToArray(cJSON_AddArrayToObject(cJSON_AddObjectToObject(s, "downwardAPI"), "items"),
                             item);
        cJSON_AddItemToArray(sources, s);
}

/* configMap, secret, serviceAccount, downwardAPI and sysprep volumes: the Pod volume of the same source,
 * mounted read-only where the launcher reads the keys (<run>/secrets/V). Fills src; returns its kind. */
static const char *data_volume_source(const vmi_volume *v, cJSON *src)
{
        bool secret = v->kind == VOL_SECRET || (v->kind == VOL_SYSPREP && v->source_is_secret);
        switch (v->kind) {
        case VOL_SERVICE_ACCOUNT:
                service_account_source(src);
                return "projected";
        case VOL_DOWNWARD_API:
                cJSON_AddItemToObject(src, "items",
                                      v->downward_fields ? cJSON_Duplicate(v->downward_fields, true)
                                                         : cJSON_CreateArray());
                return "downwardAPI";
        default:
                cJSON_AddStringToObject(src, secret ? "secretName" : "name", v->source_name);
                if (v->source_optional)
                        cJSON_AddBoolToObject(src, "optional", true);
                return secret ? "secret" : "configMap";
        }
}

static void add_arg(cJSON *cmd, const char *a, const char *b)
{
        cJSON_AddItemToArray(cmd, cJSON_CreateString(a));
        cJSON_AddItemToArray(cmd, cJSON_CreateString(b));
}

/* A registry containerDisk comes through kvlite-importer's pull path (mirrors in priority order, failover,
 * digest pinning) in an init container, into an emptyDir the launcher reads as <image-root>/<volume>: no
 * network for the launcher, no kubelet image volumes. Local directories stay image volumes. */
static bool pulled_image(const char *image, const pod_render_opts *opts)
{
        return opts->importer_image && image && image[0] != '/';
}

/* files: NULL for a containerDisk (the disk file), else the kernelBoot files to take from the image. */
static void add_pull_container(cJSON *spec, cJSON *vols, const char *vol_name, const char *image,
                               const char *path, const char *const *files, const pod_render_opts *opts)
{
        cJSON *inits = cJSON_GetObjectItemCaseSensitive(spec, "initContainers");
        if (!inits)
                inits = cJSON_AddArrayToObject(spec, "initContainers");
        cJSON *ctr = cJSON_CreateObject(), *cmd = cJSON_CreateArray(), *mounts = cJSON_CreateArray();
        char name[300];
        cJSON_AddItemToArray(inits, ctr);
        snprintf(name, sizeof(name), POD_CONTAINER_DISK_PREFIX "%s", vol_name);
        cJSON_AddStringToObject(ctr, "name", name);
        cJSON_AddStringToObject(ctr, "image", opts->importer_image);
        cJSON_AddItemToArray(cmd, cJSON_CreateString("kvlite-importer"));
        add_arg(cmd, files ? "--container-files" : "--container-disk", image);
        for (size_t i = 0; files && files[i]; i++)
                add_arg(cmd, "--file", files[i]);
        add_arg(cmd, "--dest", path);
        add_arg(cmd, "--termination-log", "/dev/termination-log");
        if (opts->registry_secret)
                add_arg(cmd, "--registry-config", POD_REGISTRY_MOUNT "/registries.yaml");
        cJSON_AddItemToObject(ctr, "command", cmd);
        cJSON_AddItemToObject(ctr, "volumeMounts", mounts);
        cJSON *m = cJSON_CreateObject();
        snprintf(name, sizeof(name), files ? "%s" : "vol-%s", vol_name);
        cJSON_AddStringToObject(m, "name", name);
        cJSON_AddStringToObject(m, "mountPath", path);
        cJSON_AddItemToArray(mounts, m);
        if (opts->registry_secret) {
                m = cJSON_CreateObject();
                cJSON_AddStringToObject(m, "name", "registries");
                cJSON_AddStringToObject(m, "mountPath", POD_REGISTRY_MOUNT);
                cJSON_AddBoolToObject(m, "readOnly", true);
                cJSON_AddItemToArray(mounts, m);
                if (cJSON_GetArraySize(inits) == 1) { /* one volume for all pulls */
                        cJSON *v = cJSON_CreateObject();
                        cJSON_AddStringToObject(v, "name", "registries");
                        cJSON_AddStringToObject(cJSON_AddObjectToObject(v, "secret"), "secretName",
                                                opts->registry_secret);
                        cJSON_AddItemToArray(vols, v);
                }
        }
        cJSON_AddStringToObject(ctr, "terminationMessagePath", "/dev/termination-log");
        cJSON_AddStringToObject(ctr, "terminationMessagePolicy", "FallbackToLogsOnError");
}

static bool attached_volume(const pod_render_opts *opts, const char *name)
{
        for (const char *const *a = opts->attached_volumes; a && *a; a++)
                if (!strcmp(*a, name))
                        return true;
        return false;
}

static void map_volume(const vmi_volume *v, const pod_render_opts *opts, cJSON *spec, cJSON *vols,
                       cJSON *mounts)
{
        char path[512], pname[300];
        cJSON *src = cJSON_CreateObject();
        snprintf(pname, sizeof(pname), "vol-%s", v->name); /* never collides with our own "run" volume */
        switch (v->kind) {
        case VOL_CONTAINER_DISK:
                snprintf(path, sizeof(path), LAUNCHER_RUN_DIR "/images/%s", v->name);
                if (pulled_image(v->image, opts)) {
                        pod_add_volume(vols, mounts, pname, "emptyDir", src, path, true);
                        add_pull_container(spec, vols, v->name, v->image, path, NULL, opts);
                        return;
                }
                cJSON_AddStringToObject(src, "reference", v->image);
                cJSON_AddStringToObject(src, "pullPolicy", "IfNotPresent");
                pod_add_volume(vols, mounts, pname, "image", src, path, true);
                return;
        case VOL_PVC:
        case VOL_EPHEMERAL:
                cJSON_AddStringToObject(src, "claimName", v->claim_name);
                if (v->claim_readonly)
                        cJSON_AddBoolToObject(src, "readOnly", true);
                snprintf(path, sizeof(path), LAUNCHER_RUN_DIR "/pvc/%s", v->name);
                pod_add_volume(vols, mounts, pname, "persistentVolumeClaim", src, path, v->claim_readonly);
                return;
        case VOL_HOST_DISK: {
                /* the directory, so DiskOrCreate can create the image file inside it */
                _cleanup_free_ char *copy = strdup(v->host_path);
                const char *dir = copy ? dirname(copy) : "/";
                cJSON_AddStringToObject(src, "path", dir);
                cJSON_AddStringToObject(src, "type", v->host_create ? "DirectoryOrCreate" : "Directory");
                pod_add_volume(vols, mounts, pname, "hostPath", src, dir, false);
                return;
        }
        case VOL_CLOUD_INIT_NOCLOUD:
        case VOL_CLOUD_INIT_CONFIG_DRIVE:
                if (v->user_data_secret || v->network_data_secret) {
                        snprintf(path, sizeof(path), LAUNCHER_RUN_DIR "/secrets/%s", v->name);
                        const char *kind = cloud_init_secret_source(v, src);
                        pod_add_volume(vols, mounts, pname, kind, src, path, true);
                        return;
                }
                break;
        case VOL_CONFIG_MAP:
        case VOL_SECRET:
        case VOL_SERVICE_ACCOUNT:
        case VOL_DOWNWARD_API:
        case VOL_SYSPREP: {
                snprintf(path, sizeof(path), LAUNCHER_RUN_DIR "/secrets/%s", v->name);
                const char *kind = data_volume_source(v, src);
                pod_add_volume(vols, mounts, pname, kind, src, path, true);
                return;
        }
        default:
                break;
        }
        cJSON_Delete(src);
}

/* spec.accessCredentials: each Secret read-only where the launcher reads it, and, as the kubelet does for a
 * Secret volume, kept up to date there (the guest agent method follows changes). */
static void map_access_credentials(const struct vmi *model, cJSON *vols, cJSON *mounts)
{
        for (size_t i = 0; i < model->n_access_creds; i++) {
                char path[512], pname[32];
                snprintf(pname, sizeof(pname), "access-cred-%zu", i); /* "vol-" prefixes the volumes' */
                snprintf(path, sizeof(path), LAUNCHER_RUN_DIR "/secrets/" VMI_ACCESS_CRED_DIR "/%s",
                         model->access_creds[i].secret);
                cJSON *src = cJSON_CreateObject();
                cJSON_AddStringToObject(src, "secretName", model->access_creds[i].secret);
                pod_add_volume(vols, mounts, pname, "secret", src, path, true);
        }
}

/* The kernelBoot container image at <image-root>/kernelboot, where the launcher resolves it: a registry
 * image's kernel and initrd pulled by an init container (the containerDisks' pull path, failover included)
 * into an emptyDir at their paths in the image, a local directory as an image volume. */
static void map_kernel_boot(const struct vmi *model, const pod_render_opts *opts, cJSON *spec, cJSON *vols,
                            cJSON *mounts)
{
        if (!model->kernel_boot || !model->kernel_image)
                return;
        const char *path = LAUNCHER_RUN_DIR "/images/" VMI_KERNEL_BOOT_IMAGE_NAME;
        if (pulled_image(model->kernel_image, opts) && (model->kernel_path || model->initrd_path)) {
                const char *files[3] = {0};
                size_t n = 0;
                if (model->kernel_path)
                        files[n++] = model->kernel_path;
                if (model->initrd_path)
                        files[n++] = model->initrd_path;
                pod_add_volume(vols, mounts, VMI_KERNEL_BOOT_IMAGE_NAME, "emptyDir", cJSON_CreateObject(),
                               path, true);
                add_pull_container(spec, vols, VMI_KERNEL_BOOT_IMAGE_NAME, model->kernel_image, path, files,
                                   opts);
                return;
        }
        cJSON *src = cJSON_CreateObject();
        cJSON_AddStringToObject(src, "reference", model->kernel_image);
        cJSON_AddStringToObject(src, "pullPolicy", "IfNotPresent");
        pod_add_volume(vols, mounts, "kernelboot", "image", src,
                       LAUNCHER_RUN_DIR "/images/" VMI_KERNEL_BOOT_IMAGE_NAME, true);
}

/* The node devices the launcher needs, as KubeVirt's launcher asks for them (limits; requests default to
 * limits for extended resources): /dev/kvm unless emulation is the cluster's choice, /dev/net/tun for the Pod
 * network, /dev/vhost-net with KVM, /dev/vhost-vsock when the VMI asks for a VSOCK device. */
static void render_devices(const cJSON *vobj, const pod_render_opts *opts, cJSON *lim)
{
        if (!opts->use_emulation)
                cJSON_AddStringToObject(lim, POD_RESOURCE_KVM, "1");
        cJSON_AddStringToObject(lim, POD_RESOURCE_TUN, "1");
        if (!opts->use_emulation)
                cJSON_AddStringToObject(lim, POD_RESOURCE_VHOST_NET, "1");
        if (cJSON_IsTrue(kube_obj(vobj, "spec.domain.devices.autoattachVSOCK")))
                cJSON_AddStringToObject(lim, POD_RESOURCE_VHOST_VSOCK, "1");
}

/* KubeVirt's hugepages resource name for a page size: hugepages-2Mi, hugepages-1Gi. */
static void hugepages_resource(uint64_t page, char *out, size_t size)
{
        if (page >= (1ull << 30) && page % (1ull << 30) == 0)
                snprintf(out, size, "hugepages-%lluGi", (unsigned long long)(page >> 30));
        else
                snprintf(out, size, "hugepages-%lluMi", (unsigned long long)(page >> 20));
}

/* dedicatedCpuPlacement: a Guaranteed Pod, as KubeVirt renders it, so that the kubelet's static CPU manager
 * gives it whole CPUs: cpu = one per vCPU (+1 for isolateEmulatorThread), limits equal to requests. Guest
 * memory on hugepages: the hugepages-<size> resource holds it, memory only the overhead. */
static void render_dedicated(const struct vmi *model, cJSON *req, cJSON *lim)
{
        char buf[64], name[32];
        unsigned vcpus = model->sockets * model->cores * model->threads;
        if (model->hugepage_size) {
                hugepages_resource(model->hugepage_size, name, sizeof(name));
                snprintf(buf, sizeof(buf), "%llu", (unsigned long long)model->memory);
                cJSON_AddStringToObject(req, name, buf);
                cJSON_AddStringToObject(lim, name, buf);
        }
        if (!model->dedicated_cpus)
                return;
        snprintf(buf, sizeof(buf), "%u", vcpus + (model->isolate_emulator_thread ? 1 : 0));
        cJSON_ReplaceItemInObjectCaseSensitive(req, "cpu", cJSON_CreateString(buf));
        cJSON_DeleteItemFromObjectCaseSensitive(lim, "cpu");
        cJSON_AddStringToObject(lim, "cpu", buf);
        cJSON_DeleteItemFromObjectCaseSensitive(lim, "memory");
        cJSON_AddItemToObject(lim, "memory",
                              cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(req, "memory"), 1));
}

static int render_resources(const cJSON *vobj, const struct vmi *model, const pod_render_opts *opts,
                            cJSON *container, kv_error *err)
{
        char buf[64];
        unsigned vcpus = model->sockets * model->cores * model->threads;
        cJSON *res = cJSON_AddObjectToObject(container, "resources"),
              *req = cJSON_AddObjectToObject(res, "requests");
        uint64_t mem = (model->hugepage_size ? 0 : model->memory) + pod_memory_overhead(model->memory, vcpus);
        snprintf(buf, sizeof(buf), "%llu", (unsigned long long)mem);
        cJSON_AddStringToObject(req, "memory", buf);
        const cJSON *vreq = kube_obj(vobj, "spec.domain.resources.requests");
        const cJSON *cpu = cJSON_GetObjectItemCaseSensitive(vreq, "cpu");
        if (cpu) {
                long double q;
                if (quantity_parse(cpu, "spec.domain.resources.requests.cpu", &q, err) < 0)
                        return -EINVAL;
                add_copy(req, "cpu", cpu);
        } else { /* KubeVirt's default CPU allocation ratio: 10 vCPUs per host CPU */
                snprintf(buf, sizeof(buf), "%um", vcpus * 100);
                cJSON_AddStringToObject(req, "cpu", buf);
        }
        const cJSON *vlim = kube_obj(vobj, "spec.domain.resources.limits");
        cJSON *lim = cJSON_AddObjectToObject(res, "limits");
        if (vlim) {
                const cJSON *lmem = cJSON_GetObjectItemCaseSensitive(vlim, "memory");
                if (lmem) {
                        uint64_t b;
                        if (quantity_bytes(lmem, "spec.domain.resources.limits.memory", &b, err) < 0)
                                return -EINVAL;
                        snprintf(buf, sizeof(buf), "%llu",
                                 (unsigned long long)(b + pod_memory_overhead(b, vcpus)));
                        cJSON_AddStringToObject(lim, "memory", buf);
                }
                add_copy(lim, "cpu", cJSON_GetObjectItemCaseSensitive(vlim, "cpu"));
        }
        render_dedicated(model, req, lim);
        render_devices(vobj, opts, lim);
        return 0;
}

/* KubeVirt's CalculateVirtualMachineInstanceID: the name, or for names over 63 characters the first 54, '-'
 * and 8 hex digits of sha1(name), so that it fits a label value. */
static void vmi_instance_id(const char *name, char out[64])
{
        size_t n = strlen(name);
        if (n <= 63) {
                snprintf(out, 64, "%s", name);
                return;
        }
        unsigned char md[SHA_DIGEST_LENGTH];
        SHA1((const unsigned char *)name, n, md);
        snprintf(out, 64, "%.54s-%02x%02x%02x%02x", name, md[0], md[1], md[2], md[3]);
}

static cJSON *render_metadata(const cJSON *vobj, const struct vmi *model)
{
        const char *name = kube_str(vobj, "metadata.name"), *uid = kube_str(vobj, "metadata.uid");
        cJSON *md = cJSON_CreateObject(), *labels;
        char gen[300];
        snprintf(gen, sizeof(gen), "virt-launcher-%.230s-", name);
        cJSON_AddStringToObject(md, "generateName", gen);
        add_copy(md, "namespace", kube_obj(vobj, "metadata.namespace"));
        const cJSON *vl = kube_obj(vobj, "metadata.labels");
        labels = vl ? cJSON_Duplicate(vl, 1) : cJSON_CreateObject();
        cJSON_AddItemToObject(md, "labels", labels);
        cJSON_DeleteItemFromObjectCaseSensitive(labels, POD_LABEL_APP);
        cJSON_DeleteItemFromObjectCaseSensitive(labels, POD_LABEL_CREATED_BY);
        cJSON_DeleteItemFromObjectCaseSensitive(labels, POD_LABEL_VM_NAME);
        cJSON_DeleteItemFromObjectCaseSensitive(labels, POD_LABEL_VMI_ID);
        char id[64];
        vmi_instance_id(name, id);
        cJSON_AddStringToObject(labels, POD_LABEL_APP, "virt-launcher");
        cJSON_AddStringToObject(labels, POD_LABEL_CREATED_BY, uid);
        cJSON_AddStringToObject(labels, POD_LABEL_VM_NAME, name);
        cJSON_AddStringToObject(labels, POD_LABEL_VMI_ID, id);
        cJSON *ann = cJSON_AddObjectToObject(md, "annotations");
        cJSON_AddStringToObject(ann, "kubevirt.io/domain", name);
        char *multus = net_multus_annotation(&model->net, kube_str(vobj, "metadata.namespace") ?: "default");
        if (multus)
                cJSON_AddStringToObject(ann, POD_ANNOTATION_MULTUS_NETWORKS, multus);
        free(multus);
        cJSON_AddItemToArray(cJSON_AddArrayToObject(md, "ownerReferences"),
                             kube_controller_ref(kube_vmi.api_version, kube_vmi.kind, name, uid));
        return md;
}

/* --pod-network wires the Pod's netns (bridge, tap, nft rules: NET_ADMIN; the DHCP server's port 67:
 * NET_BIND_SERVICE); the launcher drops NET_ADMIN once wired. virtiofsd, started before that, confines
 * itself with chroot (SYS_CHROOT) when the VMI has filesystems. Nothing else. See docs/networking.md. */
static cJSON *launcher_security_context(bool virtiofs)
{
        const char *add[] = {"NET_ADMIN", "NET_BIND_SERVICE", "SYS_CHROOT"}, *drop[] = {"ALL"};
        cJSON *sc = cJSON_CreateObject(), *caps = cJSON_AddObjectToObject(sc, "capabilities");
        cJSON_AddItemToObject(caps, "add", cJSON_CreateStringArray(add, ARRAY_SIZE(add) - !virtiofs));
        cJSON_AddItemToObject(caps, "drop", cJSON_CreateStringArray(drop, ARRAY_SIZE(drop)));
        return sc;
}

static cJSON *render_container(const cJSON *vobj, const struct vmi *model, const pod_render_opts *opts)
{
        cJSON *c = cJSON_CreateObject();
        cJSON_AddStringToObject(c, "name", "compute");
        cJSON_AddStringToObject(c, "image", opts->launcher_image);
        const char *argv[] = {"virt-launcher",
                              "--vmi-env",
                              "KVLITE_VMI",
                              "--run-dir",
                              LAUNCHER_RUN_DIR,
                              "--image-root",
                              LAUNCHER_RUN_DIR "/images",
                              "--status-file",
                              LAUNCHER_RUN_DIR "/status.json",
                              "--pod-network"};
        cJSON_AddItemToObject(c, "command", cJSON_CreateStringArray(argv, ARRAY_SIZE(argv)));
        cJSON *env = cJSON_AddArrayToObject(c, "env"), *ev = cJSON_CreateObject();
        cJSON *lvmi = pod_launcher_vmi(vobj);
        char *json = cJSON_PrintUnformatted(lvmi);
        cJSON_Delete(lvmi);
        cJSON_AddStringToObject(ev, "name", "KVLITE_VMI");
        cJSON_AddStringToObject(ev, "value", json ? json : "");
        free(json);
        cJSON_AddItemToArray(env, ev);
        cJSON_AddItemToArray(env, env_field("POD_NAME", "metadata.name"));
        cJSON_AddItemToArray(env, env_field("POD_NAMESPACE", "metadata.namespace"));
        cJSON_AddStringToObject(c, "terminationMessagePolicy", "FallbackToLogsOnError");
        cJSON_AddItemToObject(c, "securityContext", launcher_security_context(model->n_filesystems > 0));
        return c;
}

cJSON *pod_toleration_parse(const char *spec, kv_error *err)
{
        const char *colon = strrchr(spec, ':'), *eq = strchr(spec, '=');
        if (!colon || colon == spec || (eq && eq > colon))
                return kv_error_set(err, EINVAL, "\"%s\": expected KEY[=VALUE]:EFFECT", spec), NULL;
        const char *effect = colon + 1;
        if (strcmp(effect, "NoSchedule") && strcmp(effect, "PreferNoSchedule") && strcmp(effect, "NoExecute"))
                return kv_error_set(err, EINVAL,
                                    "\"%s\": effect %s is not NoSchedule, PreferNoSchedule or NoExecute",
                                    spec, effect),
                       NULL;
        size_t keylen = (size_t)((eq ? eq : colon) - spec);
        if (!keylen)
                return kv_error_set(err, EINVAL, "\"%s\": empty key", spec), NULL;
        cJSON *t = cJSON_CreateObject();
        char *key = strndup(spec, keylen), *value = eq ? strndup(eq + 1, (size_t)(colon - eq - 1)) : NULL;
        cJSON_AddStringToObject(t, "key", key ? key : "");
        cJSON_AddStringToObject(t, "operator", eq ? "Equal" : "Exists");
        if (eq)
                cJSON_AddStringToObject(t, "value", value ? value : "");
        cJSON_AddStringToObject(t, "effect", effect);
        free(key);
        free(value);
        return t;
}

/* The VMI's nodeSelector plus kubevirt.io/schedulable=true (nodes whose node agent says they run VMs), and
 * the VMI's tolerations plus the cluster's defaults that it does not already carry. */
static void render_placement(const cJSON *vspec, const pod_render_opts *opts, cJSON *spec)
{
        const cJSON *vsel = cJSON_GetObjectItemCaseSensitive(vspec, "nodeSelector");
        cJSON *sel = cJSON_IsObject(vsel) ? cJSON_Duplicate(vsel, true) : cJSON_CreateObject();
        cJSON_DeleteItemFromObjectCaseSensitive(sel, POD_NODE_SELECTOR_SCHEDULABLE);
        cJSON_AddStringToObject(sel, POD_NODE_SELECTOR_SCHEDULABLE, "true");
        cJSON_AddItemToObject(spec, "nodeSelector", sel);
        const cJSON *vtol = cJSON_GetObjectItemCaseSensitive(vspec, "tolerations"), *t;
        cJSON *tol = cJSON_IsArray(vtol) ? cJSON_Duplicate(vtol, true) : cJSON_CreateArray();
        cJSON_ArrayForEach(t, opts->tolerations)
        {
                bool have = false;
                const cJSON *o;
                cJSON_ArrayForEach(o, tol) have = have || cJSON_Compare(o, t, true);
                if (!have)
                        cJSON_AddItemToArray(tol, cJSON_Duplicate(t, true));
        }
        if (cJSON_GetArraySize(tol))
                cJSON_AddItemToObject(spec, "tolerations", tol);
        else
                cJSON_Delete(tol);
}

/* virt-handler's API-server relay: its node directory, read-only, and the reporter's KVLITE_API_RELAY. */
static void add_api_relay(const char *dir, cJSON *container, cJSON *vols, cJSON *mounts)
{
        cJSON *src = cJSON_CreateObject(), *ev = cJSON_CreateObject();
        cJSON_AddStringToObject(src, "path", dir);
        cJSON_AddStringToObject(src, "type", "DirectoryOrCreate");
        pod_add_volume(vols, mounts, "kvlite-node", "hostPath", src, POD_NODE_RELAY_MOUNT, true);
        cJSON_AddStringToObject(ev, "name", "KVLITE_API_RELAY");
        cJSON_AddStringToObject(ev, "value", POD_NODE_RELAY_MOUNT "/" POD_NODE_RELAY_SOCKET);
        cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(container, "env"), ev);
}

static int render_spec(const cJSON *vobj, const struct vmi *model, const pod_render_opts *opts, cJSON *spec,
                       kv_error *err)
{
        const cJSON *vspec = cJSON_GetObjectItemCaseSensitive(vobj, "spec");
        cJSON *c = render_container(vobj, model, opts),
              *containers = cJSON_AddArrayToObject(spec, "containers");
        cJSON_AddItemToArray(containers, c);
        cJSON_AddStringToObject(spec, "restartPolicy", "Never");
        /* the launcher needs the VMI's grace for the guest plus time to quit QEMU, as KubeVirt's +15 s */
        cJSON_AddNumberToObject(spec, "terminationGracePeriodSeconds", (double)(model->grace_seconds + 15));
        const char *account = opts->service_account;
        for (size_t i = 0; i < model->n_volumes; i++) /* KubeVirt: the Pod runs as the volume's account */
                if (model->volumes[i].kind == VOL_SERVICE_ACCOUNT)
                        account = model->volumes[i].source_name;
        if (account)
                cJSON_AddStringToObject(spec, "serviceAccountName", account);
        const char *copied[] = {
            "affinity",  "schedulerName", "priorityClassName", "dnsPolicy",
            "dnsConfig", "hostname",      "subdomain",         "topologySpreadConstraints"};
        for (size_t i = 0; i < ARRAY_SIZE(copied); i++)
                add_copy(spec, copied[i], cJSON_GetObjectItemCaseSensitive(vspec, copied[i]));
        render_placement(vspec, opts, spec);
        int r = render_resources(vobj, model, opts, c, err);
        if (r < 0)
                return r;
        cJSON *vols = cJSON_AddArrayToObject(spec, "volumes"),
              *mounts = cJSON_AddArrayToObject(c, "volumeMounts");
        pod_add_volume(vols, mounts, "run", "emptyDir", cJSON_CreateObject(), LAUNCHER_RUN_DIR, false);
        if (opts->api_relay_dir)
                add_api_relay(opts->api_relay_dir, c, vols, mounts);
        for (size_t i = 0; i < model->n_volumes; i++)
                if (!attached_volume(opts, model->volumes[i].name))
                        map_volume(&model->volumes[i], opts, spec, vols, mounts);
        map_kernel_boot(model, opts, spec, vols, mounts);
        map_access_credentials(model, vols, mounts);
        if (vmi_needs_backend_storage(model)) { /* where the launcher's PVC root has it (api/vmi.h) */
                char claim[300], path[400];
                snprintf(claim, sizeof(claim), VMI_BACKEND_STORAGE_PREFIX "%s", model->name);
                snprintf(path, sizeof(path), LAUNCHER_RUN_DIR "/pvc/%s", claim);
                cJSON *src = cJSON_CreateObject();
                cJSON_AddStringToObject(src, "claimName", claim);
                pod_add_volume(vols, mounts, POD_BACKEND_STORAGE_VOLUME, "persistentVolumeClaim", src, path,
                               false);
        }
        if (model->hugepage_size) { /* KubeVirt's hugetlbfs for the guest's memory */
                cJSON *ed = cJSON_CreateObject();
                cJSON_AddStringToObject(ed, "medium", "HugePages");
                pod_add_volume(vols, mounts, "hugepages", "emptyDir", ed, "/dev/hugepages", false);
        }
        return 0;
}

bool pod_uses_backend_storage(const cJSON *pod)
{
        const cJSON *v;
        cJSON_ArrayForEach(
            v, kube_obj(pod, "spec.volumes")) if (!strcmp(kube_str(v, "name") ?: "",
                                                          POD_BACKEND_STORAGE_VOLUME)) return true;
        return false;
}

int pod_render(const cJSON *vobj, const pod_render_opts *opts, cJSON **pod, kv_error *err)
{
        _cleanup_(vmi_freep) struct vmi *model = NULL;
        *pod = NULL;
        if (!kube_str(vobj, "metadata.name") || !kube_str(vobj, "metadata.uid"))
                return kv_error_set(err, EINVAL, "metadata.uid: required");
        int r = vmi_from_json(vobj, &model, err);
        if (r < 0)
                return r;
        cJSON *p = cJSON_CreateObject();
        cJSON_AddStringToObject(p, "apiVersion", "v1");
        cJSON_AddStringToObject(p, "kind", "Pod");
        cJSON_AddItemToObject(p, "metadata", render_metadata(vobj, model));
        r = render_spec(vobj, model, opts, cJSON_AddObjectToObject(p, "spec"), err);
        if (r < 0) {
                cJSON_Delete(p);
                return r;
        }
        *pod = p;
        return 0;
}

/* The migration target: the same Pod, told to wait for the incoming stream and its disks' NBD mirror on
 * the contract's ports with the migration's configuration, and labelled with the migration
 * (docs/cluster-live-ops.md). */
int pod_render_migration_target(const cJSON *vobj, const pod_render_opts *opts, const char *migration_uid,
                                const cJSON *config, const char *policy, cJSON **pod, kv_error *err)
{
        _cleanup_free_ char *cfg = cJSON_PrintUnformatted(config);
        if (!cfg)
                return kv_error_set(err, ENOMEM, "migration configuration");
        int r = pod_render(vobj, opts, pod, err);
        if (r < 0)
                return r;
        cJSON_AddStringToObject(kube_obj(*pod, "metadata.labels"), POD_LABEL_MIGRATION_JOB, migration_uid);
        /* Annotations too: the controller's Pod cache drops the spec (controller.c, prune_pod). */
        cJSON *meta = kube_obj(*pod, "metadata"), *ann = kube_obj(meta, "annotations");
        if (!cJSON_IsObject(ann))
                ann = cJSON_AddObjectToObject(meta, "annotations");
        cJSON_AddStringToObject(ann, POD_ANNOTATION_MIGRATION_CONFIG, cfg);
        if (policy && *policy)
                cJSON_AddStringToObject(ann, POD_ANNOTATION_MIGRATION_POLICY, policy);
        cJSON *cmd = kube_obj(cJSON_GetArrayItem(kube_obj(*pod, "spec.containers"), 0), "command");
        char uri[64], nbd[64];
        snprintf(uri, sizeof(uri), "tcp:0.0.0.0:%d", KV_MIGRATION_PORT);
        snprintf(nbd, sizeof(nbd), "0.0.0.0:%d", KV_MIGRATION_NBD_PORT);
        const char *extra[] = {"--incoming", uri, "--incoming-nbd", nbd, "--incoming-config", cfg};
        for (size_t i = 0; i < ARRAY_SIZE(extra); i++)
                cJSON_AddItemToArray(cmd, cJSON_CreateString(extra[i]));
        return 0;
}

int pod_migration_config(const cJSON *pod, cJSON **config, const char **policy, kv_error *err)
{
        const cJSON *ann = kube_obj(pod, "metadata.annotations");
        *policy =
            cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ann, POD_ANNOTATION_MIGRATION_POLICY));
        if (!*policy)
                *policy = "";
        const char *text =
            cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ann, POD_ANNOTATION_MIGRATION_CONFIG));
        *config = text ? cJSON_Parse(text) : NULL;
        if (!text || cJSON_IsObject(*config))
                return 0;
        cJSON_Delete(*config);
        *config = NULL;
        return kv_error_set(err, EINVAL, "target Pod %s: annotation %s is not a JSON object",
                            kube_str(pod, "metadata.name") ?: "", POD_ANNOTATION_MIGRATION_CONFIG);
}
