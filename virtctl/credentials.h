/* credentials: `virtctl credentials add-ssh-key|remove-ssh-key|set-password`, KubeVirt's commands
 * (pkg/virtctl/credentials) over the Secrets a VM's spec.template.spec.accessCredentials name: the SSH keys
 * and passwords the launcher's guest agent sync keeps in the guest (docs/access-credentials.md). */
#pragma once

#include <stdbool.h>

#include "client.h"

typedef enum { CRED_ADD_SSH_KEY, CRED_REMOVE_SSH_KEY, CRED_SET_PASSWORD } cred_verb;

typedef struct cred_cmd {
        cred_verb verb;
        const char *vm, *user, *secret, *file, *value, *password; /* NULL: not given */
        bool create_secret, update_secret, force;
} cred_cmd;

/* argv: the words after "credentials" (argv[0] the subcommand). Checks the words as KubeVirt's cobra command
 * does, before any request: 0 to go on; 1 after "Error: …" naming the flag; -1 after printing the usage
 * (no subcommand: exit 0, as KubeVirt's). */
int credentials_parse(int argc, char **argv, cred_cmd *cmd);

/* Runs cmd on the VM in namespace ns; the exit code (0, or 1 after "Error: …"). */
int credentials_run(kube_client *api, const char *ns, const cred_cmd *cmd);
