/* The parts of a VirtualMachine's status KubeVirt derives from its VMI: printableStatus (KubeVirt's order of
 * checks, first match wins), the VMI's conditions carried over, and RestartRequired when the template
 * changed in a way a running VMI cannot take live. Pure functions; reconcile-vm.c writes them. */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

/* On a VMI the VM controller created: the template hash (vm_template_hash) it was created from. */
#define VM_ANN_TEMPLATE_HASH "kvlite.io/vm-template-hash"
#define RESTART_REQUIRED_MSG "a non-live-updatable field was changed in the template spec"

typedef struct vm_print_in {
        bool start_expected; /* a VMI is wanted now (being created, or about to be) */
        bool stop_expected;  /* the VMI is about to be deleted (Halted, a Stop request) */
        bool crash_loop;     /* a start failed and a restart waits out its backoff */
        const char *dv_wait; /* the DataVolumes' printable state, NULL when none is waited for */
} vm_print_in;

/* printableStatus of vm with its VMI (or NULL). */
const char *vm_printable_status(const cJSON *vm, const cJSON *vmi, const vm_print_in *in);

/* Hash of the VM's spec.template.spec as a VMI would start from it: object keys in sorted order (the API
 * server's JSON may reorder them), hot-pluggable volumes and their disks left out (they are added live). */
uint64_t vm_template_hash(const cJSON *vm);
#define VM_TEMPLATE_HASH_LEN 17
void vm_template_hash_str(const cJSON *vm, char out[VM_TEMPLATE_HASH_LEN]); /* 16 hex digits */
/* The template changed since the running vmi was created from it (no record: false). */
bool vm_restart_required(const cJSON *vm, const cJSON *vmi);

/* Appends to conds (the VM's new conditions) the VMI's conditions other than Ready and Failure, which the VM
 * sets itself: KubeVirt shows them on the VM (Paused, AgentConnected, PodScheduled, ...). */
void vm_copy_vmi_conditions(cJSON *conds, const cJSON *vmi);
