/* libkvmcheck: decides whether KVM can really run guests on this host, not merely whether /dev/kvm opens,
 * and says why. Probes fill a kvm_profile (profile.h); the verdict is a pure function of that profile. */
#pragma once

#include <signal.h>
#include <stddef.h>

#include "error.h"
#include "profile.h"

typedef enum { KVM_VERDICT_USABLE, KVM_VERDICT_UNUSABLE, KVM_VERDICT_ABSENT } kvm_verdict;

/* The kvmcheck CLI's exit codes (also what kvmcheck_exit_code() returns for a verdict). */
enum {
        KVMCHECK_EXIT_USABLE = 0,   /* KVM runs guests at hardware speed */
        KVMCHECK_EXIT_UNUSABLE = 1, /* /dev/kvm answers but is not fit: use TCG */
        KVMCHECK_EXIT_ABSENT = 2,   /* no working KVM interface at all */
        KVMCHECK_EXIT_USAGE = 3,    /* bad command line */
        KVMCHECK_EXIT_INTERNAL = 4, /* kvmcheck itself failed (out of memory, unreadable --replay file) */
};

/* Runs every check and writes a one-line reason to why (may be NULL), e.g. "kvm_pvm emulates every
 * instruction: smoke loop did not finish in 500 ms (...)". Takes < 2 s: every probe has its own timeout,
 * it never hangs. While it runs it briefly owns the signal KVMCHECK_KICK_SIGNAL (handler saved and
 * restored) and one short-lived vCPU thread that blocks every other signal. */
kvm_verdict kvmcheck_quick(char *why, size_t whylen);

#define KVMCHECK_KICK_SIGNAL (SIGRTMIN + 3)

typedef enum {
        KVM_CHECK_HOST,   /* 1: vmx/svm flags, KVM module */
        KVM_CHECK_DEVICE, /* 2: /dev/kvm access, API version, KVM_CREATE_VM */
        KVM_CHECK_CAPS,   /* 3: capabilities QEMU needs */
        KVM_CHECK_CPUID,  /* 4: supported CPUID vs the host's x86-64-v2 bits */
        KVM_CHECK_SMOKE,  /* 5: a 64-bit guest loop under a watchdog */
        KVM_CHECK_IRQ,    /* 6: in-kernel irqchip + PIT deliver timer interrupts */
        KVM_CHECK_COUNT,
} kvm_check_id;

typedef enum { KVM_CHECK_PASS, KVM_CHECK_WARN, KVM_CHECK_FAIL, KVM_CHECK_SKIP } kvm_check_status;

#define KVM_REASON_MAX 512

typedef struct kvm_check_result {
        kvm_check_status status;
        char reason[KVM_REASON_MAX]; /* the evidence, one line */
} kvm_check_result;

typedef struct kvm_report {
        kvm_verdict verdict;
        char reason[KVM_REASON_MAX];
        kvm_check_result checks[KVM_CHECK_COUNT];
} kvm_report;

/* Measures this host: fills every section of p it can reach (never fails as a whole; a probe that cannot
 * run records why in the profile). */
void kvmcheck_probe(kvm_profile *p);
/* The verdict: a pure function of the profile. */
void kvmcheck_decide(const kvm_profile *p, kvm_report *r);

const char *kvm_verdict_name(kvm_verdict v);           /* "usable", "unusable", "absent" */
const char *kvm_check_name(kvm_check_id id);           /* "host", "device", "caps", ... */
const char *kvm_check_status_name(kvm_check_status s); /* "pass", "warn", "fail", "skip" */
int kvmcheck_exit_code(kvm_verdict v);
