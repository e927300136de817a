"""A guest that ignores the power button (acpid=0): SIGTERM → system_powerdown → nothing → after
terminationGracePeriodSeconds (3) `quit` → Succeeded (stopped on request), exit 0."""
import signal
import time

from launcherlib import Launcher, check, need_guest, pid_alive, vmi

need_guest()
L = Launcher(vmi("grace", kernel_args="acpid=0 cnt=0", grace=3))
L.wait_phase("Running")
L.wait_serial("KVGUEST READY")
qemu = L.qemu_pid()
t = time.monotonic()
L.proc.send_signal(signal.SIGTERM)
rc = L.wait_exit(15)
took = time.monotonic() - t
check(rc == 0, f"exit 0 (stopped on request), took {took:.2f} s", L)
check(3 <= took < 3 + 10, "stopped right after the 3 s grace period", L)
st = L.status()
check(st["phase"] == "Succeeded" and "stopped on request" in st["reason"], f"status: {st['reason']}", L)
with open(L.log_path) as f:
    log = f.read()
check("did not power off within 3 s" in log, "launcher logged the missed grace period", L)
check(not pid_alive(qemu), "QEMU is gone", L)
print("PASS")
