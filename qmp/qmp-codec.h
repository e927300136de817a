/* QMP message codec: classifies one received line (greeting, return, error, event) and encodes
 * commands. Pure functions over data; the fuzzer and the golden tests call them directly. */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

enum qmp_msg_kind { QMP_MSG_GREETING, QMP_MSG_RETURN, QMP_MSG_ERROR, QMP_MSG_EVENT };

typedef struct qmp_msg {
        enum qmp_msg_kind kind;
        cJSON *json; /* the whole message, owned */
        bool has_id; /* replies: an integer "id" was present */
        int64_t id;
        const cJSON *ret;      /* RETURN: the "return" member */
        const char *err_class; /* ERROR: error.class */
        const char *err_desc;  /* ERROR: error.desc */
        const char *event;     /* EVENT: the event name */
        const cJSON *data;     /* EVENT: "data" or NULL */
} qmp_msg;

/* Parse and validate one line. -EPROTO (invalid JSON, not an object, missing members) with a message
 * naming what is wrong, -ENOMEM. On success free with qmp_msg_done. */
int qmp_msg_parse(const char *line, size_t len, qmp_msg *msg, kv_error *err);
void qmp_msg_done(qmp_msg *msg);
/* Detach the whole message from msg (caller frees with cJSON_Delete). */
cJSON *qmp_msg_take(qmp_msg *msg);

/* {"execute":command,"arguments":args,"id":id} (compact, no newline) as a malloc'd string; args may be
 * NULL and is only borrowed. *len receives the length. NULL on ENOMEM. */
char *qmp_command_encode(const char *command, const cJSON *args, int64_t id, size_t *len);

/* Does the event message have `name` (NULL: any) and, when key != NULL, data[key] == value (a string)? */
bool qmp_event_matches(const cJSON *event, const char *name, const char *key, const char *value);
