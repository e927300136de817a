/* JSON string escaping for hand-built log lines; cJSON does the rest of the project's JSON. */
#include "jsonesc.h"

#include <stdio.h>

char *json_escape(const char *in, char *out, size_t outsz)
{
        size_t o = 0;
        if (outsz == 0)
                return out;
        for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
                char buf[8];
                const char *rep = NULL;
                switch (*p) {
                case '"':
                        rep = "\\\"";
                        break;
                case '\\':
                        rep = "\\\\";
                        break;
                case '\n':
                        rep = "\\n";
                        break;
                case '\r':
                        rep = "\\r";
                        break;
                case '\t':
                        rep = "\\t";
                        break;
                default:
                        if (*p < 0x20) {
                                snprintf(buf, sizeof(buf), "\\u%04x", *p);
                                rep = buf;
                        }
                }
                size_t need = rep ? __builtin_strlen(rep) : 1;
                if (o + need >= outsz)
                        break;
                if (rep) {
                        for (size_t i = 0; i < need; i++)
                                out[o++] = rep[i];
                } else {
                        out[o++] = (char)*p;
                }
        }
        out[o] = '\0';
        return out;
}
