#!/usr/bin/env python3
"""Launcher-to-launcher live migration (issue 6): launcher A runs the test guest (counter on the console,
DISKCNT written to its local PVC disk), launcher B is started with --incoming defer on the same VMI.
First a cancelled migration to a target C (A keeps running, C fails cleanly), then B migration-target
(unix socket + NBD for the local disk) → A migrate → A ends Succeeded/"Migrated" → B finishes by
itself (Running; migration-target-finish then answers at once) → the counter continuing, the disk
content there. Both status files carry KubeVirt's migrationState."""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.environ.get("KV_SOURCE_ROOT", "."), "launcher", "supervisor", "tests"))
from launcherlib import LAUNCHER, Launcher, check, counters, free_port, need_guest, vmi  # noqa: E402

need_guest()
r = subprocess.run([LAUNCHER, "--vmi", "/dev/null", "--incoming", "ftp:x"], capture_output=True, text=True)
check(r.returncode == 2 and "--incoming must be" in r.stderr, f"bad --incoming: exit {r.returncode}")
for bad, why in ((["--incoming", "tcp:127.0.0.1:1", "--incoming-nbd", "127.0.0.1"], "--incoming-nbd must be"),
                 (["--incoming", "tcp:127.0.0.1:1", "--incoming-nbd", "127.0.0.1:65536"], "--incoming-nbd must be"),
                 (["--incoming", "tcp:127.0.0.1:1", "--incoming-nbd", "a,b:1"], "--incoming-nbd must be"),
                 (["--incoming", "defer", "--incoming-nbd", "127.0.0.1:1"], "--incoming-nbd needs"),
                 (["--incoming-nbd", "127.0.0.1:1"], "--incoming-nbd needs")):
    r = subprocess.run([LAUNCHER, "--vmi", "/dev/null", *bad], capture_output=True, text=True)
    check(r.returncode == 2 and why in r.stderr, f"{bad}: exit {r.returncode}, {r.stderr.strip()!r}")
DISK_MIB = 16
PATTERN = b"KVLITE-MIGRATION-PATTERN"
PATTERN_OFF = 64 * 512


def pvc_root(tag, content):
    d = f"/tmp/kv-lt-mig-{os.getpid()}-{tag}"
    os.makedirs(os.path.join(d, "data"), exist_ok=True)
    with open(os.path.join(d, "data", "disk.img"), "wb") as f:
        f.truncate(DISK_MIB << 20)
        if content:
            f.seek(PATTERN_OFF)
            f.write(content)
    return d


def sector0(root):
    with open(os.path.join(root, "data", "disk.img"), "rb") as f:
        m = re.match(rb"DISKCNT (\d+)", f.read(512))
    return int(m.group(1)) if m else -1


m = vmi("mig", "diskw=vda", grace=5,
        disks=[{"name": "data", "disk": {"bus": "virtio"}}],
        volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}])
roots = [pvc_root("a", PATTERN), pvc_root("b", None), pvc_root("c", None)]
try:
    A = Launcher(m, args=["--pvc-root", roots[0]])
    csock = os.path.join(roots[2], "mig.sock")
    C = Launcher(m, args=["--pvc-root", roots[2], "--incoming", "unix:" + csock])
    A.wait_phase("Running")
    A.wait_serial_re(r"DISKCNT|CNT 2 ", 40)
    C.wait(lambda: C.status().get("phase") == "Scheduled" and C.status().get("qemuStatus") == "inmigrate", 30,
           "target C waiting")
    check(C.condition("Ready")["status"] == "False" and C.condition("Ready")["reason"] == "MigrationTarget",
          "target: phase Scheduled, not Ready (MigrationTarget)", C)

    # --- a cancelled migration: the source keeps running, the target fails cleanly ---
    cms = C.status().get("migrationState", {})
    check(cms.get("targetNodeAddress") == "unix:" + csock and cms.get("startTimestamp"),
          f"--incoming URI listens at once: C's migrationState {cms}", C)
    rc, reply = C.ctl("migration-target", f'{{"uri":"unix:{C.dir}/other.sock"}}')
    check(rc == 1 and "already" in reply["error"], f"a second migration-target refused: {reply}", C)
    rc, reply = A.ctl("migrate", f'{{"uri":"unix:{csock}","config":{{"bandwidthPerMigration":1048576}}}}')
    check(rc == 0 and reply["ok"], f"A migrate (1 MiB/s, cannot finish soon): {reply}", A)
    A.wait(lambda: A.status().get("migrationState", {}).get("startTimestamp"), 5, "migrationState in A's status")
    rc, reply = A.ctl("migrate-cancel")
    check(rc == 0, f"A migrate-cancel: {reply}", A)
    A.wait(lambda: A.status().get("migrationState", {}).get("endTimestamp"), 10, "cancelled migration ended")
    ms = A.status()["migrationState"]
    check(ms["failed"] and not ms["completed"] and ms["abortRequested"] and ms["abortStatus"] == "Succeeded",
          f"A's status file: migrationState of the cancelled migration {ms}", A)
    check(A.status()["phase"] == "Running" and A.qmp("query-status")["return"]["status"] == "running",
          "A still Running after the cancel", A)
    rc = C.wait_exit(20)
    cs = C.status()
    check(rc != 0 and cs["phase"] == "Failed" and cs["migrationState"]["startTimestamp"],
          f"target C exited {rc}, phase {cs['phase']}: {cs['reason']}", C)

    # --- the real one, with the local disk mirrored over NBD ---
    B = Launcher(m, args=["--pvc-root", roots[1], "--migration-target"])
    B.wait(lambda: B.status().get("qemuStatus") == "inmigrate", 30, "target B waiting")
    port = free_port()
    rc, reply = B.ctl("migration-target", f'{{"uri":"unix:{B.dir}/mig.sock","nbdPort":{port}}}')
    check(rc == 0 and reply["ok"], f"B migration-target with NBD on {port}: {reply}", B)
    a_count = counters(A.serial())[-1]
    rc, reply = A.ctl("migrate", f'{{"uri":"unix:{B.dir}/mig.sock","nbdPort":{port}}}')
    check(rc == 0 and reply["ok"], f"A migrate: {reply}", A)
    rc = A.wait_exit(30)
    st = A.status()
    ready = [c for c in st.get("conditions", []) if c["type"] == "Ready"]
    check(rc == 0 and st.get("phase") == "Succeeded" and st.get("reason") == "Migrated" and
          ready and ready[0]["message"] == "Migrated",
          f"A exited {rc}: phase {st.get('phase')}, reason {st.get('reason')!r}, Ready {ready}", A)
    ms = st["migrationState"]
    check(ms["completed"] and not ms["failed"] and ms["mode"] == "PreCopy" and ms["endTimestamp"] and
          ms["sourceNode"] and ms["targetNodeAddress"].startswith("unix:"), f"A's migrationState {ms}", A)
    last_a = counters(A.serial())[-1]
    disk_a = sector0(roots[0])
    B.wait_phase("Running", 10)  # by itself, on QEMU's MIGRATION completed event
    rc, reply = B.ctl("migration-target-finish")
    check(rc == 0 and reply["ok"] and reply["migrationState"]["completed"],
          f"B migration-target-finish answers at once once finished: {reply}", B)
    check(B.condition("Ready")["status"] == "True" and B.status()["migrationState"]["completed"],
          "B Running, Ready, migrationState completed", B)
    B.wait(lambda: len(counters(B.serial())) >= 3, 20, "counter on B's console")
    first_b = counters(B.serial())[0]
    downtime = ms["kvliteProgress"]["downtimeMs"]
    check(last_a < first_b <= last_a + 2 + downtime // 500,
          f"counter continues: A last {last_a} (at migrate {a_count}), B first {first_b}, downtime {downtime} ms", B)
    with open(os.path.join(roots[1], "data", "disk.img"), "rb") as f:
        f.seek(PATTERN_OFF)
        check(f.read(len(PATTERN)) == PATTERN, "the local disk's content reached B (mirror over NBD)", B)
    B.wait(lambda: sector0(roots[1]) > disk_a, 10, "B's guest writing DISKCNT past A's")
    check(True, f"DISKCNT continues on B's disk: A's last {disk_a}, B now {sector0(roots[1])}")
    B.ctl("shutdown")
    check(B.wait_exit(20) == 0, "B powers off cleanly", B)
finally:
    import shutil
    for r in roots:
        shutil.rmtree(r, ignore_errors=True)
print("launcher migration: ok")
