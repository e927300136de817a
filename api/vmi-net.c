/* The network part of a VMI spec: spec.networks[] and spec.domain.devices.interfaces[] validated and
 * turned into a net_request. Every error names the JSON path of the offending field. */
#include "netspec.h"
#include "jfield.h"
#include "mac.h"
#include "sha256.h"

#include <cjson/cJSON.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#define IFACES_PATH "spec.domain.devices.interfaces"

static const char *const binding_names[] = {
    [NET_BINDING_NONE] = "none",   [NET_BINDING_MASQUERADE] = "masquerade", [NET_BINDING_BRIDGE] = "bridge",
    [NET_BINDING_PASST] = "passt", [NET_BINDING_SLIRP] = "slirp",           [NET_BINDING_MACVTAP] = "macvtap",
};

const char *net_binding_name(kvnet_binding b)
{
        return (size_t)b < sizeof(binding_names) / sizeof(binding_names[0]) ? binding_names[b] : "?";
}

kvnet_binding net_binding_from_name(const char *name)
{
        for (size_t i = NET_BINDING_MASQUERADE; i < sizeof(binding_names) / sizeof(binding_names[0]); i++)
                if (name && strcmp(name, binding_names[i]) == 0)
                        return (kvnet_binding)i;
        return NET_BINDING_NONE;
}

static const char *const models[] = {"virtio", "e1000e", "e1000", "rtl8139"};

static bool is_object(const cJSON *j)
{
        return j && cJSON_IsObject(j);
}

/* Finds the network named name in spec.networks[]; *index gets its position. */
static const cJSON *network_by_name(const cJSON *networks, const char *name, int *index)
{
        int i = 0;
        const cJSON *n;
        cJSON_ArrayForEach(n, networks)
        {
                const cJSON *nm = cJSON_GetObjectItemCaseSensitive(n, "name");
                if (cJSON_IsString(nm) && strcmp(nm->valuestring, name) == 0) {
                        *index = i;
                        return n;
                }
                i++;
        }
        return NULL;
}

/* multus: {networkName: "<nad>" | "<namespace>/<nad>"}; `default: true` (Multus' default network) is not
 * supported. */
static int validate_multus(const cJSON *m, int i, kv_error *err)
{
        if (!is_object(m))
                return kv_error_set(err, EINVAL, "spec.networks[%d].multus: must be an object", i);
        const cJSON *item;
        cJSON_ArrayForEach(item, m)
        {
                if (strcmp(item->string, "networkName") != 0)
                        return kv_error_set(err, EINVAL, "spec.networks[%d].multus.%s: is not supported", i,
                                            item->string);
        }
        const cJSON *nn = cJSON_GetObjectItemCaseSensitive(m, "networkName");
        if (!cJSON_IsString(nn) || !nn->valuestring[0] || strlen(nn->valuestring) >= 2 * NET_NAME_MAX + 2)
                return kv_error_set(err, EINVAL,
                                    "spec.networks[%d].multus.networkName: must be \"<name>\" or "
                                    "\"<namespace>/<name>\" (at most %d characters)",
                                    i, 2 * NET_NAME_MAX + 1);
        return 0;
}

static int validate_network(const cJSON *n, int i, bool *multus, kv_error *err)
{
        if (!is_object(n))
                return kv_error_set(err, EINVAL, "spec.networks[%d]: must be an object", i);
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(n, "name");
        if (!cJSON_IsString(name) || !name->valuestring[0])
                return kv_error_set(err, EINVAL, "spec.networks[%d].name: must be a non-empty string", i);
        const cJSON *item;
        const char *kind = NULL;
        cJSON_ArrayForEach(item, n)
        {
                if (strcmp(item->string, "name") == 0)
                        continue;
                if (strcmp(item->string, "pod") != 0 && strcmp(item->string, "multus") != 0)
                        return kv_error_set(err, EINVAL,
                                            "spec.networks[%d].%s: is not supported (pod: {} or multus: {})",
                                            i, item->string);
                if (kind)
                        return kv_error_set(err, EINVAL, "spec.networks[%d]: both %s and %s are set", i, kind,
                                            item->string);
                kind = item->string;
                int r = strcmp(kind, "multus") == 0 ? validate_multus(item, i, err) : 0;
                if (r < 0)
                        return r;
                if (strcmp(kind, "pod") != 0)
                        continue;
                if (!is_object(item))
                        return kv_error_set(err, EINVAL, "spec.networks[%d].pod: must be an object", i);
                if (cJSON_GetArraySize(item) > 0)
                        return kv_error_set(err, EINVAL, "spec.networks[%d].pod.%s: is not supported", i,
                                            item->child->string);
        }
        if (!kind)
                return kv_error_set(err, EINVAL, "spec.networks[%d]: needs pod: {} or multus: {}", i);
        *multus = strcmp(kind, "multus") == 0;
        return 0;
}

static int validate_networks(const cJSON *networks, kv_error *err)
{
        if (networks && !cJSON_IsArray(networks))
                return kv_error_set(err, EINVAL, "spec.networks: must be a list");
        int i = 0, pod_index = -1;
        const cJSON *n;
        cJSON_ArrayForEach(n, networks)
        {
                bool multus = false;
                int r = validate_network(n, i, &multus, err);
                if (r < 0)
                        return r;
                const char *name = cJSON_GetObjectItemCaseSensitive(n, "name")->valuestring;
                int first;
                if (network_by_name(networks, name, &first) != n)
                        return kv_error_set(
                            err, EINVAL,
                            "spec.networks[%d].name: \"%s\" is already used by spec.networks[%d]", i, name,
                            first);
                if (multus) {
                        i++;
                        continue;
                }
                if (pod_index >= 0)
                        return kv_error_set(
                            err, EINVAL,
                            "spec.networks[%d].pod: a second pod network (spec.networks[%d] is one)", i,
                            pod_index);
                pod_index = i++;
        }
        if (i > NET_MAX_SECONDARY + 1)
                return kv_error_set(err, EINVAL, "spec.networks: more than %d networks",
                                    NET_MAX_SECONDARY + 1);
        return 0;
}

/* The one binding key of an interface; none given means bridge, as KubeVirt's defaulting does. */
static int interface_binding(const cJSON *iface, int i, kvnet_binding *out, kv_error *err)
{
        static const char *const keys[] = {"masquerade", "bridge", "passt",  "slirp",
                                           "binding",    "sriov",  "macvtap"};
        const char *found = NULL;
        *out = NET_BINDING_BRIDGE;
        for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
                const cJSON *b = cJSON_GetObjectItemCaseSensitive(iface, keys[k]);
                if (!b)
                        continue;
                if (found)
                        return kv_error_set(err, EINVAL,
                                            IFACES_PATH "[%d]: both %s and %s are set; choose one binding", i,
                                            found, keys[k]);
                found = keys[k];
                if (!is_object(b))
                        return kv_error_set(err, EINVAL, IFACES_PATH "[%d].%s: must be an object", i,
                                            keys[k]);
                if (strcmp(keys[k], "binding") == 0) {
                        const cJSON *name = cJSON_GetObjectItemCaseSensitive(b, "name");
                        if (!cJSON_IsString(name))
                                return kv_error_set(err, EINVAL,
                                                    IFACES_PATH "[%d].binding.name: must be a string", i);
                        *out = net_binding_from_name(name->valuestring);
                        if (*out == NET_BINDING_NONE)
                                return kv_error_set(err, EINVAL,
                                                    IFACES_PATH
                                                    "[%d].binding.name: unknown binding \"%s\" (supported: "
                                                    "masquerade, bridge, passt, slirp, macvtap)",
                                                    i, name->valuestring);
                } else {
                        *out = net_binding_from_name(keys[k]);
                        if (*out == NET_BINDING_NONE)
                                return kv_error_set(err, EINVAL,
                                                    IFACES_PATH
                                                    "[%d].%s: binding is not supported "
                                                    "(supported: masquerade, bridge, passt, slirp, macvtap)",
                                                    i, keys[k]);
                }
        }
        return 0;
}

static int parse_port(const cJSON *p, int i, int j, net_port *out, kv_error *err)
{
        if (!is_object(p))
                return kv_error_set(err, EINVAL, IFACES_PATH "[%d].ports[%d]: must be an object", i, j);
        const cJSON *port = cJSON_GetObjectItemCaseSensitive(p, "port");
        if (!cJSON_IsNumber(port))
                return kv_error_set(err, EINVAL, IFACES_PATH "[%d].ports[%d].port: must be an integer", i, j);
        /* the range first: only then is the cast that tests for a whole number defined */
        if (port->valuedouble < 1 || port->valuedouble > 65535)
                return kv_error_set(err, EINVAL, IFACES_PATH "[%d].ports[%d].port: %.0f is outside 1-65535",
                                    i, j, port->valuedouble);
        if (port->valuedouble != (double)(long)port->valuedouble)
                return kv_error_set(err, EINVAL, IFACES_PATH "[%d].ports[%d].port: must be an integer", i, j);
        out->port = (unsigned)port->valuedouble;
        out->protocol = IPPROTO_TCP;
        const cJSON *proto = cJSON_GetObjectItemCaseSensitive(p, "protocol");
        if (proto && !(cJSON_IsString(proto) &&
                       (strcmp(proto->valuestring, "TCP") == 0 || strcmp(proto->valuestring, "UDP") == 0)))
                return kv_error_set(err, EINVAL,
                                    IFACES_PATH "[%d].ports[%d].protocol: must be \"TCP\" or \"UDP\"", i, j);
        if (proto && strcmp(proto->valuestring, "UDP") == 0)
                out->protocol = IPPROTO_UDP;
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(p, "name");
        if (name && !cJSON_IsString(name))
                return kv_error_set(err, EINVAL, IFACES_PATH "[%d].ports[%d].name: must be a string", i, j);
        return 0;
}

static int parse_ports(const cJSON *iface, int i, net_request *req, kv_error *err)
{
        const cJSON *ports = cJSON_GetObjectItemCaseSensitive(iface, "ports");
        if (!ports)
                return 0;
        if (!cJSON_IsArray(ports))
                return kv_error_set(err, EINVAL, IFACES_PATH "[%d].ports: must be a list", i);
        if (cJSON_GetArraySize(ports) > NET_MAX_PORTS)
                return kv_error_set(err, EINVAL, IFACES_PATH "[%d].ports: more than %d ports", i,
                                    NET_MAX_PORTS);
        if (req->binding == NET_BINDING_BRIDGE && cJSON_GetArraySize(ports) > 0)
                return kv_error_set(err, EINVAL,
                                    IFACES_PATH "[%d].ports: only masquerade, passt and slirp forward ports "
                                                "(bridge exposes every port already)",
                                    i);
        int j = 0;
        const cJSON *p;
        cJSON_ArrayForEach(p, ports)
        {
                int r = parse_port(p, i, j++, &req->ports[req->n_ports], err);
                if (r < 0)
                        return r;
                req->n_ports++;
        }
        return 0;
}

static int parse_model_mac(const cJSON *iface, int i, net_request *req, kv_error *err)
{
        const cJSON *model = cJSON_GetObjectItemCaseSensitive(iface, "model");
        snprintf(req->model, sizeof(req->model), "virtio");
        if (model) {
                bool ok = false;
                for (size_t k = 0; cJSON_IsString(model) && k < sizeof(models) / sizeof(models[0]); k++)
                        ok = ok || strcmp(model->valuestring, models[k]) == 0;
                if (!ok)
                        return kv_error_set(err, EINVAL,
                                            IFACES_PATH
                                            "[%d].model: %s%s%s is not supported (virtio, e1000e, "
                                            "e1000, rtl8139)",
                                            i, cJSON_IsString(model) ? "\"" : "",
                                            cJSON_IsString(model) ? model->valuestring : "value",
                                            cJSON_IsString(model) ? "\"" : "");
                snprintf(req->model, sizeof(req->model), "%s", model->valuestring);
        }
        const cJSON *mac = cJSON_GetObjectItemCaseSensitive(iface, "macAddress");
        if (!mac)
                return 0;
        uint8_t bytes[6];
        if (!cJSON_IsString(mac) || mac_parse(mac->valuestring, bytes) < 0)
                return kv_error_set(err, EINVAL,
                                    IFACES_PATH "[%d].macAddress: %s%s%s is not a MAC address "
                                                "(six hex pairs separated by ':' or '-')",
                                    i, cJSON_IsString(mac) ? "\"" : "",
                                    cJSON_IsString(mac) ? mac->valuestring : "value",
                                    cJSON_IsString(mac) ? "\"" : "");
        if (bytes[0] & 1)
                return kv_error_set(err, EINVAL, IFACES_PATH "[%d].macAddress: \"%s\" is a multicast address",
                                    i, mac->valuestring);
        mac_format(bytes, req->mac);
        return 0;
}

static int check_keys(const cJSON *iface, int i, kv_error *err)
{
        static const char *const known[] = {"name",  "masquerade", "bridge", "passt", "slirp", "binding",
					    "sriov", "macvtap",    "ports",  "model", "macAddress",
					    "bootOrder" /* the argv builder's (launcher/core) */,
					    "state",       "dhcpOptions", "pciAddress", "acpiIndex",
					    "tag" /* device role tagging: metadata for the guest's config drive, no
						   * device property (accepted, ignored) */};
        const cJSON *item;
        cJSON_ArrayForEach(item, iface)
        {
                bool ok = false;
                for (size_t k = 0; k < sizeof(known) / sizeof(known[0]); k++)
                        ok = ok || strcmp(item->string, known[k]) == 0;
                if (!ok)
                        return kv_error_set(err, EINVAL, IFACES_PATH "[%d].%s: is not supported", i,
                                            item->string);
        }
        return 0;
}

/* interfaces[].state: "up" (the default), "down" (the NIC starts with its link down, as a pulled cable) or
 * "absent" (KubeVirt: a bridge interface on a secondary network that is not plugged). *absent tells. */
static int parse_state(const cJSON *iface, int i, net_request *tmp, bool *absent, kv_error *err)
{
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(iface, "state");
        *absent = false;
        if (!st)
                return 0;
        if (!cJSON_IsString(st) || (strcmp(st->valuestring, "up") && strcmp(st->valuestring, "down") &&
                                    strcmp(st->valuestring, "absent")))
                return kv_error_set(err, EINVAL,
                                    IFACES_PATH "[%d].state: must be \"up\", \"down\" or \"absent\"", i);
        tmp->link_down = !strcmp(st->valuestring, "down");
        *absent = !strcmp(st->valuestring, "absent");
        if (*absent && tmp->binding != NET_BINDING_BRIDGE)
                return kv_error_set(
                    err, EINVAL,
                    IFACES_PATH "[%d].state: \"absent\" is supported only for the bridge binding", i);
        return 0;
}

static int dhcp_string(const cJSON *o, int i, const char *key, char *out, size_t outsz, kv_error *err)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
        if (!v)
                return 0;
        if (!cJSON_IsString(v) || strlen(v->valuestring) >= outsz || !v->valuestring[0] ||
            jf_has_control_chars(v->valuestring))
                return kv_error_set(err, EINVAL,
                                    IFACES_PATH "[%d].dhcpOptions.%s: must be a string of 1-%zu printable "
                                                "characters",
                                    i, key, outsz - 1);
        snprintf(out, outsz, "%s", v->valuestring);
        return (int)strlen(out) + 2;
}

static int dhcp_ntp(const cJSON *o, int i, net_dhcp_options *d, kv_error *err)
{
        const cJSON *ntp = cJSON_GetObjectItemCaseSensitive(o, "ntpServers"), *n;
        if (!ntp)
                return 0;
        if (!cJSON_IsArray(ntp) || cJSON_GetArraySize(ntp) > NET_DHCP_MAX_NTP)
                return kv_error_set(err, EINVAL,
                                    IFACES_PATH "[%d].dhcpOptions.ntpServers: must be a list of at most %d "
                                                "IPv4 addresses",
                                    i, NET_DHCP_MAX_NTP);
        cJSON_ArrayForEach(n, ntp)
        {
                if (!cJSON_IsString(n) || inet_pton(AF_INET, n->valuestring, &d->ntp[d->n_ntp]) != 1)
                        return kv_error_set(err, EINVAL,
                                            IFACES_PATH
                                            "[%d].dhcpOptions.ntpServers[%zu]: is not an IPv4 address",
                                            i, d->n_ntp);
                d->n_ntp++;
        }
        return d->n_ntp ? (int)(4 * d->n_ntp + 2) : 0;
}

static int dhcp_private(const cJSON *o, int i, net_dhcp_options *d, kv_error *err)
{
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(o, "privateOptions"), *p;
        int bytes = 0;
        if (!list)
                return 0;
        if (!cJSON_IsArray(list))
                return kv_error_set(err, EINVAL,
                                    IFACES_PATH "[%d].dhcpOptions.privateOptions: must be a list", i);
        cJSON_ArrayForEach(p, list)
        {
                size_t j = d->n_priv;
                const cJSON *code = cJSON_GetObjectItemCaseSensitive(p, "option");
                const cJSON *value = cJSON_GetObjectItemCaseSensitive(p, "value");
                if (!cJSON_IsObject(p) || !cJSON_IsNumber(code) || code->valuedouble < 224 ||
                    code->valuedouble > 254 || code->valuedouble != (int)code->valuedouble)
                        return kv_error_set(err, EINVAL,
                                            IFACES_PATH
                                            "[%d].dhcpOptions.privateOptions[%zu].option: must be an "
                                            "integer in 224-254",
                                            i, j);
                for (size_t k = 0; k < j; k++)
                        if (d->priv[k].code == (uint8_t)code->valuedouble)
                                return kv_error_set(err, EINVAL,
                                                    IFACES_PATH
                                                    "[%d].dhcpOptions.privateOptions[%zu].option: %d "
                                                    "is already given",
                                                    i, j, (int)code->valuedouble);
                if (!cJSON_IsString(value) || strlen(value->valuestring) >= sizeof(d->priv[j].value))
                        return kv_error_set(err, EINVAL,
                                            IFACES_PATH
                                            "[%d].dhcpOptions.privateOptions[%zu].value: must be a "
                                            "string of at most 255 bytes",
                                            i, j);
                d->priv[j].code = (uint8_t)code->valuedouble;
                snprintf(d->priv[j].value, sizeof(d->priv[j].value), "%s", value->valuestring);
                bytes += (int)strlen(value->valuestring) + 2;
                d->n_priv++;
        }
        return bytes;
}

/* interfaces[].dhcpOptions: extra options of the launcher's DHCP server (KubeVirt's DHCPOptions). */
static int parse_dhcp_options(const cJSON *iface, int i, net_request *tmp, kv_error *err)
{
        static const char *const known[] = {"bootFileName", "tftpServerName", "ntpServers", "privateOptions"};
        const cJSON *o = cJSON_GetObjectItemCaseSensitive(iface, "dhcpOptions"), *item;
        if (!o)
                return 0;
        if (!is_object(o))
                return kv_error_set(err, EINVAL, IFACES_PATH "[%d].dhcpOptions: must be an object", i);
        cJSON_ArrayForEach(item, o)
        {
                bool ok = false;
                for (size_t k = 0; k < sizeof(known) / sizeof(known[0]); k++)
                        ok = ok || strcmp(item->string, known[k]) == 0;
                if (!ok)
                        return kv_error_set(err, EINVAL, IFACES_PATH "[%d].dhcpOptions.%s: is not supported",
                                            i, item->string);
        }
        net_dhcp_options *d = &tmp->dhcp;
        int parts[4];
        parts[0] = dhcp_string(o, i, "bootFileName", d->boot_file, sizeof(d->boot_file), err);
        parts[1] = parts[0] < 0
                       ? -1
                       : dhcp_string(o, i, "tftpServerName", d->tftp_server, sizeof(d->tftp_server), err);
        parts[2] = parts[1] < 0 ? -1 : dhcp_ntp(o, i, d, err);
        parts[3] = parts[2] < 0 ? -1 : dhcp_private(o, i, d, err);
        int total = 0;
        for (size_t k = 0; k < 4; k++) {
                if (parts[k] < 0)
                        return -EINVAL;
                total += parts[k];
        }
        if (total > NET_DHCP_OPTIONS_MAX)
                return kv_error_set(err, EINVAL,
                                    IFACES_PATH
                                    "[%d].dhcpOptions: %d bytes of options, more than the %d a DHCP "
                                    "reply of this launcher carries",
                                    i, total, NET_DHCP_OPTIONS_MAX);
        return 0;
}

/* interfaces[].pciAddress ("DDDD:BB:SS.F", KubeVirt's format; the argv builder checks where it fits) and
 * acpiIndex (QEMU's acpi-index: 1-16383). */
static int parse_pci_acpi(const cJSON *iface, int i, net_request *tmp, kv_error *err)
{
        const cJSON *pci = cJSON_GetObjectItemCaseSensitive(iface, "pciAddress");
        const cJSON *acpi = cJSON_GetObjectItemCaseSensitive(iface, "acpiIndex");
        if (pci) {
                const char *a = cJSON_IsString(pci) ? pci->valuestring : "";
                if (!jf_is_pci_address(a))
                        return kv_error_set(err, EINVAL,
                                            IFACES_PATH "[%d].pciAddress: must be a PCI address "
                                                        "\"DDDD:BB:SS.F\" (hexadecimal, function 0-7)",
                                            i);
                snprintf(tmp->pci_address, sizeof(tmp->pci_address), "%s", a);
        }
        if (acpi) {
                if (!cJSON_IsNumber(acpi) || acpi->valuedouble < 1 || acpi->valuedouble > 16383 ||
                    acpi->valuedouble != (int)acpi->valuedouble)
                        return kv_error_set(err, EINVAL,
                                            IFACES_PATH "[%d].acpiIndex: must be an integer in 1-16383", i);
                tmp->acpi_index = (unsigned)acpi->valuedouble;
        }
        return 0;
}

/* An interface on a Multus network: bridge (the default) or macvtap, no ports. */
static int parse_secondary(const cJSON *iface, int i, const cJSON *network, const net_request *tmp,
                           net_request *req, kv_error *err)
{
        if (tmp->binding != NET_BINDING_BRIDGE && tmp->binding != NET_BINDING_MACVTAP)
                return kv_error_set(err, EINVAL,
                                    IFACES_PATH
                                    "[%d]: the %s binding needs the pod network; a multus network "
                                    "takes bridge or macvtap",
                                    i, net_binding_name(tmp->binding));
        if (req->n_secondary >= NET_MAX_SECONDARY)
                return kv_error_set(err, EINVAL, IFACES_PATH "[%d]: more than %d multus interfaces", i,
                                    NET_MAX_SECONDARY);
        net_secondary *s = &req->secondary[req->n_secondary++];
        const cJSON *nn = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(network, "multus"), "networkName");
        *s = (net_secondary){.binding = tmp->binding};
        snprintf(s->iface_name, sizeof(s->iface_name), "%s", tmp->iface_name);
        snprintf(s->network, sizeof(s->network), "%s", nn->valuestring);
        snprintf(s->model, sizeof(s->model), "%s", tmp->model);
        snprintf(s->mac, sizeof(s->mac), "%s", tmp->mac);
        snprintf(s->pci_address, sizeof(s->pci_address), "%s", tmp->pci_address);
        s->link_down = tmp->link_down;
        s->iface_index = tmp->iface_index;
        s->acpi_index = tmp->acpi_index;
        s->dhcp = tmp->dhcp;
        net_pod_ifname_for(s->iface_name, s->pod_ifname);
        const cJSON *boot = cJSON_GetObjectItemCaseSensitive(iface, "bootOrder");
        if (cJSON_IsNumber(boot) && boot->valuedouble >= 1 && boot->valuedouble <= 65535)
                s->boot_order = (unsigned)boot->valuedouble;
        return 0;
}

static int parse_interface(const cJSON *iface, int i, const cJSON *networks, net_request *req, int *pod_iface,
                           kv_error *err)
{
        if (!is_object(iface))
                return kv_error_set(err, EINVAL, IFACES_PATH "[%d]: must be an object", i);
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(iface, "name");
        if (!cJSON_IsString(name) || !name->valuestring[0])
                return kv_error_set(err, EINVAL, IFACES_PATH "[%d].name: must be a non-empty string", i);
        if (!net_iface_name_ok(name->valuestring))
                return kv_error_set(err, EINVAL,
                                    IFACES_PATH "[%d].name: \"%.64s\" may only contain letters, digits, '-' "
                                                "and '_' (at most %d characters)",
                                    i, name->valuestring, NET_NAME_MAX - 1);
        int net_index;
        const cJSON *network = network_by_name(networks, name->valuestring, &net_index);
        bool multus = network && cJSON_GetObjectItemCaseSensitive(network, "multus");
        if (!network && (cJSON_GetArraySize(networks) > 0 || *pod_iface >= 0))
                return kv_error_set(err, EINVAL,
                                    IFACES_PATH "[%d].name: \"%s\" has no spec.networks[] entry of that name",
                                    i, name->valuestring);
        if (!multus && *pod_iface >= 0)
                return kv_error_set(err, EINVAL,
                                    IFACES_PATH "[%d]: a second interface on the pod network (" IFACES_PATH
                                                "[%d] is on it)",
                                    i, *pod_iface);
        int r = check_keys(iface, i, err);
        if (r < 0)
                return r;
        net_request tmp = {0};
        r = interface_binding(iface, i, &tmp.binding, err);
        if (r < 0)
                return r;
        snprintf(tmp.iface_name, sizeof(tmp.iface_name), "%s", name->valuestring);
        tmp.iface_index = i;
        r = parse_ports(iface, i, &tmp, err);
        if (r >= 0 && tmp.binding == NET_BINDING_MACVTAP && tmp.n_ports > 0)
                r = kv_error_set(err, EINVAL, IFACES_PATH "[%d].ports: macvtap exposes every port already",
                                 i);
        if (r >= 0)
                r = parse_model_mac(iface, i, &tmp, err);
        bool absent = false;
        if (r >= 0)
                r = parse_state(iface, i, &tmp, &absent, err);
        if (r >= 0)
                r = parse_dhcp_options(iface, i, &tmp, err);
        if (r >= 0)
                r = parse_pci_acpi(iface, i, &tmp, err);
        if (r < 0)
                return r;
        if (absent && !multus)
                return kv_error_set(
                    err, EINVAL, IFACES_PATH "[%d].state: \"absent\" is not supported on the pod network", i);
        if (absent) /* KubeVirt neither attaches the network to the Pod nor plugs the NIC */
                return 0;
        if (multus)
                return parse_secondary(iface, i, network, &tmp, req, err);
        if (tmp.binding == NET_BINDING_MACVTAP)
                return kv_error_set(err, EINVAL,
                                    IFACES_PATH "[%d].macvtap: needs a multus network (a macvlan "
                                                "NetworkAttachmentDefinition), not the pod network",
                                    i);
        *pod_iface = i;
        net_secondary keep[NET_MAX_SECONDARY];
        size_t n_keep = req->n_secondary;
        memcpy(keep, req->secondary, sizeof(keep));
        *req = tmp;
        memcpy(req->secondary, keep, sizeof(keep));
        req->n_secondary = n_keep;
        return 0;
}

/* Every spec.networks[] entry needs an interface of its name. */
static int check_networks_used(const cJSON *networks, const cJSON *ifaces, kv_error *err)
{
        int i = 0;
        const cJSON *n;
        cJSON_ArrayForEach(n, networks)
        {
                const char *name = cJSON_GetObjectItemCaseSensitive(n, "name")->valuestring;
                bool used = false;
                const cJSON *iface;
                cJSON_ArrayForEach(iface, ifaces)
                {
                        const cJSON *in = cJSON_GetObjectItemCaseSensitive(iface, "name");
                        used = used || (cJSON_IsString(in) && strcmp(in->valuestring, name) == 0);
                }
                if (!used)
                        return kv_error_set(err, EINVAL,
                                            "spec.networks[%d]: no " IFACES_PATH "[] entry uses it", i);
                i++;
        }
        return 0;
}

int net_request_from_vmi(const cJSON *vmi_spec, net_request *req, kv_error *err)
{
        *req = (net_request){0};
        if (!is_object(vmi_spec))
                return kv_error_set(err, EINVAL, "spec: must be an object");
        const cJSON *networks = cJSON_GetObjectItemCaseSensitive(vmi_spec, "networks");
        int r = validate_networks(networks, err);
        if (r < 0)
                return r;
        const cJSON *domain = cJSON_GetObjectItemCaseSensitive(vmi_spec, "domain");
        const cJSON *devices = is_object(domain) ? cJSON_GetObjectItemCaseSensitive(domain, "devices") : NULL;
        const cJSON *ifaces =
            is_object(devices) ? cJSON_GetObjectItemCaseSensitive(devices, "interfaces") : NULL;
        if (ifaces && !cJSON_IsArray(ifaces))
                return kv_error_set(err, EINVAL, IFACES_PATH ": must be a list");
        int n_ifaces = cJSON_GetArraySize(ifaces), n_networks = cJSON_GetArraySize(networks);
        if (n_ifaces == 0 && n_networks == 0) {
                /* KubeVirt auto-attaches a pod interface with the default (bridge) binding unless told not
                 * to. */
                const cJSON *autoattach =
                    is_object(devices) ? cJSON_GetObjectItemCaseSensitive(devices, "autoattachPodInterface")
                                       : NULL;
                if (cJSON_IsFalse(autoattach))
                        return 0;
                req->binding = NET_BINDING_BRIDGE;
                snprintf(req->iface_name, sizeof(req->iface_name), "default");
                snprintf(req->model, sizeof(req->model), "virtio");
                return 0;
        }
        int i = 0, pod_iface = -1;
        const cJSON *iface;
        cJSON_ArrayForEach(iface, ifaces)
        {
                r = parse_interface(iface, i++, networks, req, &pod_iface, err);
                if (r < 0)
                        return r;
        }
        return check_networks_used(networks, ifaces, err);
}

int net_validate(const cJSON *vmi_spec, kv_error *err)
{
        net_request req;
        return net_request_from_vmi(vmi_spec, &req, err);
}

bool net_iface_name_ok(const char *name)
{
        size_t n = strlen(name);
        return n > 0 && n < NET_NAME_MAX &&
               strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") == n;
}

void net_pod_ifname_for(const char *network_name, char out[16])
{
        unsigned char md[SHA256_LEN];
        sha256(network_name, strlen(network_name), md);
        snprintf(out, 16, "pod%02x%02x%02x%02x%02x%x", md[0], md[1], md[2], md[3], md[4], md[5] >> 4);
}

char *net_multus_annotation(const net_request *req, const char *ns)
{
        if (req->n_secondary == 0)
                return NULL;
        cJSON *list = cJSON_CreateArray();
        for (size_t i = 0; list && i < req->n_secondary; i++) {
                const net_secondary *s = &req->secondary[i];
                const char *slash = strchr(s->network, '/');
                char nsbuf[NET_NAME_MAX * 2 + 2];
                snprintf(nsbuf, sizeof(nsbuf), "%.*s", slash ? (int)(slash - s->network) : 0, s->network);
                cJSON *e = cJSON_CreateObject();
                cJSON_AddStringToObject(e, "name", slash ? slash + 1 : s->network);
                cJSON_AddStringToObject(e, "namespace", slash ? nsbuf : ns);
                /* the order of Go's NetworkSelectionElement, which KubeVirt marshals: mac before interface */
                if (s->mac[0] && s->binding != NET_BINDING_MACVTAP)
                        cJSON_AddStringToObject(e, "mac", s->mac);
                cJSON_AddStringToObject(e, "interface", s->pod_ifname);
                cJSON_AddItemToArray(list, e);
        }
        char *out = list ? cJSON_PrintUnformatted(list) : NULL;
        cJSON_Delete(list);
        return out;
}

const char *net_migration_blocker(const net_request *req, bool allow_pod_bridge)
{
        if (req->binding == NET_BINDING_BRIDGE && !allow_pod_bridge)
                return "cannot migrate VMI which does not use masquerade, bridge with "
                       "kubevirt.io/allow-pod-bridge-network-live-migration VM annotation or a migratable "
                       "plugin "
                       "to connect to the pod network (the bridge binding moves the Pod's address into the "
                       "guest)";
        for (size_t i = 0; i < req->n_secondary; i++)
                if (req->secondary[i].binding == NET_BINDING_MACVTAP)
                        return "a macvtap interface is bound to the source node's macvlan interface; the "
                               "guest's MAC cannot follow it to another Pod";
        return NULL;
}
