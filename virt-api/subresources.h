/* subresources.kubevirt.io/v1: KubeVirt's VM and VMI actions (start, stop, restart, migrate, pause,
 * unpause, addvolume, removevolume, rename, guestosinfo, userlist, filesystemlist) and the group's discovery,
 * as requests to the Kubernetes API made with virt-api's own credentials. The API server has authenticated
 * and authorized the caller before proxying (server.c checks that the request comes from it). */
#pragma once

#include <stddef.h>

#include "client.h"

#define SUBRES_GROUP "subresources.kubevirt.io"
#define SUBRES_PREFIX "/apis/" SUBRES_GROUP "/v1"
/* The VMI annotation virt-api writes for pause/unpause and virt-launcher-reporter forwards to the
 * launcher's control socket: "true" (paused wanted), "false" (running wanted). */
#define SUBRES_PAUSE_ANNOTATION "kvlite.io/paused"
/* A softreboot request id (realtime seconds.nanoseconds) the launcher's reporter forwards once. */
#define SUBRES_SOFTREBOOT_ANNOTATION "kvlite.io/softreboot-request"

typedef struct subres_reply {
        unsigned code;
        char *body; /* JSON (a Status on errors, the result otherwise), or NULL for an empty body */
} subres_reply;

/* Answers one request. path has no query string; body may be NULL. Always fills out. */
void subres_handle(kube_client *api, const char *method, const char *path, const char *body, size_t len,
                   subres_reply *out);
/* Fills r with a Kubernetes Status of code and the formatted message (replacing any body); returns -1. */
int subres_fail(subres_reply *r, unsigned code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A Kubernetes Status object for code and message (reason from the code). */
char *subres_status_json(unsigned code, const char *message);
void subres_reply_done(subres_reply *r);
