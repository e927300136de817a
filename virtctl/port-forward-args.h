/* The arguments of `virtctl port-forward` (KubeVirt's pkg/virtctl/portforward), parsed as KubeVirt's virtctl
 * parses them, with its words in the errors; pure, so virtctl/tests/test-port-forward-args.c covers them. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

typedef struct pf_target {
        bool vm; /* vm/NAME: the VM's VMI; else a VMI */
        char name[254];
        char ns[254]; /* "" when the target names none */
} pf_target;

typedef struct pf_port {
        unsigned local;   /* 0-65535; 0: any free port */
        unsigned remote;  /* 1-65535 */
        char protocol[4]; /* "tcp" or "udp" */
} pf_port;

/* TYPE/NAME, TYPE/NAME/NAMESPACE, TYPE/NAME.NAMESPACE (the older syntax) or NAME[.NAMESPACE] (a VMI). TYPE:
 * vm, vms, virtualmachine(s), vmi, vmis, virtualmachineinstance(s), in any case. 0, or -EINVAL with why. */
int pf_target_parse(const char *arg, pf_target *out, char *why, size_t why_size);
/* [PROTOCOL/]LOCAL[:REMOTE], PROTOCOL tcp (the default) or udp; REMOTE defaults to LOCAL. 0, or -EINVAL with
 * why. */
int pf_port_parse(const char *arg, pf_port *out, char *why, size_t why_size);
/* `virtctl ssh`'s [USER@]TARGET (TARGET as pf_target_parse reads it): user "" when none. 0, or -EINVAL with
 * why. */
int pf_ssh_target_parse(const char *arg, char user[static 128], pf_target *out, char *why, size_t why_size);
/* A boolean flag's value as Go's strconv.ParseBool reads it (1, t, T, TRUE, true, True, 0, f, ...). 0 or
 * -EINVAL. */
int pf_bool_parse(const char *s, bool *out);
