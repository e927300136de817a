#!/usr/bin/env python3
"""The launcher's loop keeps serving while QEMU writes a RAM snapshot (docs/launcher-supervisor.md "Loop"):
a 256 MiB guest fills its memory with random data, its snapshot goes to a qcow2 with 512-byte clusters
(slow to allocate, so the save takes seconds), and while the snapshot-save request is still unanswered
the control socket answers `status`, a console client gets the serial backlog, and a SIGTERM starts the
stop within 1 s. The snapshot request is answered in the end and the launcher stops."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("KV_SOURCE_ROOT", "."), "launcher", "supervisor", "tests"))
from launcherlib import LAUNCHER, SKIP, Launcher, check, need_guest, vmi  # noqa: E402

ANSWER_S = 1.0

need_guest()
L = Launcher(vmi("snaploop", kernel_args="fill=160", grace=5))
L.wait_phase("Running")
L.wait_serial("FILLED 160", 90)

img = os.path.join(L.dir, "snap.qcow2")
subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=512", img, "1G"], check=True)
rc, reply = L.ctl("hotplug-disk", f'{{"name":"snap","path":"{img}"}}')
check(rc == 0 and reply["ok"], f"ctl hotplug-disk: {reply}", L)


def log_text():
    L.log.flush()
    with open(L.log_path, errors="replace") as f:
        return f.read()


def timed(fn):
    t0 = time.monotonic()
    out = fn()
    return out, time.monotonic() - t0


def console_backlog():
    """Connects as a console client; returns the first serial bytes it receives after the ok line."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(os.path.join(L.run_dir, "control.sock"))
        s.sendall(b'{"cmd":"console"}\n')
        data = b""
        while b"\n" not in data:
            data += s.recv(4096)
        line, _, rest = data.partition(b"\n")
        check(json.loads(line).get("ok") is True, f"console request accepted: {line!r}", L)
        while len(rest) < 64:
            rest += s.recv(4096)
        return rest


# The snapshot request runs in the background; it must still be unanswered after the probes.
snap = subprocess.Popen([LAUNCHER, "ctl", "--run-dir", L.run_dir, "snapshot-save", '{"tag":"s1"}'],
                        stdout=subprocess.PIPE, text=True)
L.wait(lambda: "snapshot-save s1 started" in log_text(), 10, "the snapshot to start")
L.wait(lambda: "qemu: JOB_STATUS_CHANGE running" in log_text() or snap.poll() is not None, 10,
       "the snapshot job to run")
time.sleep(0.3)
if snap.poll() is not None:
    print(f"SKIP: the snapshot finished before it could be probed on this host ({snap.stdout.read().strip()})")
    sys.exit(SKIP)

(rc, reply), took = timed(lambda: L.ctl("status"))
check(rc == 0 and reply["status"]["phase"] == "Running", f"ctl status during the snapshot: {rc}", L)
check(took < ANSWER_S, f"control socket answered during the snapshot in {took:.2f} s", L)

backlog, took = timed(console_backlog)
check(b"Linux version" in backlog or b"CNT " in backlog, f"console output during the snapshot: {backlog[:40]!r}", L)
check(took < ANSWER_S, f"console client served during the snapshot in {took:.2f} s", L)

t0 = time.monotonic()
L.proc.send_signal(signal.SIGTERM)
L.wait(lambda: "received SIGTERM" in log_text(), ANSWER_S, "the launcher to take SIGTERM")
check(time.monotonic() - t0 < ANSWER_S, f"SIGTERM taken during the snapshot in {time.monotonic() - t0:.2f} s", L)
# Anything already queued behind the snapshot (system_powerdown, quit) waits for QEMU; the launcher did not.
check(snap.poll() is None, "all of this happened while the snapshot-save request was still open", L)

out, _ = snap.communicate(timeout=120)
answer = json.loads(out) if out.strip() else {}
check("ok" in answer, f"the snapshot-save client got its answer: {answer}", L)
rc = L.wait_exit(60)
check(rc == 0 and L.status()["phase"] == "Succeeded", f"launcher stopped: rc {rc}, {L.status().get('reason')}", L)
print("launcher snapshot loop: ok")
