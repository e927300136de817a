/* Runs a guest vCPU in its own thread under a watchdog. KVM_RUN only returns on a guest exit or a
 * signal, and a software hypervisor may never exit in time, so after the timeout we set
 * kvm_run.immediate_exit (covers the race where the thread is not inside KVM_RUN yet) and kick the
 * thread with KVMCHECK_KICK_SIGNAL until it leaves KVM_RUN with EINTR. */
#include "guest.h"

#ifdef KVMCHECK_HAVE_GUEST
#include "kvmcheck.h"
#include "macro.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>

#define KICK_INTERVAL_MS 10
#define KICK_GRACE_MS 300

typedef struct runner {
        guest_vm *g;
        guest_exit_fn fn;
        void *userdata;
        int done_fd;
        bool stop; /* written by the watchdog, read by the vCPU thread after EINTR */
        int rc;
        kv_error err;
        guest_run_result res;
} runner;

static void kick_handler(int sig)
{
        /* nothing to do: being delivered is what makes KVM_RUN return EINTR */
}

static int run_loop(runner *r, uint64_t start)
{
        for (;;) {
                if (ioctl(r->g->vcpu_fd, KVM_RUN, 0) < 0) {
                        int e = errno;
                        if (e != EINTR && e != EAGAIN)
                                return kv_error_errno(&r->err, e, "KVM_RUN");
                        if (__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE))
                                return -ETIMEDOUT;
                        continue;
                }
                int c = r->fn(r->g->run, guest_now_us() - start, r->userdata, &r->err);
                if (c != 0)
                        return c < 0 ? c : 0;
        }
}

static void *vcpu_thread(void *arg)
{
        runner *r = arg;
        sigset_t kick;
        sigemptyset(&kick);
        sigaddset(&kick, KVMCHECK_KICK_SIGNAL);
        pthread_sigmask(SIG_UNBLOCK, &kick, NULL);
        uint64_t start = guest_now_us();
        r->rc = run_loop(r, start);
        r->res.elapsed_us = guest_now_us() - start;
        if (ioctl(r->g->vcpu_fd, KVM_GET_REGS, &r->res.regs) < 0)
                memset(&r->res.regs, 0, sizeof(r->res.regs));
        uint64_t one = 1;
        ssize_t w = write(r->done_fd, &one, sizeof(one));
        (void)w;
        return NULL;
}

static bool wait_done(int fd, int timeout_ms)
{
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int n;
        do
                n = poll(&p, 1, timeout_ms);
        while (n < 0 && errno == EINTR);
        return n > 0;
}

/* Start the thread with every signal blocked: process-directed signals (SIGTERM, SIGCHLD of a launcher)
 * must keep going to the caller's threads; the vCPU thread unblocks only the kick. */
static int start_thread(runner *r, pthread_t *tid, kv_error *err)
{
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        int e = pthread_create(tid, NULL, vcpu_thread, r);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        return e ? kv_error_errno(err, e, "pthread_create (vCPU thread)") : 0;
}

static bool kick_until_stopped(runner *r, pthread_t tid)
{
        __atomic_store_n(&r->stop, true, __ATOMIC_RELEASE);
        __atomic_store_n(&r->g->run->immediate_exit, 1, __ATOMIC_RELEASE);
        for (int waited = 0; waited < KICK_GRACE_MS; waited += KICK_INTERVAL_MS) {
                pthread_kill(tid, KVMCHECK_KICK_SIGNAL);
                if (wait_done(r->done_fd, KICK_INTERVAL_MS))
                        return true;
        }
        return false;
}

static int run_with_handler(runner *r, unsigned timeout_ms, kv_error *err)
{
        pthread_t tid;
        int rc = start_thread(r, &tid, err);
        if (rc < 0)
                return rc;
        if (!wait_done(r->done_fd, (int)timeout_ms) && !kick_until_stopped(r, tid)) {
                /* KVM_RUN ignores signals: we cannot free what the thread still uses, so leak it */
                pthread_detach(tid);
                r->res.stuck = true;
                r->res.timed_out = true;
                r->res.elapsed_us = (uint64_t)(timeout_ms + KICK_GRACE_MS) * 1000u;
                return kv_error_set(err, ETIMEDOUT,
                                    "vCPU thread did not leave KVM_RUN %d ms after its watchdog",
                                    KICK_GRACE_MS);
        }
        pthread_join(tid, NULL);
        r->res.timed_out = r->rc == -ETIMEDOUT;
        if (r->rc < 0 && r->rc != -ETIMEDOUT && err)
                *err = r->err;
        return r->rc;
}

int guest_run_watched(guest_vm *g, unsigned timeout_ms, guest_exit_fn fn, void *userdata,
                      guest_run_result *res, kv_error *err)
{
        runner *r = calloc(1, sizeof(*r));
        if (!r)
                return kv_error_errno(err, ENOMEM, "vCPU runner");
        *r = (runner){.g = g, .fn = fn, .userdata = userdata};
        r->done_fd = eventfd(0, EFD_CLOEXEC);
        if (r->done_fd < 0) {
                free(r);
                return kv_error_errno(err, errno, "eventfd");
        }
        struct sigaction sa = {.sa_handler = kick_handler}, old;
        sigemptyset(&sa.sa_mask);
        sigaction(KVMCHECK_KICK_SIGNAL, &sa, &old); /* no SA_RESTART: KVM_RUN must see EINTR */
        int rc = run_with_handler(r, timeout_ms, err);
        sigaction(KVMCHECK_KICK_SIGNAL, &old, NULL);
        *res = r->res;
        if (!res->stuck) {
                close(r->done_fd);
                free(r);
        }
        return rc;
}
#endif
