/* probes: spec.readinessProbe and spec.livenessProbe, run by the launcher from the Pod's network namespace
 * (tcpSocket, httpGet to the guest's address) and through the guest agent (exec, guestAgentPing), each
 * attempt a non-blocking socket or agent command with a loop timer as its deadline. Readiness drives the
 * Ready condition; a liveness failure stops the VMI as Failed. See docs/guest-agent.md. */
#pragma once
#include <stdbool.h>

#include "agent.h"
#include "loop.h"
#include "vmi.h"

typedef struct probes probes;
typedef struct probes_host {
        loop *loop;
        agent *agent;
        const vmi *v;
        const char *guest_ip; /* where tcpSocket/httpGet connect without a host; NULL: none */
        void *ctx;
        void (*readiness_changed)(void *ctx); /* probes_ready() changed */
        void (*liveness_failed)(void *ctx, const char *why);
} probes_host;

/* Starts the probes the VMI has (initialDelaySeconds from now); *out NULL when it has none. */
int probes_start(const probes_host *h, probes **out);
void probes_free(probes *p);
/* True without a readiness probe; else whether it passes (successThreshold successes in a row, and not
 * failureThreshold failures since). *why: the last failure, for the condition's message. */
bool probes_ready(const probes *p, const char **why);
/* Whether a probe needs the guest's address (tcpSocket or httpGet without a host). */
bool probes_need_guest_address(const vmi *v);
/* Whether a probe opens TCP connections (tcpSocket or httpGet): the sandbox allows them only then. */
bool probes_need_socket(const vmi *v);
