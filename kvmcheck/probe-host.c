/* Check 1: the host CPU's virtualization flags (/proc/cpuinfo) and which KVM modules are loaded
 * (/sys/module/kvm_*: present for built-in modules too). */
#include "macro.h"
#include "probes.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>

static bool flag_in(const char *flags, const char *flag)
{
        size_t n = strlen(flag);
        for (const char *p = flags; (p = strstr(p, flag)); p += n)
                if ((p == flags || p[-1] == ' ' || p[-1] == '\t') &&
                    (p[n] == ' ' || p[n] == '\n' || p[n] == '\0'))
                        return true;
        return false;
}

static void read_cpuinfo(kvm_profile_host *h)
{
        _cleanup_fclose_ FILE *f = fopen("/proc/cpuinfo", "re");
        if (!f)
                return;
        h->cpuinfo_read = true;
        char line[8192];
        bool seen_flags = false;
        while (fgets(line, sizeof(line), f)) {
                char *colon = strchr(line, ':');
                if (!colon)
                        continue;
                char *val = colon + 1 + (colon[1] == ' ');
                if (!h->cpu_model[0] && !strncmp(line, "model name", 10)) {
                        snprintf(h->cpu_model, sizeof(h->cpu_model), "%.*s", (int)strcspn(val, "\n"), val);
                } else if (!seen_flags && !strncmp(line, "flags", 5)) {
                        /* the first CPU speaks for all: mixed flags across CPUs do not occur on supported
                         * hosts */
                        seen_flags = true;
                        h->vmx = flag_in(val, "vmx");
                        h->svm = flag_in(val, "svm");
                        h->hypervisor = flag_in(val, "hypervisor");
                }
        }
}

static int is_kvm_module(const struct dirent *de)
{
        return !strcmp(de->d_name, "kvm") || !strncmp(de->d_name, "kvm_", 4);
}

static void list_modules(kvm_profile_host *h)
{
        struct dirent **names = NULL;
        int n = scandir("/sys/module", &names, is_kvm_module, alphasort);
        size_t len = 0;
        for (int i = 0; i < n; i++) {
                int w = snprintf(h->modules + len, sizeof(h->modules) - len, "%s%s", len ? "," : "",
                                 names[i]->d_name);
                if (w > 0 && (size_t)w < sizeof(h->modules) - len)
                        len += (size_t)w;
                free(names[i]);
        }
        free(names);
}

void probe_host(kvm_profile_host *h)
{
        struct utsname u;
        if (uname(&u) == 0)
                snprintf(h->arch, sizeof(h->arch), "%s", u.machine);
        read_cpuinfo(h);
        list_modules(h);
}
