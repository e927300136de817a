"""QEMU hangs (SIGSTOP) while the launcher drives it. Expected: the launcher's loop stays responsive
(ctl status answers at once), a QMP-backed command (pause) fails cleanly after the launcher's QMP timeout
with an error that says so, and after SIGCONT the same command works again. Then, hung again, SIGTERM:
the stop escalation (powerdown → quit → SIGKILL) ends QEMU and the launcher exits with a clear status
and no QEMU left."""
import os
import signal
import time

from faultlib import Launcher, check, control, need_guest, qemu_orphans, vmi

need_guest()
L = Launcher(vmi("hang", kernel_args="cnt=0", grace=1))
L.wait_phase("Running")
qemu = L.qemu_pid()
os.kill(qemu, signal.SIGSTOP)
try:
    reply, took = control(L.run_dir, "status", timeout=5)
    check(reply and reply["ok"] and reply["status"]["phase"] == "Running" and took < 1.0,
          f"ctl status answers in {took:.2f} s while QEMU is stopped", L)
    reply, took = control(L.run_dir, "pause", timeout=30, id="p1")
    check(reply is not None and not reply["ok"] and reply.get("id") == "p1",
          f"pause fails cleanly after {took:.1f} s: {reply}", L)
    check("time" in reply["error"].lower(), f"the error says it timed out: {reply['error']!r}", L)
    check(8 <= took <= 20, f"the launcher's QMP timeout bounds the wait ({took:.1f} s)", L)
    check(L.proc.poll() is None, "the launcher survives a QMP timeout", L)
finally:
    os.kill(qemu, signal.SIGCONT)
# QMP cannot cancel: the timed-out stop is still queued in QEMU and runs now. The status follows QEMU's
# STOP event, so it tells the truth about what happened.
L.wait(lambda: (L.condition("Paused") or {}).get("status") == "True", 5, "Paused after the late stop")
print("ok: the late stop shows up as the Paused condition")
reply, took = control(L.run_dir, "pause", timeout=15, id="p2")
check(reply and reply["ok"], f"after SIGCONT, pause works again ({reply})", L)
L.wait(lambda: (L.condition("Paused") or {}).get("status") == "True", 5, "Paused condition")
reply, _ = control(L.run_dir, "unpause", timeout=15)
check(reply and reply["ok"], "unpause works", L)

# hung for good: SIGTERM must still end everything within grace (1 s) + quit wait (5 s) + margin
os.kill(qemu, signal.SIGSTOP)
t = time.monotonic()
L.proc.send_signal(signal.SIGTERM)
rc = L.wait_exit(20)
took = time.monotonic() - t
st = L.status()
check(took < 12, f"SIGTERM with a hung QEMU: launcher exits after {took:.1f} s", L)
check(rc in (0, 1) and st.get("phase") in ("Succeeded", "Failed") and st.get("reason"),
      f"clear final status: exit {rc}, {st.get('phase')}, {st.get('reason')!r}", L)
check("stop" in st["reason"] or "kill" in st["reason"], "the reason says it was stopped/killed", L)
check(not qemu_orphans(L.dir), "no QEMU left", L)
print("PASS")
