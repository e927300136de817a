#!/usr/bin/env python3
"""VMI reload through virt-launcher (`ctl apply FILE`): the launcher diffs the running spec against the new
one and hot-plugs the difference. A PVC disk added → the guest sees vdb and status.volumeStatus says Ready;
removed → gone (and its volumeStatus entry too) while CPU sockets go 1 → 2 → the guest onlines a second
CPU; an in-place change is refused with its JSON path, the VM still running."""
import copy
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.join(os.environ.get("KV_SOURCE_ROOT", "."), "launcher", "supervisor", "tests"))
from launcherlib import Launcher, check, need_guest, vmi  # noqa: E402

need_guest()
root = f"/tmp/kv-lt-apply-{os.getpid()}"
for claim in ("data", "extra"):
    os.makedirs(os.path.join(root, claim), exist_ok=True)
    with open(os.path.join(root, claim, "disk.img"), "wb") as f:
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

    cpus = copy.deepcopy(m)
    cpus["spec"]["domain"]["cpu"]["sockets"] = 2
    rc, reply = apply(cpus, "cpus")
    check(rc == 0 and [o["op"] for o in reply["operations"]] == ["unplug-disk", "set-cpus"],
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
print("launcher apply: ok")
