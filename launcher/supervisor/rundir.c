/* Run directory setup and cleanup. */
#include "rundir.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macro.h"

static const char *const sockets[] = {"control.sock", "qmp.sock", "serial.sock", "vnc.sock"};

int run_dir_setup(run_dir *rd, const char *given, kv_error *err)
{
        *rd = (run_dir){0};
        if (!given) {
                const char *tmp = getenv("TMPDIR");
                if (asprintf(&rd->path, "%s/virt-launcher.XXXXXX", tmp && *tmp ? tmp : "/tmp") < 0)
                        return kv_error_set(err, ENOMEM, "run dir path");
                if (!mkdtemp(rd->path)) /* mkdtemp creates it 0700 */
                        return kv_error_errno(err, errno, "create a private run directory `%s`", rd->path);
                rd->private_tmp = true;
                return 0;
        }
        if (given[0] != '/') {
                _cleanup_free_ char *cwd = getcwd(NULL, 0);
                if (!cwd || asprintf(&rd->path, "%s/%s", cwd, given) < 0)
                        return kv_error_errno(err, errno ? errno : ENOMEM, "resolve --run-dir `%s`", given);
        } else if (!(rd->path = strdup(given)))
                return kv_error_set(err, ENOMEM, "run dir path");
        if (mkdir(rd->path, 0700) < 0 && errno != EEXIST)
                return kv_error_errno(err, errno, "create --run-dir `%s`", rd->path);
        struct stat st;
        if (stat(rd->path, &st) < 0 || !S_ISDIR(st.st_mode))
                return kv_error_set(err, ENOTDIR, "--run-dir `%s` is not a directory", rd->path);
        return 0;
}

char *run_dir_file(const run_dir *rd, const char *name)
{
        char *p = NULL;
        return asprintf(&p, "%s/%s", rd->path, name) < 0 ? NULL : p;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
        (void)sb;
        (void)ftw;
        if (flag == FTW_DP)
                rmdir(path);
        else
                unlink(path);
        return 0;
}

void run_dir_cleanup(run_dir *rd)
{
        if (!rd->path)
                return;
        if (rd->private_tmp)
                nftw(rd->path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
        else
                for (size_t i = 0; i < ARRAY_SIZE(sockets); i++) {
                        _cleanup_free_ char *p = run_dir_file(rd, sockets[i]);
                        if (p)
                                unlink(p);
                }
        free(rd->path);
        rd->path = NULL;
}
