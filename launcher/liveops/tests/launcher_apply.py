#!/usr/bin/env python3
"""VMI reload through virt-launcher (`ctl apply FILE`): the launcher diffs the running spec against the new
one and hot-plugs the difference. A PVC disk added → the guest sees vdb and status.volumeStatus says Ready;
removed → gone (and its volumeStatus entry too) while CPU sockets go 1 → 2 → the guest onlines a second
CPU; an in-place change is refused with its JSON path, the VM still running. A claim outside the PVC root
(a cluster's hot-plugged claim) is refused until its image comes over the control socket as virt-handler
sends it (`hotplug-attach` + SCM_RIGHTS): then QEMU opens it from its fd set. A backup of the running VM
(snapshot-save with an id) copies that disk too, into the directory virt-handler handed over with it."""
import copy
import json
import os
import shutil
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("KV_SOURCE_ROOT", "."), "launcher", "supervisor", "tests"))
from launcherlib import Launcher, check, hotplug_attach, need_guest, vmi  # noqa: E402

need_guest()
root = f"/tmp/kv-lt-apply-{os.getpid()}"
outside = root + "-late"  # not under --pvc-root: only its open descriptor reaches the launcher
for d in (os.path.join(root, "data"), os.path.join(root, "extra"), outside):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "disk.img"), "wb") as f:
        f.write(b"LATE-MARK " + d.encode())
        f.truncate(16 << 20)
m = vmi("apply", grace=5, disks=[{"name": "data", "disk": {"bus": "virtio"}}],
        volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}])
m["spec"]["domain"]["cpu"] = {"sockets": 1, "cores": 1, "threads": 1, "maxSockets": 2}
try:
    L = Launcher(m, args=["--pvc-root", root])
    L.wait_phase("Running")
    L.wait_serial_re(r"CNT \d+ cpus=0 memKB=\d+ blk=vda ", 40)

    def apply(spec, name):
        path = os.path.join(L.dir, name + ".json")
        with open(path, "w") as f:
            json.dump(spec, f)
        return L.ctl("apply", path)

    plus = copy.deepcopy(m)
    plus["spec"]["domain"]["devices"]["disks"].append({"name": "extra", "disk": {"bus": "virtio"}})
    plus["spec"]["volumes"].append({"name": "extra", "persistentVolumeClaim": {"claimName": "extra", "hotpluggable": True}})
    rc, reply = apply(plus, "plus")
    check(rc == 0 and [o["op"] for o in reply["operations"]] == ["hotplug-disk"], f"apply +disk: {reply}", L)
    L.wait_serial_re(r"CNT \d+ cpus=0 memKB=\d+ blk=vda,vdb ", 20)
    vs = L.status().get("volumeStatus", [])
    check([(v["name"], v["phase"]) for v in vs] == [("extra", "Ready")] and "hotplugVolume" in vs[0],
          f"status.volumeStatus {vs}", L)
    rc, reply = apply(plus, "same")
    check(rc == 0 and reply["operations"] == [], f"apply of the same spec is a no-op: {reply}", L)

    def attach(volume, path):
        return hotplug_attach(L.run_dir, volume, path)

    late = copy.deepcopy(plus)
    late["spec"]["domain"]["devices"]["disks"].append({"name": "late", "disk": {"bus": "virtio"}})
    late["spec"]["volumes"].append({"name": "late", "persistentVolumeClaim": {"claimName": "late", "hotpluggable": True}})
    rc, reply = apply(late, "late")
    check(rc == 1 and 'claim "late" is not available' in reply["error"], f"unattached claim refused: {reply}", L)
    with socket.socket(socket.AF_UNIX) as c:  # no descriptor: refused
        c.connect(os.path.join(L.run_dir, "control.sock"))
        c.sendall(b'{"cmd":"hotplug-attach","args":{"volume":"late"}}\n')
        reply = json.loads(c.makefile("rb").readline())
    check(not reply["ok"] and "SCM_RIGHTS" in reply["error"], f"attach without an fd: {reply}", L)
    reply = attach("late", os.path.join(outside, "disk.img"))
    check(reply["ok"] and isinstance(reply["fdset"], int), f"hotplug-attach: {reply}", L)
    check(("late", "AttachedToNode") in [(v["name"], v["phase"]) for v in L.status().get("volumeStatus", [])],
          f"AttachedToNode: {L.status().get('volumeStatus')}", L)
    check(attach("late", os.path.join(outside, "disk.img")).get("already"), "a second attach is a no-op", L)
    rc, reply = apply(late, "late2")
    check(rc == 0 and [o["op"] for o in reply["operations"]] == ["hotplug-disk"], f"apply +late: {reply}", L)
    L.wait_serial_re(r"CNT \d+ cpus=0 memKB=\d+ blk=vda,vdb,vdc ", 20)
    check(("late", "Ready") in [(v["name"], v["phase"]) for v in L.status().get("volumeStatus", [])],
          f"late Ready: {L.status().get('volumeStatus')}", L)

    # a backup of the running VM's raw disks reaches the hot-plugged one: its target is made in the directory
    # virt-handler handed over, QEMU writes it through an fd set of its own, which goes when the save ends
    sets = len(L.qmp("query-fdsets")["return"])
    rc, reply = L.ctl("snapshot-save", json.dumps({"tag": "bk1", "id": "bk1"}))
    op = reply.get("snapshotOperation") or {}
    check(rc == 0 and op.get("phase") == "Succeeded" and op.get("backups") == 3, f"backup with a hot-plugged disk: "
          f"{reply}", L)
    copies = [os.path.join(d, "disk.img.vmsnapshot-bk1") for d in (outside, os.path.join(root, "data"))]
    with open(copies[0], "rb") as f, open(os.path.join(outside, "disk.img"), "rb") as img:
        check(f.read() == img.read(), "the hot-plugged disk's copy next to its image, identical", L)
    check(os.path.exists(copies[1]), "the mounted claim's copy too", L)
    for _ in range(50):
        if len(L.qmp("query-fdsets")["return"]) == sets:
            break
        time.sleep(0.1)
    check(len(L.qmp("query-fdsets")["return"]) == sets, f"the target's fd set released: {L.qmp('query-fdsets')}", L)
    rc, reply = L.ctl("snapshot-delete", json.dumps({"tag": "bk1", "id": "bk1-delete"}))
    check(rc == 0 and not any(os.path.exists(c) for c in copies), f"delete removes both copies: {reply}", L)

    cpus = copy.deepcopy(m)
    cpus["spec"]["domain"]["cpu"]["sockets"] = 2
    rc, reply = apply(cpus, "cpus")
    check(rc == 0 and [o["op"] for o in reply["operations"]] == ["unplug-disk", "unplug-disk", "set-cpus"],
          f"apply -disk, sockets 2: {reply}", L)
    L.wait_serial_re(r"CNT \d+ cpus=0-1 memKB=\d+ blk=vda ", 40)
    check(L.status().get("volumeStatus", []) == [], f"volumeStatus entry gone: {L.status().get('volumeStatus')}", L)

    bad = copy.deepcopy(cpus)
    bad["spec"]["domain"]["devices"]["disks"][0]["disk"]["bus"] = "sata"
    rc, reply = apply(bad, "bad")
    check(rc == 1 and "spec.domain.devices.disks[0]" in reply["error"], f"in-place change refused: {reply}", L)
    check(L.status()["phase"] == "Running", "VM still Running", L)
    L.ctl("shutdown")
    check(L.wait_exit(20) == 0, "powers off cleanly", L)
finally:
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(outside, ignore_errors=True)
print("launcher apply: ok")
