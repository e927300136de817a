/* credsync: access credentials through the guest agent (credsync.h). */
#include "credsync.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "accesscreds.h"
#include "base64.h"
#include "json.h"
#include "log.h"
#include "macro.h"

#define CMD_TIMEOUT_MS 10000

struct credsync {
        loop *loop;
        agent *agent;
        status *st;
        const vmi *const *v;
        const launcher_paths *paths;
        void (*publish)(void *ctx);
        void *ctx;
        loop_timer timer;
        char *synced;        /* the state last written to the guest (JSON text), NULL = none */
        unsigned synced_gen; /* the agent connection it was written over */
        char *failed;        /* the state whose sync failed last, retried after CREDSYNC_RETRY_MS */
        uint64_t failed_at;
        char *pending; /* the state being written */
        unsigned pending_gen, outstanding, handles[64];
        char *what[64]; /* per command of the round: "<command> for user <u>" */
        size_t n_handles, n_replies;
        char error[256]; /* the first failure of the round */
};

static bool uses_agent(const vmi *v)
{
        for (size_t i = 0; i < v->n_access_creds; i++)
                if (v->access_creds[i].method == CRED_VIA_AGENT)
                        return true;
        return false;
}

static void set_condition(credsync *c, bool ok, const char *message)
{
        condition *old = &c->st->conds[COND_ACCESS_CREDENTIALS_SYNCHRONIZED];
        if (old->present && old->status == ok && !strcmp(old->message, message))
                return;
        if (ok)
                log_info("access credentials synchronized with the guest");
        else
                log_warning("access credentials: %s", message);
        status_set_condition(c->st, COND_ACCESS_CREDENTIALS_SYNCHRONIZED, true, ok,
                             ok ? "AccessCredentialsSyncSuccess" : "AccessCredentialsSyncFailed", message);
        c->publish(c->ctx);
}

static void round_done(credsync *c)
{
        if (!c->error[0]) {
                free(c->synced), free(c->failed);
                c->synced = c->pending, c->synced_gen = c->pending_gen, c->failed = NULL;
                set_condition(c, true, "");
        } else {
                free(c->failed);
                c->failed = c->pending, c->failed_at = loop_now_ms();
                set_condition(c, false, c->error);
        }
        c->pending = NULL;
        for (size_t i = 0; i < c->n_handles; i++)
                free(c->what[i]);
        c->n_handles = c->n_replies = 0;
}

/* Replies (and failures) arrive in the order the commands were queued. */
static void on_reply(const cJSON *ret, const char *why, void *data)
{
        credsync *c = data;
        size_t i = c->n_replies++;
        if (why && !c->error[0])
                snprintf(c->error, sizeof(c->error), "%s: %s",
                         i < c->n_handles && c->what[i] ? c->what[i] : "guest agent", why);
        if (--c->outstanding == 0)
                round_done(c);
}

static void send_cmd(credsync *c, const char *execute, cJSON *args, const char *user)
{
        if (c->n_handles == ARRAY_SIZE(c->handles)) {
                cJSON_Delete(args);
                snprintf(c->error, sizeof(c->error), "more than %zu guest users", ARRAY_SIZE(c->handles));
                return;
        }
        size_t i = c->n_handles++;
        if (asprintf(&c->what[i], "%s for user %s", execute, user) < 0)
                c->what[i] = NULL;
        c->outstanding++;
        c->handles[i] = agent_command(c->agent, execute, args, CMD_TIMEOUT_MS, on_reply, c);
}

static void send_state(credsync *c, const cJSON *state)
{
        const cJSON *u;
        c->outstanding = 1; /* held until every command is queued: a failing agent_command answers at once */
        c->n_handles = c->n_replies = 0;
        cJSON_ArrayForEach(u, cJSON_GetObjectItemCaseSensitive(state, "ssh"))
        {
                cJSON *args = cJSON_CreateObject();
                cJSON_AddStringToObject(args, "username", u->string);
                cJSON_AddItemToObject(args, "keys", cJSON_Duplicate(u, true));
                cJSON_AddBoolToObject(args, "reset", true);
                send_cmd(c, "guest-ssh-add-authorized-keys", args, u->string);
        }
        cJSON_ArrayForEach(u, cJSON_GetObjectItemCaseSensitive(state, "passwords"))
        {
                _cleanup_free_ char *b64 = base64_encode(u->valuestring, strlen(u->valuestring));
                cJSON *args = cJSON_CreateObject();
                cJSON_AddStringToObject(args, "username", u->string);
                cJSON_AddStringToObject(args, "password", b64 ? b64 : "");
                cJSON_AddBoolToObject(args, "crypted", false);
                send_cmd(c, "guest-set-user-password", args, u->string);
        }
        if (--c->outstanding == 0)
                round_done(c);
}

static void tick(credsync *c)
{
        if (c->pending || !agent_connected(c->agent))
                return;
        kv_error err = {0};
        _cleanup_json_ cJSON *state = NULL;
        if (access_cred_agent_state(c->paths, *c->v, &state, &err) < 0) {
                set_condition(c, false, err.msg);
                return;
        }
        _cleanup_free_ char *text = cJSON_PrintUnformatted(state);
        if (!text)
                return;
        unsigned gen = agent_generation(c->agent);
        if (c->synced && c->synced_gen == gen && !strcmp(c->synced, text)) {
                set_condition(c, true, ""); /* back to what the guest holds, after a failed change */
                return;
        }
        if (c->failed && !strcmp(c->failed, text) && loop_now_ms() - c->failed_at < CREDSYNC_RETRY_MS)
                return;
        c->pending = TAKE_PTR(text), c->pending_gen = gen, c->error[0] = '\0';
        send_state(c, state);
}

static void on_timer(loop_timer *t, void *data)
{
        credsync *c = data;
        tick(c);
        loop_timer_arm(c->loop, &c->timer, CREDSYNC_POLL_MS, on_timer, c);
}

int credsync_start(loop *l, agent *a, status *st, const vmi *const *v, const launcher_paths *paths,
                   void (*publish)(void *ctx), void *ctx, credsync **out)
{
        *out = NULL;
        if (!uses_agent(*v))
                return 0;
        credsync *c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        *c = (credsync){
            .loop = l, .agent = a, .st = st, .v = v, .paths = paths, .publish = publish, .ctx = ctx};
        loop_timer_arm(l, &c->timer, 0, on_timer, c);
        *out = c;
        return 0;
}

void credsync_free(credsync *c)
{
        if (!c)
                return;
        loop_timer_disarm(c->loop, &c->timer);
        for (size_t i = 0; i < c->n_handles; i++)
                agent_cancel(c->agent, c->handles[i]), free(c->what[i]);
        free(c->synced), free(c->failed), free(c->pending);
        free(c);
}
