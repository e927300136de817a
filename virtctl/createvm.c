/* createvm: see createvm.h. Flag names, parameters and messages follow KubeVirt's virtctl create vm. */
#include "createvm.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "createvm-internal.h"
#include "json.h"
#include "macro.h"

/* ---- the manifest as YAML (block style; strings quoted as JSON, a valid YAML flow scalar, unless plain) */

static bool plain_string(const char *s)
{
        static const char *const reserved[] = {"true", "false", "null", "yes", "no",
                                               "on",   "off",   "y",    "n",   "~"};
        if (!*s || !(isalpha((unsigned char)*s) || *s == '_' || *s == '/' || *s == '.'))
                return false;
        for (const char *p = s; *p; p++)
                if (!isalnum((unsigned char)*p) && !strchr("._/-", *p))
                        return false;
        for (size_t i = 0; i < ARRAY_SIZE(reserved); i++)
                if (!strcasecmp(s, reserved[i]))
                        return false;
        return true;
}

static void put_scalar(const cJSON *v)
{
        if (cJSON_IsString(v) && plain_string(v->valuestring)) {
                fputs(v->valuestring, stdout);
                return;
        }
        if (cJSON_IsObject(v) || cJSON_IsArray(v)) { /* empty */
                fputs(cJSON_IsObject(v) ? "{}" : "[]", stdout);
                return;
        }
        _cleanup_free_ char *text = cJSON_PrintUnformatted(v);
        fputs(text ? text : "null", stdout);
}

static void emit_map(const cJSON *o, int indent, bool first_inline);

static void emit_seq(const cJSON *a, int indent)
{
        const cJSON *c;
        cJSON_ArrayForEach(c, a)
        {
                printf("%*s- ", indent, "");
                if (cJSON_IsObject(c) && c->child) {
                        emit_map(c, indent + 2, true);
                } else {
                        put_scalar(c);
                        putchar('\n');
                }
        }
}

static void emit_map(const cJSON *o, int indent, bool first_inline)
{
        const cJSON *c;
        bool first = true;
        cJSON_ArrayForEach(c, o)
        {
                if (!first || !first_inline)
                        printf("%*s", indent, "");
                first = false;
                printf("%s:", c->string);
                if (cJSON_IsObject(c) && c->child) {
                        putchar('\n');
                        emit_map(c, indent + 2, false);
                } else if (cJSON_IsArray(c) && c->child) {
                        putchar('\n');
                        emit_seq(c, indent);
                } else {
                        putchar(' ');
                        put_scalar(c);
                        putchar('\n');
                }
        }
}

/* ---- flag parameters: "key:value,key:value" -------------------------------------------------------- */

/* Splits spec (modified) into params, each key one of allowed. */
int parse_params(const char *flag, char *spec, const char *const *allowed, param *out, int max, int *n)
{
        char *save = NULL;
        *n = 0;
        for (char *t = strtok_r(spec, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                char *v = strchr(t, ':');
                if (!v)
                        return die(
                            "failed to parse \"--%s\" flag: params need to have at least one colon: %s", flag,
                            t);
                *v++ = '\0';
                bool known = false;
                for (const char *const *a = allowed; *a && !known; a++)
                        known = !strcmp(*a, t);
                if (!known || *n >= max)
                        return die("failed to parse \"--%s\" flag: unknown param(s): %s:%s", flag, t, v);
                out[(*n)++] = (param){.key = t, .value = v};
        }
        return 0;
}

char *param_get(const param *p, int n, const char *key)
{
        for (int i = 0; i < n; i++)
                if (!strcmp(p[i].key, key))
                        return p[i].value;
        return NULL;
}

static int parse_bootorder(const char *flag, const char *s, long *out)
{
        char *end;
        *out = 0;
        if (!s)
                return 0;
        *out = strtol(s, &end, 10);
        if (!*s || *end || *out < 1)
                return die("failed to parse \"--%s\" flag: bootorder must be a positive number: %s", flag, s);
        return 0;
}

/* "[namespace/]name" of a src parameter. */
void split_ref(char *src, const char **ns, const char **name)
{
        char *slash = strchr(src, '/');
        *ns = NULL, *name = src;
        if (slash) {
                *slash = '\0';
                *ns = src, *name = slash + 1;
        }
}

/* ---- volumes ------------------------------------------------------------------------------------------ */

vol *new_vol(createvm *c, enum vol_kind kind, const char *name)
{
        if (c->n_vols >= MAX_VOLUMES)
                return NULL;
        vol *v = &c->vols[c->n_vols];
        *v = (vol){.kind = kind, .seq = c->n_vols++, .volume = cJSON_CreateObject()};
        snprintf(v->name, sizeof(v->name), "%s", name);
        cJSON_AddStringToObject(v->volume, "name", v->name);
        return v;
}

static int add_containerdisk(createvm *c, char *spec, int i)
{
        static const char *const allowed[] = {"src", "name", "bootorder", NULL};
        param p[4];
        int n;
        long boot;
        if (parse_params("volume-containerdisk", spec, allowed, p, 4, &n))
                return EXIT_FAIL;
        const char *src = param_get(p, n, "src"), *name = param_get(p, n, "name");
        if (!src || !*src)
                return die("failed to parse \"--volume-containerdisk\" flag: src must be specified");
        if (parse_bootorder("volume-containerdisk", param_get(p, n, "bootorder"), &boot))
                return EXIT_FAIL;
        char def[128];
        snprintf(def, sizeof(def), "%s-containerdisk-%d", c->vm_name, i); /* KubeVirt's default name */
        vol *v = new_vol(c, V_CONTAINERDISK, name ? name : def);
        if (!v)
                return die("too many volumes");
        v->bootorder = boot;
        cJSON_AddStringToObject(cJSON_AddObjectToObject(v->volume, "containerDisk"), "image", src);
        return 0;
}

static int add_pvc(createvm *c, char *spec)
{
        static const char *const allowed[] = {"src", "name", "bootorder", NULL};
        param p[4];
        int n;
        long boot;
        if (!strchr(spec, ':')) { /* --volume-pvc=NAME */
                vol *v = new_vol(c, V_PVC, spec);
                if (!v)
                        return die("too many volumes");
                cJSON_AddStringToObject(cJSON_AddObjectToObject(v->volume, "persistentVolumeClaim"),
                                        "claimName", spec);
                return 0;
        }
        if (parse_params("volume-pvc", spec, allowed, p, 4, &n))
                return EXIT_FAIL;
        const char *src = param_get(p, n, "src"), *name = param_get(p, n, "name");
        if (!src || !*src)
                return die("failed to parse \"--volume-pvc\" flag: src must be specified");
        if (strchr(src, '/'))
                return die(
                    "failed to parse \"--volume-pvc\" flag: the claim must be in the VM's namespace: %s",
                    src);
        if (parse_bootorder("volume-pvc", param_get(p, n, "bootorder"), &boot))
                return EXIT_FAIL;
        vol *v = new_vol(c, V_PVC, name ? name : src);
        if (!v)
                return die("too many volumes");
        v->bootorder = boot;
        cJSON_AddStringToObject(cJSON_AddObjectToObject(v->volume, "persistentVolumeClaim"), "claimName",
                                src);
        return 0;
}

/* The DataVolume template's source for an import of `type` (its kind of volume in *kind). */
static int import_source(const char *type, char *src, const char *ns_param, cJSON *spec, enum vol_kind *kind)
{
        const char *ns = NULL, *name = NULL;
        if (!strcmp(type, "blank")) {
                *kind = V_BLANK;
                cJSON_AddObjectToObject(cJSON_AddObjectToObject(spec, "source"), "blank");
                return 0;
        }
        if (!src || !*src)
                return die("failed to parse \"--volume-import\" flag: src must be specified");
        if (!strcmp(type, "registry") || !strcmp(type, "http")) {
                *kind = V_IMPORT;
                cJSON_AddStringToObject(
                    cJSON_AddObjectToObject(cJSON_AddObjectToObject(spec, "source"), type), "url", src);
                return 0;
        }
        split_ref(src, &ns, &name);
        ns = ns ? ns : ns_param;
        cJSON *ref;
        if (!strcmp(type, "ds")) {
                *kind = V_DATASOURCE;
                ref = cJSON_AddObjectToObject(spec, "sourceRef");
                cJSON_AddStringToObject(ref, "kind", "DataSource");
        } else if (!strcmp(type, "pvc")) {
                *kind = V_CLONE;
                ref = cJSON_AddObjectToObject(cJSON_AddObjectToObject(spec, "source"), "pvc");
        } else {
                return die(
                    "failed to parse \"--volume-import\" flag: unsupported type %s (supported: ds, pvc, "
                    "blank, registry, http)",
                    type);
        }
        cJSON_AddStringToObject(ref, "name", name);
        if (ns)
                cJSON_AddStringToObject(ref, "namespace", ns);
        return 0;
}

static int add_import(createvm *c, char *spec, int i)
{
        static const char *const allowed[] = {"type", "src", "size", "name", "namespace", "bootorder", NULL};
        param p[6];
        int n;
        long boot;
        if (parse_params("volume-import", spec, allowed, p, 6, &n))
                return EXIT_FAIL;
        const char *type = param_get(p, n, "type"), *size = param_get(p, n, "size"),
                   *name = param_get(p, n, "name");
        char *src = param_get(p, n, "src");
        if (!type)
                return die("failed to parse \"--volume-import\" flag: type must be specified");
        if (parse_bootorder("volume-import", param_get(p, n, "bootorder"), &boot))
                return EXIT_FAIL;
        _cleanup_json_ cJSON *dvspec = cJSON_CreateObject();
        enum vol_kind kind = V_IMPORT;
        char src_name[128] = "";
        if (src)
                snprintf(src_name, sizeof(src_name), "%s", strrchr(src, '/') ? strrchr(src, '/') + 1 : src);
        if (import_source(type, src, param_get(p, n, "namespace"), dvspec, &kind))
                return EXIT_FAIL;
        if (!size && (kind == V_BLANK || kind == V_IMPORT))
                return die("failed to parse \"--volume-import\" flag: size must be specified for type %s",
                           type);
        if (size)
                cJSON_AddStringToObject(
                    cJSON_AddObjectToObject(
                        cJSON_AddObjectToObject(cJSON_AddObjectToObject(dvspec, "storage"), "resources"),
                        "requests"),
                    "storage", size);
        else
                cJSON_AddObjectToObject(dvspec, "storage");
        char def[160];
        if (kind == V_DATASOURCE || kind == V_CLONE)
                snprintf(def, sizeof(def), "%s-%s-%s", c->vm_name, kind == V_DATASOURCE ? "ds" : "pvc",
                         src_name);
        else
                snprintf(def, sizeof(def), "%s-volume-%d", c->vm_name, i);
        vol *v = new_vol(c, kind, name ? name : def);
        if (!v)
                return die("too many volumes");
        v->bootorder = boot;
        cJSON_AddStringToObject(cJSON_AddObjectToObject(v->volume, "dataVolume"), "name", v->name);
        v->dvt = cJSON_CreateObject();
        cJSON *md = cJSON_AddObjectToObject(v->dvt, "metadata");
        cJSON_AddNullToObject(md, "creationTimestamp");
        cJSON_AddStringToObject(md, "name", v->name);
        cJSON_AddItemToObject(v->dvt, "spec", TAKE_PTR(dvspec));
        return 0;
}

static int by_boot_kind(const void *a, const void *b)
{
        const vol *x = a, *y = b;
        return x->kind != y->kind ? (int)x->kind - (int)y->kind : x->seq - y->seq;
}

/* The volume an inference without a name uses: the one with the lowest boot order, else the first. */
static const char *boot_volume(const createvm *c)
{
        const vol *best = NULL;
        for (int i = 0; i < c->n_vols; i++) {
                const vol *v = &c->vols[i];
                if (v->kind == V_CLOUDINIT || v->kind == V_SYSPREP)
                        continue;
                if (!best || (v->bootorder && (!best->bootorder || v->bootorder < best->bootorder)))
                        best = v;
        }
        return best ? best->name : NULL;
}

/* ---- the manifest ------------------------------------------------------------------------------------ */

/* spec.instancetype or spec.preference: a [kind/]name, or inferFromVolume. */
static int matcher(createvm *c, cJSON *spec, const char *key, const char *value, const char *infer,
                   const char *ns_kind, const char *cluster_kind)
{
        if (value && infer)
                return die("--%s and --infer-%s are mutually exclusive", key, key);
        if (infer) {
                const char *from = *infer ? infer : boot_volume(c);
                if (!from)
                        return die("at least one volume is needed to infer the %s", key);
                bool known = false;
                for (int i = 0; i < c->n_vols && !known; i++)
                        known = !strcmp(c->vols[i].name, from);
                if (!known)
                        return die("there is no volume with name %s to infer the %s from", from, key);
                cJSON *m = cJSON_AddObjectToObject(spec, key);
                cJSON_AddStringToObject(m, "inferFromVolume", from);
                cJSON_AddStringToObject(m, "inferFromVolumeFailurePolicy", "Reject");
                return 0;
        }
        if (!value)
                return 0;
        const char *slash = strchr(value, '/'), *kind = cluster_kind, *name = value;
        if (slash) {
                size_t n = (size_t)(slash - value);
                if (strlen(ns_kind) == n && !strncasecmp(value, ns_kind, n))
                        kind = ns_kind;
                else if (!(strlen(cluster_kind) == n && !strncasecmp(value, cluster_kind, n)))
                        return die("invalid --%s kind %.*s (%s or %s)", key, (int)n, value, cluster_kind,
                                   ns_kind);
                name = slash + 1;
        }
        if (!*name)
                return die("--%s needs a name", key);
        cJSON *m = cJSON_AddObjectToObject(spec, key);
        cJSON_AddStringToObject(m, "kind", kind);
        cJSON_AddStringToObject(m, "name", name);
        return 0;
}

static cJSON *template_spec(createvm *c)
{
        cJSON *spec = cJSON_CreateObject();
        if (c->access_creds) /* keys in alphabetical order, as KubeVirt's YAML */
                cJSON_AddItemToObject(spec, "accessCredentials", TAKE_PTR(c->access_creds));
        cJSON *domain = cJSON_AddObjectToObject(spec, "domain");
        cJSON *devices = cJSON_AddObjectToObject(domain, "devices");
        cJSON *disks = NULL;
        for (int i = 0; i < c->n_vols; i++) {
                if (!c->vols[i].bootorder)
                        continue; /* KubeVirt adds a disk only to carry the boot order */
                if (!disks)
                        disks = cJSON_AddArrayToObject(devices, "disks");
                cJSON *d = cJSON_CreateObject();
                cJSON_AddNumberToObject(d, "bootOrder", (double)c->vols[i].bootorder);
                cJSON_AddStringToObject(d, "name", c->vols[i].name);
                cJSON_AddItemToArray(disks, d);
        }
        if (c->memory || (!c->instancetype && !c->infer_it))
                cJSON_AddStringToObject(cJSON_AddObjectToObject(domain, "memory"), "guest",
                                        c->memory ? c->memory : "512Mi");
        cJSON_AddObjectToObject(domain, "resources");
        cJSON_AddNumberToObject(spec, "terminationGracePeriodSeconds", (double)c->grace);
        if (c->n_vols) {
                cJSON *vols = cJSON_AddArrayToObject(spec, "volumes");
                for (int i = 0; i < c->n_vols; i++)
                        cJSON_AddItemToArray(vols, TAKE_PTR(c->vols[i].volume));
        }
        return spec;
}

static int print_vm(createvm *c)
{
        if (c->memory && (c->instancetype || c->infer_it))
                return die("--memory cannot be used with an instance type: it sets the memory");
        qsort(c->vols, (size_t)c->n_vols, sizeof(vol), by_boot_kind);
        _cleanup_json_ cJSON *vm = cJSON_CreateObject();
        cJSON_AddStringToObject(vm, "apiVersion", "kubevirt.io/v1");
        cJSON_AddStringToObject(vm, "kind", "VirtualMachine");
        cJSON *md = cJSON_AddObjectToObject(vm, "metadata");
        cJSON_AddNullToObject(md, "creationTimestamp");
        cJSON_AddStringToObject(md, "name", c->vm_name);
        cJSON *spec = cJSON_AddObjectToObject(vm, "spec");
        for (int i = 0; i < c->n_vols; i++) {
                if (!c->vols[i].dvt)
                        continue;
                cJSON *dvts = cJSON_GetObjectItemCaseSensitive(spec, "dataVolumeTemplates")
                                  ?: cJSON_AddArrayToObject(spec, "dataVolumeTemplates");
                cJSON_AddItemToArray(dvts, TAKE_PTR(c->vols[i].dvt));
        }
        if (matcher(c, spec, "instancetype", c->instancetype, c->infer_it, "virtualmachineinstancetype",
                    "virtualmachineclusterinstancetype") ||
            matcher(c, spec, "preference", c->preference, c->infer_pref, "virtualmachinepreference",
                    "virtualmachineclusterpreference"))
                return EXIT_FAIL;
        cJSON_AddStringToObject(spec, "runStrategy", c->run_strategy);
        cJSON *tmpl = cJSON_AddObjectToObject(spec, "template");
        cJSON_AddNullToObject(cJSON_AddObjectToObject(tmpl, "metadata"), "creationTimestamp");
        cJSON_AddItemToObject(tmpl, "spec", template_spec(c));
        cJSON_AddObjectToObject(vm, "status");
        emit_map(vm, 0, false);
        return 0;
}

/* ---- flags -------------------------------------------------------------------------------------------- */

enum {
        F_NAME = 256,
        F_RUNSTRAT,
        F_GRACE,
        F_MEMORY,
        F_IT,
        F_PREF,
        F_INFER_IT,
        F_INFER_PREF,
        F_INFER_IT_FROM,
        F_INFER_PREF_FROM,
        F_CDISK,
        F_PVC,
        F_IMPORT,
        F_USERDATA,
        F_USER,
        F_SSHKEY,
        F_PWFILE,
        F_NETDATA,
        F_CLOUDINIT,
        F_GA_SSH,
        F_ACCESS_CRED,
        F_SYSPREP
};

static const struct option longopts[] = {
    {"name", required_argument, NULL, F_NAME},
    {"run-strategy", required_argument, NULL, F_RUNSTRAT},
    {"termination-grace-period", required_argument, NULL, F_GRACE},
    {"memory", required_argument, NULL, F_MEMORY},
    {"instancetype", required_argument, NULL, F_IT},
    {"preference", required_argument, NULL, F_PREF},
    {"infer-instancetype", optional_argument, NULL, F_INFER_IT},
    {"infer-preference", optional_argument, NULL, F_INFER_PREF},
    {"infer-instancetype-from", required_argument, NULL, F_INFER_IT_FROM},
    {"infer-preference-from", required_argument, NULL, F_INFER_PREF_FROM},
    {"volume-containerdisk", required_argument, NULL, F_CDISK},
    {"volume-pvc", required_argument, NULL, F_PVC},
    {"volume-import", required_argument, NULL, F_IMPORT},
    {"cloud-init-user-data", required_argument, NULL, F_USERDATA},
    {"user", required_argument, NULL, F_USER},
    {"ssh-key", required_argument, NULL, F_SSHKEY},
    {"password-file", required_argument, NULL, F_PWFILE},
    {"cloud-init-network-data", required_argument, NULL, F_NETDATA},
    {"cloud-init", required_argument, NULL, F_CLOUDINIT},
    {"ga-manage-ssh", optional_argument, NULL, F_GA_SSH},
    {"access-cred", required_argument, NULL, F_ACCESS_CRED},
    {"volume-sysprep", required_argument, NULL, F_SYSPREP},
    {NULL, 0, NULL, 0}};

/* The volume flags are kept (in order) and parsed once the VM's name is known: default names carry it. */
typedef struct volflag {
        int opt;
        char *spec;
} volflag;

static int take_data_flag(createvm *c, int opt, volflag *vf, int *n_vf);

static int take_flag(createvm *c, int opt, volflag *vf, int *n_vf)
{
        char *end;
        switch (opt) {
        case F_NAME:
                c->name = optarg;
                return 0;
        case F_RUNSTRAT:
                c->run_strategy = optarg;
                return 0;
        case F_GRACE:
                c->grace = strtol(optarg, &end, 10);
                return *end || !*optarg || c->grace < 0
                           ? die("invalid argument \"%s\" for \"--termination-grace-period\" flag", optarg)
                           : 0;
        case F_MEMORY:
                c->memory = optarg;
                return 0;
        case F_IT:
                c->instancetype = optarg;
                return 0;
        case F_PREF:
                c->preference = optarg;
                return 0;
        case F_INFER_IT:
        case F_INFER_IT_FROM:
                c->infer_it = optarg ? optarg : "";
                return 0;
        case F_INFER_PREF:
        case F_INFER_PREF_FROM:
                c->infer_pref = optarg ? optarg : "";
                return 0;
        default:
                return take_data_flag(c, opt, vf, n_vf);
        }
}

/* The flags of the guest's data: cloud-init's (createvm-cloudinit.c makes the disk), and the volume, sysprep
 * and access credential flags, kept in order and parsed once the VM's name is known. */
static int take_data_flag(createvm *c, int opt, volflag *vf, int *n_vf)
{
        if (opt != F_CDISK && opt != F_PVC && opt != F_IMPORT && opt != F_ACCESS_CRED && opt != F_SYSPREP)
                c->cloud_init_flags = true;
        switch (opt) {
        case F_USERDATA:
                c->user_data_b64 = optarg;
                return 0;
        case F_NETDATA:
                c->network_data_b64 = optarg;
                return 0;
        case F_CLOUDINIT:
                c->cloud_init = optarg, c->cloud_init_given = true;
                return 0;
        case F_GA_SSH:
                if (optarg && strcmp(optarg, "true") && strcmp(optarg, "false"))
                        return die("invalid argument \"%s\" for \"--ga-manage-ssh\" flag", optarg);
                c->ga_manage_ssh = !optarg || !strcmp(optarg, "true"), c->ga_manage_ssh_given = true;
                return 0;
        case F_USER:
                c->user = optarg;
                return 0;
        case F_PWFILE:
                c->password_file = optarg;
                return 0;
        case F_SSHKEY:
                if (c->n_ssh_keys >= MAX_KEYS)
                        return die("too many --ssh-key flags");
                c->ssh_keys[c->n_ssh_keys++] = optarg;
                return 0;
        case F_CDISK:
        case F_PVC:
        case F_IMPORT:
        case F_ACCESS_CRED:
        case F_SYSPREP:
                if (*n_vf >= MAX_VOLUMES)
                        return die("too many volumes");
                vf[(*n_vf)++] = (volflag){.opt = opt, .spec = strdup(optarg)};
                return vf[*n_vf - 1].spec ? 0 : die("out of memory");
        default:
                return die("unknown flag");
        }
}

static int add_volumes(createvm *c, volflag *vf, int n_vf)
{
        int n_cd = 0, n_import = 0, r = 0, n_sysprep = 0;
        for (int i = 0; i < n_vf && !r; i++) /* KubeVirt's order: volumes, sysprep, access credentials */
                r = vf[i].opt == F_CDISK    ? add_containerdisk(c, vf[i].spec, n_cd++)
                    : vf[i].opt == F_PVC    ? add_pvc(c, vf[i].spec)
                    : vf[i].opt == F_IMPORT ? add_import(c, vf[i].spec, n_import++)
                                            : 0;
        for (int i = 0; i < n_vf && !r; i++)
                if (vf[i].opt == F_SYSPREP)
                        r = n_sysprep++ ? die("there is already a volume with name sysprepdisk")
                                        : createvm_sysprep(c, vf[i].spec);
        for (int i = 0; i < n_vf && !r; i++)
                if (vf[i].opt == F_ACCESS_CRED)
                        r = createvm_access_cred(c, vf[i].spec);
        for (int i = 0; i < c->n_vols && !r; i++)
                for (int j = 0; j < i && !r; j++)
                        if (!strcmp(c->vols[i].name, c->vols[j].name))
                                r = die("there is already a volume with name %s", c->vols[i].name);
        return r ? r : createvm_cloudinit(c);
}

int createvm_main(int argc, char **argv)
{
        createvm c = {.run_strategy = "Always", .grace = 180, .cloud_init = "nocloud", .ga_manage_ssh = -1};
        volflag vf[MAX_VOLUMES];
        int n_vf = 0, opt, r = 0;
        optind = 1;
        opterr = 0; /* KubeVirt's words below */
        while (!r && (opt = getopt_long(argc, argv, ":", longopts, NULL)) != -1)
                r = opt == '?'   ? die("unknown flag: %s", argv[optind - 1])
                    : opt == ':' ? die("flag needs an argument: %s", argv[optind - 1])
                                 : take_flag(&c, opt, vf, &n_vf);
        if (!r && optind < argc)
                r = die("unknown argument \"%s\" for \"create vm\"", argv[optind]);
        if (c.name)
                snprintf(c.vm_name, sizeof(c.vm_name), "%s", c.name);
        else
                snprintf(c.vm_name, sizeof(c.vm_name), "vm-%05x",
                         (unsigned)(getpid() ^ (unsigned)time(NULL)) & 0xfffff);
        if (!r)
                r = add_volumes(&c, vf, n_vf);
        if (!r)
                r = print_vm(&c);
        for (int i = 0; i < n_vf; i++)
                free(vf[i].spec);
        for (int i = 0; i < c.n_vols; i++)
                cJSON_Delete(c.vols[i].volume), cJSON_Delete(c.vols[i].dvt);
        cJSON_Delete(c.access_creds);
        return r;
}
