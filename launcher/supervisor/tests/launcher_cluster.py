#!/usr/bin/env python3
"""The launcher side of docs/cluster-live-ops.md against the Kubernetes API test server (HTTPS, service
account), with real launchers on the real test guest under TCG. Launcher A (Pod lc-src) runs the VMI;
a write of the VMI's status.migrationState through the API makes A's reporter send `migrate`, A moves the
guest to launcher B (Pod lc-dst, started like a target Pod with --incoming tcp:... --incoming-nbd ...,
on free loopback ports) and ends Succeeded/Migrated; B finishes by itself, the guest's counter continues
there, the local disk's content reached B's NBD export, and B's Pod annotation says Running. Then a spec change made with the real kubectl
(CPU sockets 1 → 2) reaches B through its reporter's watch as `apply`, and the guest onlines the second CPU.
usage: launcher_cluster.py VIRT_LAUNCHER"""
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clusterlib import VMI_PATH, Cluster, log_of, wait_for  # noqa: E402
from launcherlib import Launcher, check, cleanup, counters, free_port, need_guest, vmi  # noqa: E402

PATTERN, PATTERN_OFF = b"KVLITE-CLUSTER-MIGRATION", 64 * 512
roots = []
need_guest()
cl = Cluster()
try:
    cl.start()
    mig_port, nbd_port = free_port(), free_port()

    def pod_env(pod):
        return cl.pod_env(pod, KVLITE_MIGRATION_PORTS=f"{mig_port},{nbd_port}")

    roots = [tempfile.mkdtemp(prefix="kv-lt-cluster-pvc-") for _ in range(2)]
    for i, root in enumerate(roots):  # the local disk: A's has a pattern, B's must receive it over NBD
        os.makedirs(os.path.join(root, "data"))
        with open(os.path.join(root, "data", "disk.img"), "wb") as f:
            f.truncate(16 << 20)
            if i == 0:
                f.seek(PATTERN_OFF)
                f.write(PATTERN)
    m = vmi("lc", grace=5, disks=[{"name": "data", "disk": {"bus": "virtio"}}],
            volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}])
    m["metadata"] = {"name": "lc", "namespace": "default"}
    m["spec"]["domain"]["cpu"] = {"sockets": 1, "cores": 1, "threads": 1, "maxSockets": 2}
    created = cl.srv.api.create(VMI_PATH % "default", m)
    for pod in ("lc-src", "lc-dst"):
        cl.create_pod(pod)

    A = Launcher(created, via_env=True, env_extra=pod_env("lc-src"), args=["--pvc-root", roots[0]])
    A.wait_phase("Running")
    A.wait_serial_re(r"CNT 2 cpus=0 memKB=\d+ blk=vda ", 40)
    wait_for("A's status on its Pod", lambda: cl.annotation("lc-src").get("phase") == "Running", timeout=15)
    A.wait(lambda: "watching VMI default/lc" in log_of(A) and "connected to the launcher's control socket" in
           log_of(A), 10, "A's reporter watching the VMI, connected to the control socket")
    A.wait(lambda: "launcher: apply done" in log_of(A), 10, "the first spec forwarded to A (a no-op)")

    # --- the target Pod: the VMI as it is now, --incoming + --incoming-nbd ---
    now = cl.srv.api.get(VMI_PATH % "default" + "/lc")[1]
    B = Launcher(now, via_env=True, env_extra=pod_env("lc-dst"),
                 args=["--pvc-root", roots[1], "--incoming", f"tcp:127.0.0.1:{mig_port}", "--incoming-nbd", f"127.0.0.1:{nbd_port}"])
    B.wait(lambda: B.status().get("phase") == "Scheduled" and
           B.status().get("migrationState", {}).get("targetNodeAddress"), 30, "target B ready (Scheduled)")
    wait_for("B's TargetReady on its Pod", lambda: cl.annotation("lc-dst").get("migrationState", {}).get(
        "targetNodeAddress"), timeout=15)

    # --- the controller's part, by hand: status.migrationState on the VMI ---
    a_count = counters(A.serial())[-1]
    cl.srv.api.merge(VMI_PATH % "default" + "/lc", {"status": {"migrationState": {
        "migrationUid": "vmim-uid-1", "sourcePod": "lc-src", "targetPod": "lc-dst", "targetNode": "node1",
        "targetNodeAddress": "127.0.0.1", "startTimestamp": "2025-01-01T00:00:00Z", "mode": "PreCopy"}}})
    rc = A.wait_exit(60)
    st = A.status()
    check(rc == 0 and st.get("phase") == "Succeeded" and st.get("reason") == "Migrated",
          f"source A exited {rc}: phase {st.get('phase')}, reason {st.get('reason')!r}", A)
    ms = st["migrationState"]
    check(ms.get("migrationUid") == "vmim-uid-1" and ms["completed"] and
          ms["targetNodeAddress"] == f"tcp:127.0.0.1:{mig_port}", f"A's migrationState {ms}", A)
    check("forwarding migrate of migration vmim-uid-1" in log_of(A), "A's reporter forwarded migrate", A)
    wait_for("A's Pod annotation: Succeeded/Migrated", lambda: cl.annotation("lc-src").get("reason") == "Migrated",
             timeout=10)
    B.wait_phase("Running", 20)  # by itself: nobody sends migration-target-finish
    check(B.status()["migrationState"]["completed"] and B.condition("Ready")["status"] == "True",
          "target B Running, Ready, migrationState completed", B)
    B.wait(lambda: len(counters(B.serial())) >= 2, 20, "counter on B's console")
    last_a, first_b = counters(A.serial())[-1], counters(B.serial())[0]
    check(a_count <= last_a < first_b <= last_a + 2 + ms["kvliteProgress"]["downtimeMs"] // 500,
          f"the counter continues on B: A last {last_a}, B first {first_b}", B)
    with open(os.path.join(roots[1], "data", "disk.img"), "rb") as f:
        f.seek(PATTERN_OFF)
        check(f.read(len(PATTERN)) == PATTERN, "the local disk reached B over --incoming-nbd", B)
    wait_for("B's Pod annotation: Running, migration completed", lambda: (
        lambda a: a.get("phase") == "Running" and a.get("migrationState", {}).get("completed"))(
        cl.annotation("lc-dst")), timeout=15)
    rc, reply = B.ctl("migration-target-finish")
    check(rc == 0 and reply["ok"], f"migration-target-finish answers at once when finished: {reply}", B)
    check("forwarding migrate" not in log_of(B), "B's reporter does not migrate (not the sourcePod)", B)

    # --- a spec change through the API reaches B, the guest's new launcher ---
    B.wait(lambda: "launcher: apply done" in log_of(B), 10, "B's reporter forwarded the spec (a no-op)")
    cl.kubectl("patch", "vmi", "lc", "--type=merge", "-p", '{"spec":{"domain":{"cpu":{"sockets":2}}}}')
    B.wait_serial_re(r"CNT \d+ cpus=0-1 ", 40)
    check(log_of(B).count("launcher: apply done") >= 2, "the change arrived as apply", B)
    B.ctl("shutdown")
    check(B.wait_exit(30) == 0, "B powers off cleanly", B)
    wait_for("B's final status on its Pod", lambda: cl.annotation("lc-dst").get("phase") == "Succeeded",
             timeout=10)
    print("launcher cluster live ops: ok")
    cl.srv.remove()
finally:
    cleanup()
    cl.stop()
    for root in roots:
        shutil.rmtree(root, ignore_errors=True)
