/* createvm: `virtctl create vm`, KubeVirt's manifest generator (pkg/virtctl/create/vm): flags in, a
 * VirtualMachine as YAML on stdout, no API call. Volumes: --volume-containerdisk, --volume-pvc and
 * --volume-import (each repeatable; imports become dataVolumeTemplates: DataSource and claim clones, blank,
 * registry and http), instancetype and preference (with a kind prefix) or inferred from a volume
 * (--infer-instancetype[=VOLUME], --infer-preference[=VOLUME], --infer-*-from), the cloud-init disk
 * (--cloud-init, user and network data, --user/--ssh-key/--password-file/--ga-manage-ssh), access credentials
 * (--access-cred) and a sysprep disk (--volume-sysprep): createvm-cloudinit.c. */
#pragma once

/* argv: the words after "create vm" (flags only). Returns the exit code (0, or 1 with "Error: …" on stderr
 * naming the flag). */
int createvm_main(int argc, char **argv);
