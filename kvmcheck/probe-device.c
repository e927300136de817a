/* Checks 2-4 on /dev/kvm: access and API (2), capabilities (3), KVM_GET_SUPPORTED_CPUID against the
 * host's own CPUID (4). All are single ioctls that return at once; none needs a watchdog. */
#include "caps.h"
#include "guest.h"
#include "macro.h"
#include "probes.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#ifdef KVMCHECK_HAVE_GUEST
#include <cpuid.h>
#endif

#define KVM_DEVICE "/dev/kvm"

int probe_device(kvm_profile_device *d)
{
        struct stat st;
        if (stat(KVM_DEVICE, &st) < 0) {
                d->open_errno = errno;
                return -1;
        }
        d->exists = true;
        d->is_chardev = S_ISCHR(st.st_mode);
        d->mode = st.st_mode & 07777;
        d->uid = st.st_uid;
        d->gid = st.st_gid;
        _cleanup_close_ int fd = open(KVM_DEVICE, O_RDWR | O_CLOEXEC);
        if (fd < 0) {
                d->open_errno = errno;
                return -1;
        }
        d->open_errno = 0;
        d->api_version = ioctl(fd, KVM_GET_API_VERSION, 0);
        if (d->api_version != KVM_API_VERSION)
                return -1;
        int vm = ioctl(fd, KVM_CREATE_VM, 0);
        d->create_vm_errno = vm < 0 ? errno : 0;
        if (vm < 0)
                return -1;
        close(vm);
        return TAKE_FD(fd);
}

void probe_caps(int kvm_fd, kvm_profile_caps *c)
{
        c->probed = true;
        for (size_t i = 0; i < kvm_caps_count; i++) {
                int r = ioctl(kvm_fd, KVM_CHECK_EXTENSION, kvm_caps[i].id);
                c->value[i] = r < 0 ? 0 : r;
        }
}

#ifdef KVMCHECK_HAVE_GUEST
static void host_cpuid(kvm_cpuid_regs *r)
{
        unsigned a, b, c, d;
        __cpuid(1, a, b, c, d);
        r->l1_ecx = c;
        r->l1_edx = d;
        if ((unsigned)__get_cpuid_max(0, NULL) >= 7u) {
                __cpuid_count(7, 0, a, b, c, d);
                r->l7_ebx = b;
                r->l7_ecx = c;
        }
        if ((unsigned)__get_cpuid_max(0x80000000, NULL) >= 0x80000001u) {
                __cpuid(0x80000001, a, b, c, d);
                r->e1_ecx = c;
                r->e1_edx = d;
        }
}

static void supported_entry(kvm_cpuid_regs *r, const struct kvm_cpuid_entry2 *e)
{
        if (e->function == 1) {
                r->l1_ecx = e->ecx;
                r->l1_edx = e->edx;
        } else if (e->function == 7 && e->index == 0) {
                r->l7_ebx = e->ebx;
                r->l7_ecx = e->ecx;
        } else if (e->function == 0x80000001) {
                r->e1_ecx = e->ecx;
                r->e1_edx = e->edx;
        }
}

struct kvm_cpuid2 *probe_supported_cpuid(int kvm_fd, int *err)
{
        /* grow until KVM stops answering E2BIG, as QEMU does */
        for (int n = 64; n <= 4096; n *= 2) {
                struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + (size_t)n * sizeof(c->entries[0]));
                if (!c) {
                        *err = ENOMEM;
                        return NULL;
                }
                c->nent = (uint32_t)n;
                if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0) {
                        *err = 0;
                        return c;
                }
                *err = errno;
                free(c);
                if (*err != E2BIG)
                        return NULL;
        }
        return NULL;
}

void probe_cpuid(int kvm_fd, kvm_profile_cpuid *c)
{
        c->probed = true;
        host_cpuid(&c->host);
        _cleanup_free_ struct kvm_cpuid2 *sup = probe_supported_cpuid(kvm_fd, &c->err);
        for (uint32_t i = 0; sup && i < sup->nent; i++)
                supported_entry(&c->supported, &sup->entries[i]);
}
#else
void probe_cpuid(int kvm_fd, kvm_profile_cpuid *c)
{
        /* not x86: there is no x86-64-v2 baseline to compare; the profile says "not probed" */
}
#endif
