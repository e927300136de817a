#!/usr/bin/env python3
# A VM's stopped life end to end with the real kubectl and virtctl (issue #18; docs/virtctl.md "rename",
# docs/controller.md "Cold changes"): a kernelBoot VM whose data disk is a blank DataVolume starts, the guest
# writes a marker to that disk through its serial shell; `virtctl rename` is refused while it runs; stopped and
# snapshotted, the rename is refused for a name another VM has, then done: the new VM has the old one's labels,
# annotations and spec, owns the same DataVolume (uid kept, claim untouched), the snapshot names it, the old VM is
# gone. Cold changes on the renamed, stopped VM (2 cores, more memory, an extra disk, by `kubectl patch`) apply at
# its `virtctl start`: the guest's CNT line shows both CPUs, the memory and the disk, and reads back the marker.
# A memory change while it runs sets RestartRequired. Last, an interrupted rename (the fence only; the fence and
# the copy) is finished by asking again and by the controller alone.
# Usage: test_rename.py
import json
import os
import re
import secrets
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import test_e2e as e2e  # noqa: E402
from kubetest import wait_for  # noqa: E402
from test_datavolume import condition, guest_shell  # noqa: E402
from test_snapshot_offline import SnapEnv, create, skip_without_guest_or_root  # noqa: E402
from test_virtctl import VirtApi, Virtctl  # noqa: E402

VM, NEW, TAKEN = "rnvm", "rnvm2", "rn-taken"
DATA = VM + "-data"
CNT = re.compile(r"CNT \d+ cpus=(\S*) memKB=(\d+) blk=(\S*)")


T0 = time.monotonic()


def say(line):
    print("[%5.1f s] %s" % (time.monotonic() - T0, line), flush=True)


def vm_manifest():
    return e2e.kernelboot_vm(VM, "Halted", "console=ttyS0 shell=1", {"dataVolume": {"name": DATA}},
                             e2e.blank_data_volume(DATA),
                             metadata={"labels": {"app": "rn"}, "annotations": {"note": "kept"}},
                             domain={"cpu": {"cores": 1}})

def last_cnt(env, pod):
    """(cpus, memKB, blk) of the guest's last complete CNT line."""
    text = e2e._read(os.path.join(env.kubelet.run_dir(pod), "serial.log")).decode(errors="replace")
    found = CNT.findall(text)
    return (found[-1][0], int(found[-1][1]), found[-1][2]) if found else None


def boot(env, vctl, name):
    assert "VM %s was scheduled to start" % name in vctl("start", name)
    vmi, pod, _ = env.wait_running(name)
    return pod, wait_for("the guest's CNT line", lambda: last_cnt(env, pod), timeout=30, interval=0.3)


def stop(env, vctl, name):
    assert "VM %s was scheduled to stop" % name in vctl("stop", name)
    wait_for("VMI %s gone" % name, lambda: env.vmi(name) is None, timeout=60, interval=0.3)


def read_marker(path):
    with open(path, "rb") as f:
        f.seek(8 * 512)
        return f.read(64).split(b"\n")[0].decode(errors="replace")


def rename_and_cold_changes(env, vctl):
    create(env, vm_manifest())
    env.kubectl("apply", "-f", "-", input=e2e.vm_yaml(TAKEN, "Halted"))
    wait_for("DataVolume Succeeded", lambda: (env.get("dv", DATA) or {}).get("status", {}).get("phase") == "Succeeded",
             timeout=60, interval=0.3)

    # 1. The guest writes a marker to its DataVolume disk; no rename while it runs.
    pod, (cpus, mem1, blk) = boot(env, vctl, VM)
    assert cpus == "0" and blk == "vda", (cpus, blk)
    marker = "RNMARK-" + secrets.token_hex(4)
    ask = guest_shell(env, pod)
    assert ask("W", "echo %s | dd of=/dev/vda bs=512 seek=8 conv=sync,fsync 2>/dev/null && echo done" % marker) == "done"
    ask.close()
    out = vctl("rename", VM, NEW, rc=1)
    assert 'Error renaming VirtualMachine Operation cannot be fulfilled on virtualmachine.kubevirt.io "%s": VM is ' \
        'running' % VM in out, out
    stop(env, vctl, VM)
    assert read_marker(env.claim_file(DATA)) == marker
    say("ok - the guest wrote %s to its DataVolume disk; rename refused while it ran" % marker)

    # 2. A snapshot of the stopped VM; the rename refused for a taken name, and for bad names.
    create(env, {"apiVersion": "snapshot.kubevirt.io/v1beta1", "kind": "VirtualMachineSnapshot",
                 "metadata": {"name": "rn-snap"},
                 "spec": {"source": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": VM}}})
    wait_for("snapshot readyToUse", lambda: (env.get("vmsnapshot", "rn-snap") or {}).get("status", {}).get("readyToUse"),
             timeout=90, interval=0.5)
    old = env.get("vm", VM)
    taken = env.get("vm", TAKEN)
    out = vctl("rename", VM, TAKEN, rc=1)
    assert 'virtualmachine.kubevirt.io "%s": a VirtualMachine of that name already exists' % TAKEN in out, out
    assert "Invalid" not in out and "BadRequest" not in out
    assert "is not a valid VM name" in vctl("rename", VM, "Bad_Name", rc=1)
    assert "must be different" in vctl("rename", VM, VM, rc=1)
    assert "not found" in vctl("rename", "nope", NEW, rc=1)
    assert "expected 2 arguments" in vctl("rename", VM, rc=1)
    assert "VM %s was scheduled to rename" % VM in vctl("rename", VM, NEW, "--dry-run")
    assert env.get("vm", NEW) is None
    now = env.get("vm", VM)
    assert now["metadata"]["uid"] == old["metadata"]["uid"] and "kvlite.io/rename-to" not in now["metadata"].get(
        "annotations", {}), now["metadata"]
    assert env.get("vm", TAKEN)["metadata"]["uid"] == taken["metadata"]["uid"]
    say("ok - refused: an existing target, an invalid name, the same name, an unknown VM; --dry-run changes nothing")

    # 3. The rename: the new VM first, the DataVolume and the snapshot follow it, the old VM goes last.
    dv, pvc = env.get("dv", DATA), env.get("pvc", DATA)
    assert "VM %s was scheduled to rename" % VM in vctl("rename", VM, NEW)
    wait_for("old VM gone", lambda: env.get("vm", VM) is None, timeout=30, interval=0.3)
    new = wait_for("rename finished", lambda: (lambda v: v if v and "kvlite.io/renamed-from" not in v["metadata"].get(
        "annotations", {}) else None)(env.get("vm", NEW)), timeout=30, interval=0.3)
    assert new["metadata"]["labels"] == {"app": "rn"}, new["metadata"]
    assert new["metadata"]["annotations"].get("note") == "kept", new["metadata"]
    for k in ("runStrategy", "dataVolumeTemplates", "template"):
        assert new["spec"][k] == old["spec"][k], k
    dv2 = env.get("dv", DATA)
    assert dv2["metadata"]["uid"] == dv["metadata"]["uid"], "the same DataVolume"
    owner = dv2["metadata"]["ownerReferences"]
    assert [(o["kind"], o["name"], o["uid"], o.get("controller")) for o in owner] == [
        ("VirtualMachine", NEW, new["metadata"]["uid"], True)], owner
    assert dv2["metadata"]["labels"]["kubevirt.io/created-by"] == new["metadata"]["uid"], dv2["metadata"]
    assert "kvlite.io/retained-from-vm" not in dv2["metadata"].get("annotations", {}), dv2["metadata"]
    assert env.get("pvc", DATA)["metadata"]["uid"] == pvc["metadata"]["uid"], "the same claim"
    assert read_marker(env.claim_file(DATA)) == marker
    assert env.get("vmsnapshot", "rn-snap")["spec"]["source"]["name"] == NEW
    # (virt-api's webhook let the controller's edit through; a user's is refused, as in KubeVirt)
    p = subprocess.run(["kubectl", "--kubeconfig", env.srv.kubeconfig, "patch", "vmsnapshot", "rn-snap", "--type=merge",
                        "-p", json.dumps({"spec": {"source": {"name": VM}}})], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode != 0 and "spec in immutable after creation" in p.stderr, (p.returncode, p.stderr)
    row = env.kubectl("get", "vm", NEW, "--no-headers").split()
    assert row[2] == "Stopped", row
    say("ok - renamed %s -> %s: labels, annotations and spec kept; DataVolume %s (same uid, same claim) owned by "
          "%s; the snapshot names it" % (VM, NEW, DATA, NEW))

    # 4. Cold changes on the stopped VM apply at its next start; the guest reads back the marker.
    env.kubectl("patch", "vm", NEW, "--type=json", "-p", json.dumps([
        {"op": "replace", "path": "/spec/template/spec/domain/cpu/cores", "value": 2},
        {"op": "replace", "path": "/spec/template/spec/domain/memory/guest", "value": "192Mi"},
        {"op": "add", "path": "/spec/template/spec/domain/devices/disks/-",
         "value": {"name": "scratch", "disk": {"bus": "virtio"}}},
        {"op": "add", "path": "/spec/template/spec/volumes/-",
         "value": {"name": "scratch", "emptyDisk": {"capacity": "2Mi"}}}]))
    pod, (cpus, mem2, blk) = boot(env, vctl, NEW)
    assert cpus == "0-1" and blk == "vda,vdb", (cpus, blk)
    assert mem2 - mem1 >= 60 * 1024, (mem1, mem2)  # 64 MiB more, less what the kernel keeps
    ask = guest_shell(env, pod)
    assert ask("N", "grep -c ^processor /proc/cpuinfo") == "2"
    assert ask("R", "dd if=/dev/vda bs=512 skip=8 count=1 2>/dev/null | head -n 1") == marker
    ask.close()
    say("ok - cold changes applied at start: cpus=%s, memKB %d -> %d, blk=%s; the guest reads back %s after the "
          "rename" % (cpus, mem1, mem2, blk, marker))

    # 5. A memory change while it runs cannot be applied live: RestartRequired.
    env.kubectl("patch", "vm", NEW, "--type=merge", "-p", '{"spec":{"template":{"spec":{"domain":{"memory":'
                '{"guest":"256Mi"}}}}}}')
    c = wait_for("RestartRequired", lambda: (lambda c: c if c.get("status") == "True" else None)(
        condition(env.get("vm", NEW), "RestartRequired")), timeout=20, interval=0.3)
    assert "non-live-updatable" in c["message"], c
    stop(env, vctl, NEW)
    say("ok - a memory change on the running VM: RestartRequired")


def interrupted(env, vctl):
    """What a virt-api that died half-way leaves: finished by asking again, or by the controller alone."""
    env.kubectl("apply", "-f", "-", input=e2e.vm_yaml("rn-a", "Halted"))
    env.kubectl("apply", "-f", "-", input=e2e.vm_yaml("rn-c", "Halted"))
    # the fence only: the VM is not started by a start of its runStrategy; asking again finishes the rename
    env.kubectl("annotate", "vm", "rn-a", "kvlite.io/rename-to=rn-b")
    env.kubectl("patch", "vm", "rn-a", "--type=merge", "-p", '{"spec":{"runStrategy":"Manual"}}')
    assert "VM rn-a was scheduled to start" in vctl("start", "rn-a")
    assert "VM rn-a was scheduled to rename" in vctl("rename", "rn-a", "rn-b")
    wait_for("rn-a gone, rn-b done", lambda: env.get("vm", "rn-a") is None and "kvlite.io/renamed-from" not in (
        env.get("vm", "rn-b") or {"metadata": {"annotations": {"kvlite.io/renamed-from": ""}}})["metadata"].get(
        "annotations", {}), timeout=30, interval=0.3)
    assert env.vmi("rn-a") is None and env.vmi("rn-b") is None, "a fenced or unfinished VM never starts"
    # the fence and the copy, no virt-api: the controller finishes
    c = env.get("vm", "rn-c")
    env.kubectl("annotate", "vm", "rn-c", "kvlite.io/rename-to=rn-d")
    copy = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
            "metadata": {"name": "rn-d", "annotations": {"kvlite.io/renamed-from": "rn-c",
                                                         "kvlite.io/renamed-from-uid": c["metadata"]["uid"]}},
            "spec": c["spec"]}
    create(env, copy)
    wait_for("rn-c gone, rn-d done", lambda: env.get("vm", "rn-c") is None and "kvlite.io/renamed-from" not in (
        env.get("vm", "rn-d") or {"metadata": {"annotations": {"kvlite.io/renamed-from": ""}}})["metadata"].get(
        "annotations", {}), timeout=30, interval=0.3)
    say("ok - interrupted renames finished: by asking again (fence only), by the controller (fence and copy)")


def main():
    skip_without_guest_or_root()
    with SnapEnv() as env:
        say("environment up")
        vapi = VirtApi(env)
        try:
            vctl = Virtctl(env)
            rename_and_cold_changes(env, vctl)
            interrupted(env, vctl)
        finally:
            vapi.stop()


if __name__ == "__main__":
    main()
