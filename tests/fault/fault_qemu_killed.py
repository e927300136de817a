"""QEMU dies under a running launcher: crashed (SIGSEGV) and killed (SIGKILL). Expected: exit 1, phase
Failed, a reason naming the signal in the status file and in the final JSON log line, Ready False, no
QEMU left."""
import os
import signal

from faultlib import Launcher, check, log_text, need_guest, qemu_orphans, vmi

need_guest()
for sig, name in ((signal.SIGSEGV, "SIGSEGV"), (signal.SIGKILL, "SIGKILL")):
    L = Launcher(vmi("crash-" + name.lower(), kernel_args="cnt=0"))
    L.wait_phase("Running")
    os.kill(L.qemu_pid(), sig)
    rc = L.wait_exit(15)
    st = L.status()
    reason = f"qemu killed by signal {int(sig)} ({name})"
    check(rc == 1, f"{name}: launcher exits 1 (got {rc})", L)
    check(st.get("phase") == "Failed" and st.get("reason") == reason, f"{name}: Failed, reason {st.get('reason')!r}", L)
    check(st.get("exitCode") == 1, f"{name}: exitCode 1 in the status", L)
    ready = [c for c in st.get("conditions", []) if c["type"] == "Ready"]
    check(ready and ready[0]["status"] == "False", f"{name}: Ready False ({ready})", L)
    log = log_text(L)
    check(log.count(f'"reason":"{reason}"') == 1, f"{name}: the failure is reported once in the log", L)
    check(not qemu_orphans(L.dir), f"{name}: no QEMU left", L)
    L.cleanup()
print("PASS")
