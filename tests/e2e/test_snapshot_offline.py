#!/usr/bin/env python3
# Snapshots of a stopped VM end to end with the real kubectl (docs/cluster-snapshots.md): a kernelBoot VM whose
# only disk is a blank DataVolume the guest writes a counter to (diskw=vda: "DISKCNT <n>" in sector 0, from 1
# again at each boot) → the VM stopped, a VirtualMachineSnapshot: its content's volumeBackups are claims
# holding that counter → the VM restarted (it writes over it), stopped: the snapshot's backup is unchanged →
# a VirtualMachineRestore of the same VM: the counter in the VM's claim is the snapshot's again → a restore to
# a new VM name: a VM on new claims holding the counter, which boots and writes them → the snapshot deleted:
# its backup claims go. The kubelet stand-in binds claims to directories (--provision-claims) and runs the
# clone Pods (kvlite-importer --pvc-source) like the importer Pods. The VM's second disk is a hostDisk (a file of
# the node, which the test writes markers into): backed up into claims too (the launcher's copy next to it while
# the VM runs, the file itself when stopped) and written back on the node by a restore. While the VM runs, a claim
# is hot-plugged into its VMI (virt-handler hands its image and directory to the launcher): the running snapshot
# backs it up too, and the restore puts the data back into that claim.
# Usage: test_snapshot_offline.py
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import test_e2e as e2e  # noqa: E402
from kubetest import BUILD, POD_PATH, wait_for  # noqa: E402
from test_datavolume import condition, disk_counter  # noqa: E402
from test_virtctl import CLAIM, start_handler  # noqa: E402

VM, VM2 = "offvm", "offvm2"


class SnapEnv(e2e.Env):
    kubelet_opts = {"extra": ["--provision-claims"], "path": [os.path.join(BUILD, "importer")]}
    schedule = ("kubevirt.io=virt-launcher", "app=containerized-data-importer")
    controller_args = ("--importer-image", "kvlite/importer:e2e")

    def get(self, kind, name):
        out = self.kubectl("get", kind, name, "-o", "json", check=False)
        return json.loads(out) if out.strip() else None

    def claim_file(self, claim):
        return os.path.join(self.kubelet.state, "claims", "default", claim, "disk.img")

    def host_disk(self):
        return os.path.join(self.srv.dir, "hostdisk", "vm.img")

    def clone_pods(self):
        return [p["metadata"]["name"] for p in self.srv.api.items(POD_PATH % "default", "cdi.kubevirt.io=cdi-clone-source")]


def vm_manifest(host_disk):
    vm = e2e.kernelboot_vm(VM, "Always", "console=ttyS0 diskw=vda", {"dataVolume": {"name": VM + "-data"}},
                           e2e.blank_data_volume(VM + "-data"))
    spec = vm["spec"]["template"]["spec"]
    spec["domain"]["devices"]["disks"].append({"name": "host", "disk": {"bus": "virtio"}})
    spec["volumes"].append({"name": "host", "hostDisk": {"path": host_disk, "type": "DiskOrCreate", "capacity": "1Mi"}})
    return vm


def mark(path, text):
    """A marker in sector 0 of a hostDisk image, written by the node (the guest does not use that disk)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, text.encode().ljust(512, b"\0"), 0)
        os.ftruncate(fd, max(os.fstat(fd).st_size, 1 << 20))
        os.fsync(fd)
    finally:
        os.close(fd)


def marker(path):
    with open(path, "rb") as f:
        return f.read(512).rstrip(b"\0").decode(errors="replace")


def set_running(env, name, on):
    env.kubectl("patch", "vm", name, "--type=merge", "-p",
                json.dumps({"spec": {"runStrategy": "Always" if on else "Halted"}}))
    if on:
        vmi = wait_for("VMI %s Running" % name, lambda: (lambda v: v if v and v.get("status", {}).get("phase") ==
                                                         "Running" else None)(env.vmi(name)), timeout=120, interval=0.5)
        st = json.loads(e2e._read(os.path.join(env.kubelet.run_dir(env.launcher_pod(vmi)), "status.json")) or b"{}")
        if st.get("qemuPid"):
            env.qemu_pids.add(st["qemuPid"])
    else:
        wait_for("VMI %s gone" % name, lambda: env.vmi(name) is None, timeout=60, interval=0.5)


def create(env, doc):
    env.kubectl("create", "-f", "-", input=json.dumps(doc))


def snapshot_doc(name):
    return {"apiVersion": "snapshot.kubevirt.io/v1beta1", "kind": "VirtualMachineSnapshot",
            "metadata": {"name": name}, "spec": {"source": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": VM}}}


def restore_doc(name, target, snap):
    return {"apiVersion": "snapshot.kubevirt.io/v1beta1", "kind": "VirtualMachineRestore", "metadata": {"name": name},
            "spec": {"target": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": target},
                     "virtualMachineSnapshotName": snap}}


def wait_restored(env, name):
    def done():
        r = env.get("vmrestore", name)
        st = (r or {}).get("status", {})
        assert condition(r, "Failure").get("status") != "True", st
        return r if st.get("complete") else None
    return wait_for("VirtualMachineRestore %s complete" % name, done, timeout=90, interval=0.5)


def counter_at_least(path, n):
    return wait_for("the guest writes DISKCNT >= %d to %s" % (n, path),
                    lambda: (lambda c: c if c and c >= n else None)(disk_counter(path)), timeout=90, interval=0.5)


def main():
    skip_without_guest_or_root()
    with SnapEnv() as env:
        run_scenario(env)


def skip_without_guest_or_root():
    """Exits 77 (skip) without the test guest's kernelboot image or root (the kubelet stand-in's mounts)."""
    if not os.path.exists(os.path.join(e2e.GUEST, "kernelboot")):
        e2e_skip("test guest missing (tests/guest/build.sh)")
    if os.geteuid() != 0:
        e2e_skip("the kubelet stand-in needs root for its mount namespaces")


def e2e_skip(why):
    print("SKIP: " + why)
    sys.exit(77)


def snapshot_ready(env, name):
    def ready():
        s = env.get("vmsnapshot", name) or {}
        assert s.get("status", {}).get("phase") != "Failed", s["status"]
        return s if s.get("status", {}).get("readyToUse") else None
    return wait_for("snapshot %s readyToUse" % name, ready, timeout=90, interval=0.5)


def hotplug_claim(env, claim):
    """A claim holding a marker, hot-plugged into the running VMI only (as `virtctl addvolume` without --persist):
    the controller's attachment Pod mounts it, virt-handler hands its image and directory to the launcher."""
    env.kubectl("apply", "-f", "-", input=CLAIM % claim)
    wait_for("claim %s bound" % claim, lambda: os.path.isdir(os.path.dirname(env.claim_file(claim))), timeout=20)
    mark(env.claim_file(claim), "HP-LIVE")
    env.kubectl("patch", "vmi", VM, "--type=json", "-p", json.dumps([
        {"op": "add", "path": "/spec/volumes/-", "value": {"name": "hp", "persistentVolumeClaim": {
            "claimName": claim, "hotpluggable": True}}},
        {"op": "add", "path": "/spec/domain/devices/disks/-", "value": {"name": "hp", "disk": {"bus": "scsi"}}}]))
    wait_for("hot-plugged volume Ready", lambda: [v for v in env.vmi(VM)["status"].get("volumeStatus") or []
                                                  if v["name"] == "hp" and v["phase"] == "Ready"], timeout=30,
             interval=0.5)


def running_snapshot(env, data):
    """A snapshot of the RUNNING VM (its only disk a raw claim): the launcher's point-in-time backup copied into
    a claim the snapshot owns, the guest agent freezing around it; the snapshot survives a restart of the VM;
    restored offline (the VM stopped, restored, started) the claim holds the snapshot's counter again."""
    wait_for("guest agent connected", lambda: (lambda v: v if condition(v, "AgentConnected").get("status") ==
                                                     "True" else None)(env.vmi(VM)), timeout=90, interval=0.5)
    mark(env.host_disk(), "HOST-LIVE")
    hp = VM + "-hp"
    handler = start_handler(env)
    try:
        hotplug_claim(env, hp)
        before = counter_at_least(env.claim_file(data), 3)
        create(env, snapshot_doc("live"))
        snap = snapshot_ready(env, "live")
    finally:
        handler.stop()
    after = disk_counter(env.claim_file(data))
    uid = snap["metadata"]["uid"]
    backup, hbackup, hpbackup = ("vmsnapshot-%s-volume-%s" % (uid, v) for v in ("data", "host", "hp"))
    st = snap["status"]
    assert st["phase"] == "Succeeded" and st["indications"] == ["Online", "GuestAgent"], st
    content = env.get("vmsnapshotcontent", "live-content")
    assert content["spec"]["volumeBackups"] == [
        {"volumeName": "data", "persistentVolumeClaim": {"metadata": {"name": data}}, "volumeSnapshotName": backup},
        {"volumeName": "host", "hostDisk": {"path": env.host_disk(), "type": "DiskOrCreate", "capacity": "1Mi"},
         "volumeSnapshotName": hbackup},
        {"volumeName": "hp", "persistentVolumeClaim": {"metadata": {"name": hp}}, "volumeSnapshotName": hpbackup}], \
        content["spec"]
    assert content["metadata"]["annotations"]["kvlite.io/backup-node"] == e2e.NODE, content["metadata"]
    assert marker(env.claim_file(hpbackup)) == "HP-LIVE", marker(env.claim_file(hpbackup))
    point = disk_counter(env.claim_file(backup))
    assert point is not None and before <= point <= after, (before, point, after)
    assert marker(env.claim_file(hbackup)) == "HOST-LIVE", marker(env.claim_file(hbackup))
    for f in (env.claim_file(data), env.host_disk(), env.claim_file(hp)):
        left = [n for n in os.listdir(os.path.dirname(f)) if ".vmsnapshot-" in n]
        assert not left, "the launcher's backup file is released: %s" % left
    print("ok - snapshot of the running VM: backup claim %s holds DISKCNT %d (the claim went %d..%d), %s the "
          "hostDisk's marker, %s the hot-plugged claim's, indications Online, GuestAgent" % (
              backup, point, before, after, hbackup, hpbackup))
    # the VM restarted (the guest counts from 1 again and passes the snapshot's value): the snapshot stays
    set_running(env, VM, False)
    set_running(env, VM, True)
    counter_at_least(env.claim_file(data), point + 2)
    set_running(env, VM, False)
    assert disk_counter(env.claim_file(backup)) == point and env.get("vmsnapshot", "live")["status"]["readyToUse"]
    mark(env.host_disk(), "HOST-CHANGED")
    mark(env.claim_file(hp), "HP-CHANGED")
    create(env, restore_doc("rlive", VM, "live"))
    r = wait_restored(env, "rlive")
    assert disk_counter(env.claim_file(data)) == point, (disk_counter(env.claim_file(data)), point)
    assert marker(env.host_disk()) == "HOST-LIVE", marker(env.host_disk())
    assert marker(env.claim_file(hp)) == "HP-LIVE", "the hot-plugged claim restored: %s" % marker(env.claim_file(hp))
    pod = env.get("pod", "restore-%s-host" % r["metadata"]["uid"])
    assert pod["spec"]["nodeName"] == e2e.NODE and pod["status"]["phase"] == "Succeeded", pod
    set_running(env, VM, True)
    wait_for("the guest boots on the restored claim", lambda: (lambda c: c is not None and c != point)(
        disk_counter(env.claim_file(data))), timeout=90, interval=0.5)
    print("ok - after a VM restart the snapshot is unchanged; restored offline, the claim held DISKCNT %d again, "
          "the hostDisk its marker (written on node %s), the hot-plugged claim its own, and the VM started on them"
          % (point, e2e.NODE))
    env.kubectl("delete", "vmrestore", "rlive", "--timeout=60s")
    env.kubectl("delete", "vmsnapshot", "live", "--timeout=60s")
    wait_for("live backup claim gone", lambda: env.get("pvc", backup) is None, timeout=30, interval=0.5)


def run_scenario(env):
    data = VM + "-data"
    os.makedirs(os.path.dirname(env.host_disk()))
    mark(env.host_disk(), "HOST-FIRST")
    create(env, vm_manifest(env.host_disk()))
    set_running(env, VM, True)
    running_snapshot(env, data)
    counter_at_least(env.claim_file(data), 4)
    set_running(env, VM, False)
    saved = disk_counter(env.claim_file(data))
    mark(env.host_disk(), "HOST-SNAP1")
    print("ok - VM stopped; its DataVolume's claim holds DISKCNT %d" % saved)

    # 1. A snapshot of the stopped VM: a clone Pod copies the claim into a claim the content owns.
    create(env, snapshot_doc("snap1"))
    wait_for("snapshot readyToUse", lambda: (env.get("vmsnapshot", "snap1") or {}).get("status", {}).get("readyToUse"),
             timeout=90, interval=0.5)
    snap = env.get("vmsnapshot", "snap1")
    st = snap["status"]
    assert st["phase"] == "Succeeded" and st["virtualMachineSnapshotContentName"] == "snap1-content", st
    assert st["indications"] == [] and condition(snap, "Ready")["status"] == "True", st
    row = env.kubectl("get", "vmsnapshot", "snap1", "--no-headers").split()
    assert row[1:4] == ["VirtualMachine", VM, "Succeeded"] and "true" in row, row
    content = env.get("vmsnapshotcontent", "snap1-content")
    backups = content["spec"]["volumeBackups"]
    backup, hbackup = ("vmsnapshot-%s-volume-%s" % (snap["metadata"]["uid"], v) for v in ("data", "host"))
    assert backups == [{"volumeName": "data", "persistentVolumeClaim": {"metadata": {"name": data}},
                        "volumeSnapshotName": backup},
                       {"volumeName": "host", "hostDisk": {"path": env.host_disk(), "type": "DiskOrCreate",
                                                           "capacity": "1Mi"}, "volumeSnapshotName": hbackup}], backups
    assert marker(env.claim_file(hbackup)) == "HOST-SNAP1", marker(env.claim_file(hbackup))
    assert content["status"]["readyToUse"] is True, content["status"]
    pvc = env.get("pvc", backup)
    assert pvc["metadata"]["ownerReferences"][0]["uid"] == content["metadata"]["uid"], pvc["metadata"]
    assert disk_counter(env.claim_file(backup)) == saved, (disk_counter(env.claim_file(backup)), saved)
    assert os.path.getsize(env.claim_file(backup)) == 1 << 20
    wait_for("clone Pod deleted", lambda: not env.clone_pods(), timeout=30)
    print("ok - snapshot of the stopped VM: content with backup claim %s holding DISKCNT %d" % (backup, saved))

    # 2. The VM runs again (the guest counts from 1 again, past the saved value): the snapshot survives.
    set_running(env, VM, True)
    counter_at_least(env.claim_file(data), saved + 3)
    set_running(env, VM, False)
    later = disk_counter(env.claim_file(data))
    assert later != saved and disk_counter(env.claim_file(backup)) == saved, (later, saved)
    mark(env.host_disk(), "HOST-LATER")
    assert env.get("vmsnapshot", "snap1")["status"]["readyToUse"] is True
    print("ok - the VM ran again (DISKCNT %d); the snapshot still holds DISKCNT %d" % (later, saved))

    # 3. A restore of the stopped VM: its claim holds the snapshot's counter again.
    create(env, restore_doc("r1", VM, "snap1"))
    r = wait_restored(env, "r1")
    assert r["status"]["restoreTime"] and condition(r, "Ready")["status"] == "True", r["status"]
    assert r["status"]["restores"] == [{"volumeName": "data", "persistentVolumeClaim": data,
                                        "volumeSnapshotName": backup},
                                       {"volumeName": "host", "hostDisk": {"path": env.host_disk()},
                                        "volumeSnapshotName": hbackup}], r["status"]
    assert disk_counter(env.claim_file(data)) == saved, (disk_counter(env.claim_file(data)), saved)
    assert marker(env.host_disk()) == "HOST-SNAP1", marker(env.host_disk())
    assert env.get("pvc", data)["metadata"]["uid"], "the VM keeps its claim"
    print("ok - restored: the VM's claim holds DISKCNT %d again, its hostDisk the snapshot's marker" % saved)
    # a restore of a running VM from a snapshot taken stopped is refused (the guest may write its claim again)
    set_running(env, VM, True)
    create(env, restore_doc("r-running", VM, "snap1"))
    r = wait_for("Failure", lambda: (lambda o: o if condition(o, "Failure").get("status") == "True" else None)(
        env.get("vmrestore", "r-running")), timeout=30, interval=0.5)
    assert "is not stopped" in r["status"]["error"]["message"], r["status"]
    set_running(env, VM, False)
    kept = disk_counter(env.claim_file(data))  # the guest may have written it again while it ran

    # 4. A restore to a new VM name: a VM on new claims cloned from the backups; it boots and writes them.
    create(env, restore_doc("r2", VM2, "snap1"))
    r = wait_restored(env, "r2")
    vm2 = env.get("vm", VM2)
    claim2, hclaim2 = ("restore-%s-%s" % (r["metadata"]["uid"], v) for v in ("data", "host"))
    assert [x["persistentVolumeClaim"] for x in r["status"]["restores"]] == [claim2, hclaim2], r["status"]
    assert vm2["spec"]["template"]["spec"]["volumes"] == [
        {"name": "data", "persistentVolumeClaim": {"claimName": claim2}},
        {"name": "host", "persistentVolumeClaim": {"claimName": hclaim2}}], vm2["spec"]
    assert marker(env.claim_file(hclaim2)) == "HOST-SNAP1", "the new VM's hostDisk became a claim"
    assert "dataVolumeTemplates" not in vm2["spec"] and vm2["metadata"]["annotations"]["kvlite.io/restored-by"] == \
        r["metadata"]["uid"], vm2
    assert disk_counter(env.claim_file(claim2)) == saved
    set_running(env, VM2, True)
    wait_for("the new VM's guest writes its claim", lambda: (lambda c: c is not None and c != saved)(
        disk_counter(env.claim_file(claim2))), timeout=90, interval=0.5)
    assert disk_counter(env.claim_file(data)) == kept, "the source VM's claim is not touched"
    set_running(env, VM2, False)
    create(env, restore_doc("r3", VM2, "snap1"))
    r = wait_for("Failure", lambda: (lambda o: o if condition(o, "Failure").get("status") == "True" else None)(
        env.get("vmrestore", "r3")), timeout=30, interval=0.5)
    assert "VirtualMachine %s exists" % VM2 in r["status"]["error"]["message"], r["status"]
    print("ok - restore to VM %s: new claim %s holding DISKCNT %d, the guest boots on it; an existing target is "
          "refused" % (VM2, claim2, saved))

    # 5. A DataVolume cloned from the VM's claim (CDI's pvc source, the same kvlite-importer --pvc-source).
    create(env, {"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume", "metadata": {"name": "clone"},
                 "spec": {"source": {"pvc": {"namespace": "default", "name": data}},
                          "storage": {"resources": {"requests": {"storage": "1Mi"}}}}})
    dv = wait_for("DataVolume clone Succeeded", lambda: (lambda d: d if d and d.get("status", {}).get("phase") ==
                                                          "Succeeded" else None)(env.get("dv", "clone")), timeout=60)
    assert disk_counter(env.claim_file("clone")) == kept, (disk_counter(env.claim_file("clone")), kept, dv["status"])
    print("ok - DataVolume with a pvc source: Succeeded, holds the source claim's DISKCNT %d" % kept)
    # CDI's sourceRef: a DataVolume naming a DataSource clones the claim the DataSource points at; it waits,
    # Pending, while the DataSource is not there yet.
    create(env, {"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume", "metadata": {"name": "from-ds"},
                 "spec": {"sourceRef": {"kind": "DataSource", "name": "vm-data"},
                          "storage": {"resources": {"requests": {"storage": "1Mi"}}}}})
    wait_for("DataVolume from-ds Pending for its DataSource", lambda: (lambda d: d and d.get("status", {}).get(
        "phase") == "Pending" and "not found" in json.dumps(d["status"].get("conditions", [])))(
        env.get("dv", "from-ds")), timeout=30, interval=0.3)
    create(env, {"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataSource", "metadata": {"name": "vm-data"},
                 "spec": {"source": {"pvc": {"name": data}}}})
    dv = wait_for("DataVolume from-ds Succeeded", lambda: (lambda d: d if d and d.get("status", {}).get("phase") ==
                                                           "Succeeded" else None)(env.get("dv", "from-ds")), timeout=60)
    assert disk_counter(env.claim_file("from-ds")) == kept, (disk_counter(env.claim_file("from-ds")), kept, dv["status"])
    print("ok - DataVolume with a DataSource sourceRef: Pending until the DataSource exists, then Succeeded with "
          "the claim it names (DISKCNT %d)" % kept)
    # The DataSources' Ready condition, as CDI's datasource-controller writes it
    create(env, {"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataSource", "metadata": {"name": "nowhere"},
                 "spec": {"source": {"pvc": {"name": "no-such-claim"}}}})
    create(env, {"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataSource", "metadata": {"name": "of-clone"},
                 "spec": {"source": {"pvc": {"name": "clone", "namespace": "default"}}}})
    for name, status, reason, message in (("vm-data", "True", "Ready", "DataSource is ready to be consumed"),
                                          ("of-clone", "True", "Ready", "DataSource is ready to be consumed"),
                                          ("nowhere", "False", "NotFound", "PVC not found")):
        ds = wait_for("DataSource %s Ready %s" % (name, status), lambda: (lambda d: d if [
            c for c in (d or {}).get("status", {}).get("conditions", [])
            if c["type"] == "Ready" and c["status"] == status] else None)(env.get("datasource", name)), timeout=30,
            interval=0.3)
        cond = next(c for c in ds["status"]["conditions"] if c["type"] == "Ready")
        assert cond["reason"] == reason and cond["message"] == message, ds["status"]
        assert ds["status"]["source"] == ds["spec"]["source"], ds["status"]
    print("ok - DataSources' Ready: a claim that exists and a Succeeded DataVolume are Ready, a missing claim "
          "NotFound; status.source mirrors spec.source")

    # 6. Deleting the snapshot frees its data: the content and its backup claims (and their directories) go.
    env.kubectl("delete", "vmsnapshot", "snap1", "--timeout=60s")
    wait_for("backup claims gone", lambda: env.get("pvc", backup) is None and env.get("pvc", hbackup) is None and
             env.get("vmsnapshotcontent", "snap1-content") is None, timeout=30, interval=0.5)
    wait_for("backup data gone", lambda: not os.path.exists(env.claim_file(backup)), timeout=30, interval=0.5)
    assert env.get("pvc", data) and env.get("pvc", claim2), "the VMs' claims stay"
    print("ok - snapshot deleted: content and backup claim gone, the VMs' claims kept")
    env.kubectl("delete", "vmrestore", "r1", "r2", "r3", "r-running", "--timeout=60s")
    assert not json.loads(env.kubectl("get", "vmrestore", "-o", "json"))["items"], "restores gone (finalizers removed)"
    assert env.get("vm", VM2) and disk_counter(env.claim_file(claim2)) is not None, "a restored VM outlives its restore"
    print("ok - restores deleted; the VM a restore created stays")


if __name__ == "__main__":
    main()
