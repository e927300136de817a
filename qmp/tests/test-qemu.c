/* Test helper: a real QEMU under TCG for libqmp's integration tests. */
#include "test-qemu.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "macro.h"
#include "strv.h"

static bool guest_files(char *kernel, char *initrd, size_t n)
{
        const char *dir = getenv("KV_GUEST_DIR");
        if (!dir || !*dir)
                return false;
        snprintf(kernel, n, "%s/vmlinuz", dir);
        snprintf(initrd, n, "%s/initrd.img", dir);
        return access(kernel, R_OK) == 0 && access(initrd, R_OK) == 0;
}

static void build_argv(test_qemu *t, strv *a, bool guest, const char *kernel, const char *initrd,
                       const char *append)
{
        const char *base[] = {
            "qemu-system-x86_64", "-accel",          "tcg",      "-machine", "q35", "-m", "256M", "-smp", "1",
            "-nodefaults",        "-no-user-config", "-display", "none"};
        for (size_t i = 0; i < ARRAY_SIZE(base); i++)
                strv_push(a, base[i]);
        strv_push(a, "-qmp");
        strv_pushf(a, "unix:%s,server=on,wait=off", t->sock);
        if (!guest) {
                strv_push(a, "-S");
                return;
        }
        strv_push(a, "-kernel");
        strv_push(a, kernel);
        strv_push(a, "-initrd");
        strv_push(a, initrd);
        strv_push(a, "-append");
        strv_pushf(a, "console=ttyS0 quiet %s", append ? append : "");
        strv_push(a, "-serial");
        strv_pushf(a, "file:%s", t->serial);
}

int test_qemu_start(test_qemu *t, bool guest, const char *append)
{
        char kernel[512], initrd[512];
        *t = (test_qemu){.pid = -1};
        if (guest && !guest_files(kernel, initrd, sizeof(kernel))) {
                fprintf(stderr, "SKIP: the test guest is not built ($KV_GUEST_DIR/vmlinuz missing; run "
                                "tests/guest/build.sh)\n");
                return TEST_SKIP;
        }
        snprintf(t->dir, sizeof(t->dir), "/tmp/kvqmp-test-XXXXXX");
        if (!mkdtemp(t->dir))
                return -errno;
        snprintf(t->sock, sizeof(t->sock), "%s/qmp.sock", t->dir);
        snprintf(t->serial, sizeof(t->serial), "%s/serial.log", t->dir);
        strv a = {0};
        build_argv(t, &a, guest, kernel, initrd, append);
        alarm(120); /* watchdog: SIGALRM kills us, PDEATHSIG kills QEMU */
        t->pid = fork();
        if (t->pid == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                int null = open("/dev/null", O_RDWR);
                dup2(null, STDIN_FILENO);
                execvp(a.v[0], strv_argv(&a));
                _exit(127);
        }
        strv_free(&a);
        return t->pid < 0 ? -errno : 0;
}

qmp *test_qemu_connect(test_qemu *t)
{
        qmp *q = NULL;
        kv_error err = {0};
        if (qmp_connect_unix(&q, t->sock, 20000, &err) < 0 || qmp_handshake(q, 20000, &err) < 0) {
                fprintf(stderr, "connect to QEMU: %s\n", err.msg);
                qmp_free(q);
                return NULL;
        }
        return q;
}

int test_qemu_wait(test_qemu *t, int timeout_ms)
{
        for (int waited = 0; t->pid > 0 && waited <= timeout_ms; waited += 20) {
                int status;
                if (waitpid(t->pid, &status, WNOHANG) == t->pid) {
                        t->pid = -1;
                        return status;
                }
                poll(NULL, 0, 20);
        }
        test_qemu_stop(t);
        return -1;
}

void test_qemu_stop(test_qemu *t)
{
        if (t->pid > 0) {
                kill(t->pid, SIGKILL);
                waitpid(t->pid, NULL, 0);
                t->pid = -1;
        }
        if (t->dir[0]) {
                unlink(t->sock);
                unlink(t->serial);
                rmdir(t->dir);
                t->dir[0] = '\0';
        }
}

bool test_qemu_serial_wait(test_qemu *t, const char *marker, int timeout_ms)
{
        char buf[65536];
        for (int waited = 0; waited <= timeout_ms; waited += 50) {
                int fd = open(t->serial, O_RDONLY | O_CLOEXEC);
                if (fd >= 0) {
                        ssize_t n = read(fd, buf, sizeof(buf) - 1);
                        close(fd);
                        if (n > 0) {
                                buf[n] = '\0';
                                if (strstr(buf, marker))
                                        return true;
                        }
                }
                poll(NULL, 0, 50);
        }
        return false;
}
