"""kill -9 of QEMU → Failed with the reason, exit 1; kill -9 of the launcher → QEMU gone within 1 s
(PR_SET_PDEATHSIG). Also --accel auto, --vmi-env and startStrategy Paused, which need no booted guest."""
import os
import signal
import sys
import time

from launcherlib import Launcher, check, need_guest, pid_alive, vmi

sys.path.insert(0, os.path.join(os.environ.get("KV_SOURCE_ROOT", "."), "kvmcheck"))
import hostkvm  # noqa: E402

need_guest()

# QEMU killed under the launcher (this one also exercises --accel auto: kvmcheck's verdict for this host decides)
L = Launcher(vmi("killqemu", kernel_args="cnt=0"), accel="auto")
L.wait_phase("Running")
verdict = hostkvm.live_verdict()["verdict"]
check(L.status()["accel"] == hostkvm.expected_accel(verdict), f"kvmcheck says {verdict}: accel {L.status()['accel']}", L)
cond = L.condition("SoftwareEmulation")
reason = hostkvm.expected_emulation_reason(verdict)
if reason:
    check(cond and cond["reason"] == reason and cond["message"].startswith(f"KVM {verdict}: "),
          f"SoftwareEmulation: {cond}", L)
    with open(L.log_path) as f:
        check("falling back to TCG" in f.read(), "the fallback is logged as a warning", L)
else:
    check(cond is None, "KVM: no SoftwareEmulation condition", L)
os.kill(L.qemu_pid(), signal.SIGKILL)
rc = L.wait_exit(10)
st = L.status()
check(rc == 1, "launcher exits 1 when QEMU is killed", L)
check(st["phase"] == "Failed", "phase Failed", L)
check(st["reason"] == "qemu killed by signal 9 (SIGKILL)", f"reason: {st['reason']}", L)
with open(L.log_path) as f:
    check('"reason":"qemu killed by signal 9 (SIGKILL)"' in f.read(), "reason in the JSON log", L)

# the launcher killed: QEMU must follow (this one reads its VMI from --vmi-env, as in a Pod)
L2 = Launcher(vmi("killlauncher", kernel_args="cnt=0", startStrategy="Paused"), via_env=True)
L2.wait_phase("Running")
# startStrategy Paused: QEMU stays at -S until unpaused
check((L2.condition("Paused") or {}).get("status") == "True", "startStrategy Paused: Paused condition", L2)
check(L2.qmp("query-status")["return"]["status"] == "prelaunch", "QEMU still at -S (prelaunch)", L2)
rc, reply = L2.ctl("unpause")
check(rc == 0 and L2.qmp("query-status")["return"]["status"] == "running", "unpause boots it", L2)
L2.wait(lambda: (L2.condition("Ready") or {}).get("status") == "True" and L2.condition("Paused") is None, 5,
        "Ready, not Paused")
qemu = L2.qemu_pid()
L2.proc.kill()
L2.proc.wait()
t = time.monotonic()
while pid_alive(qemu) and time.monotonic() - t < 1.0:
    time.sleep(0.01)
check(not pid_alive(qemu), f"QEMU gone {time.monotonic() - t:.3f} s after kill -9 of the launcher", L2)
print("PASS")
