/* libFuzzer target for what a registry or an HTTP server sends the importer: the first input byte picks an
 * image layer (tar, any compression) or a raw source for the extractor, or response header lines for the HTTP
 * header parser. Must never crash, leak or read out of bounds, and the extractor must never create anything
 * but its one output file, whatever the archive holds (.., absolute paths, links out, devices, two disks). */
#include <dirent.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "extract.h"
#include "http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64], out[96];

/* The work directory holds at most the output file; anything else came out of the archive. */
static void check_dir(void)
{
        DIR *d = opendir(dir);
        struct dirent *e;
        if (!d)
                abort();
        while ((e = readdir(d)))
                if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, "out")) {
                        fprintf(stderr, "the extractor created %s/%s\n", dir, e->d_name);
                        abort();
                }
        closedir(d);
        unlink(out);
}

static void extract(const uint8_t *data, size_t size, bool raw)
{
        int fd = memfd_create("fuzz-layer", MFD_CLOEXEC);
        if (fd < 0 || write(fd, data, size) != (ssize_t)size || lseek(fd, 0, SEEK_SET) != 0)
                abort();
        kvreg_extract x = {.out_path = out, .limit = 1 << 20};
        kv_error err;
        int r = raw ? kvreg_extract_raw(fd, &x, &err) : kvreg_extract_layer(fd, &x, &err);
        close(fd);
        /* a disk file found in a layer is a path under disk/ without "..": the checks ran before writing */
        if (r == 0 && !raw && x.found[0] &&
            (strncmp(x.found, "disk/", 5) || kvreg_path_check(x.found, &err) < 0))
                abort();
        check_dir();
}

static void headers(const uint8_t *data, size_t size)
{
        kvreg_http_req req = {.content_length = -1};
        /* one line per '\n', each handed over without a terminating NUL, as libcurl does */
        for (size_t i = 0; i < size;) {
                const uint8_t *nl = memchr(data + i, '\n', size - i);
                size_t n = nl ? (size_t)(nl - data - i) + 1 : size - i;
                char *line = malloc(n ? n : 1);
                memcpy(line, data + i, n);
                kvreg_http_header_line(&req, line, n);
                free(line);
                i += n;
        }
        if (strlen(req.content_type) >= sizeof(req.content_type) ||
            strlen(req.docker_digest) >= sizeof(req.docker_digest) ||
            strlen(req.www_auth) >= sizeof(req.www_auth))
                abort();
}

static void remove_dir(void)
{
        unlink(out);
        rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (!dir[0]) {
                snprintf(dir, sizeof(dir), "/tmp/fuzz-archive.XXXXXX");
                if (!mkdtemp(dir))
                        abort();
                snprintf(out, sizeof(out), "%s/out", dir);
                atexit(remove_dir);
        }
        if (size == 0)
                return 0;
        switch (data[0] % 3) {
        case 0:
                extract(data + 1, size - 1, false);
                break;
        case 1:
                extract(data + 1, size - 1, true);
                break;
        default:
                headers(data + 1, size - 1);
        }
        return 0;
}
