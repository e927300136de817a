/* subprocess: posix_spawnp + waitpid, with the child's stderr captured for the error message. */
#include "subprocess.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "macro.h"

extern char **environ;

static void read_first_line(int fd, char *buf, size_t size)
{
        size_t n = 0;
        ssize_t k;
        while (n + 1 < size && (k = read(fd, buf + n, size - 1 - n)) != 0) {
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        break;
                n += k;
        }
        buf[n] = '\0';
        buf[strcspn(buf, "\n")] = '\0';
        /* Drain the rest so the child never blocks on a full pipe. */
        char sink[4096];
        while ((k = read(fd, sink, sizeof(sink))) > 0 || (k < 0 && errno == EINTR))
                ;
}

static int spawn_child(char *const argv[], int err_fd, pid_t *pid)
{
        posix_spawn_file_actions_t fa;
        int r = posix_spawn_file_actions_init(&fa);
        if (r)
                return -r;
        r = posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
        if (!r)
                r = posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
        if (!r)
                r = posix_spawn_file_actions_adddup2(&fa, err_fd, STDERR_FILENO);
        if (!r)
                r = posix_spawnp(pid, argv[0], &fa, NULL, argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        return -r;
}

int spawn_wait(char *const argv[], kv_error *err)
{
        int pipefd[2];
        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return kv_error_errno(err, errno, "pipe");
        _cleanup_close_ int rd = pipefd[0], wr = pipefd[1];
        pid_t pid;
        int r = spawn_child(argv, wr, &pid);
        if (r < 0)
                return kv_error_errno(err, -r, "spawn %s", argv[0]);
        close(TAKE_FD(wr));
        char line[512];
        read_first_line(rd, line, sizeof(line));
        int status;
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return kv_error_errno(err, errno, "waitpid %s", argv[0]);
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
                return 0;
        if (WIFEXITED(status))
                return kv_error_set(err, EIO, "%s exited with status %d: %s", argv[0], WEXITSTATUS(status),
                                    line);
        return kv_error_set(err, EIO, "%s killed by signal %d", argv[0], WTERMSIG(status));
}
