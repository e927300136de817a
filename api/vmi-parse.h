/* vmi-parse: the readers vmi.c (identity, cpu, memory, firmware) and vmi-devices.c (disks, volumes,
 * interfaces, inputs) share. Internal to launcher/core. */
#pragma once

#include "jfield.h"
#include "vmi.h"

/* spec.domain.devices (path = "spec.domain.devices"); devices may be NULL (all defaults). */
int vmi_parse_devices(vmi *v, const cJSON *devices, const char *path, kv_error *err);
/* spec.volumes and spec.networks, then the cross references disks→volumes, interfaces↔networks. */
int vmi_parse_volumes(vmi *v, const cJSON *spec, kv_error *err);
int vmi_parse_networks(vmi *v, const cJSON *spec, kv_error *err);
void vmi_free_devices(vmi *v);

/* Shared: append one zeroed element to a dynamic array. */
void *vmi_grow(void **array, size_t *n, size_t elem_size);

/* spec.readinessProbe and spec.livenessProbe (vmi-probe.c). */
int vmi_parse_probes(vmi *v, const cJSON *spec, kv_error *err);
void vmi_probe_free(vmi_probe *pr);

/* spec.accessCredentials (vmi-access.c), after the volumes: a cloud-init method needs its volume. */
int vmi_parse_access_credentials(vmi *v, const cJSON *spec, kv_error *err);
void vmi_access_creds_free(vmi *v);
