"""One guest, the whole life: boot (kernelBoot) to the marker, status file, sandbox seen in /proc,
control socket status/pause/unpause (checked on QMP), console replay + live counter, softreboot (a second boot
in the same QEMU), SIGTERM → the
guest powers off through acpid → exit 0 within the grace period."""
import json
import os
import pty
import re
import select
import signal
import socket
import stat
import subprocess
import time

from launcherlib import LAUNCHER, Launcher, check, need_guest, pid_alive, proc_status, vmi

need_guest()
L = Launcher(vmi("life", grace=30))
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
# the raw protocol: several requests on one connection, ids echoed, bad requests answered, not fatal
with socket.socket(socket.AF_UNIX) as sk:
    sk.settimeout(5)
    sk.connect(os.path.join(L.run_dir, "control.sock"))
    sk.sendall(b'{"cmd":"status","id":7}\nnot json\n{"cmd":"status","args":[1]}\n{"id":"x"}\n{"cmd":"help","id":[1]}\n')
    f = sk.makefile("rb")
    replies = [json.loads(f.readline()) for _ in range(5)]
check(replies[0]["ok"] and replies[0]["id"] == 7 and "status" in replies[0], "status with id 7", L)
check(not replies[1]["ok"] and "not a JSON object" in replies[1]["error"], "malformed line refused", L)
check(not replies[2]["ok"] and "args" in replies[2]["error"], "non-object args refused", L)
check(not replies[3]["ok"] and replies[3]["id"] == "x" and "cmd" in replies[3]["error"], "missing cmd refused", L)
check(replies[4]["ok"] and replies[4]["id"] == [1] and
      {c["cmd"] for c in replies[4]["commands"]} >= {"status", "pause", "unpause", "shutdown", "console"},
      "help lists the commands", L)

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
end = time.monotonic() + 15
counts = []
while time.monotonic() < end and len(set(counts)) < 3:
    time.sleep(0.2)
    seen += con.stdout.read() or b""
    counts = [int(n) for n in re.findall(rb"CNT (\d+) ", seen)]
con.kill()
con.wait()
check(b"KVGUEST READY" in seen, "console replays recent output (ring)", L)
check(len(set(counts)) >= 3 and counts == sorted(counts), f"console shows the counter going up {counts[:6]}", L)

# console on a terminal: raw mode, Ctrl-] detaches (exit 0) and leaves the VM running
pid, fd = pty.fork()
if pid == 0:
    os.execv(LAUNCHER, [LAUNCHER, "console", "--run-dir", L.run_dir])
out = b""
end = time.monotonic() + 15
while time.monotonic() < end and not re.search(rb"CNT \d+ ", out.split(b"Escape character")[-1]):
    if select.select([fd], [], [], 0.2)[0]:
        try:
            out += os.read(fd, 65536)
        except OSError:
            break
os.write(fd, b"\x1d")
status = None
end = time.monotonic() + 5
while status is None and time.monotonic() < end:
    done, st = os.waitpid(pid, os.WNOHANG)
    status = st if done else None
    time.sleep(0.05)
if status is None:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
os.close(fd)
check(b"Escape character is ^]" in out, "console on a tty announces the escape key", L)
check(status is not None and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, "Ctrl-] detaches, exit 0", L)
check(L.proc.poll() is None and L.ctl("status")[1]["status"]["phase"] == "Running", "VM still running after detach", L)

# softreboot: ACPI power button → the guest powers off → QEMU (set-action shutdown=pause) is reset and runs on:
# the guest boots a second time in the same QEMU and the launcher stays Running
boots = L.serial().count("KVGUEST READY")
rc, reply = L.ctl("softreboot")
check(rc == 0 and reply["ok"], "ctl softreboot", L)
L.wait(lambda: L.serial().count("KVGUEST READY") > boots, 60, "a second boot after softreboot")
check(pid_alive(qemu) and L.qemu_pid() == qemu, "the same QEMU reboots the guest", L)
check(L.ctl("status")[1]["status"]["phase"] == "Running", "still Running after softreboot", L)
check(L.qmp("query-status")["return"]["status"] == "running", "QMP says running after softreboot", L)

# SIGTERM: ACPI power button → busybox acpid → poweroff → Succeeded, exit 0, well within the grace
t = time.monotonic()
L.proc.send_signal(signal.SIGTERM)
rc = L.wait_exit(35)
took = time.monotonic() - t
check(rc == 0, f"exit 0 after SIGTERM (took {took:.2f} s)", L)
check(took < 30, "powered off within the grace period", L)
st = L.status()
check(st["phase"] == "Succeeded" and st["reason"] == "guest powered off", f"status {st['phase']}: {st['reason']}", L)
check(L.condition("Ready")["status"] == "False", "Ready False at the end", L)
check(not pid_alive(qemu), "QEMU is gone", L)
check(not os.path.exists(os.path.join(L.run_dir, "control.sock")), "sockets removed", L)
print("PASS")
