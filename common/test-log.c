/* Unit test for the JSON-lines logger: a line longer than the 8 KiB stack buffer (a long message, long
 * extra members) is still one whole JSON object carrying all of it. */
#include <assert.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"

/* Runs the logging below with stderr going to a temporary file; returns what was written. */
static char *captured(void (*emit)(void))
{
        char path[] = "/tmp/kv-test-log-XXXXXX";
        int fd = mkstemp(path);
        assert(fd >= 0);
        unlink(path);
        int saved = dup(STDERR_FILENO);
        assert(saved >= 0 && dup2(fd, STDERR_FILENO) == STDERR_FILENO);
        emit();
        assert(dup2(saved, STDERR_FILENO) == STDERR_FILENO);
        close(saved);
        off_t size = lseek(fd, 0, SEEK_END);
        char *out = calloc(1, (size_t)size + 1);
        assert(out && pread(fd, out, (size_t)size, 0) == size);
        close(fd);
        return out;
}

static char long_msg[20000]; /* quotes, a newline, and 3-byte UTF-8 characters ("€") across 8 KiB */
static char long_extra[12000];

static void emit_lines(void)
{
        log_info("short");
        log_info("%s", long_msg);
        kv_log_kv(KV_LOG_WARNING, long_extra, "with %s", "extra");
}

static cJSON *next_line(char **cursor)
{
        char *nl = strchr(*cursor, '\n');
        assert(nl);
        *nl = '\0';
        cJSON *j = cJSON_Parse(*cursor);
        assert(j && cJSON_IsObject(j));
        *cursor = nl + 1;
        return j;
}

int main(void)
{
        size_t n = 0;
        while (n + 8 < sizeof(long_msg)) {
                const char *piece = n % 100 == 0 ? "\"q\"\n" : "\xe2\x82\xac"; /* "€" */
                memcpy(long_msg + n, piece, strlen(piece));
                n += strlen(piece);
        }
        long_msg[n] = '\0';
        int len = snprintf(long_extra, sizeof(long_extra), "\"blob\":\"");
        memset(long_extra + len, 'x', sizeof(long_extra) - (size_t)len - 3);
        strcpy(long_extra + sizeof(long_extra) - 3, "\"");

        kv_log_init("test-log");
        kv_log_set_vmi("ns/vm");
        _cleanup_free_ char *out = captured(emit_lines);
        char *cursor = out;

        cJSON *j = next_line(&cursor);
        assert(!strcmp(cJSON_GetObjectItem(j, "msg")->valuestring, "short"));
        assert(!strcmp(cJSON_GetObjectItem(j, "vmi")->valuestring, "ns/vm"));
        cJSON_Delete(j);

        j = next_line(&cursor);
        assert(strlen(cursor) > 0);
        assert(!strcmp(cJSON_GetObjectItem(j, "msg")->valuestring, long_msg)); /* all of it */
        assert(!strcmp(cJSON_GetObjectItem(j, "component")->valuestring, "test-log"));
        assert(cJSON_IsString(cJSON_GetObjectItem(j, "ts")));
        cJSON_Delete(j);

        j = next_line(&cursor);
        assert(!strcmp(cJSON_GetObjectItem(j, "msg")->valuestring, "with extra"));
        assert(strlen(cJSON_GetObjectItem(j, "blob")->valuestring) == sizeof(long_extra) - 3 - 8);
        assert(!strcmp(cJSON_GetObjectItem(j, "level")->valuestring, "warning"));
        cJSON_Delete(j);
        assert(*cursor == '\0'); /* one line per call */
        printf("ok\n");
        return 0;
}
