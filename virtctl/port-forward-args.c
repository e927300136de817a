/* `virtctl port-forward` arguments (port-forward-args.h). */
#include "port-forward-args.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int fail(char *why, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *why, size_t size, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, size, fmt, ap);
        va_end(ap);
        return -EINVAL;
}

static int kind_parse(const char *kind, bool *vm, char *why, size_t size)
{
        static const char *const vms[] = {"vm", "vms", "virtualmachine", "virtualmachines"};
        static const char *const vmis[] = {"vmi", "vmis", "virtualmachineinstance",
                                           "virtualmachineinstances"};
        for (size_t i = 0; i < 4; i++) {
                if (!strcasecmp(kind, vms[i]) || !strcasecmp(kind, vmis[i])) {
                        *vm = !strcasecmp(kind, vms[i]);
                        return 0;
                }
        }
        return fail(why, size, "unsupported resource type '%s'", kind);
}

static int copy(char *dst, size_t size, const char *src, size_t n, char *why, size_t why_size)
{
        if (n >= size)
                return fail(why, why_size, "name or namespace too long: %s", src);
        memcpy(dst, src, n);
        dst[n] = 0;
        return 0;
}

/* NAME.NAMESPACE, split at the last dot (a namespace has none). */
static int name_dot_ns(const char *s, pf_target *out, char *why, size_t size)
{
        const char *dot = strrchr(s, '.');
        if (!*s)
                return fail(why, size, "expected name after '/'");
        if (s[0] == '.')
                return fail(why, size, "expected name before '.'");
        if (dot && !dot[1])
                return fail(why, size, "expected namespace after '.'");
        if (!dot)
                return copy(out->name, sizeof(out->name), s, strlen(s), why, size);
        if (copy(out->name, sizeof(out->name), s, (size_t)(dot - s), why, size) < 0)
                return -EINVAL;
        return copy(out->ns, sizeof(out->ns), dot + 1, strlen(dot + 1), why, size);
}

int pf_target_parse(const char *arg, pf_target *out, char *why, size_t size)
{
        const char *s1 = strchr(arg, '/'), *s2 = s1 ? strchr(s1 + 1, '/') : NULL;
        char kind[64];
        *out = (pf_target){0};
        if (!*arg)
                return fail(why, size, "target cannot be empty");
        if (s2 && strchr(s2 + 1, '/'))
                return fail(why, size, "target is not valid with more than two '/'");
        if (!s1)
                return name_dot_ns(arg, out, why, size);
        if ((size_t)(s1 - arg) >= sizeof(kind))
                return fail(why, size, "unsupported resource type '%s'", arg);
        snprintf(kind, sizeof(kind), "%.*s", (int)(s1 - arg), arg);
        if (kind_parse(kind, &out->vm, why, size) < 0)
                return -EINVAL;
        if (!s2)
                return name_dot_ns(s1 + 1, out, why, size);
        if (!s2[1])
                return fail(why, size, "namespace cannot be empty");
        if (s2 == s1 + 1)
                return fail(why, size, "name cannot be empty");
        if (copy(out->name, sizeof(out->name), s1 + 1, (size_t)(s2 - s1 - 1), why, size) < 0)
                return -EINVAL;
        return copy(out->ns, sizeof(out->ns), s2 + 1, strlen(s2 + 1), why, size);
}

/* A port number as Go's strconv.Atoi would take it, within [min, 65535]. */
static int number(const char *text, unsigned min, unsigned *out, char *why, size_t size)
{
        if (!*text || strspn(text, "0123456789") != strlen(text))
                return fail(why, size, "strconv.Atoi: parsing \"%s\": invalid syntax", text);
        unsigned long v = strlen(text) <= 5 ? strtoul(text, NULL, 10) : 99999;
        if (v < min || v > 65535)
                return fail(why, size, "port %s is out of range (%u-65535)", text, min);
        *out = (unsigned)v;
        return 0;
}

int pf_port_parse(const char *arg, pf_port *out, char *why, size_t size)
{
        const char *slash = strchr(arg, '/');
        char buf[64], *field[2], *f;
        int n = 0;
        *out = (pf_port){.protocol = "tcp"};
        if (slash && (slash - arg != 3 || (strncmp(arg, "tcp", 3) && strncmp(arg, "udp", 3))))
                return fail(why, size, "unknown protocol: %.*s", (int)(slash - arg), arg);
        if (slash)
                memcpy(out->protocol, arg, 3);
        if (snprintf(buf, sizeof(buf), "%s", slash ? slash + 1 : arg) >= (int)sizeof(buf) || strchr(buf, '/'))
                return fail(why, size, "invalid port \"%s\"", arg);
        /* as KubeVirt's strings.FieldsFunc: empty fields are dropped, so ":8080" and "8080:" are 8080:8080 */
        for (char *rest = buf; (f = strsep(&rest, ":"));) {
                if (!*f)
                        continue;
                if (n == 2)
                        return fail(why, size, "invalid port \"%s\": more than a local and a remote port",
                                    arg);
                field[n++] = f;
        }
        if (!n)
                return fail(why, size, "invalid port, missing local and/or remote port");
        if (number(field[0], 0, &out->local, why, size) < 0 ||
            number(field[n - 1], 1, &out->remote, why, size) < 0)
                return -EINVAL;
        return 0;
}

int pf_ssh_target_parse(const char *arg, char user[static 128], pf_target *out, char *why, size_t size)
{
        const char *at = strchr(arg, '@'), *target = at ? at + 1 : arg;
        user[0] = 0;
        if (at == arg)
                return fail(why, size, "expected username before '@'");
        if (at && (at - arg >= 128 || strchr(target, '@')))
                return fail(why, size, "invalid username or more than one '@' in %s", arg);
        if (!*target)
                return fail(why, size, "expected target after '@'");
        if (at)
                snprintf(user, 128, "%.*s", (int)(at - arg), arg);
        return pf_target_parse(target, out, why, size);
}

int pf_bool_parse(const char *s, bool *out)
{
        static const char *const yes[] = {"1", "t", "T", "TRUE", "true", "True"};
        static const char *const no[] = {"0", "f", "F", "FALSE", "false", "False"};
        for (size_t i = 0; i < 6; i++) {
                if (!strcmp(s, yes[i]) || !strcmp(s, no[i])) {
                        *out = !strcmp(s, yes[i]);
                        return 0;
                }
        }
        return -EINVAL;
}
