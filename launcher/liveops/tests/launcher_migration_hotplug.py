#!/usr/bin/env python3
"""Launcher-to-launcher live migration of a VM with hot-plugged claims (docs/hotplug-volumes.md, "Live
migration"): source S gets two claims as virt-handler hands them over (`hotplug-attach` + SCM_RIGHTS, no PVC
root holding them) and `apply` plugs them (a SCSI disk, with the controller a hot-plug adds, and a virtio one);
its guest writes a marker to each. Target T, started with `--incoming URI --incoming-nbd` on the spec with both
claims, leaves them out of its QEMU command line and waits: no migrationState, migration-target refused naming
the claim, still waiting with one of the two attached; with both it plugs them (Ready) and listens. S migrates
with its NBD mirror → the claims are neither exported nor mirrored (the same images on both ends) → T Running,
its guest reading both markers back after dropping its page cache."""
import copy
import json
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("KV_SOURCE_ROOT", "."), "launcher", "supervisor", "tests"))
from launcherlib import Launcher, check, free_port, hotplug_attach, need_guest, vmi  # noqa: E402

need_guest()
tmp = f"/tmp/kv-lt-hpmig-{os.getpid()}"
claims = {"data": os.path.join(tmp, "data", "disk.img"), "fast": os.path.join(tmp, "fast", "disk.img")}
for path in claims.values():
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.truncate(16 << 20)
os.makedirs(os.path.join(tmp, "pvc"), exist_ok=True)  # the target's PVC root: the claims are not there
base = vmi("hpm", "shell=1", grace=5)
full = copy.deepcopy(base)
full["spec"]["domain"]["devices"]["disks"] += [{"name": "data", "disk": {"bus": "scsi"}},
                                                {"name": "fast", "disk": {"bus": "virtio"}}]
full["spec"]["volumes"] += [{"name": v, "persistentVolumeClaim": {"claimName": v, "hotpluggable": True}}
                            for v in claims]
MARKS = {"data": ("sda", f"HPMIG-DATA-{os.getpid()}"), "fast": ("vda", f"HPMIG-FAST-{os.getpid()}")}


def attach(launcher, volume):
    """virt-handler's hand-over of the claim's image."""
    reply = hotplug_attach(launcher.run_dir, volume, claims[volume])
    check(reply.get("ok"), f"hotplug-attach {volume}: {reply}", launcher)


def sector_line(path, sector):
    with open(path, "rb") as f:
        f.seek(sector * 512)
        return f.read(64).split(b"\n")[0].decode(errors="replace")


def ready_volumes(launcher):
    return sorted((v["name"], v["phase"]) for v in launcher.status().get("volumeStatus", []) if "hotplugVolume" in v)


try:
    S = Launcher(base)
    S.wait_phase("Running")
    S.wait_serial_re(r"CNT \d+ cpus=\S+ memKB=\d+ blk= ", 40)
    for v in claims:
        attach(S, v)
    spec_path = os.path.join(S.dir, "full.json")
    with open(spec_path, "w") as f:
        json.dump(full, f)
    rc, reply = S.ctl("apply", spec_path)
    check(rc == 0 and [o["op"] for o in reply["operations"]] == ["hotplug-disk", "hotplug-disk"],
          f"S: apply plugs both claims from their fd sets: {reply}", S)
    S.wait_serial_re(r"CNT \d+ cpus=\S+ memKB=\d+ blk=vda,sda ", 30)
    ask = S.guest_shell()
    for volume, (dev, mark) in MARKS.items():
        write = f"echo {mark} | dd of=/dev/{dev} bs=512 seek=8 conv=sync,fsync 2>/dev/null && echo done"
        check(ask("W" + dev, write) == "done", f"S's guest wrote {mark} to {dev}", S)
        check(sector_line(claims[volume], 8) == mark, f"... into claim {volume}'s image", S)
    ask.close()

    sock = os.path.join(tmp, "mig.sock")
    nbd = free_port()
    T = Launcher(full, args=["--pvc-root", os.path.join(tmp, "pvc"), "--incoming", "unix:" + sock,
                             "--incoming-nbd", f"127.0.0.1:{nbd}"])
    T.wait(lambda: T.status().get("phase") == "Scheduled" and T.status().get("qemuStatus") == "inmigrate", 30,
           "target T waiting")
    argv = [line for line in open(T.log_path, errors="replace") if "qemu argv" in line]
    check(argv and "scsi" not in argv[0] and "ua-fast" not in argv[0],
          "T's QEMU command line leaves the hot-plugged claims out", T)
    rc, reply = T.ctl("migration-target", json.dumps({"uri": f"unix:{tmp}/other.sock"}))
    check(rc == 1 and "hot-plugged volume data is not plugged" in reply.get("error", ""),
          f"migration-target refused while a claim is missing: {reply}", T)
    attach(T, "data")
    time.sleep(1)
    check(not T.status().get("migrationState") and not os.path.exists(sock),
          "T does not listen with one of its two claims attached", T)
    attach(T, "fast")
    T.wait(lambda: T.status().get("migrationState", {}).get("targetNodeAddress") == "unix:" + sock, 20,
           "T listening once both claims are plugged")
    check(ready_volumes(T) == [("data", "Ready"), ("fast", "Ready")], f"T's volumeStatus: {ready_volumes(T)}", T)
    peripherals = {p["name"] for p in T.qmp("qom-list", {"path": "/machine/peripheral"})["return"]}
    check({"scsi0", "ua-data", "ua-fast"} <= peripherals, "T's QEMU has the SCSI controller and both disks", T)
    exports = [e["node-name"] for e in T.qmp("query-block-exports")["return"]]
    check(not [e for e in exports if e.startswith("hp-")], f"T exports no claim over NBD (shared): {exports}", T)

    rc, reply = S.ctl("migrate", json.dumps({"uri": "unix:" + sock, "nbdHost": "127.0.0.1", "nbdPort": nbd}))
    check(rc == 0 and reply["ok"], f"S migrate (with its NBD mirror of local disks): {reply}", S)
    rc = S.wait_exit(60)
    st = S.status()
    check(rc == 0 and st.get("phase") == "Succeeded" and st.get("reason") == "Migrated",
          f"S exited {rc}: {st.get('phase')} {st.get('reason')!r}", S)
    T.wait_phase("Running", 20)
    check(ready_volumes(T) == [("data", "Ready"), ("fast", "Ready")], "T Running, both claims Ready", T)
    ask = T.guest_shell()
    for volume, (dev, mark) in MARKS.items():
        read = f"echo 3 >/proc/sys/vm/drop_caches; dd if=/dev/{dev} bs=512 skip=8 count=1 2>/dev/null | head -n 1"
        check(ask("R" + dev, read) == mark, f"T's guest reads {mark} from {dev} (claim {volume})", T)
    ask.close()
    T.ctl("shutdown")
    check(T.wait_exit(20) == 0, "T powers off cleanly", T)
finally:
    shutil.rmtree(tmp, ignore_errors=True)
print("launcher migration with hot-plugged claims: ok")
