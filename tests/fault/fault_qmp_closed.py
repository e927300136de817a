"""The QMP connection closes while a command is in flight: QEMU is frozen (SIGSTOP) so a pause stays
pending, then killed, which closes the launcher's QMP socket mid-command. Expected: the pending control
request gets an error reply (not silence, not a crash), the launcher ends Failed with the signal as the
reason and exit 1, no QEMU left."""
import os
import signal
import socket
import time

from faultlib import Launcher, check, need_guest, qemu_orphans, read_reply, vmi

need_guest()
L = Launcher(vmi("qmpclose", kernel_args="cnt=0"))
L.wait_phase("Running")
qemu = L.qemu_pid()
os.kill(qemu, signal.SIGSTOP)
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(os.path.join(L.run_dir, "control.sock"))
s.sendall(b'{"cmd":"pause","id":7}\n')
time.sleep(0.5)  # the QMP stop is written and waits for a reply that will never come
os.kill(qemu, signal.SIGKILL)
reply = read_reply(s)
s.close()
check(reply is not None and reply.get("id") == 7 and reply["ok"] is False and reply.get("error"),
      f"the in-flight request is answered with an error: {reply}", L)
rc = L.wait_exit(15)
st = L.status()
check(rc == 1 and st.get("phase") == "Failed", f"launcher Failed, exit {rc}", L)
check(st.get("reason") == "qemu killed by signal 9 (SIGKILL)", f"reason {st.get('reason')!r}", L)
check(not qemu_orphans(L.dir), "no QEMU left", L)
print("PASS")
