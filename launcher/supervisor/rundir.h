/* The run directory: sockets, the serial log and the disks the launcher creates. Either given
 * (--run-dir, created 0700 if missing) or a private mkdtemp directory removed on exit. */
#pragma once
#include <stdbool.h>

#include "error.h"

typedef struct run_dir {
        char *path;
        bool private_tmp;
} run_dir;

int run_dir_setup(run_dir *rd, const char *given, kv_error *err);
/* malloc'd "<run-dir>/<name>" or NULL */
char *run_dir_file(const run_dir *rd, const char *name);
/* Removes the sockets (and the whole directory when it is private). */
void run_dir_cleanup(run_dir *rd);
