/* libFuzzer target for the guest agent's replies (launcher/supervisor/agent-proto.c): bytes a hostile guest
 * writes on org.qemu.guest_agent.0 go through the framer in pieces whose size the first input byte picks,
 * and every line through agent_reply_parse, then into the status as guest-get-osinfo,
 * guest-network-get-interfaces and each guest agent info reply (agent_info_apply). Must never crash, leak or
 * overflow the status' fixed fields. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "agent-proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void on_line(char *text, void *data)
{
        status *st = data;
        agent_reply r;
        if (agent_reply_parse(text, &r) < 0)
                return;
        cJSON *info = agent_osinfo_to_status(r.ret);
        status_set_json(&st->guest_os_info, info);
        agent_interfaces_apply(st, r.ret);
        static const char *const cmds[] = {"guest-info", "guest-get-host-name", "guest-get-timezone",
                                           "guest-get-users", "guest-get-fsinfo"};
        for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
                agent_info_apply(&st->guest_agent_info, cmds[i], r.ret);
        agent_reply_fini(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static agent_framer f;
        status st;
        if (size < 1)
                return 0;
        size_t piece = data[0] % 64 + 1;
        status_init(&st, NULL);
        st.n_ifaces = 1; /* the launcher's own interface, which the guest's may match */
        snprintf(st.ifaces[0].name, sizeof(st.ifaces[0].name), "default");
        memset(&f, 0, sizeof(f));
        for (size_t off = 1; off < size; off += piece)
                agent_framer_feed(&f, (const char *)data + off, size - off < piece ? size - off : piece,
                                  on_line, &st);
        status_fini(&st);
        return 0;
}
