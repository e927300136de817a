/* QMP message codec: validation of what the peer sends and encoding of what we send. */
#include "qmp-codec.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool only_space(const char *p, const char *end)
{
        for (; p < end; p++)
                if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
                        return false;
        return true;
}

/* QEMU echoes the id we sent; we only ever send integers, anything else is not one of ours. */
static void read_id(const cJSON *json, qmp_msg *msg)
{
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(json, "id");
        if (!cJSON_IsNumber(id))
                return;
        double v = id->valuedouble; /* NaN fails the range check */
        if (!(v >= -9007199254740992.0 && v <= 9007199254740992.0) || (double)(int64_t)v != v)
                return;
        msg->has_id = true;
        msg->id = (int64_t)id->valuedouble;
}

static int classify_error(qmp_msg *msg, kv_error *err)
{
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(msg->json, "error");
        const cJSON *cls = cJSON_GetObjectItemCaseSensitive(e, "class");
        const cJSON *desc = cJSON_GetObjectItemCaseSensitive(e, "desc");
        if (!cJSON_IsObject(e) || !cJSON_IsString(cls) || !cJSON_IsString(desc))
                return kv_error_set(err, EPROTO, "QMP error reply without string error.class and error.desc");
        msg->kind = QMP_MSG_ERROR;
        msg->err_class = cls->valuestring;
        msg->err_desc = desc->valuestring;
        read_id(msg->json, msg);
        return 0;
}

static int classify_event(qmp_msg *msg, kv_error *err)
{
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(msg->json, "event");
        const cJSON *data = cJSON_GetObjectItemCaseSensitive(msg->json, "data");
        if (!cJSON_IsString(name))
                return kv_error_set(err, EPROTO, "QMP event without a string \"event\" member");
        if (data && !cJSON_IsObject(data))
                return kv_error_set(err, EPROTO, "QMP event %s: \"data\" is not an object",
                                    name->valuestring);
        msg->kind = QMP_MSG_EVENT;
        msg->event = name->valuestring;
        msg->data = data;
        return 0;
}

static int classify(qmp_msg *msg, kv_error *err)
{
        const cJSON *json = msg->json;
        if (!cJSON_IsObject(json))
                return kv_error_set(err, EPROTO, "QMP message is not a JSON object");
        if (cJSON_GetObjectItemCaseSensitive(json, "return")) {
                msg->kind = QMP_MSG_RETURN;
                msg->ret = cJSON_GetObjectItemCaseSensitive(json, "return");
                read_id(json, msg);
                return 0;
        }
        if (cJSON_GetObjectItemCaseSensitive(json, "error"))
                return classify_error(msg, err);
        if (cJSON_GetObjectItemCaseSensitive(json, "event"))
                return classify_event(msg, err);
        if (cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(json, "QMP"))) {
                msg->kind = QMP_MSG_GREETING;
                return 0;
        }
        return kv_error_set(err, EPROTO, "unrecognized QMP message (no return, error, event or QMP member)");
}

int qmp_msg_parse(const char *line, size_t len, qmp_msg *msg, kv_error *err)
{
        *msg = (qmp_msg){0};
        const char *end = NULL;
        /* cJSON stops at a NUL byte; reject those explicitly instead of parsing a prefix. */
        if (memchr(line, '\0', len))
                return kv_error_set(err, EPROTO, "invalid JSON from QMP peer: NUL byte at offset %zu",
                                    (size_t)((const char *)memchr(line, '\0', len) - line));
        msg->json = cJSON_ParseWithLengthOpts(line, len, &end, false);
        if (!msg->json) {
                size_t off = end && end >= line ? (size_t)(end - line) : 0;
                const char *at = cJSON_GetErrorPtr();
                if (at >= line && at <= line + len)
                        off = (size_t)(at - line);
                return kv_error_set(err, EPROTO, "invalid JSON from QMP peer at offset %zu", off);
        }
        if (!only_space(end, line + len)) {
                size_t off = (size_t)(end - line);
                qmp_msg_done(msg);
                return kv_error_set(err, EPROTO, "invalid JSON from QMP peer: trailing data at offset %zu",
                                    off);
        }
        int r = classify(msg, err);
        if (r < 0)
                qmp_msg_done(msg);
        return r;
}

void qmp_msg_done(qmp_msg *msg)
{
        cJSON_Delete(msg->json);
        *msg = (qmp_msg){0};
}

cJSON *qmp_msg_take(qmp_msg *msg)
{
        cJSON *json = msg->json;
        *msg = (qmp_msg){0};
        return json;
}

/* No trailing newline: QEMU takes a command as soon as its closing brace arrives, and every byte costs a
 * pass of its monitor loop (qmp-wireid.c). Compact JSON for the same reason. */
char *qmp_command_encode(const char *command, const cJSON *args, int64_t id, size_t *len)
{
        cJSON *cmd = cJSON_CreateObject();
        if (!cmd || !cJSON_AddStringToObject(cmd, "execute", command))
                goto fail;
        /* A reference item borrows the caller's tree: no deep copy per command. */
        if (args && !cJSON_AddItemReferenceToObject(cmd, "arguments", (cJSON *)args))
                goto fail;
        if (!cJSON_AddNumberToObject(cmd, "id", (double)id))
                goto fail;
        char *s = cJSON_PrintUnformatted(cmd);
        cJSON_Delete(cmd);
        if (s)
                *len = strlen(s);
        return s;
fail:
        cJSON_Delete(cmd);
        return NULL;
}

bool qmp_event_matches(const cJSON *event, const char *name, const char *key, const char *value)
{
        const cJSON *ev = cJSON_GetObjectItemCaseSensitive(event, "event");
        if (!cJSON_IsString(ev) || (name && strcmp(ev->valuestring, name) != 0))
                return false;
        if (!key)
                return true;
        const cJSON *data = cJSON_GetObjectItemCaseSensitive(event, "data");
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(data, key);
        return cJSON_IsString(v) && value && strcmp(v->valuestring, value) == 0;
}
