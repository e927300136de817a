#!/usr/bin/env python3
"""The live operations through virt-launcher's control socket (LIVEOPS_CTL_COMMANDS): hot-plug of a disk
and a vCPU seen in the guest, a snapshot on the hot-plugged qcow2, a failed migration leaving the VM
Running with a KubeVirt-shaped migrationState, unplug, all with the launcher's sandbox on."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.environ.get("KV_SOURCE_ROOT", "."), "launcher", "supervisor", "tests"))
from launcherlib import Launcher, check, need_guest, vmi  # noqa: E402

need_guest()
m = vmi("liveops", grace=5)
m["spec"]["domain"]["cpu"] = {"sockets": 1, "cores": 1, "threads": 1, "maxSockets": 2}
L = Launcher(m)
L.wait_phase("Running")
L.wait_serial("KVGUEST READY")

rc, reply = L.ctl("help")
check(rc == 0 and {"hotplug-disk", "snapshot-save", "migrate", "migrate-status"} <=
      {c["cmd"] for c in reply["commands"]}, "help lists the live operations", L)

img = os.path.join(L.dir, "d1.qcow2")
subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", img, "16M"], check=True)
rc, reply = L.ctl("hotplug-disk", f'{{"name":"d1","path":"{img}"}}')
check(rc == 0 and reply["ok"], f"ctl hotplug-disk: {reply}", L)
L.wait_serial_re(r"CNT \d+ .*blk=vda", 15)

rc, reply = L.ctl("set-cpus", '{"sockets":2}')
check(rc == 0 and reply["ok"], f"ctl set-cpus: {reply}", L)
L.wait_serial_re(r"CNT \d+ cpus=0-1", 40)
rc, reply = L.ctl("set-cpus", '{"sockets":1}')
check(rc == 1 and "vCPU hot-unplug" in reply["error"], f"CPU unplug refused: {reply}", L)

rc, reply = L.ctl("snapshot-save", '{"tag":"s1"}')
check(rc == 0 and reply["ok"], f"ctl snapshot-save: {reply}", L)
rc, reply = L.ctl("snapshot-list")
check(rc == 0 and [s["name"] for s in reply["snapshots"]] == ["s1"], f"ctl snapshot-list: {reply}", L)
rc, reply = L.ctl("snapshot-delete", '{"tag":"s1"}')
check(rc == 0 and reply["ok"], f"ctl snapshot-delete: {reply}", L)

rc, reply = L.ctl("migrate", f'{{"uri":"unix:{L.dir}/nobody.sock"}}')
L.wait(lambda: L.ctl("migrate-status")[1].get("migrationState", {}).get("failed"), 10, "migration failed")
st = L.ctl("migrate-status")[1]["migrationState"]
check(st["startTimestamp"] and st["endTimestamp"] and not st["completed"] and st["failureReason"],
      f"migrationState of a failed migration: {st}", L)
check(L.status()["phase"] == "Running" and L.qmp("query-status")["return"]["status"] == "running",
      "VM still running after the failed migration", L)

rc, reply = L.ctl("migration-target", f'{{"uri":"unix:{L.dir}/in.sock"}}')
check(rc == 1 and "incoming" in reply["error"].lower(), f"a running VM cannot become a target: {reply}", L)

rc, reply = L.ctl("unplug-disk", '{"name":"d1"}')
check(rc == 0 and reply["ok"], f"ctl unplug-disk: {reply}", L)
L.wait_serial_re(r"CNT \d+ cpus=\S+ memKB=\d+ blk= ", 15)
rc, reply = L.ctl("unplug-disk", '{"name":"d1"}')
check(rc == 1 and "unplug disk d1: no such disk attached" in reply["error"], f"unplug of a gone disk: {reply}", L)

# unplug-nic: device_del, DEVICE_DELETED awaited on the launcher's loop, netdev_del
rc, reply = L.ctl("hotplug-nic", '{"name":"n1","mac":"52:54:00:12:34:99"}')
check(rc == 0 and reply["ok"], f"ctl hotplug-nic: {reply}", L)
L.wait_serial_re(r"CNT \d+ .*net=\S*eth", 15)
rc, reply = L.ctl("unplug-nic", '{"name":"n1"}')
check(rc == 0 and reply["ok"], f"ctl unplug-nic: {reply}", L)
devices = [p["name"] for p in L.qmp("qom-list", {"path": "/machine/peripheral"})["return"]]
check(devices and "ua-n1" not in devices, f"the NIC is gone from QEMU: {devices}", L)
print("launcher liveops: ok")
