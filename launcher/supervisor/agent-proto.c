/* Guest agent replies: framing and their mapping to the VMI status (agent-proto.h). */
#include "agent-proto.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "json.h"

void agent_framer_feed(agent_framer *f, const char *bytes, size_t n, void (*line)(char *text, void *data),
                       void *data)
{
        for (size_t i = 0; i < n; i++) {
                char c = bytes[i];
                if ((unsigned char)c == 0xFF) { /* guest-sync-delimited: what came before is stale */
                        f->len = 0, f->overflow = false;
                } else if (c == '\n') {
                        if (!f->overflow && f->len) {
                                f->buf[f->len] = '\0';
                                line(f->buf, data);
                        }
                        f->len = 0, f->overflow = false;
                } else if (f->len + 1 < sizeof(f->buf)) {
                        f->buf[f->len++] = c;
                } else {
                        f->overflow = true;
                }
        }
}

int agent_reply_parse(const char *line, agent_reply *out)
{
        *out = (agent_reply){0};
        out->root = cJSON_Parse(line);
        if (!cJSON_IsObject(out->root))
                goto not_reply;
        out->ret = cJSON_GetObjectItemCaseSensitive(out->root, "return");
        if (out->ret)
                return 0;
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(out->root, "error");
        if (cJSON_IsObject(e)) {
                const char *desc = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "desc"));
                snprintf(out->error, sizeof(out->error), "%s", desc && *desc ? desc : "error");
                return 0;
        }
not_reply:
        agent_reply_fini(out);
        return -1;
}

void agent_reply_fini(agent_reply *r)
{
        cJSON_Delete(r->root);
        *r = (agent_reply){0};
}

cJSON *agent_osinfo_to_status(const cJSON *ret)
{
        static const char *const map[][2] = {
            {"id", "id"},
            {"name", "name"},
            {"pretty-name", "prettyName"},
            {"version", "version"},
            {"version-id", "versionId"},
            {"kernel-release", "kernelRelease"},
            {"kernel-version", "kernelVersion"},
            {"machine", "machine"},
        };
        if (!cJSON_IsObject(ret))
                return NULL;
        cJSON *o = cJSON_CreateObject();
        for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
                const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ret, map[i][0]));
                if (v)
                        cJSON_AddStringToObject(o, map[i][1], v);
        }
        return o;
}

/* The first IPv4 address of a guest interface (KubeVirt's ipAddress), else its first address. */
static const char *first_address(const cJSON *ips)
{
        const cJSON *a;
        const char *any = NULL;
        cJSON_ArrayForEach(a, ips)
        {
                const char *ip = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(a, "ip-address"));
                const char *type =
                    cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(a, "ip-address-type"));
                if (!ip)
                        continue;
                if (type && !strcmp(type, "ipv4"))
                        return ip;
                if (!any)
                        any = ip;
        }
        return any;
}

/* By MAC; an interface the launcher left to QEMU's user network has no MAC of its own yet: the first such
 * one takes the guest's. */
static status_interface *find_by_mac(status *st, const char *mac)
{
        for (size_t i = 0; mac && i < st->n_ifaces; i++)
                if (!strcasecmp(st->ifaces[i].mac, mac))
                        return &st->ifaces[i];
        for (size_t i = 0; mac && i < st->n_ifaces; i++)
                if (!st->ifaces[i].mac[0] && !st->ifaces[i].interface_name[0]) {
                        snprintf(st->ifaces[i].mac, sizeof(st->ifaces[i].mac), "%s", mac);
                        return &st->ifaces[i];
                }
        return NULL;
}

static bool set_field(char *dst, size_t size, const char *value)
{
        char old[64];
        snprintf(old, sizeof(old), "%s", dst);
        snprintf(dst, size, "%s", value ? value : "");
        return strncmp(old, dst, sizeof(old)) != 0;
}

bool agent_interfaces_apply(status *st, const cJSON *ret)
{
        const cJSON *g;
        bool changed = false;
        if (!cJSON_IsArray(ret))
                return false;
        cJSON_ArrayForEach(g, ret)
        {
                const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(g, "name"));
                const char *mac =
                    cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(g, "hardware-address"));
                if (!name || !strcmp(name, "lo"))
                        continue;
                status_interface *f = find_by_mac(st, mac);
                const char *source = "domain, guest-agent";
                if (!f) {
                        if (st->n_ifaces >= STATUS_MAX_INTERFACES)
                                continue;
                        f = &st->ifaces[st->n_ifaces++];
                        *f = (status_interface){0};
                        changed = true;
                        set_field(f->mac, sizeof(f->mac), mac);
                        source = "guest-agent";
                }
                changed |= set_field(f->interface_name, sizeof(f->interface_name), name);
                changed |= set_field(f->info_source, sizeof(f->info_source), source);
                const char *ip = first_address(cJSON_GetObjectItemCaseSensitive(g, "ip-addresses"));
                if (ip && !f->ip[0]) /* the launcher's own view (the Pod IP) wins */
                        changed |= set_field(f->ip, sizeof(f->ip), ip);
        }
        return changed;
}

/* {name, enabled} of each command qemu-ga lists (enabled left out when false, as KubeVirt's omitempty) */
static cJSON *commands(const cJSON *list)
{
        cJSON *out = cJSON_CreateArray();
        const cJSON *c;
        cJSON_ArrayForEach(c, list)
        {
                const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "name"));
                if (!name)
                        continue;
                cJSON *o = cJSON_CreateObject();
                cJSON_AddStringToObject(o, "name", name);
                if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "enabled")))
                        cJSON_AddBoolToObject(o, "enabled", true);
                cJSON_AddItemToArray(out, o);
        }
        return out;
}

static cJSON *users(const cJSON *list)
{
        cJSON *out = cJSON_CreateArray();
        const cJSON *u;
        cJSON_ArrayForEach(u, list)
        {
                const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(u, "user"));
                const char *domain = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(u, "domain"));
                const cJSON *login = cJSON_GetObjectItemCaseSensitive(u, "login-time");
                if (!name)
                        continue;
                cJSON *o = cJSON_CreateObject();
                cJSON_AddStringToObject(o, "userName", name);
                if (domain)
                        cJSON_AddStringToObject(o, "domain", domain);
                if (cJSON_IsNumber(login))
                        cJSON_AddNumberToObject(o, "loginTime", login->valuedouble);
                cJSON_AddItemToArray(out, o);
        }
        return out;
}

static double num(const cJSON *o, const char *key)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
        return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static cJSON *filesystems(const cJSON *list)
{
        cJSON *disks = cJSON_CreateArray(), *out = cJSON_CreateObject();
        const cJSON *f, *d;
        cJSON_AddItemToObject(out, "disks", disks);
        cJSON_ArrayForEach(f, list)
        {
                const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(f, "name"));
                const char *mount = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(f, "mountpoint"));
                const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(f, "type"));
                if (!name || !mount)
                        continue;
                cJSON *o = cJSON_CreateObject(), *under = cJSON_CreateArray();
                cJSON_AddStringToObject(o, "diskName", name);
                cJSON_AddStringToObject(o, "mountPoint", mount);
                cJSON_AddStringToObject(o, "fileSystemType", type ? type : "");
                cJSON_AddNumberToObject(o, "usedBytes", num(f, "used-bytes"));
                cJSON_AddNumberToObject(o, "totalBytes", num(f, "total-bytes"));
                cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(f, "disk"))
                {
                        const char *serial =
                            cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(d, "serial"));
                        const char *bus =
                            cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(d, "bus-type"));
                        cJSON *x = cJSON_CreateObject();
                        if (serial)
                                cJSON_AddStringToObject(x, "serial", serial);
                        if (bus)
                                cJSON_AddStringToObject(x, "busType", bus);
                        cJSON_AddItemToArray(under, x);
                }
                if (cJSON_GetArraySize(under))
                        cJSON_AddItemToObject(o, "disk", under);
                else
                        cJSON_Delete(under);
                cJSON_AddItemToArray(disks, o);
        }
        return out;
}

/* Replaces info's key with v (consumed); true when it differs from what was there. */
static bool put(cJSON *info, const char *key, cJSON *v)
{
        if (!v)
                return false;
        const cJSON *old = cJSON_GetObjectItemCaseSensitive(info, key);
        if (old && cJSON_Compare(old, v, true)) {
                cJSON_Delete(v);
                return false;
        }
        cJSON_DeleteItemFromObjectCaseSensitive(info, key);
        cJSON_AddItemToObject(info, key, v);
        return true;
}

bool agent_info_apply(cJSON **info, const char *command, const cJSON *ret)
{
        if (!*info && !(*info = cJSON_CreateObject()))
                return false;
        if (!strcmp(command, "guest-info") && cJSON_IsObject(ret)) {
                const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ret, "version"));
                bool changed = v && put(*info, "guestAgentVersion", cJSON_CreateString(v));
                return put(*info, "supportedCommands",
                           commands(cJSON_GetObjectItemCaseSensitive(ret, "supported_commands"))) ||
                       changed;
        }
        if (!strcmp(command, "guest-get-host-name") && cJSON_IsObject(ret)) {
                const char *h = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ret, "host-name"));
                return h && put(*info, "hostname", cJSON_CreateString(h));
        }
        if (!strcmp(command, "guest-get-timezone") && cJSON_IsObject(ret)) {
                const char *zone = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ret, "zone"));
                char tz[128];
                snprintf(tz, sizeof(tz), "%s, %d", zone ? zone : "",
                         (int)json_clamp_i64(cJSON_GetObjectItemCaseSensitive(ret, "offset"), INT_MIN,
                                             INT_MAX, 0));
                return put(*info, "timezone", cJSON_CreateString(tz));
        }
        if (!strcmp(command, "guest-get-users") && cJSON_IsArray(ret))
                return put(*info, "userList", users(ret));
        if (!strcmp(command, "guest-get-fsinfo") && cJSON_IsArray(ret))
                return put(*info, "fsInfo", filesystems(ret));
        return false;
}
