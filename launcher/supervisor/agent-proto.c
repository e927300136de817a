/* Guest agent replies: framing and their mapping to the VMI status (agent-proto.h). */
#include "agent-proto.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

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
