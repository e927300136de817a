/* Golden-file tests of the pure core: testdata/NAME.yaml → vmi_load → vmi_prepare (into a temp dir with
 * fixture images) → qemu_argv_build, compared line by line with testdata/NAME.argv. Manifests name the
 * temp dir @TMP@. testdata/bad/NAME.yaml must fail with the substring on its first line ("# error: ...").
 * KV_REGEN_GOLDEN=1 rewrites the .argv files. The temp dir name holds a space, a comma and quotes, so
 * every path in every golden exercises escaping; its random suffix shows as @RND@. Each argv is also run
 * by the real QEMU (-S, then QMP quit) unless KV_GOLDEN_NO_QEMU is set. */
#include <dirent.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macro.h"
#include "helperd.h"
#include "qemu-argv.h"
#include "subprocess.h"
#include "virtiofs.h"
#include "volumes.h"

extern char **environ;
static int failures;
static char tmp[256];
static char *tmp_yaml; /* tmp escaped for a double-quoted YAML string: manifests write "@TMP@/..." */

static char *read_file(const char *path)
{
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        if (!f)
                return NULL;
        char *buf = NULL;
        size_t n = 0;
        FILE *m = open_memstream(&buf, &n);
        char chunk[4096];
        size_t k;
        while ((k = fread(chunk, 1, sizeof(chunk), f)) > 0)
                fwrite(chunk, 1, k, m);
        fclose(m);
        return buf;
}

/* Replace every `from` in s with `to` (returns a new string). */
static char *replace_all(const char *s, const char *from, const char *to)
{
        char *buf = NULL;
        size_t n = 0, fl = strlen(from);
        FILE *m = open_memstream(&buf, &n);
        for (const char *p; (p = strstr(s, from)); s = p + fl) {
                fwrite(s, 1, p - s, m);
                fputs(to, m);
        }
        fputs(s, m);
        fclose(m);
        return buf;
}

static void mkdirs(const char *path)
{
        char buf[512];
        snprintf(buf, sizeof(buf), "%s", path);
        for (char *p = buf + 1; *p; p++) {
                if (*p != '/')
                        continue;
                *p = '\0';
                mkdir(buf, 0755);
                *p = '/';
        }
        mkdir(buf, 0755);
}

static void write_fixture(const char *rel, size_t size)
{
        char path[512], dir[512];
        snprintf(path, sizeof(path), "%s/%s", tmp, rel);
        snprintf(dir, sizeof(dir), "%s", path);
        *strrchr(dir, '/') = '\0';
        mkdirs(dir);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || ftruncate(fd, size) < 0) {
                fprintf(stderr, "fixture %s: %s\n", path, strerror(errno));
                exit(1);
        }
        close(fd);
}

/* A qcow2 whose header names /etc/passwd as its backing file: the argv must never let QEMU open it. */
static void write_evil_qcow2(const char *rel)
{
        char path[512], backing[] = "/etc/passwd";
        write_fixture(rel, 0);
        snprintf(path, sizeof(path), "%s/%s", tmp, rel);
        char *const argv[] = {"qemu-img", "create", "-q",    "-f", "qcow2", "-u", "-F",
                              "raw",      "-b",     backing, path, "64M",   NULL};
        kv_error err = {0};
        if (spawn_wait(argv, &err) < 0) {
                fprintf(stderr, "fixture: %s\n", err.msg);
                exit(1);
        }
}

/* The kernelBoot fixture is the test guest's kernel when it is built (QEMU refuses a fake one), else an
 * empty placeholder and the QEMU smoke run skips kernelBoot manifests. */
static bool fake_kernel;

static void copy_guest_file(const char *file, const char *rel)
{
        const char *guest = getenv("KV_GUEST_DIR");
        char from[512], to[512];
        snprintf(from, sizeof(from), "%s/%s", guest ? guest : "/nonexistent", file);
        write_fixture(rel, 0);
        snprintf(to, sizeof(to), "%s/%s", tmp, rel);
        char *const argv[] = {"cp", "--", from, to, NULL};
        kv_error err = {0};
        if (access(from, R_OK) < 0 || spawn_wait(argv, &err) < 0)
                fake_kernel = true;
}

static void make_fixtures(void)
{
        write_evil_qcow2("images/containerdisk/disk/disk.qcow2");
        write_fixture("images/second/disk/disk.img", 1 << 20);
        copy_guest_file("vmlinuz", "images/kernelboot/boot/vmlinuz");
        copy_guest_file("initrd.img", "images/kernelboot/boot/initrd.img");
        write_fixture("local image, \"quoted\" 'dir'/disk/disk.img", 2 << 20);
        write_fixture("json:{\"driver\":\"nbd\"}/disk/disk.img", 1 << 20);
        write_fixture("nbd:localhost:10809/disk.img", 1 << 20);
        write_fixture("host,disks/existing disk.img", 8 << 20);
        write_fixture("pvc/data/disk.img", 16 << 20);
        write_fixture("pvc/scratch/disk.img", 16 << 20);
        write_fixture("outside/secret", 16);
        /* configMap/secret/... volumes: one directory of keys per volume, as the kubelet mounts them */
        write_fixture("secrets/app-config/app.properties", 64);
        write_fixture("secrets/app-secret/password", 16);
        write_fixture("secrets/sa/token", 32);
        write_fixture("secrets/podinfo/labels", 16);
        write_fixture("secrets/sysprep/Autounattend.xml", 128);
        write_fixture("images/escape/disk/placeholder", 0);
        char link[512];
        snprintf(link, sizeof(link), "%s/images/escape/boot", tmp);
        if (symlink("../../outside", link) < 0)
                perror("symlink");
}

static int listen_unix(const char *path)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
        unlink(path);
        if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1) < 0) {
                perror(path);
                exit(1);
        }
        return fd;
}

/* Start the real QEMU with the argv (QMP and serial listening sockets as fds 3 and 4, as the supervisor
 * passes them), negotiate QMP and quit: proves QEMU 7.2 accepts every option and JSON property. Socket
 * paths are short symlink-free names under /tmp because sun_path is limited to 108 bytes. */
static void qemu_smoke(const char *name, const strv *argv, const char *run)
{
        char qmp_path[108], serial_path[108];
        snprintf(qmp_path, sizeof(qmp_path), "/tmp/kvlite-golden-%d-qmp", getpid());
        snprintf(serial_path, sizeof(serial_path), "/tmp/kvlite-golden-%d-serial", getpid());
        _cleanup_close_ int qmp = listen_unix(qmp_path), serial = listen_unix(serial_path);
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, qmp, 3);
        posix_spawn_file_actions_adddup2(&fa, serial, 4);
        pid_t pid;
        if (posix_spawnp(&pid, argv->v[0], &fa, NULL, argv->v, environ) != 0) {
                posix_spawn_file_actions_destroy(&fa);
                return; /* no QEMU installed: the golden comparison still runs */
        }
        posix_spawn_file_actions_destroy(&fa);
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", qmp_path);
        _cleanup_close_ int c = socket(AF_UNIX, SOCK_STREAM, 0);
        struct timeval tv = {.tv_sec = 10};
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        char greeting[4096] = "";
        const char cmds[] = "{\"execute\":\"qmp_capabilities\"}\n{\"execute\":\"quit\"}\n";
        bool ok = connect(c, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
                  read(c, greeting, sizeof(greeting) - 1) > 0 && strstr(greeting, "\"QMP\"") &&
                  write(c, cmds, strlen(cmds)) == (ssize_t)strlen(cmds);
        int status = 0;
        for (int i = 0; i < 1000 && waitpid(pid, &status, WNOHANG) == 0; i++)
                usleep(10000);
        if (kill(pid, SIGKILL) == 0) /* still running: it did not quit */
                waitpid(pid, &status, 0), ok = false;
        unlink(qmp_path), unlink(serial_path);
        if (!ok || !WIFEXITED(status) || WEXITSTATUS(status)) {
                fprintf(stderr, "FAIL %s: QEMU did not accept the argv (run dir %s)\n", name, run);
                failures++;
        }
}

/* The pod interface net_setup would have wired, from "# net-netdev: JSON" / "# net-device: JSON"
 * comments (the builder is pure: the launcher passes these in). *out is malloc'd or NULL. */
static void manifest_net(const char *text, const char *key, char **out)
{
        const char *p = strstr(text, key);
        *out = p ? strndup(p + strlen(key), strcspn(p + strlen(key), "\n")) : NULL;
}

/* The accelerator a manifest asks for in a "# accel: kvm" comment (default tcg). */
static const char *manifest_accel(const char *text)
{
        return strstr(text, "# accel: kvm") ? "kvm" : "tcg";
}

static char *build_argv_text_in(const char *name, const char *manifest, const char *image_root, kv_error *err,
                                int *stage)
{
        _cleanup_(vmi_freep) vmi *v = NULL;
        char run[512], images[512], pvc[512], log[512], secrets[512];
        snprintf(run, sizeof(run), "%s/run-%s", tmp, name);
        snprintf(images, sizeof(images), "%s", image_root);
        snprintf(pvc, sizeof(pvc), "%s/pvc", tmp);
        snprintf(secrets, sizeof(secrets), "%s/secrets", tmp);
        snprintf(log, sizeof(log), "%s/serial.log", run);
        mkdirs(run);
        *stage = 0;
        if (vmi_load_json_string(manifest, &v, err) < 0)
                return NULL;
        *stage = 1;
        launcher_paths p = {.run_dir = run, .image_root = images, .pvc_root = pvc, .secret_root = secrets};
        if (vmi_prepare(v, &p, err) < 0)
                return NULL;
        *stage = 2;
        qemu_argv_opts o = {.qemu_binary = "qemu-system-x86_64",
                            .accel = manifest_accel(manifest),
                            .run_dir = run,
                            .qmp_fd = 3,
                            .serial_fd = 4,
                            .agent_fd = -1, /* <run>/agent.sock: the smoke run needs no third fd */
                            .serial_log = log,
                            .hotplug_ports = -1,
                            .now = 1767225600 /* 2026-01-01T00:00:00Z: RTC offsets are reproducible */};
        _cleanup_free_ char *netdev = NULL, *netdevice = NULL;
        manifest_net(manifest, "# net-netdev: ", &netdev);
        manifest_net(manifest, "# net-device: ", &netdevice);
        o.net_netdev_json = netdev, o.net_device_json = netdevice;
        strv argv = {0};
        if (qemu_argv_build(v, &o, &argv, err) < 0) {
                strv_free(&argv);
                return NULL;
        }
        /* A wired netdev names a tap or passt socket, a filesystem virtiofsd's socket: they only exist under
         * the launcher; hugepages need a hugetlbfs with free pages (the launcher checks the host:
         * launcher/supervisor/cpumem.c). */
        if (strcmp(o.accel, "kvm") && !(fake_kernel && v->kernel_boot) && !netdev && !v->hugepage_size &&
            !v->n_filesystems && !getenv("KV_GOLDEN_NO_QEMU")) {
                helperd_set helpers = {0}; /* swtpm for devices.tpm: QEMU connects at startup */
                kv_error herr = {0};
                char metrics_path[4200]; /* downwardMetrics: QEMU connects to the launcher's socket */
                snprintf(metrics_path, sizeof(metrics_path), "%s/%s", run, QEMU_METRICS_SOCKET);
                int metrics = v->downward_metrics ? listen_unix(metrics_path) : -1;
                if (helperd_start(v, run, &helpers, &herr) < 0) {
                        fprintf(stderr, "FAIL %s: helper daemons: %s\n", name, herr.msg);
                        failures++;
                } else {
                        qemu_smoke(name, &argv, run);
                }
                helperd_stop(&helpers);
                if (metrics >= 0)
                        close(metrics);
        }
        char *buf = NULL;
        size_t n = 0;
        FILE *m = open_memstream(&buf, &n);
        for (size_t i = 0; i < argv.n; i++)
                fprintf(m, "%s\n", argv.v[i]);
        /* Each filesystem's virtiofsd, as the launcher starts it (read-only: under its seccomp filter). */
        for (size_t i = 0; i < v->n_filesystems; i++) {
                _cleanup_(strv_free) strv fsd = {0};
                const vmi_filesystem *fs = &v->filesystems[i];
                if (virtiofsd_argv(VIRTIOFSD_DEFAULT, v, fs, run, &fsd, err) < 0) {
                        fclose(m), free(buf), strv_free(&argv);
                        return NULL;
                }
                fprintf(m, "# virtiofsd for %s%s\n", fs->name,
                        v->volumes[fs->volume].prep.read_only ? " (read-only)" : "");
                for (size_t k = 0; k < fsd.n; k++)
                        fprintf(m, "%s\n", fsd.v[k]);
        }
        fclose(m);
        strv_free(&argv);
        /* The temp dir appears raw, JSON-escaped and comma-doubled: replacing only its random suffix keeps
         * every escaping visible in the golden file. */
        char *norm = replace_all(buf, tmp + strlen(tmp) - 6, "@RND@");
        free(buf);
        return norm;
}

static char *build_argv_text(const char *name, const char *manifest, kv_error *err, int *stage)
{
        char images[512];
        snprintf(images, sizeof(images), "%s/images", tmp);
        return build_argv_text_in(name, manifest, images, err, stage);
}

/* examples/vmi-*.yaml must load, prepare against the built test guest and start QEMU. */
static void run_example(const char *dir, const char *file)
{
        const char *guest = getenv("KV_GUEST_DIR");
        char path[512], name[128], probe[512];
        snprintf(probe, sizeof(probe), "%s/containerdisk", guest ? guest : "/nonexistent");
        if (strncmp(file, "vmi-", 4) || access(probe, F_OK) < 0)
                return;
        snprintf(name, sizeof(name), "example-%.*s", (int)(strlen(file) - 5), file);
        snprintf(path, sizeof(path), "%s/%s", dir, file);
        _cleanup_free_ char *manifest = read_file(path);
        kv_error err = {0};
        int stage;
        _cleanup_free_ char *got = build_argv_text_in(name, manifest, guest, &err, &stage);
        if (!got) {
                fprintf(stderr, "FAIL %s: %s\n", name, err.msg);
                failures++;
                return;
        }
        printf("ok %s\n", name);
}

static void check_cidata(const char *name)
{
        char path[512];
        snprintf(path, sizeof(path), "%s/run-%s/cidata-cloudinit.iso", tmp, name);
        _cleanup_close_ int fd = open(path, O_RDONLY);
        char label[7] = {0};
        if (fd < 0)
                return;
        if (pread(fd, label, 6, 32768 + 40) != 6 || strcmp(label, "cidata")) {
                fprintf(stderr, "%s: %s has volume id \"%s\", want cidata\n", name, path, label);
                failures++;
        }
}

static void run_good(const char *dir, const char *file)
{
        char path[512], golden[512], name[128];
        snprintf(name, sizeof(name), "%.*s", (int)(strlen(file) - 5), file);
        snprintf(path, sizeof(path), "%s/%s", dir, file);
        snprintf(golden, sizeof(golden), "%s/%s.argv", dir, name);
        _cleanup_free_ char *raw = read_file(path), *manifest = replace_all(raw, "@TMP@", tmp_yaml);
        kv_error err = {0};
        int stage;
        _cleanup_free_ char *got = build_argv_text(name, manifest, &err, &stage);
        if (!got && strstr(err.msg, "which this host lacks")) { /* e.g. no swtpm installed */
                printf("skip %s: %s\n", name, err.msg);
                return;
        }
        if (!got) {
                fprintf(stderr, "FAIL %s: %s\n", name, err.msg);
                failures++;
                return;
        }
        check_cidata(name);
        if (getenv("KV_REGEN_GOLDEN")) {
                _cleanup_fclose_ FILE *f = fopen(golden, "we");
                if (f)
                        fputs(got, f);
                printf("regenerated %s\n", golden);
                return;
        }
        _cleanup_free_ char *want = read_file(golden);
        if (!want || strcmp(want, got)) {
                fprintf(stderr, "FAIL %s: argv differs from %s (KV_REGEN_GOLDEN=1 rewrites it)\n--- got:\n%s",
                        name, golden, got);
                failures++;
                return;
        }
        printf("ok %s\n", name);
}

static void run_bad(const char *dir, const char *file)
{
        char path[512], name[128];
        snprintf(name, sizeof(name), "bad/%s", file);
        snprintf(path, sizeof(path), "%s/%s", dir, file);
        _cleanup_free_ char *raw = read_file(path), *manifest = replace_all(raw, "@TMP@", tmp_yaml);
        char want[256] = "";
        if (sscanf(raw, "# error: %255[^\n]", want) != 1) {
                fprintf(stderr, "FAIL %s: first line must be \"# error: <substring>\"\n", name);
                failures++;
                return;
        }
        kv_error err = {0};
        int stage;
        char *got = build_argv_text(file, manifest, &err, &stage);
        _cleanup_free_ char *msg = replace_all(err.msg, tmp, "@TMP@");
        if (got || err.code != EINVAL || !strstr(msg, want)) {
                fprintf(stderr, "FAIL %s: want EINVAL with \"%s\", got %s (code %d)\n", name, want,
                        got ? "success" : msg, err.code);
                failures++;
        } else {
                printf("ok %s: %s\n", name, msg);
        }
        free(got);
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
        return strcmp((*a)->d_name, (*b)->d_name);
}

static int only_yaml(const struct dirent *e)
{
        size_t n = strlen(e->d_name);
        return n > 5 && !strcmp(e->d_name + n - 5, ".yaml");
}

static int run_dir(const char *dir, void (*fn)(const char *, const char *))
{
        struct dirent **list;
        int n = scandir(dir, &list, only_yaml, by_name);
        if (n < 0) {
                fprintf(stderr, "scandir %s: %s\n", dir, strerror(errno));
                exit(1);
        }
        for (int i = 0; i < n; i++) {
                fn(dir, list[i]->d_name);
                free(list[i]);
        }
        free(list);
        return n;
}

static void cleanup_tmp(void)
{
        char *const argv[] = {"rm", "-rf", "--", tmp, NULL};
        kv_error err = {0};
        if (!getenv("KV_KEEP_TMP"))
                spawn_wait(argv, &err);
}

int main(void)
{
        const char *src = getenv("KV_SOURCE_ROOT");
        char good[512], bad[512];
        snprintf(good, sizeof(good), "%s/launcher/core/testdata", src ? src : ".");
        snprintf(bad, sizeof(bad), "%s/bad", good);
        snprintf(tmp, sizeof(tmp), "/tmp/kvlite golden,'q\"XXXXXX");
        if (!mkdtemp(tmp)) {
                perror("mkdtemp");
                return 1;
        }
        atexit(cleanup_tmp);
        tmp_yaml = replace_all(tmp, "\"", "\\\"");
        make_fixtures();
        int n_good = run_dir(good, run_good), n_bad = run_dir(bad, run_bad);
        char examples[512];
        snprintf(examples, sizeof(examples), "%s/examples", src ? src : ".");
        run_dir(examples, run_example);
        printf("%d good, %d bad manifests, %d failures\n", n_good, n_bad, failures);
        free(tmp_yaml);
        return failures ? 1 : 0;
}
