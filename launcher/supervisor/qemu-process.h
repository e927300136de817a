/* Starting QEMU as a child: fork + execve (never a shell), the given fds placed at 3, 4, ..., stderr
 * on a pipe, PR_SET_PDEATHSIG(SIGKILL) so QEMU never outlives its launcher. */
#pragma once
#include <sys/types.h>

#include "error.h"

typedef struct qemu_spawn_req {
        const char *path;  /* executable */
        char *const *argv; /* NULL-terminated */
        const int *fds;    /* placed at 3 + i in the child */
        int nfds;
        int stderr_fd; /* QEMU's stderr (a pipe end), or -1 to inherit */
} qemu_spawn_req;

/* Returns 0 and the pid once execve succeeded; an exec failure is reported here, not as an exit. */
int qemu_spawn(const qemu_spawn_req *req, pid_t *pid, kv_error *err);
/* "exited with status N" / "killed by signal N (SIGKILL)" into buf. */
void wait_status_describe(int wstatus, char *buf, size_t size);
