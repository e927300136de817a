#!/usr/bin/env python3
"""The live operations through virt-launcher's control socket (LIVEOPS_CTL_HANDLERS): hot-plug of a disk
and a vCPU seen in the guest, set-memory waiting for the guest on the launcher's loop, a snapshot on the hot-plugged qcow2, a failed migration leaving the VM
Running with a KubeVirt-shaped migrationState, unplug, all with the launcher's sandbox on."""
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.environ.get("KV_SOURCE_ROOT", "."), "launcher", "supervisor", "tests"))
from launcherlib import LAUNCHER, Launcher, check, need_guest, vmi  # noqa: E402

need_guest()
m = vmi("liveops", grace=5)
m["spec"]["domain"]["cpu"] = {"sockets": 1, "cores": 1, "threads": 1, "maxSockets": 2}
m["spec"]["domain"]["memory"] = {"maxGuest": "1Gi"}
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


def peripherals():
    return [p["name"] for p in L.qmp("qom-list", {"path": "/machine/peripheral"})["return"]]


devices = peripherals()
check(devices and "ua-n1" not in devices, f"the NIC is gone from QEMU: {devices}", L)


def ctl_start(*args):
    """A ctl request left running (L.ctl waits at most 10 s)."""
    return subprocess.Popen([LAUNCHER, "ctl", "--run-dir", L.run_dir, *args], stdout=subprocess.PIPE, text=True)


def ctl_end(p, timeout=40):
    out, _ = p.communicate(timeout=timeout)
    return p.returncode, json.loads(out) if out.strip() else {}


# set-memory: the guest's part (plugging virtio-mem memory) is awaited on the launcher's loop. Paused, the
# guest cannot plug: the request times out after its timeoutMs, and the launcher answers status meanwhile.
mem0 = int(re.findall(r"memKB=(\d+)", L.serial())[-1])
L.qmp("stop")
p = ctl_start("set-memory", f'{{"bytes":{512 << 20},"timeoutMs":5000}}')
L.wait(lambda: "kv-vmem0" in peripherals(), 10, "the virtio-mem device plugged")
rc, reply = L.ctl("status")
check(rc == 0 and reply["status"]["phase"] == "Running" and p.poll() is None,
      f"status answered while set-memory waits for the guest: {reply}", L)
rc, reply = ctl_end(p)
check(rc == 1 and "plugged 0 of 256 MiB" in reply.get("error", ""), f"set-memory on a paused guest: {reply}", L)
L.qmp("cont")
rc, reply = ctl_end(ctl_start("set-memory", f'{{"bytes":{512 << 20},"timeoutMs":30000}}'))
check(rc == 0 and reply["ok"], f"ctl set-memory: {reply}", L)
L.wait(lambda: int(re.findall(r"memKB=(\d+)", L.serial())[-1]) >= mem0 + 200000, 20, "MemTotal +256 MiB")
print("launcher liveops: ok")
