/* Unacknowledged bytes of TCP sockets to a port, from /proc/net/tcp (see tcp-drain.h). */
#include "tcp-drain.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One socket line: "sl local_address rem_address st tx_queue:rx_queue ...", addresses as HEXIP:HEXPORT. */
static uint64_t line_unacked(const char *line, unsigned port)
{
        char rem[64];
        unsigned st;
        unsigned long tx, rx;
        if (sscanf(line, " %*[0-9]: %*s %63s %x %lx:%lx", rem, &st, &tx, &rx) != 4)
                return 0;
        const char *colon = strrchr(rem, ':');
        if (!colon || strtoul(colon + 1, NULL, 16) != port)
                return 0;
        return tx;
}

uint64_t tcp_unacked_in(const char *text, unsigned port)
{
        uint64_t sum = 0;
        for (const char *line = text; line && *line;) {
                const char *nl = strchr(line, '\n');
                char buf[512];
                size_t n = nl ? (size_t)(nl - line) : strlen(line);
                if (n < sizeof(buf)) {
                        memcpy(buf, line, n);
                        buf[n] = '\0';
                        sum += line_unacked(buf, port);
                }
                line = nl ? nl + 1 : NULL;
        }
        return sum;
}

static uint64_t file_unacked(const char *path, unsigned port)
{
        FILE *f = fopen(path, "re");
        if (!f)
                return 0;
        uint64_t sum = 0;
        char line[512];
        while (fgets(line, sizeof(line), f))
                sum += tcp_unacked_in(line, port);
        fclose(f);
        return sum;
}

uint64_t tcp_unacked_to_port(unsigned port)
{
        return file_unacked("/proc/self/net/tcp", port) + file_unacked("/proc/self/net/tcp6", port);
}

unsigned tcp_uri_port(const char *uri)
{
        const char *colon = uri ? strrchr(uri, ':') : NULL;
        if (!colon || !colon[1])
                return 0;
        char *end;
        unsigned long p = strtoul(colon + 1, &end, 10);
        return *end || p == 0 || p > 65535 ? 0 : (unsigned)p;
}
