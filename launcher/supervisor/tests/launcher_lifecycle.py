"""One guest, the whole life: boot (kernelBoot) to the marker, status file, sandbox seen in /proc,
control socket status/pause/unpause (checked on QMP), console replay + live counter, SIGTERM → the
guest powers off through acpid → exit 0 within the grace period."""
import os
import re
import signal
import stat
import subprocess
import time

from launcherlib import LAUNCHER, Launcher, check, need_guest, pid_alive, proc_status, vmi

need_guest()
L = Launcher(vmi("life", grace=10))
L.wait_phase("Running")
L.wait_serial("KVGUEST READY")

st = L.status()
check(st["accel"] == "tcg", "status accel tcg", L)
check(st["vmi"] == {"name": "life", "namespace": "kvtest", "uid": "uid-life"}, "status names the VMI", L)
check(L.condition("Ready")["status"] == "True", "Ready condition True", L)
check(L.condition("SoftwareEmulation")["status"] == "True", "SoftwareEmulation condition", L)
qemu = L.qemu_pid()
check(qemu > 0 and pid_alive(qemu), "qemuPid is a live process", L)
check(st["timestamps"]["running"] is not None, "running timestamp", L)

# least privilege, seen from /proc
ls = proc_status(L.proc.pid)
check(ls["NoNewPrivs"] == "1", "launcher NoNewPrivs 1", L)
check(ls["Seccomp"] == "2", "launcher Seccomp 2 (filter)", L)
check(int(ls["CapEff"], 16) == 0 and int(ls["CapPrm"], 16) == 0, "launcher has no capabilities", L)
check(int(ls["CapBnd"], 16) == 0 or os.geteuid() != 0, "launcher bounding set empty", L)
qs = proc_status(qemu)
check(qs["Seccomp"] == "2" and qs["NoNewPrivs"] == "1", "QEMU runs under its -sandbox", L)
check(stat.S_IMODE(os.stat(L.run_dir).st_mode) == 0o700, "run dir is 0700", L)
for sock in ("control.sock", "qmp.sock", "serial.sock"):
    check(stat.S_IMODE(os.stat(os.path.join(L.run_dir, sock)).st_mode) == 0o600, f"{sock} is 0600", L)

# control socket
rc, reply = L.ctl("status")
check(rc == 0 and reply["ok"] and reply["status"]["phase"] == "Running", "ctl status", L)
rc, reply = L.ctl("nonsense")
check(rc == 1 and not reply["ok"] and "unknown command" in reply["error"], "unknown command refused", L)
rc, reply = L.ctl("pause")
check(rc == 0 and reply["ok"], "ctl pause", L)
check(L.qmp("query-status")["return"]["status"] == "paused", "QMP says paused", L)
L.wait(lambda: (L.condition("Paused") or {}).get("status") == "True", 5, "Paused condition")
rc, reply = L.ctl("unpause")
check(rc == 0 and reply["ok"], "ctl unpause", L)
check(L.qmp("query-status")["return"]["status"] == "running", "QMP says running", L)
L.wait(lambda: L.condition("Paused") is None, 5, "Paused condition gone")

# console: the backlog replays the boot, then the counter goes on live
con = subprocess.Popen([LAUNCHER, "console", "--run-dir", L.run_dir], stdin=subprocess.PIPE,
                       stdout=subprocess.PIPE)
os.set_blocking(con.stdout.fileno(), False)
seen = b""
end = time.monotonic() + 8
counts = []
while time.monotonic() < end and len(set(counts)) < 3:
    time.sleep(0.2)
    seen += con.stdout.read() or b""
    counts = [int(n) for n in re.findall(rb"CNT (\d+) ", seen)]
con.kill()
con.wait()
check(b"KVGUEST READY" in seen, "console replays recent output (ring)", L)
check(len(set(counts)) >= 3 and counts == sorted(counts), f"console shows the counter going up {counts[:6]}", L)

# SIGTERM: ACPI power button → busybox acpid → poweroff → Succeeded, exit 0, well within the grace
t = time.monotonic()
L.proc.send_signal(signal.SIGTERM)
rc = L.wait_exit(15)
took = time.monotonic() - t
check(rc == 0, f"exit 0 after SIGTERM (took {took:.2f} s)", L)
check(took < 10, "powered off within the grace period", L)
st = L.status()
check(st["phase"] == "Succeeded" and st["reason"] == "guest powered off", f"status {st['phase']}: {st['reason']}", L)
check(L.condition("Ready")["status"] == "False", "Ready False at the end", L)
check(not pid_alive(qemu), "QEMU is gone", L)
check(not os.path.exists(os.path.join(L.run_dir, "control.sock")), "sockets removed", L)
print("PASS")
