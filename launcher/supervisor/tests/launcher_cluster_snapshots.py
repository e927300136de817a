#!/usr/bin/env python3
"""The launcher side of docs/cluster-snapshots.md against the Kubernetes API test server (HTTPS, service
account), with a real launcher on the real test guest under TCG and the real kubectl. The VMI has an
emptyDisk (a writable qcow2, where internal snapshots live). `kubectl annotate` of kvlite.io/snapshot-requests
makes the reporter forward snapshot-save: the launcher's status (file and Pod annotation) shows the operation
Succeeded and the tag in `snapshots`; a `load` entry added later (the save's id is not run again) brings the
guest's counter back (the first counter after the load is the saved one + 1); a malformed entry is skipped
with a log line; `delete` removes the tag; a bad `id` on the control socket is refused.
usage: launcher_cluster_snapshots.py VIRT_LAUNCHER"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clusterlib import VMI_PATH, Cluster, log_of, wait_for  # noqa: E402
from launcherlib import Launcher, check, cleanup, counters, need_guest, vmi  # noqa: E402

REQS = "kvlite.io/snapshot-requests"
SAVE = {"id": "snap-uid-1", "op": "save", "tag": "snap-uid-1"}
LOAD = {"id": "restore-uid-1", "op": "load", "tag": "snap-uid-1"}
DELETE = {"id": "snap-uid-1-delete", "op": "delete", "tag": "snap-uid-1"}
need_guest()
cl = Cluster()


def request(L, *entries):
    cl.kubectl("annotate", "--overwrite", "vmi", "ls", f"{REQS}={json.dumps(list(entries))}")


def operation(L, op_id):
    for e in L.status().get("snapshotOperations", []):
        if e["id"] == op_id:
            return e
    return None


def wait_operation(L, op_id):
    L.wait(lambda: operation(L, op_id), 30, f"snapshot operation {op_id} in the status")
    e = operation(L, op_id)
    check(e["phase"] == "Succeeded" and e["completionTime"].endswith("Z"), f"operation {op_id}: {e}", L)
    return e


def tags(doc):
    return [s["tag"] for s in doc.get("snapshots", [])]


try:
    cl.start()
    m = vmi("ls", grace=5, disks=[{"name": "scratch", "disk": {"bus": "virtio"}}],
            volumes=[{"name": "scratch", "emptyDisk": {"capacity": "16Mi"}}])
    m["metadata"] = {"name": "ls", "namespace": "default"}
    created = cl.srv.api.create(VMI_PATH % "default", m)
    cl.create_pod("ls-pod")
    L = Launcher(created, via_env=True, env_extra=cl.pod_env("ls-pod"))
    L.wait_phase("Running")
    L.wait(lambda: "launcher: apply done" in log_of(L), 20, "the reporter connected (first spec forwarded)")
    L.wait(lambda: len(counters(L.serial())) >= 2, 30, "the guest's counter")

    rc, reply = L.ctl("snapshot-save", json.dumps({"tag": "x", "id": 7}))
    check(rc != 0 and "args.id" in reply.get("error", ""), f"a non-string id is refused: {reply}", L)
    rc, reply = L.ctl("snapshot-save", json.dumps({"tag": "x", "id": "i" * 129}))
    check(rc != 0 and "at most 128 bytes" in reply.get("error", ""), f"a 129-byte id is refused: {reply}", L)

    # --- save: the guest paused first, so the counter at save time is known ---
    L.qmp("stop")
    n_saved = counters(L.serial())[-1]
    request(L, SAVE)
    wait_operation(L, "snap-uid-1")
    st = L.status()
    snap = [s for s in st.get("snapshots", []) if s["tag"] == "snap-uid-1"]
    check(len(snap) == 1 and snap[0]["vmStateSize"] > 0 and snap[0]["creationTime"].endswith("Z"),
          f"the tag listed in snapshots: {st.get('snapshots')}", L)
    check("forwarding snapshot-save of snapshot request snap-uid-1" in log_of(L), "the reporter forwarded it", L)
    wait_for("the Pod annotation shows the save", lambda: "snap-uid-1" in tags(cl.annotation("ls-pod")),
             timeout=10)
    L.qmp("cont")
    L.wait(lambda: counters(L.serial())[-1] >= n_saved + 3, 20, "the counter moving on after the save")

    # --- load (and a malformed entry, skipped): the save's id is not run again ---
    L.qmp("stop")
    mark = len(counters(L.serial()))
    request(L, SAVE, {"id": "bad", "op": "revert", "tag": "t"}, LOAD)
    wait_operation(L, "restore-uid-1")
    check(log_of(L).count("forwarding snapshot-save") == 1, "the save was not sent again", L)
    check(f'{REQS}[1] (id \\"bad\\"): op must be save, load or delete: skipped' in log_of(L),
          "the malformed entry is skipped with a log line", L)
    L.qmp("cont")
    L.wait(lambda: len(counters(L.serial())) > mark, 20, "a counter line after the load")
    first = counters(L.serial())[mark]
    check(first == n_saved + 1, f"RAM restored: the first counter after the load is {first}, saved {n_saved}", L)

    # --- delete ---
    request(L, SAVE, LOAD, DELETE)
    wait_operation(L, "snap-uid-1-delete")
    check(tags(L.status()) == [], f"the tag is gone: {L.status().get('snapshots')}", L)
    ops = [e["id"] for e in L.status()["snapshotOperations"]]
    check(ops == ["snap-uid-1", "restore-uid-1", "snap-uid-1-delete"], f"snapshotOperations in order: {ops}", L)
    wait_for("the Pod annotation: the tag gone", lambda: (lambda a: a.get("snapshotOperations") and not tags(a))(
        cl.annotation("ls-pod")), timeout=10)
    # a repeated id answers from the record, without running again
    rc, reply = L.ctl("snapshot-save", json.dumps(SAVE))
    check(rc == 0 and reply["snapshotOperation"]["op"] == "save" and tags(L.status()) == [],
          f"a repeated id is not run again: {reply}", L)
    L.ctl("shutdown")
    check(L.wait_exit(30) == 0, "the launcher powers off cleanly", L)
    print("launcher cluster snapshots: ok")
    cl.srv.remove()
finally:
    cleanup()
    cl.stop()
