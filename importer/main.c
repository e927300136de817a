/* kvlite-importer: imports a VM disk into DEST/disk.img from a registry image, an HTTP URL or blank.
 * Progress and the result go to stdout as JSON lines (for the DataVolume controller); logs to stderr. */
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "import.h"
#include "log.h"
#include "macro.h"
#include "regconfig.h"

enum {
        EXIT_OK = 0,
        EXIT_INTERNAL = 1,
        EXIT_USAGE = 2,
        EXIT_UNREACHABLE = 3,
        EXIT_BAD_IMAGE = 4,
        EXIT_NO_SPACE = 5,
};

static void usage(FILE *f)
{
        fputs(
            "Usage: kvlite-importer SOURCE --dest DIR [OPTIONS]\n"
            "Imports a VM disk into DIR/disk.img (sparse raw, installed atomically).\n"
            "\n"
            "Sources (exactly one):\n"
            "  --registry-url docker://HOST[:PORT]/REPO[:TAG|@DIGEST]   container image with the disk under "
            "disk/\n"
            "  --http-url URL                 a disk image (qcow2, raw, ...), optionally "
            "gz/xz/zst-compressed\n"
            "  --blank SIZE                   an empty disk of SIZE bytes (suffixes K M G T, Ki Mi Gi Ti)\n"
            "  --pvc-source DIR               another claim's volume: DIR/disk.img copied sparse (clone)\n"
            "  --pvc-source-file NAME         with --pvc-source: copy DIR/NAME instead (a running VM's "
            "backup)\n"
            "  --dest-file NAME               with --pvc-source: write DEST/NAME instead of DEST/disk.img,\n"
            "                                 a byte copy (a hostDisk image restored; no format probe)\n"
            "  --container-files REF          files of an image (a kernelBoot container): each --file PATH\n"
            "                                 (absolute in the image, a regular file) at DIR/PATH; pulled "
            "as\n"
            "                                 --registry-url\n"
            "  --container-disk REF           a containerDisk (the launcher Pod's init container): the "
            "image's\n"
            "                                 disk file, unconverted, at DIR/disk/<its name>; pulled as\n"
            "                                 --registry-url (mirrors, failover, digest pinning)\n"
            "\n"
            "Options:\n"
            "  --dest DIR                     destination directory (the claim's volume), required\n"
            "  --file PATH                    with --container-files: a file to extract (repeatable, up to "
            "8)\n"
            "  --size SIZE                    the claim's size: refuse images whose virtual size exceeds it\n"
            "  --registry-config FILE         registries, mirrors in priority order, credentials, CA files\n"
            "                                 (YAML or JSON, see docs/registries.md)\n"
            "  --checksum ALGO:HEX            http: verify the downloaded bytes (md5, sha1, sha256, sha512)\n"
            "  --header 'Name: value'         http: extra request header (repeatable)\n"
            "  --header-dir DIR               http: every file in DIR holds one 'Name: value' header\n"
            "                                 (CDI's secretExtraHeaders; repeatable)\n"
            "The source's own credentials and CA (CDI's secretRef and certConfigMap): for http, and for\n"
            "registry sources the registry the reference names (never sent to another registry):\n"
            "  --username USER                basic auth user (with --password-file)\n"
            "  --username-file FILE           the same, read from FILE (CDI's accessKeyId)\n"
            "  --password-file FILE           basic auth password (CDI's secretKey)\n"
            "  --ca-file FILE                 CA certificates to verify the server with\n"
            "  --cert-dir DIR                 the same from the files in DIR: for http every file, for\n"
            "                                 registries every *.crt and *.pem file\n"
            "  --insecure                     do not verify the server certificate\n"
            "  --max-rate BYTES               limit each transfer to BYTES per second\n"
            "  --termination-log FILE         also write the result line to FILE (the Pod's\n"
            "                                 terminationMessagePath, read by the DataVolume controller)\n"
            "  --help                         this text\n"
            "\n"
            "Output: JSON lines on stdout: {\"progress\":\"45.67%\",\"bytes\":N,\"total\":M} while pulling, "
            "then\n"
            "{\"result\":\"Succeeded\",...} or {\"result\":\"Failed\",\"reason\":...}; registry imports add\n"
            "\"registry\":{resolvedBy, digest, servedBy[], failed[{registry, what, reason}]}.\n"
            "\n"
            "Exit codes: 0 imported, 1 internal error, 2 usage, 3 source unreachable,\n"
            "            4 bad image (no disk, unsafe archive, checksum or digest mismatch, bad format),\n"
            "            5 no space (image larger than the claim, disk full)\n",
            f);
}

static int parse_size(const char *s, int64_t *out)
{
        char *end;
        errno = 0;
        double v = strtod(s, &end);
        if (errno || end == s || v < 0)
                return -EINVAL;
        static const struct {
                const char *suffix;
                double mult;
        } units[] = {{"", 1},           {"K", 1e3},           {"M", 1e6},
                     {"G", 1e9},        {"T", 1e12},          {"Ki", 1024.0},
                     {"Mi", 1048576.0}, {"Gi", 1073741824.0}, {"Ti", 1099511627776.0}};
        for (size_t i = 0; i < ARRAY_SIZE(units); i++)
                if (!strcmp(end, units[i].suffix)) {
                        *out = (int64_t)(v * units[i].mult);
                        return 0;
                }
        return -EINVAL;
}

static double now_s(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double last_progress;

static void print_progress(void *ctx, int64_t done, int64_t total)
{
        double t = now_s();
        if (t - last_progress < 0.25 && done != total)
                return;
        last_progress = t;
        if (total > 0)
                printf("{\"progress\":\"%.2f%%\",\"bytes\":%lld,\"total\":%lld}\n", 100.0 * done / total,
                       (long long)done, (long long)total);
        else
                printf("{\"progress\":\"N/A\",\"bytes\":%lld}\n", (long long)done);
        fflush(stdout);
}

static int exit_code_for(int code)
{
        switch (code) {
        case EHOSTUNREACH:
        case ECONNREFUSED:
                return EXIT_UNREACHABLE;
        case EINVAL:
        case EBADMSG:
                return EXIT_BAD_IMAGE;
        case ENOSPC:
        case EFBIG:
        case EDQUOT:
                return EXIT_NO_SPACE;
        default:
                return EXIT_INTERNAL;
        }
}

/* The result line also goes to the container's termination-message file, where the DataVolume controller
 * reads it from the Pod's status (CDI's importer does the same with /dev/termination-log). */
static void write_termination_log(const char *path, const char *line)
{
        _cleanup_fclose_ FILE *f = path ? fopen(path, "we") : NULL;
        if (path && (!f || fprintf(f, "%s\n", line) < 0))
                log_warning("termination log %s: %s", path, strerror(errno));
}

static void print_result(int rc, const kv_error *err, const char *dest, const char *file, bool disk,
                         const kvreg_report *rep, const char *termination_log)
{
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "result", rc == 0 ? "Succeeded" : "Failed");
        if (rc == 0 && disk) {
                char path[4096];
                snprintf(path, sizeof(path), "%s/%s", dest, file ?: "disk.img");
                cJSON_AddStringToObject(o, "disk", path);
        } else {
                cJSON_AddStringToObject(o, "reason", err->msg);
                cJSON_AddNumberToObject(o, "exitCode", exit_code_for(err->code));
        }
        if (rep) {
                _cleanup_free_ char *r = kvreg_report_json(rep);
                cJSON_AddItemToObject(o, "registry", cJSON_Parse(r));
        }
        _cleanup_free_ char *s = cJSON_PrintUnformatted(o);
        printf("%s\n", s);
        fflush(stdout);
        write_termination_log(termination_log, s);
        cJSON_Delete(o);
}

struct opts {
        const char *registry_url, *registry_config, *http_url, *blank, *container_disk, *pvc_source,
            *pvc_file, *dest_file, *dest, *container_files, *size, *max_rate, *termination_log;
        kvreg_http_source http;
        const char *password_file, *username_file, *cert_dir;
        const char *header_dirs[8];
        size_t n_header_dirs;
        const char *files[8];
        size_t n_files;
        struct curl_slist *headers;
};

static int parse_args(int argc, char **argv, struct opts *o)
{
        enum {
                O_REG = 256,
                O_REGCFG,
                O_HTTP,
                O_BLANK,
                O_DEST,
                O_SIZE,
                O_SUM,
                O_HDR,
                O_USER,
                O_PWF,
                O_CA,
                O_INSEC,
                O_RATE,
                O_TERM,
                O_CDISK,
                O_PVC,
                O_PVCFILE,
                O_DESTFILE,
                O_USERF,
                O_CERTDIR,
                O_HDRDIR,
                O_CFILES,
                O_FILE
        };
        static const struct option longopts[] = {{"registry-url", required_argument, NULL, O_REG},
                                                 {"registry-config", required_argument, NULL, O_REGCFG},
                                                 {"http-url", required_argument, NULL, O_HTTP},
                                                 {"blank", required_argument, NULL, O_BLANK},
                                                 {"dest", required_argument, NULL, O_DEST},
                                                 {"size", required_argument, NULL, O_SIZE},
                                                 {"checksum", required_argument, NULL, O_SUM},
                                                 {"header", required_argument, NULL, O_HDR},
                                                 {"username", required_argument, NULL, O_USER},
                                                 {"password-file", required_argument, NULL, O_PWF},
                                                 {"ca-file", required_argument, NULL, O_CA},
                                                 {"insecure", no_argument, NULL, O_INSEC},
                                                 {"max-rate", required_argument, NULL, O_RATE},
                                                 {"help", no_argument, NULL, 'h'},
                                                 {"termination-log", required_argument, NULL, O_TERM},
                                                 {"container-disk", required_argument, NULL, O_CDISK},
                                                 {"pvc-source", required_argument, NULL, O_PVC},
                                                 {"pvc-source-file", required_argument, NULL, O_PVCFILE},
                                                 {"dest-file", required_argument, NULL, O_DESTFILE},
                                                 {"username-file", required_argument, NULL, O_USERF},
                                                 {"cert-dir", required_argument, NULL, O_CERTDIR},
                                                 {"header-dir", required_argument, NULL, O_HDRDIR},
                                                 {"container-files", required_argument, NULL, O_CFILES},
                                                 {"file", required_argument, NULL, O_FILE},
                                                 {NULL, 0, NULL, 0}};
        int c;
        while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
                switch (c) {
                case O_REG:
                        o->registry_url = optarg;
                        break;
                case O_REGCFG:
                        o->registry_config = optarg;
                        break;
                case O_HTTP:
                        o->http_url = optarg;
                        break;
                case O_BLANK:
                        o->blank = optarg;
                        break;
                case O_PVC:
                        o->pvc_source = optarg;
                        break;
                case O_PVCFILE:
                        o->pvc_file = optarg;
                        break;
                case O_DEST:
                        o->dest = optarg;
                        break;
                case O_DESTFILE:
                        o->dest_file = optarg;
                        break;
                case O_SIZE:
                        o->size = optarg;
                        break;
                case O_SUM:
                        o->http.checksum = optarg;
                        break;
                case O_HDR:
                        if (!strchr(optarg, ':') || strpbrk(optarg, "\r\n")) {
                                fprintf(stderr, "kvlite-importer: --header wants 'Name: value'\n");
                                return -1;
                        }
                        o->headers = curl_slist_append(o->headers, optarg);
                        break;
                case O_USER:
                        o->http.username = optarg;
                        break;
                case O_PWF:
                        o->password_file = optarg;
                        break;
                case O_CA:
                        o->http.ca_file = optarg;
                        break;
                case O_USERF:
                        o->username_file = optarg;
                        break;
                case O_CERTDIR:
                        o->cert_dir = optarg;
                        break;
                case O_CFILES:
                        o->container_files = optarg;
                        break;
                case O_FILE:
                        if (o->n_files == ARRAY_SIZE(o->files)) {
                                fprintf(stderr, "kvlite-importer: at most %zu --file\n",
                                        ARRAY_SIZE(o->files));
                                return -1;
                        }
                        o->files[o->n_files++] = optarg;
                        break;
                case O_HDRDIR:
                        if (o->n_header_dirs == ARRAY_SIZE(o->header_dirs)) {
                                fprintf(stderr, "kvlite-importer: at most %zu --header-dir\n",
                                        ARRAY_SIZE(o->header_dirs));
                                return -1;
                        }
                        o->header_dirs[o->n_header_dirs++] = optarg;
                        break;
                case O_INSEC:
                        o->http.insecure = true;
                        break;
                case O_RATE:
                        o->max_rate = optarg;
                        break;
                case O_TERM:
                        o->termination_log = optarg;
                        break;
                case O_CDISK:
                        o->container_disk = optarg;
                        break;
                case 'h':
                        usage(stdout);
                        exit(EXIT_OK);
                default:
                        return -1;
                }
        }
        int sources = !!o->registry_url + !!o->http_url + !!o->blank + !!o->container_disk + !!o->pvc_source +
                      !!o->container_files;
        if (optind != argc || sources != 1 || !o->dest) {
                fprintf(stderr, "kvlite-importer: need exactly one of --registry-url, --http-url, --blank, "
                                "--container-disk, --container-files, --pvc-source, and --dest\n");
                return -1;
        }
        if (o->pvc_file && !o->pvc_source) {
                fprintf(stderr, "kvlite-importer: --pvc-source-file goes with --pvc-source\n");
                return -1;
        }
        if (o->dest_file && !o->pvc_source) {
                fprintf(stderr, "kvlite-importer: --dest-file goes with --pvc-source\n");
                return -1;
        }
        if (!!o->container_files != !!o->n_files) {
                fprintf(stderr, "kvlite-importer: --file goes with --container-files (which needs one)\n");
                return -1;
        }
        if ((o->http.username && o->username_file) ||
            (!!o->http.username || !!o->username_file) != !!o->password_file) {
                fprintf(stderr,
                        "kvlite-importer: --password-file goes with one of --username, --username-file\n");
                return -1;
        }
        if (o->cert_dir && o->http.ca_file) {
                fprintf(stderr, "kvlite-importer: --ca-file and --cert-dir exclude each other\n");
                return -1;
        }
        return 0;
}

/* The first line of a mounted Secret's file (a password, a user name). */
static int read_secret_file(const char *path, char **out, kv_error *err)
{
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        if (!f)
                return kv_error_errno(err, errno, "open %s", path);
        char buf[1024];
        if (!fgets(buf, sizeof(buf), f))
                buf[0] = '\0';
        buf[strcspn(buf, "\r\n")] = '\0';
        *out = strdup(buf);
        return *out ? 0 : -ENOMEM;
}

/* Regular files in dir (following the symlinks a kubelet's Secret and ConfigMap volumes have), sorted, dot
 * files (the kubelet's ..data) skipped; for each, fn(ctx, path). */
static int for_each_file(const char *dir,
                         int (*fn)(void *ctx, const char *path, const char *name, kv_error *err), void *ctx,
                         kv_error *err)
{
        struct dirent **names = NULL;
        int n = scandir(dir, &names, NULL, alphasort), r = 0;
        if (n < 0)
                return kv_error_errno(err, errno, "%s", dir);
        for (int i = 0; i < n; i++) {
                char path[4096];
                struct stat st;
                snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
                if (r == 0 && names[i]->d_name[0] != '.' && stat(path, &st) == 0 && S_ISREG(st.st_mode))
                        r = fn(ctx, path, names[i]->d_name, err);
                free(names[i]);
        }
        free(names);
        return r;
}

static int add_header_file(void *ctx, const char *path, const char *name, kv_error *err)
{
        struct curl_slist **headers = ctx;
        _cleanup_free_ char *line = NULL;
        int r = read_secret_file(path, &line, err);
        (void)name;
        if (r < 0)
                return r;
        if (!strchr(line, ':') || line[0] == ':')
                return kv_error_set(err, EINVAL, "%s: want one 'Name: value' header", path);
        struct curl_slist *n = curl_slist_append(*headers, line);
        if (!n)
                return kv_error_set(err, ENOMEM, "out of memory");
        *headers = n;
        return 0;
}

static bool has_suffix(const char *s, const char *suffix)
{
        size_t n = strlen(s), m = strlen(suffix);
        return n >= m && !strcmp(s + n - m, suffix);
}

struct cert_bundle {
        int fd;
        bool any_name; /* http: every file of the ConfigMap; registry: *.crt and *.pem only */
};

static int add_cert_file(void *ctx, const char *path, const char *name, kv_error *err)
{
        struct cert_bundle *b = ctx;
        int *fd = &b->fd;
        if (!b->any_name && !has_suffix(name, ".crt") && !has_suffix(name, ".pem"))
                return 0;
        _cleanup_close_ int in = open(path, O_RDONLY | O_CLOEXEC);
        if (in < 0)
                return kv_error_errno(err, errno, "open %s", path);
        char buf[8192];
        ssize_t n;
        while ((n = read(in, buf, sizeof(buf))) > 0)
                if (write(*fd, buf, n) != n)
                        return kv_error_errno(err, errno, "CA bundle");
        if (n < 0 || write(*fd, "\n", 1) != 1)
                return kv_error_errno(err, errno, "read %s", path);
        return 0;
}

/* CDI's certConfigMap as one CA bundle in a memfd that libcurl reads through /proc/self/fd (nothing written
 * to the claim or the container), added to the system's CAs (libcurl keeps its CA path). Which keys count is
 * CDI's: for http every key of the ConfigMap (its http client reads each file of the folder), for registries
 * the *.crt and *.pem ones (a containers/image certificate folder). */
static int load_cert_dir(const char *dir, bool any_name, int *fd, char *path, size_t size, kv_error *err)
{
        struct cert_bundle b = {.fd = memfd_create("kvlite-ca-bundle", MFD_CLOEXEC), .any_name = any_name};
        *fd = b.fd;
        if (*fd < 0)
                return kv_error_errno(err, errno, "memfd_create");
        int r = for_each_file(dir, add_cert_file, &b, err);
        if (r < 0)
                return r;
        if (lseek(*fd, 0, SEEK_END) == 0)
                return kv_error_set(err, EINVAL, "--cert-dir %s: no %s", dir,
                                    any_name ? "file" : ".crt or .pem file");
        snprintf(path, size, "/proc/self/fd/%d", *fd);
        return 0;
}

/* The source's credentials, CA and secret headers from the mounted files. As CDI, basic auth only when both
 * the user name and the password are non-empty (an empty secretKey means no credentials, not an empty
 * password). */
static int load_source_auth(struct opts *o, char **user, char **password, int *ca_fd, char *ca_path,
                            size_t ca_size, kv_error *err)
{
        int r = 0;
        if (o->username_file && (r = read_secret_file(o->username_file, user, err)) < 0)
                return r;
        if (*user)
                o->http.username = *user;
        if (o->password_file && (r = read_secret_file(o->password_file, password, err)) < 0)
                return r;
        o->http.password = *password;
        if (!o->http.username || !*o->http.username || !o->http.password || !*o->http.password)
                o->http.username = o->http.password = NULL;
        if (o->cert_dir && (r = load_cert_dir(o->cert_dir, !!o->http_url, ca_fd, ca_path, ca_size, err)) < 0)
                return r;
        if (o->cert_dir)
                o->http.ca_file = ca_path;
        for (size_t i = 0; i < o->n_header_dirs && r == 0; i++)
                r = for_each_file(o->header_dirs[i], add_header_file, &o->headers, err);
        return r;
}

int main(int argc, char **argv)
{
        struct opts o = {0};
        kv_log_init("kvlite-importer");
        if (parse_args(argc, argv, &o) < 0) {
                usage(stderr);
                return EXIT_USAGE;
        }
        kvreg_import_opts io = {.dest_dir = o.dest, .dest_file = o.dest_file, .progress = print_progress};
        int64_t blank_size = 0;
        if ((o.size && parse_size(o.size, &io.claim) < 0) ||
            (o.max_rate && parse_size(o.max_rate, &io.max_rate) < 0) ||
            (o.blank && parse_size(o.blank, &blank_size) < 0)) {
                fprintf(stderr, "kvlite-importer: bad size (want a number with an optional K/M/G/T or "
                                "Ki/Mi/Gi/Ti suffix)\n");
                return EXIT_USAGE;
        }
        kv_error err = {0};
        int rc = 0;
        kvreg_config cfg;
        kvreg_config_init(&cfg);
        _cleanup_free_ char *password = NULL, *user = NULL;
        _cleanup_close_ int ca_fd = -1;
        char ca_path[64];
        kvreg_report report = {0};
        if ((o.registry_config && (rc = kvreg_config_load(o.registry_config, &cfg, &err)) < 0) ||
            (rc = load_source_auth(&o, &user, &password, &ca_fd, ca_path, sizeof(ca_path), &err)) < 0 ||
            (rc = kvreg_config_set_source(&cfg, o.http.username, o.http.password, o.http.ca_file,
                                          o.http.insecure)) < 0) {
                log_error("%s", rc == -ENOMEM ? "out of memory" : err.msg);
                kvreg_config_done(&cfg);
                curl_slist_free_all(o.headers);
                return EXIT_USAGE;
        }
        if (o.registry_url) {
                log_info("importing %s into %s", o.registry_url, o.dest);
                rc = kvreg_import_registry(o.registry_url, &cfg, &io, &report, &err);
        } else if (o.container_disk) {
                log_info("pulling containerDisk %s into %s", o.container_disk, o.dest);
                rc = kvreg_import_container_disk(o.container_disk, &cfg, &io, &report, &err);
        } else if (o.container_files) {
                log_info("pulling %zu files of %s into %s", o.n_files, o.container_files, o.dest);
                rc = kvreg_import_files(o.container_files, &cfg, o.files, o.n_files, &io, &report, &err);
        } else if (o.http_url) {
                o.http.url = o.http_url;
                o.http.headers = o.headers;
                log_info("importing %s into %s", o.http_url, o.dest);
                rc = kvreg_import_http(&o.http, &io, &err);
        } else if (o.pvc_source) {
                log_info("cloning %s/%s into %s", o.pvc_source, o.pvc_file ? o.pvc_file : "disk.img", o.dest);
                rc = kvreg_import_claim(o.pvc_source, o.pvc_file, &io, &err);
        } else {
                rc = kvreg_import_blank(&io, blank_size, &err);
        }
        print_result(rc, &err, o.dest, o.dest_file, !o.container_disk && !o.container_files,
                     o.registry_url || o.container_disk || o.container_files ? &report : NULL,
                     o.termination_log);
        kvreg_config_done(&cfg);
        curl_slist_free_all(o.headers);
        if (rc < 0) {
                log_error("import failed: %s", err.msg);
                return exit_code_for(err.code);
        }
        log_info("imported into %s/%s", o.dest, o.dest_file ?: "disk.img");
        return EXIT_OK;
}
