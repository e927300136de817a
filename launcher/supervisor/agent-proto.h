/* agent-proto: the pure half of the guest agent client. Framing of what qemu-ga writes (one JSON reply a
 * line; a 0xFF byte before the reply to guest-sync-delimited, which resets the framing) and the mapping of
 * its replies to KubeVirt's VMI status (guestOSInfo, interfaces[].interfaceName). No I/O. */
#pragma once
#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "status.h"

#define AGENT_LINE_MAX 65536

typedef struct agent_framer {
        char buf[AGENT_LINE_MAX];
        size_t len;
        bool overflow; /* the current line is too long: dropped up to its end */
} agent_framer;

/* Feeds bytes; calls line(text, data) with each complete, NUL-terminated line (without "\n"). */
void agent_framer_feed(agent_framer *f, const char *bytes, size_t n, void (*line)(char *text, void *data),
                       void *data);

typedef struct agent_reply {
        cJSON *root;      /* owned */
        const cJSON *ret; /* "return", or NULL */
        char error[256];  /* "error".desc when the agent refused the command */
} agent_reply;

/* 0: a reply (ret or error set); -1: not a reply (garbage, an event); free with agent_reply_fini. */
int agent_reply_parse(const char *line, agent_reply *out);
void agent_reply_fini(agent_reply *r);

/* guest-get-osinfo's return → KubeVirt's status.guestOSInfo (id, name, prettyName, version, versionId,
 * kernelRelease, kernelVersion, machine); NULL when it is not an object. */
cJSON *agent_osinfo_to_status(const cJSON *ret);
/* guest-network-get-interfaces' return: the interfaces the launcher knows (by MAC) get the guest's name
 * and addresses and infoSource "domain, guest-agent"; guest interfaces it does not know are added with
 * infoSource "guest-agent" (lo left out), up to STATUS_MAX_INTERFACES. Returns true when st changed. */
bool agent_interfaces_apply(status *st, const cJSON *ret);
/* The reply to one of guest-info, guest-get-host-name, guest-get-timezone, guest-get-users and
 * guest-get-fsinfo into *info, KubeVirt's VirtualMachineInstanceGuestAgentInfo without its os
 * (guestAgentVersion, supportedCommands, hostname, timezone "ZONE, OFFSET", userList, fsInfo.disks); *info is
 * created when NULL. Returns true when *info changed. */
bool agent_info_apply(cJSON **info, const char *command, const cJSON *ret);
