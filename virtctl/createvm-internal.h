/* createvm-internal: what createvm.c (volumes, instancetypes, the manifest) and createvm-cloudinit.c
 * (cloud-init, access credentials, sysprep) share. */
#pragma once
#include <cjson/cJSON.h>
#include <stdbool.h>

#define MAX_VOLUMES 32
#define MAX_KEYS 16

/* Boot order of the volume kinds, KubeVirt's: containerdisks, claims used directly, DataSources, cloned
 * claims, blank volumes, other imports. The sysprep and cloud-init disks come last and never boot. */
enum vol_kind { V_CONTAINERDISK, V_PVC, V_DATASOURCE, V_CLONE, V_BLANK, V_IMPORT, V_SYSPREP, V_CLOUDINIT };

typedef struct vol {
        enum vol_kind kind;
        int seq; /* the order of the flags, within a kind */
        char name[128];
        long bootorder; /* 0: none */
        cJSON *volume;  /* spec.template.spec.volumes[] entry */
        cJSON *dvt;     /* spec.dataVolumeTemplates[] entry, or NULL */
} vol;

typedef struct createvm {
        const char *name, *run_strategy, *memory, *instancetype, *preference;
        const char *infer_it, *infer_pref; /* NULL: no inference; "": the boot volume */
        const char *user_data_b64, *network_data_b64, *user, *password_file;
        const char *ssh_keys[MAX_KEYS];
        int n_ssh_keys;
        const char *cloud_init; /* --cloud-init: nocloud (default), configdrive or none */
        bool cloud_init_given;  /* --cloud-init given, or set by an --access-cred method */
        int ga_manage_ssh;      /* --ga-manage-ssh: -1 not given (an SSH key by the guest agent sets it) */
        bool ga_manage_ssh_given;
        bool cloud_init_flags; /* a flag about cloud-init was given: the disk is made */
        cJSON *access_creds;   /* spec.template.spec.accessCredentials, NULL: none */
        long grace;
        vol vols[MAX_VOLUMES];
        int n_vols;
        char vm_name[64];
} createvm;

typedef struct param {
        const char *key;
        char *value; /* into the parsed copy */
} param;

/* Splits spec (modified) into "key:value" params, each key one of allowed; an error names --flag. */
int parse_params(const char *flag, char *spec, const char *const *allowed, param *out, int max, int *n);
char *param_get(const param *p, int n, const char *key);
/* "[namespace/]name" of a src parameter (modified). */
void split_ref(char *src, const char **ns, const char **name);
/* A new volume of the template (NULL: too many). */
vol *new_vol(createvm *c, enum vol_kind kind, const char *name);

/* createvm-cloudinit.c: --access-cred (each), then the cloud-init and sysprep disks once all flags are in. */
int createvm_access_cred(createvm *c, char *spec);
int createvm_cloudinit(createvm *c);
int createvm_sysprep(createvm *c, char *spec);
