/* qemu-argv: VMI model → QEMU argv, top half: process-wide options, machine, CPU, memory, firmware,
 * monitor and serial/VNC. Devices are in qemu-argv-devices.c. */
#include "qemu-argv.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jfield.h"
#include "macro.h"
#include "qemu-argv-internal.h"

#define DEFAULT_OVMF_DIR "/usr/share/OVMF"
#define MEMORY_HOTPLUG_SLOTS 8

char *qemu_opt_escape(const char *value)
{
        size_t n = 0;
        for (const char *c = value; *c; c++)
                n += *c == ',' ? 2 : 1;
        char *out = malloc(n + 1), *w = out;
        if (!out)
                return NULL;
        for (const char *c = value; *c; c++) {
                *w++ = *c;
                if (*c == ',')
                        *w++ = ',';
        }
        *w = '\0';
        return out;
}

int push_json(strv *s, const char *opt, cJSON *obj, kv_error *err)
{
        char *text = obj ? cJSON_PrintUnformatted(obj) : NULL;
        cJSON_Delete(obj);
        if (!text || strv_push(s, opt) < 0 || strv_push_take(s, text) < 0)
                return kv_error_set(err, ENOMEM, "out of memory building the QEMU command line");
        return 0;
}

int push_optf(strv *s, const char *opt, kv_error *err, const char *fmt, ...)
{
        char *text = NULL;
        va_list ap;
        va_start(ap, fmt);
        int r = vasprintf(&text, fmt, ap);
        va_end(ap);
        if (r < 0 || strv_push(s, opt) < 0 || strv_push_take(s, text) < 0)
                return kv_error_set(err, ENOMEM, "out of memory building the QEMU command line");
        return 0;
}

static int push_escaped(strv *s, const char *opt, const char *prefix, const char *value, const char *suffix,
                        kv_error *err)
{
        _cleanup_free_ char *e = qemu_opt_escape(value);
        if (!e)
                return kv_error_set(err, ENOMEM, "out of memory");
        return push_optf(s, opt, err, "%s%s%s", prefix, e, suffix);
}

static int add_process_options(argv_builder *b)
{
        static const char *const fixed[] = {
            "-S",
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-sandbox",
            "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"};
        _cleanup_free_ char *name = NULL;
        if (asprintf(&name, "%s_%s", b->v->namespace, b->v->name) < 0)
                return kv_error_set(b->err, ENOMEM, "out of memory");
        JF_TRY(push_escaped(b->argv, "-name", "guest=", name, "", b->err));
        for (size_t i = 0; i < ARRAY_SIZE(fixed); i++)
                if (strv_push(b->argv, fixed[i]) < 0)
                        return kv_error_set(b->err, ENOMEM, "out of memory");
        return 0;
}

static int add_machine(argv_builder *b)
{
        const vmi *v = b->v;
        char extra[128] = "";
        if (v->firmware == FW_EFI)
                snprintf(extra, sizeof(extra), ",pflash0=fw-code,pflash1=fw-vars");
        if (v->bios_use_serial)
                snprintf(extra + strlen(extra), sizeof(extra) - strlen(extra), ",graphics=off");
        if (v->hpet != TRI_DEFAULT)
                snprintf(extra + strlen(extra), sizeof(extra) - strlen(extra), ",hpet=%s",
                         v->hpet == TRI_ON ? "on" : "off");
        if (v->pit != TRI_DEFAULT)
                snprintf(extra + strlen(extra), sizeof(extra) - strlen(extra), ",pit=%s",
                         v->pit == TRI_ON ? "on" : "off");
        JF_TRY(push_optf(b->argv, "-machine", b->err, "%s,acpi=%s,smm=%s%s", v->machine,
                         v->acpi ? "on" : "off", v->smm ? "on" : "off", extra));
        if (strcmp(b->o->accel, "kvm") && strcmp(b->o->accel, "tcg"))
                return kv_error_set(b->err, EINVAL, "accelerator \"%s\" is not kvm or tcg", b->o->accel);
        if (v->kvm_only && strcmp(b->o->accel, "kvm"))
                return kv_error_set(
                    b->err, EINVAL,
                    "%s: needs KVM (QEMU refuses it under TCG) and this host lacks usable KVM", v->kvm_only);
        JF_TRY(push_optf(b->argv, "-accel", b->err, "%s", b->o->accel));
        if (v->pit_policy) /* the in-kernel PIT's policy for ticks the guest missed, as libvirt sets it */
                JF_TRY(push_optf(b->argv, "-global", b->err, "kvm-pit.lost_tick_policy=%s", v->pit_policy));
        return 0;
}

/* host-passthrough/host-model need a real host CPU: `host` under KVM, `max` (everything TCG emulates)
 * otherwise. KubeVirt's default model is host-model. */
static int add_cpu(argv_builder *b)
{
        const vmi *v = b->v;
        bool kvm = !strcmp(b->o->accel, "kvm");
        const char *model = v->cpu_model == CPU_MODEL_NAMED ? v->cpu_model_name : kvm ? "host" : "max";
        size_t len = strlen(model) + 1;
        for (char **f = v->cpu_features; f && *f; f++)
                len += strlen(*f) + 1;
        for (char **f = v->cpu_props; f && *f; f++)
                len += strlen(*f) + 1;
        _cleanup_free_ char *cpu = malloc(len);
        if (!cpu)
                return kv_error_set(b->err, ENOMEM, "out of memory");
        strcpy(cpu, model); /* feature names were validated to [a-z0-9._-]: nothing to escape */
        for (char **f = v->cpu_features; f && *f; f++)
                strcat(strcat(cpu, ","), *f);
        /* properties from validated names and numbers; hv-vendor-id is [A-Za-z0-9] */
        for (char **f = v->cpu_props; f && *f; f++)
                strcat(strcat(cpu, ","), *f);
        JF_TRY(push_optf(b->argv, "-cpu", b->err, "%s", cpu));
        unsigned per_socket = v->cores * v->threads;
        if (v->max_sockets)
                return push_optf(b->argv, "-smp", b->err, "cpus=%u,sockets=%u,cores=%u,threads=%u,maxcpus=%u",
                                 v->sockets * per_socket, v->max_sockets, v->cores, v->threads,
                                 v->max_sockets * per_socket);
        return push_optf(b->argv, "-smp", b->err, "cpus=%u,sockets=%u,cores=%u,threads=%u",
                         v->sockets * per_socket, v->sockets, v->cores, v->threads);
}

/* An explicit RAM backend. memory.hugepages: a file on the hugetlbfs of that page size, preallocated
 * (libvirt's choice for KubeVirt: a guest that cannot get its pages fails at start, not later); with
 * numa.guestMappingPassthrough it is the memory of the guest's one NUMA node. filesystems: virtiofsd
 * (vhost-user) maps the guest's RAM, so it must be shared (a memfd without hugepages). */
static int add_memory_backend(argv_builder *b)
{
        const vmi *v = b->v;
        const char *dir = b->o->hugepages_dir ? b->o->hugepages_dir : QEMU_ARGV_HUGEPAGES_DIR;
        cJSON *mem = jstr(cJSON_CreateObject(), "qom-type",
                          v->hugepage_size ? "memory-backend-file" : "memory-backend-memfd");
        mem = jnum(jstr(mem, "id", "mem0"), "size", (double)v->memory);
        if (v->hugepage_size)
                mem = jbool(jstr(mem, "mem-path", dir), "prealloc", true);
        if (v->n_filesystems)
                mem = jbool(mem, "share", true);
        JF_TRY(push_json(b->argv, "-object", mem, b->err));
        if (v->hugepage_size && v->numa_passthrough)
                return push_optf(b->argv, "-numa", b->err, "node,nodeid=0,cpus=0-%u,memdev=mem0",
                                 vmi_vcpus(v) - 1);
        return push_optf(b->argv, "-machine", b->err, "memory-backend=mem0");
}

static int add_memory(argv_builder *b)
{
        uint64_t mib = b->v->memory >> 20, max_mib = b->v->max_memory >> 20;
        if (b->v->hugepage_size || b->v->n_filesystems)
                JF_TRY(add_memory_backend(b));
        if (b->v->realtime) /* KubeVirt's realtime: the guest's memory stays locked in RAM */
                JF_TRY(push_optf(b->argv, "-overcommit", b->err, "mem-lock=on"));
        if (max_mib > mib) /* room for both pc-dimm and virtio-mem hot-plug */
                return push_optf(b->argv, "-m", b->err, "size=%" PRIu64 "M,slots=%d,maxmem=%" PRIu64 "M", mib,
                                 MEMORY_HOTPLUG_SLOTS, max_mib);
        return push_optf(b->argv, "-m", b->err, "size=%" PRIu64 "M", mib);
}

static cJSON *file_node(const char *filename, bool read_only)
{
        cJSON *f = jstr(jstr(cJSON_CreateObject(), "driver", "file"), "filename", filename);
        return read_only ? jbool(f, "read-only", true) : f;
}

static int add_efi(argv_builder *b)
{
        const vmi *v = b->v;
        _cleanup_free_ char *code = NULL;
        if (!v->efi_vars)
                return kv_error_set(b->err, EINVAL, "EFI variables not prepared (vmi_prepare not run)");
        if (asprintf(&code, "%s/%s", b->o->ovmf_dir ? b->o->ovmf_dir : DEFAULT_OVMF_DIR,
                     v->efi_secure_boot ? "OVMF_CODE_4M.secboot.fd" : "OVMF_CODE_4M.fd") < 0)
                return kv_error_set(b->err, ENOMEM, "out of memory");
        cJSON *c = jbool(jstr(jstr(cJSON_CreateObject(), "driver", "raw"), "node-name", "fw-code"),
                         "read-only", true);
        JF_TRY(push_json(b->argv, "-blockdev", jobj(c, "file", file_node(code, true)), b->err));
        cJSON *vars = jstr(jstr(cJSON_CreateObject(), "driver", "raw"), "node-name", "fw-vars");
        JF_TRY(push_json(b->argv, "-blockdev", jobj(vars, "file", file_node(v->efi_vars, false)), b->err));
        if (v->efi_secure_boot)
                JF_TRY(push_optf(b->argv, "-global", b->err, "driver=cfi.pflash01,property=secure,value=on"));
        return 0;
}

/* spec.domain.chassis → SMBIOS type 3, each value escaped. */
static int add_chassis(argv_builder *b)
{
        const cJSON *m;
        if (!b->v->chassis)
                return 0;
        _cleanup_free_ char *buf = NULL;
        size_t n = 0;
        FILE *f = open_memstream(&buf, &n);
        if (!f)
                return kv_error_set(b->err, ENOMEM, "out of memory");
        fputs("type=3", f);
        cJSON_ArrayForEach(m, b->v->chassis)
        {
                _cleanup_free_ char *e = qemu_opt_escape(m->valuestring);
                if (e)
                        fprintf(f, ",%s=%s", m->string, e);
        }
        fclose(f);
        if (!buf)
                return kv_error_set(b->err, ENOMEM, "out of memory");
        return push_optf(b->argv, "-smbios", b->err, "%s", buf);
}

/* -rtc: where the RTC starts (UTC plus clock.utc.offsetSeconds or the timezone's offset) and how it
 * catches up (rtc timer). Without any of them QEMU's default (base=utc) stays. */
static int add_rtc(argv_builder *b)
{
        const vmi *v = b->v;
        char base[40] = "utc";
        if (!v->rtc_offset && !v->timezone && !v->rtc_driftfix_slew && !v->rtc_clock)
                return 0;
        if (v->rtc_offset || v->timezone) {
                time_t t = (time_t)(b->o->now ? b->o->now : time(NULL)) + (time_t)v->rtc_offset;
                struct tm tm;
                if (!gmtime_r(&t, &tm) || !strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm))
                        return kv_error_set(b->err, EINVAL,
                                            "spec.domain.clock: the RTC start is out of range");
        }
        return push_optf(b->argv, "-rtc", b->err, "base=%s%s%s%s", base,
                         v->rtc_driftfix_slew ? ",driftfix=slew" : "", v->rtc_clock ? ",clock=" : "",
                         v->rtc_clock ? v->rtc_clock : "");
}

static int add_firmware(argv_builder *b)
{
        const vmi *v = b->v;
        if (v->fw_uuid)
                JF_TRY(push_optf(b->argv, "-uuid", b->err, "%s", v->fw_uuid));
        if (v->fw_serial)
                JF_TRY(push_escaped(b->argv, "-smbios", "type=1,serial=", v->fw_serial, "", b->err));
        JF_TRY(add_chassis(b));
        if (v->firmware == FW_EFI)
                JF_TRY(add_efi(b));
        if (!v->kernel_boot)
                return 0;
        if ((v->kernel_path && !v->kernel_file) || (v->initrd_path && !v->initrd_file))
                return kv_error_set(b->err, EINVAL, "kernelBoot image not prepared (vmi_prepare not run)");
        /* -kernel/-initrd/-append are plain strings to QEMU 7.2 (no QemuOpts parsing): no escaping. */
        if (v->kernel_file)
                JF_TRY(push_optf(b->argv, "-kernel", b->err, "%s", v->kernel_file));
        if (v->initrd_file)
                JF_TRY(push_optf(b->argv, "-initrd", b->err, "%s", v->initrd_file));
        if (v->kernel_args)
                JF_TRY(push_optf(b->argv, "-append", b->err, "%s", v->kernel_args));
        return 0;
}

/* A socket chardev: an inherited listening fd when the supervisor passes one, else a path in the run dir. */
static int add_socket_chardev(argv_builder *b, const char *id, int fd, const char *file, const char *logfile)
{
        _cleanup_free_ char *where = NULL, *log = NULL;
        if (fd >= 0) {
                if (asprintf(&where, "fd=%d", fd) < 0)
                        return kv_error_set(b->err, ENOMEM, "out of memory");
        } else {
                _cleanup_free_ char *path = NULL, *e = NULL;
                if (asprintf(&path, "%s/%s", b->o->run_dir, file) < 0 || !(e = qemu_opt_escape(path)) ||
                    asprintf(&where, "path=%s", e) < 0)
                        return kv_error_set(b->err, ENOMEM, "out of memory");
        }
        if (logfile) {
                _cleanup_free_ char *e = qemu_opt_escape(logfile);
                if (!e || asprintf(&log, ",logfile=%s", e) < 0)
                        return kv_error_set(b->err, ENOMEM, "out of memory");
        }
        return push_optf(b->argv, "-chardev", b->err, "socket,id=%s,%s,server=on,wait=off%s", id, where,
                         log ? log : "");
}

static int add_consoles(argv_builder *b)
{
        JF_TRY(add_socket_chardev(b, "qmp", b->o->qmp_fd, "qmp.sock", NULL));
        JF_TRY(push_optf(b->argv, "-mon", b->err, "chardev=qmp,mode=control"));
        if (b->v->serial_console) {
                JF_TRY(add_socket_chardev(b, "serial0", b->o->serial_fd, "serial.sock", b->o->serial_log));
                JF_TRY(push_optf(b->argv, "-serial", b->err, "chardev:serial0"));
        }
        /* The guest agent channel's backend; its virtio-serial port is a device (argv_add_misc_devices). */
        if (b->o->agent_fd >= 0)
                JF_TRY(push_optf(b->argv, "-chardev", b->err, "socket,id=charchannel0,fd=%d,server=off",
                                 b->o->agent_fd));
        else
                JF_TRY(add_socket_chardev(b, "charchannel0", -1, "agent.sock", NULL));
        if (!b->v->graphics)
                return 0;
        static const char *const drivers[] = {[VIDEO_VGA] = "VGA",
                                              [VIDEO_VIRTIO] = "virtio-vga",
                                              [VIDEO_BOCHS] = "bochs-display",
                                              [VIDEO_CIRRUS] = "cirrus-vga"};
        cJSON *vga =
            jstr(jstr(jstr(jstr(cJSON_CreateObject(), "driver", drivers[b->v->video]), "id", "video0"), "bus",
                      "pcie.0"),
                 "addr", "0x1");
        JF_TRY(push_json(b->argv, "-device", vga, b->err));
        _cleanup_free_ char *vnc = NULL;
        if (!b->o->vnc_socket && asprintf(&vnc, "%s/vnc.sock", b->o->run_dir) < 0)
                return kv_error_set(b->err, ENOMEM, "out of memory");
        return push_escaped(b->argv, "-vnc", "unix:", b->o->vnc_socket ? b->o->vnc_socket : vnc, "", b->err);
}

static bool any_boot_order(const vmi *v)
{
        for (size_t i = 0; i < v->n_disks; i++)
                if (v->disks[i].boot_order && !vmi_disk_deferred(v, i))
                        return true;
        for (size_t i = 0; i < v->n_interfaces; i++)
                if (v->interfaces[i].boot_order)
                        return true;
        return false;
}

static int add_boot(argv_builder *b)
{
        return any_boot_order(b->v) ? push_optf(b->argv, "-boot", b->err, "strict=on") : 0;
}

/* In argv order. Root ports must precede the devices that sit on them, so devices collect in b->devs and
 * are appended after the ports. */
static int (*const steps[])(argv_builder *b) = {
    add_process_options,
    add_machine,
    add_cpu,
    add_memory,
    add_firmware,
    add_rtc,
    add_boot,
    add_consoles,
    argv_add_disks,
    argv_add_interfaces,
    argv_add_misc_devices,
    argv_add_filesystems,
    argv_add_root_ports,
};

int qemu_argv_build(const vmi *v, const qemu_argv_opts *o, strv *argv, kv_error *err)
{
        argv_builder b = {.v = v, .o = o, .argv = argv, .err = err};
        if (!o->qemu_binary || !o->accel || !o->run_dir || o->run_dir[0] != '/')
                return kv_error_set(
                    err, EINVAL, "qemu_argv_build: qemu binary, accel and an absolute run dir are required");
        int r = strv_push(argv, o->qemu_binary) < 0 ? kv_error_set(err, ENOMEM, "out of memory") : 0;
        for (size_t i = 0; r >= 0 && i < ARRAY_SIZE(steps); i++)
                r = steps[i](&b);
        for (size_t i = 0; r >= 0 && i < b.devs.n; i++)
                if (strv_push(argv, b.devs.v[i]) < 0)
                        r = kv_error_set(err, ENOMEM, "out of memory");
        strv_free(&b.devs);
        return r;
}
