/* libqmp wire ids over a socketpair (the test plays QEMU): ids are the smallest free number, a reply
 * frees its id for the next command, an expired or cancelled command's id stays reserved until its late
 * reply, and beyond 64 commands in flight ids count up from 64 without reuse. */
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "test-util.h"
#include "qmp.h"

#define GREETING "{\"QMP\": {\"version\": {}, \"capabilities\": []}}\r\n"

static int replies;

static void on_reply(qmp *q, const cJSON *ret, const kv_error *err, void *userdata)
{
        replies++;
}

/* Read the commands the client wrote so far (JSON objects back to back) and return their wire ids. */
static int peer_ids(int fd, long *ids, int max)
{
        static char buf[1 << 16];
        ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
        int count = 0;
        buf[n > 0 ? n : 0] = '\0';
        for (const char *p = buf; *p && count < max;) {
                const char *end = NULL;
                cJSON *cmd = cJSON_ParseWithOpts(p, &end, false);
                if (!cmd)
                        break;
                ids[count++] = (long)cJSON_GetNumberValue(cJSON_GetObjectItem(cmd, "id"));
                cJSON_Delete(cmd);
                p = end;
        }
        return count;
}

static void peer_reply(qmp *q, int fd, long id)
{
        char line[64];
        int n = snprintf(line, sizeof(line), "{\"return\": {}, \"id\": %ld}\r\n", id);
        CHECK(write(fd, line, (size_t)n) == n);
        CHECK(qmp_handle_io(q, EPOLLIN, NULL) == 0);
}

static int64_t send_one(qmp *q)
{
        kv_error err = {0};
        return qmp_send(q, "query-status", NULL, -1, 0, on_reply, NULL, &err);
}

int main(void)
{
        int sv[2];
        qmp *q = NULL;
        kv_error err = {0};
        long ids[80];
        CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
        CHECK(qmp_new_from_fd(&q, sv[0], &err) == 0);
        CHECK(write(sv[1], GREETING, strlen(GREETING)) == (ssize_t)strlen(GREETING));
        CHECK(qmp_handshake_async(q, 0, on_reply, NULL, &err) > 0);
        CHECK(qmp_handle_io(q, EPOLLIN, NULL) == 0);
        CHECK(peer_ids(sv[1], ids, 80) == 1 && ids[0] == 0);
        peer_reply(q, sv[1], 0);
        CHECK(replies == 1);

        /* 70 in flight: 0..63, then 64..69 */
        for (int i = 0; i < 70; i++)
                CHECK(send_one(q) > 0);
        CHECK(peer_ids(sv[1], ids, 80) == 70);
        for (int i = 0; i < 70; i++)
                CHECK(ids[i] == i);

        /* a reply frees its id; a cancelled command's id stays reserved until its late reply */
        peer_reply(q, sv[1], 5);
        CHECK(replies == 2);
        CHECK(send_one(q) > 0 && peer_ids(sv[1], ids, 80) == 1 && ids[0] == 5);
        peer_reply(q, sv[1], 9);
        int64_t id = send_one(q); /* takes 9 */
        CHECK(id > 0 && peer_ids(sv[1], ids, 80) == 1 && ids[0] == 9);
        CHECK(qmp_cancel(q, id) == 0);
        peer_reply(q, sv[1], 10);
        CHECK(send_one(q) > 0 && peer_ids(sv[1], ids, 80) == 1 && ids[0] == 10); /* 9 is still reserved */
        int before = replies;
        peer_reply(q, sv[1], 9); /* the cancelled command's late reply: swallowed, 9 free again */
        CHECK(replies == before);
        peer_reply(q, sv[1], 11);
        CHECK(send_one(q) > 0 && peer_ids(sv[1], ids, 80) == 1 && ids[0] == 9);
        CHECK(send_one(q) > 0 && peer_ids(sv[1], ids, 80) == 1 && ids[0] == 11);
        CHECK(send_one(q) > 0 && peer_ids(sv[1], ids, 80) == 1 && ids[0] == 70); /* all 64 busy again */
        qmp_free(q);
        close(sv[1]);
        return test_exit();
}
