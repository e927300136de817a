/* resolv.conf parser: "nameserver", "search" and "domain" lines, last search/domain line wins (as glibc). */
#include "resolv.h"
#include "macro.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

static void parse_search(char *rest, resolv_conf *out)
{
        char *save = NULL;
        out->n_search = 0;
        for (char *tok = strtok_r(rest, " \t\r\n", &save); tok && out->n_search < RESOLV_MAX_SEARCH;
             tok = strtok_r(NULL, " \t\r\n", &save))
                if (strlen(tok) < RESOLV_DOMAIN_MAX)
                        snprintf(out->search[out->n_search++], RESOLV_DOMAIN_MAX, "%s", tok);
}

static void parse_line(char *line, resolv_conf *out)
{
        char *save = NULL;
        char *key = strtok_r(line, " \t\r\n", &save);
        if (!key || key[0] == '#' || key[0] == ';')
                return;
        char *rest = strtok_r(NULL, "", &save);
        if (!rest)
                return;
        if (strcmp(key, "nameserver") == 0) {
                char *addr = strtok_r(rest, " \t\r\n", &save);
                struct in_addr a;
                struct in6_addr a6;
                if (addr && out->n_dns < RESOLV_MAX_DNS && inet_pton(AF_INET, addr, &a) == 1)
                        out->dns[out->n_dns++] = a;
                else if (addr && out->n_dns6 < RESOLV_MAX_DNS && inet_pton(AF_INET6, addr, &a6) == 1)
                        out->dns6[out->n_dns6++] = a6;
        } else if (strcmp(key, "search") == 0 || strcmp(key, "domain") == 0) {
                parse_search(rest, out);
        }
}

void resolv_conf_parse(const char *text, resolv_conf *out)
{
        *out = (resolv_conf){0};
        while (text && *text) {
                size_t len = strcspn(text, "\n");
                char line[1024];
                snprintf(line, sizeof(line), "%.*s", (int)(len < sizeof(line) ? len : sizeof(line) - 1),
                         text);
                parse_line(line, out);
                text += len + (text[len] == '\n');
        }
}

int resolv_conf_read(const char *path, resolv_conf *out, kv_error *err)
{
        *out = (resolv_conf){0};
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        if (!f)
                return errno == ENOENT ? 0 : kv_error_errno(err, errno, "open %s", path);
        char line[1024];
        while (fgets(line, sizeof(line), f))
                parse_line(line, out);
        return 0;
}
