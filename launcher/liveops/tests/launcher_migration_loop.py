#!/usr/bin/env python3
"""The launcher's loop keeps serving while a migration starts (docs/launcher-supervisor.md "Loop"): the source
has a 1 GiB local disk full of data, mirrored to the target's NBD export before `migrate` is sent (the mirror
must be READY first, which takes seconds). While the migrate request is still unanswered, `status` is
answered within 1 s, another live operation is refused with "a migration is starting", and a SIGTERM starts
the stop within 1 s. The migrate client gets its answer in the end and the launcher stops."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("KV_SOURCE_ROOT", "."), "launcher", "supervisor", "tests"))
from launcherlib import LAUNCHER, SKIP, Launcher, check, free_port, need_guest, vmi  # noqa: E402

ANSWER_S = 1.0
DISK_MIB = 1024


def pvc_root(tag, fill):
    d = f"/tmp/kv-lt-migloop-{os.getpid()}-{tag}"
    os.makedirs(os.path.join(d, "data"), exist_ok=True)
    with open(os.path.join(d, "data", "disk.img"), "wb") as f:
        if fill:  # not zeroes: the mirror skips those
            chunk = bytes(range(1, 256)) * (4096 // 255 + 1)
            chunk = chunk[:4096] * 256
            for _ in range(DISK_MIB):
                f.write(chunk)
        else:
            f.truncate(DISK_MIB << 20)
    return d


def timed(fn):
    t0 = time.monotonic()
    out = fn()
    return out, time.monotonic() - t0


def log_text(launcher):
    launcher.log.flush()
    with open(launcher.log_path, errors="replace") as f:
        return f.read()


need_guest()
m = vmi("migloop", grace=5, disks=[{"name": "data", "disk": {"bus": "virtio"}}],
        volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}])
roots = [pvc_root("a", True), pvc_root("b", False)]
try:
    A = Launcher(m, args=["--pvc-root", roots[0]])
    B = Launcher(m, args=["--pvc-root", roots[1], "--migration-target"])
    A.wait_phase("Running")
    B.wait(lambda: B.status().get("qemuStatus") == "inmigrate", 30, "target B waiting")
    port = free_port()
    rc, reply = B.ctl("migration-target", f'{{"uri":"unix:{B.dir}/mig.sock","nbdPort":{port}}}')
    check(rc == 0 and reply["ok"], f"B migration-target with NBD on {port}: {reply}", B)

    mig = subprocess.Popen([LAUNCHER, "ctl", "--run-dir", A.run_dir, "migrate",
                            f'{{"uri":"unix:{B.dir}/mig.sock","nbdPort":{port}}}'], stdout=subprocess.PIPE, text=True)
    A.wait(lambda: "migration to unix:" in log_text(A), 10, "the migration to start")
    time.sleep(0.2)
    if mig.poll() is not None:
        print(f"SKIP: the disk mirror was ready before it could be probed on this host ({mig.stdout.read().strip()})")
        sys.exit(SKIP)

    (rc, reply), took = timed(lambda: A.ctl("status"))
    check(rc == 0 and reply["status"]["phase"] == "Running", f"ctl status while the migration starts: {rc}", A)
    check(took < ANSWER_S, f"control socket answered while the disk mirror copies in {took:.2f} s", A)
    (rc, reply), took = timed(lambda: A.ctl("set-cpus", '{"sockets":1}'))
    check(rc != 0 and "a migration is starting" in reply.get("error", ""),
          f"another live operation refused in {took:.2f} s: {reply}", A)
    rc, reply = A.ctl("migrate-cancel")
    check(rc != 0 and "still starting" in reply.get("error", ""), f"migrate-cancel while starting: {reply}", A)

    t0 = time.monotonic()
    A.proc.send_signal(signal.SIGTERM)
    A.wait(lambda: "received SIGTERM" in log_text(A), ANSWER_S, "the launcher to take SIGTERM")
    check(time.monotonic() - t0 < ANSWER_S, f"SIGTERM taken while the migration starts in {time.monotonic() - t0:.2f} s", A)
    check(mig.poll() is None, "all of this happened while the migrate request was still open", A)

    out, _ = mig.communicate(timeout=120)
    answer = json.loads(out) if out.strip() else {}
    check("ok" in answer, f"the migrate client got its answer: {answer}", A)
    rc = A.wait_exit(60)
    check(rc == 0 and A.status()["phase"] == "Succeeded", f"launcher stopped: rc {rc}, {A.status().get('reason')}", A)
    B.proc.send_signal(signal.SIGTERM)
    B.wait_exit(30)
finally:
    for r in roots:
        shutil.rmtree(r, ignore_errors=True)
print("launcher migration loop: ok")
