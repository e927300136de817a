/* metrics: KubeVirt's downward metrics on the vhostmd virtio-serial port (metrics.h). Host figures come
 * from /proc as virt-launcher reads them; the vm context is QEMU's CPU time and the guest's sizes. */
#include "metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "qemu-argv.h"
#include "unixsock.h"

#define REQUEST "GET /metrics/XML\n\n"
#define METRICS_XML_MAX 8192
#define MDISK_SIGNATURE 0x6d766264u /* "mvbd" */
#define MAX_DISKS 8

struct metrics_server {
        loop *loop;
        int listen_fd; /* until QEMU connected */
        int fd;
        loop_source *src;
        const vmi *v;
        pid_t qemu;
        char host_name[256];
        char buf[256]; /* the request being read */
        size_t len;
        int disks[MAX_DISKS]; /* downwardMetrics volumes' files */
        size_t n_disks;
        uint32_t generation;
        loop_timer refresh;
};

/* Seconds of CPU time from clock ticks. */
static double ticks_s(unsigned long long ticks)
{
        long hz = sysconf(_SC_CLK_TCK);
        return (double)ticks / (double)(hz > 0 ? hz : 100);
}

static double host_cpu_s(void)
{
        unsigned long long user = 0, nice = 0, sys = 0;
        FILE *f = fopen("/proc/stat", "re");
        if (!f)
                return 0;
        if (fscanf(f, "cpu %llu %llu %llu", &user, &nice, &sys) != 3)
                user = nice = sys = 0;
        fclose(f);
        return ticks_s(user + nice + sys);
}

static double process_cpu_s(pid_t pid)
{
        char path[64], line[1024];
        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        FILE *f = fopen(path, "re");
        if (!f)
                return 0;
        char *got = fgets(line, sizeof(line), f);
        fclose(f);
        const char *p = got ? strrchr(line, ')') : NULL; /* the command name may hold spaces */
        unsigned long long utime = 0, stime = 0;
        if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2)
                return 0;
        return ticks_s(utime + stime);
}

/* /proc/meminfo's value of key in KiB, 0 if absent. */
static uint64_t meminfo_kib(const char *key)
{
        char line[256];
        uint64_t v = 0;
        size_t n = strlen(key);
        FILE *f = fopen("/proc/meminfo", "re");
        if (!f)
                return 0;
        while (fgets(line, sizeof(line), f))
                if (!strncmp(line, key, n) && line[n] == ':') {
                        v = strtoull(line + n + 1, NULL, 10);
                        break;
                }
        fclose(f);
        return v;
}

/* XML text escaping of s into out (the host name is the only free text). */
static const char *xml_text(const char *s, char *out, size_t outsz)
{
        size_t o = 0;
        for (; *s && o + 7 < outsz; s++) {
                const char *rep = *s == '&' ? "&amp;" : *s == '<' ? "&lt;" : *s == '>' ? "&gt;" : NULL;
                if (rep)
                        o += (size_t)snprintf(out + o, outsz - o, "%s", rep);
                else
                        out[o++] = *s;
        }
        out[o] = '\0';
        return out;
}

int metrics_xml(const vmi *v, const char *host_name, pid_t qemu, char *out, size_t outsz)
{
        char name[512];
        uint64_t guest_kib = v->memory >> 10;
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        int n = snprintf(
            out, outsz,
            "<metrics>\n"
            "  <metric type=\"string\" context=\"host\"><name>HostName</name><value>%s</value></metric>\n"
            "  <metric type=\"string\" "
            "context=\"host\"><name>HostSystemInfo</name><value>linux</value></metric>\n"
            "  <metric type=\"string\" context=\"host\"><name>VirtualizationVendor</name>"
            "<value>kubevirt.io</value></metric>\n"
            "  <metric type=\"string\" "
            "context=\"host\"><name>VirtProductInfo</name><value>kvlite</value></metric>\n"
            "  <metric type=\"int64\" context=\"host\" "
            "unit=\"s\"><name>Time</name><value>%lld</value></metric>\n"
            "  <metric type=\"uint32\" context=\"host\"><name>NumberOfPhysicalCPUs</name><value>%ld</value>"
            "</metric>\n"
            "  <metric type=\"real64\" context=\"host\" "
            "unit=\"s\"><name>TotalCPUTime</name><value>%.6f</value>"
            "</metric>\n"
            "  <metric type=\"uint64\" context=\"host\" unit=\"KiB\"><name>FreePhysicalMemory</name>"
            "<value>%" PRIu64 "</value></metric>\n"
            "  <metric type=\"uint64\" context=\"host\" unit=\"KiB\"><name>FreeVirtualMemory</name>"
            "<value>%" PRIu64 "</value></metric>\n"
            "  <metric type=\"uint64\" context=\"host\" "
            "unit=\"KiB\"><name>MemoryAllocatedToVirtualServers</name>"
            "<value>%" PRIu64 "</value></metric>\n"
            "  <metric type=\"real64\" context=\"vm\" unit=\"s\"><name>TotalCPUTime</name><value>%.6f</value>"
            "</metric>\n"
            "  <metric type=\"uint32\" context=\"vm\"><name>ResourceProcessorLimit</name><value>%u</value>"
            "</metric>\n"
            "  <metric type=\"uint64\" context=\"vm\" "
            "unit=\"KiB\"><name>PhysicalMemoryAllocatedToVirtualSystem"
            "</name><value>%" PRIu64 "</value></metric>\n"
            "  <metric type=\"uint64\" context=\"vm\" unit=\"KiB\"><name>ResourceMemoryLimit</name>"
            "<value>%" PRIu64 "</value></metric>\n"
            "</metrics>\n",
            xml_text(host_name, name, sizeof(name)), (long long)time(NULL), cpus > 0 ? cpus : 1, host_cpu_s(),
            meminfo_kib("MemFree"), meminfo_kib("MemFree") + meminfo_kib("SwapFree"), guest_kib,
            process_cpu_s(qemu), vmi_vcpus(v), guest_kib, guest_kib);
        return n < 0 || (size_t)n >= outsz ? -ENOBUFS : n;
}

static void answer(metrics_server *m)
{
        _cleanup_free_ char *xml = malloc(METRICS_XML_MAX + 2);
        int n = xml ? metrics_xml(m->v, m->host_name, m->qemu, xml, METRICS_XML_MAX) : -ENOMEM;
        if (n < 0) {
                log_warning("downward metrics: cannot build the metrics document: %s", strerror(-n));
                return;
        }
        memcpy(xml + n, "\n\n", 2); /* vhostmd's end of a response */
        /* Whole or not at all: the channel holds far more than one document unless the guest stopped
         * reading, and then a partial answer does no more harm than none. */
        if (send(m->fd, xml, (size_t)n + 2, MSG_DONTWAIT | MSG_NOSIGNAL) != n + 2)
                log_warning("downward metrics: the answer did not fit the channel");
}

static int write_header(int fd, uint32_t busy, uint32_t sum, uint32_t length)
{
        uint32_t h[4] = {htonl(MDISK_SIGNATURE), htonl(busy), htonl(sum), htonl(length)};
        return pwrite(fd, h, sizeof(h), 0) == (ssize_t)sizeof(h) ? 0 : -1;
}

/* vhostmd's update: busy while the body changes, then the header with a new checksum (readers compare it
 * before and after reading the body). */
static void write_disks(metrics_server *m)
{
        _cleanup_free_ char *xml = malloc(METRICS_XML_MAX);
        int n = xml ? metrics_xml(m->v, m->host_name, m->qemu, xml, METRICS_XML_MAX) : -ENOMEM;
        if (n < 0) {
                log_warning("downward metrics: cannot build the metrics document: %s", strerror(-n));
                return;
        }
        uint32_t sum = ++m->generation;
        for (int i = 0; i < n; i++)
                sum = sum * 31 + (unsigned char)xml[i];
        for (size_t i = 0; i < m->n_disks; i++)
                if (write_header(m->disks[i], 1, 0, 0) < 0 || pwrite(m->disks[i], xml, (size_t)n, 16) != n ||
                    write_header(m->disks[i], 0, sum, (uint32_t)n) < 0)
                        log_warning("downward metrics: cannot write the metrics disk: %s", strerror(errno));
}

static void on_refresh(loop_timer *t, void *data)
{
        metrics_server *m = data;
        write_disks(m);
        loop_timer_arm(m->loop, t, METRICS_DISK_PERIOD_MS, on_refresh, m);
}

static void on_io(loop_source *src, int fd, uint32_t events, void *data)
{
        (void)src;
        metrics_server *m = data;
        ssize_t r = read(fd, m->buf + m->len, sizeof(m->buf) - 1 - m->len);
        if (r <= 0 && !(r < 0 && (errno == EAGAIN || errno == EINTR))) {
                log_info("downward metrics: channel closed");
                loop_remove(m->loop, m->src);
                m->src = NULL;
                return;
        }
        (void)events;
        m->len += r > 0 ? (size_t)r : 0;
        m->buf[m->len] = '\0';
        char *end;
        while ((end = strstr(m->buf, "\n\n"))) {
                size_t req = (size_t)(end - m->buf) + 2;
                if (req == strlen(REQUEST) && !memcmp(m->buf, REQUEST, req))
                        answer(m);
                else
                        log_warning("downward metrics: ignoring an unknown request (%zu bytes)", req);
                memmove(m->buf, m->buf + req, m->len - req + 1);
                m->len -= req;
        }
        if (m->len == sizeof(m->buf) - 1) /* no request is that long: drop the garbage */
                m->len = 0;
}

static bool wants_metrics(const vmi *v)
{
        bool any = v->downward_metrics;
        for (size_t i = 0; i < v->n_volumes; i++)
                any |= v->volumes[i].kind == VOL_DOWNWARD_METRICS;
        return any;
}

int metrics_new(const char *run_dir, const vmi *v, metrics_server **out, kv_error *err)
{
        *out = NULL;
        if (!wants_metrics(v))
                return 0;
        metrics_server *m = calloc(1, sizeof(*m));
        if (!m)
                return kv_error_set(err, ENOMEM, "out of memory");
        m->v = v, m->fd = -1, m->listen_fd = -1;
        /* KubeVirt reports the node's name; the launcher's host name is the Pod's, the node's outside one */
        const char *node = getenv("NODE_NAME");
        if (node && node[0])
                snprintf(m->host_name, sizeof(m->host_name), "%s", node);
        else if (gethostname(m->host_name, sizeof(m->host_name) - 1) < 0)
                snprintf(m->host_name, sizeof(m->host_name), "localhost");
        for (size_t i = 0; i < v->n_volumes; i++) {
                const vmi_volume *vol = &v->volumes[i];
                if (vol->kind != VOL_DOWNWARD_METRICS || !vol->prep.path)
                        continue;
                if (m->n_disks == MAX_DISKS) {
                        metrics_free(m);
                        return kv_error_set(err, EINVAL, "spec.volumes: more than %d downwardMetrics volumes",
                                            MAX_DISKS);
                }
                int fd = open(vol->prep.path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
                if (fd < 0) {
                        metrics_free(m);
                        return kv_error_errno(err, errno, "downward metrics disk %s", vol->prep.path);
                }
                m->disks[m->n_disks++] = fd;
        }
        write_disks(m); /* the guest finds the metrics from its first read on */
        if (v->downward_metrics) {
                char path[4200];
                snprintf(path, sizeof(path), "%s/%s", run_dir, QEMU_METRICS_SOCKET);
                m->listen_fd = unix_listen(path, 0600, err);
                if (m->listen_fd < 0) {
                        metrics_free(m);
                        return kv_error_wrap(err, "downward metrics channel");
                }
        }
        *out = m;
        return 0;
}

int metrics_attach(metrics_server *m, loop *l, pid_t qemu, kv_error *err)
{
        if (!m)
                return 0;
        m->loop = l, m->qemu = qemu;
        if (m->n_disks)
                loop_timer_arm(l, &m->refresh, METRICS_DISK_PERIOD_MS, on_refresh, m);
        if (m->listen_fd < 0)
                return 0;
        m->fd = accept4(m->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (m->fd < 0)
                return kv_error_errno(err, errno, "downward metrics channel: QEMU did not connect");
        close(m->listen_fd);
        m->listen_fd = -1;
        int r = loop_add(l, m->fd, EPOLLIN, on_io, m, &m->src);
        if (r < 0)
                return kv_error_errno(err, -r, "epoll add");
        log_info("downward metrics: answering the guest's requests");
        return 0;
}

void metrics_free(metrics_server *m)
{
        if (!m)
                return;
        if (m->loop)
                loop_timer_disarm(m->loop, &m->refresh);
        for (size_t i = 0; i < m->n_disks; i++)
                close(m->disks[i]);
        if (m->src)
                loop_remove(m->loop, m->src);
        if (m->fd >= 0)
                close(m->fd);
        if (m->listen_fd >= 0)
                close(m->listen_fd);
        free(m);
}
