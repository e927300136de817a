#!/usr/bin/env python3
# VirtualMachineSnapshot / VirtualMachineRestore reconcilers (docs/cluster-snapshots.md) of the real
# virt-controller against the Kubernetes API test server. No launcher runs: the tests play the kubelet (Pod
# phase) and the launcher (its kvlite.io/launcher-status annotation with snapshotOperations and snapshots),
# and read the requests the controller writes on the VMI. Usage: test_snapshot.py [NAME...]
import json
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_controller as tc  # noqa: E402
from kubetest import POD_PATH, VM_PATH, Controller, vm_manifest, wait_for  # noqa: E402

NS = "default"
PODS = POD_PATH % NS
VMS = VM_PATH % NS
GROUP = "/apis/snapshot.kubevirt.io/v1beta1/namespaces/%s/" % NS
SNAPS, CONTENTS, RESTORES = GROUP + "virtualmachinesnapshots", GROUP + "virtualmachinesnapshotcontents", \
    GROUP + "virtualmachinerestores"
REQUESTS = "kvlite.io/snapshot-requests"
FINALIZER = "snapshot.kubevirt.io/vmsnapshot-protection"


class Launcher:
    """The fake launcher of one VM: its Pod's status annotation, with the snapshot operations it ran."""

    def __init__(self, api, pod):
        self.api, self.pod, self.ops, self.snaps = api, pod, [], []

    def publish(self):
        st = {"phase": "Running", "snapshotOperations": self.ops, "snapshots": self.snaps}
        self.api.merge("%s/%s" % (PODS, self.pod),
                       {"metadata": {"annotations": {"kvlite.io/launcher-status": json.dumps(st)}}})

    def run(self, req, phase="Succeeded", message=None, created="2030-01-01T00:00:00Z", extra=None):
        op = {"id": req["id"], "op": req["op"], "tag": req["tag"], "phase": phase,
              "completionTime": "2030-01-01T00:00:05Z", **(extra or {})}
        if message:
            op["message"] = message
        self.ops.append(op)
        if phase == "Succeeded" and req["op"] == "save":
            self.snaps.append({"tag": req["tag"], "creationTime": created, "vmStateSize": 1 << 20})
        if phase == "Succeeded" and req["op"] == "delete":
            self.snaps = [s for s in self.snaps if s["tag"] != req["tag"]]
        self.publish()


def running_vm(api, name, manifest=None):
    """A VM whose VMI runs in a (fake) launcher Pod; returns its Launcher."""
    api.create(VMS, manifest or vm_manifest(name, "Always"))
    vmi = wait_for("Scheduling", lambda: tc.phase_is(api, name, "Scheduling"))
    pod = tc.one_pod(api, vmi)["metadata"]["name"]
    api.merge("%s/%s" % (PODS, pod), {"spec": {"nodeName": "node01"}})
    launcher = Launcher(api, pod)
    launcher.publish()
    api.merge("%s/%s/status" % (PODS, pod), {"status": {"phase": "Running", "podIP": "10.0.0.1"}})
    wait_for("Running", lambda: tc.phase_is(api, name, "Running"))
    return launcher


def requests(api, vmi):
    v = tc.vmi_get(api, vmi) or {}
    return json.loads(((v.get("metadata") or {}).get("annotations") or {}).get(REQUESTS, "[]"))


def request_for(api, vmi, op, tag):
    return wait_for("%s request on VMI %s" % (op, vmi),
                    lambda: next((r for r in requests(api, vmi) if r["op"] == op and r["tag"] == tag), None))


def get(api, path, name):
    code, obj = api.get("%s/%s" % (path, name))
    return obj if code == 200 else None


def snapshot(api, name, vm, kind="VirtualMachine"):
    return api.create(SNAPS, {"apiVersion": "snapshot.kubevirt.io/v1beta1", "kind": "VirtualMachineSnapshot",
                              "metadata": {"name": name},
                              "spec": {"source": {"apiGroup": "kubevirt.io", "kind": kind, "name": vm}}})


def restore(api, name, vm, snap):
    return api.create(RESTORES, {"apiVersion": "snapshot.kubevirt.io/v1beta1", "kind": "VirtualMachineRestore",
                                 "metadata": {"name": name},
                                 "spec": {"target": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine",
                                                     "name": vm}, "virtualMachineSnapshotName": snap}})


def snap_phase(api, name, phase):
    s = get(api, SNAPS, name)
    return s if s and (s.get("status") or {}).get("phase") == phase else None


def condition(obj, ctype):
    return next((c for c in (obj.get("status") or {}).get("conditions", []) if c["type"] == ctype), {})


def saved(api, launcher, vm, name):
    """A snapshot taken: request → the launcher's success → Succeeded."""
    uid = snapshot(api, name, vm)["metadata"]["uid"]
    launcher.run(request_for(api, vm, "save", uid))
    return wait_for("Succeeded", lambda: snap_phase(api, name, "Succeeded"))


def test_save(srv, ctl):
    """save → InProgress with the request on the VMI → the launcher's success → the content, readyToUse, the
    request gone; a failed save → Failed with the launcher's message."""
    api = srv.api
    launcher = running_vm(api, "sv")
    uid = snapshot(api, "s1", "sv")["metadata"]["uid"]
    req = request_for(api, "sv", "save", uid)
    assert req == {"id": uid, "op": "save", "tag": uid}, req
    s = wait_for("InProgress", lambda: snap_phase(api, "s1", "InProgress"))
    assert FINALIZER in s["metadata"]["finalizers"] and s["status"]["readyToUse"] is False, s
    launcher.run(req)
    s = wait_for("Succeeded", lambda: snap_phase(api, "s1", "Succeeded"))
    st = s["status"]
    vm = get(api, VMS, "sv")
    assert st["readyToUse"] is True and st["creationTime"] == "2030-01-01T00:00:00Z", st
    assert st["virtualMachineSnapshotContentName"] == "s1-content" and st["sourceUID"] == vm["metadata"]["uid"], st
    assert st["indications"] == ["Online", "NoGuestAgent"] and condition(s, "Ready")["status"] == "True", st
    c = get(api, CONTENTS, "s1-content")
    assert c["metadata"]["ownerReferences"][0]["uid"] == s["metadata"]["uid"], c["metadata"]
    assert c["spec"]["source"]["virtualMachine"]["spec"] == vm["spec"], c["spec"]
    assert c["spec"]["source"]["virtualMachine"]["metadata"]["name"] == "sv", c["spec"]
    assert [b["volumeName"] for b in c["spec"]["volumeBackups"]] == ["root"], c["spec"]
    assert c["spec"]["virtualMachineSnapshotName"] == "s1", c["spec"]
    assert c["status"] == {"readyToUse": True, "creationTime": "2030-01-01T00:00:00Z"}, c["status"]
    wait_for("request removed", lambda: requests(api, "sv") == [])
    # a failure reported by the launcher
    uid = snapshot(api, "s2", "sv")["metadata"]["uid"]
    launcher.run(request_for(api, "sv", "save", uid), phase="Failed", message="No space left on device")
    s = wait_for("Failed", lambda: snap_phase(api, "s2", "Failed"))
    assert "No space left on device" in s["status"]["error"]["message"], s["status"]
    assert s["status"]["readyToUse"] is False and get(api, CONTENTS, "s2-content") is None, s["status"]
    wait_for("request removed", lambda: requests(api, "sv") == [])


def test_refusals(srv, ctl):
    """A stopped VM, an unknown VM, another kind: Failed at once, with the cause in error.message."""
    api = srv.api
    api.create(VMS, vm_manifest("halted", "Halted"))
    snapshot(api, "off", "halted")
    s = wait_for("Failed", lambda: snap_phase(api, "off", "Failed"))
    msg = s["status"]["error"]["message"]
    assert msg == "VirtualMachine halted is not running and has no persistentVolumeClaim, dataVolume or hostDisk " \
        "volume to back up", msg
    hd = vm_manifest("hostdisk", "Halted")
    hd["spec"]["template"]["spec"]["volumes"].append({"name": "hd", "hostDisk": {"path": "/tmp/x.img", "type": "Disk"}})
    api.create(VMS, hd)
    snapshot(api, "hds", "hostdisk")
    s = wait_for("Failed", lambda: snap_phase(api, "hds", "Failed"))
    assert s["status"]["error"]["message"] == "volume hd (hostDisk) has no capacity: kvlite sizes its backup claim " \
        "from hostDisk.capacity", s["status"]
    assert get(api, CONTENTS, "hds-content") is None and get(api, CONTENTS, "off-content") is None
    snapshot(api, "ghost", "nope")
    s = wait_for("Failed", lambda: snap_phase(api, "ghost", "Failed"))
    assert "spec.source.name: no VirtualMachine nope in namespace default" == s["status"]["error"]["message"], s
    snapshot(api, "pvc", "halted", kind="PersistentVolumeClaim")
    s = wait_for("Failed", lambda: snap_phase(api, "pvc", "Failed"))
    assert s["status"]["error"]["message"].startswith("spec.source.kind: PersistentVolumeClaim"), s
    # a restore of a snapshot that does not exist, and of another VM's snapshot
    launcher = running_vm(api, "rv")
    saved(api, launcher, "rv", "rs")
    launcher2 = running_vm(api, "other")
    for name, snap, vm, want in (("r1", "missing", "rv", "no VirtualMachineSnapshot missing"),
                                 ("r2", "rs", "other", "VirtualMachineSnapshot rs is of VirtualMachine rv, not other"),
                                 ("r3", "off", "halted", "VirtualMachineSnapshot off is Failed")):
        restore(api, name, vm, snap)
        r = wait_for("Failure", lambda: condition(get(api, RESTORES, name), "Failure").get("status") == "True" and
                     get(api, RESTORES, name))
        assert want in condition(r, "Failure")["message"] and r["status"]["complete"] is False, r["status"]
        assert want in r["status"]["error"]["message"], r["status"]
    assert requests(api, "rv") == [] and requests(api, "other") == [] and launcher2.ops == []


def test_restore(srv, ctl):
    """A restore of a ready snapshot of a running VM: load request with the snapshot's uid → complete."""
    api = srv.api
    launcher = running_vm(api, "rr")
    s = saved(api, launcher, "rr", "snap")
    ruid = restore(api, "back", "rr", "snap")["metadata"]["uid"]
    req = request_for(api, "rr", "load", s["metadata"]["uid"])
    assert req["id"] == ruid, req
    r = wait_for("Progressing", lambda: condition(get(api, RESTORES, "back"), "Progressing").get("status") == "True"
                 and get(api, RESTORES, "back"))
    assert r["status"]["complete"] is False, r["status"]
    assert "snapshot.kubevirt.io/vmrestore-protection" in r["metadata"]["finalizers"], r["metadata"]
    launcher.run(req)
    r = wait_for("complete", lambda: (get(api, RESTORES, "back").get("status") or {}).get("complete") and
                 get(api, RESTORES, "back"))
    assert r["status"]["restoreTime"] and condition(r, "Ready")["status"] == "True", r["status"]
    assert condition(r, "Progressing")["status"] == "False" and "error" not in r["status"], r["status"]
    wait_for("request removed", lambda: requests(api, "rr") == [])
    # a load the launcher fails
    restore(api, "bad", "rr", "snap")
    req = wait_for("load", lambda: next((x for x in requests(api, "rr") if x["op"] == "load"), None))
    launcher.run(req, phase="Failed", message="Snapshot 'x' does not exist")
    r = wait_for("Failure", lambda: condition(get(api, RESTORES, "bad"), "Failure").get("status") == "True" and
                 get(api, RESTORES, "bad"))
    assert "does not exist" in condition(r, "Failure")["message"] and r["status"]["complete"] is False, r["status"]
    # a stopped VM is refused
    api.merge("%s/rr" % VMS, {"spec": {"runStrategy": "Halted"}})
    wait_for("VMI gone", lambda: tc.vmi_get(api, "rr") is None, timeout=20)
    restore(api, "cold", "rr", "snap")
    r = wait_for("Failure", lambda: condition(get(api, RESTORES, "cold"), "Failure").get("status") == "True" and
                 get(api, RESTORES, "cold"))
    assert "VirtualMachine rr is not running" in condition(r, "Failure")["message"], r["status"]
    for name in ("back", "bad", "cold"):
        api.ok("DELETE", "%s/%s" % (RESTORES, name))
    wait_for("restores gone", lambda: api.items(RESTORES) == [])


def test_restore_deleted(srv, ctl):
    """A restore deleted before the launcher ran it: its request leaves the VMI, then the finalizer goes."""
    api = srv.api
    launcher = running_vm(api, "rd")
    s = saved(api, launcher, "rd", "snap")
    restore(api, "gone", "rd", "snap")
    request_for(api, "rd", "load", s["metadata"]["uid"])
    api.ok("DELETE", "%s/gone" % RESTORES)
    wait_for("restore gone", lambda: get(api, RESTORES, "gone") is None)
    assert requests(api, "rd") == []


def test_delete(srv, ctl):
    """Deleting a snapshot of a running VM: the finalizer holds it until the launcher deleted the qcow2
    snapshot; the content goes with it. A stopped VM's snapshot goes at once."""
    api = srv.api
    launcher = running_vm(api, "dv")
    s = saved(api, launcher, "dv", "ds")
    uid = s["metadata"]["uid"]
    api.ok("DELETE", "%s/ds" % SNAPS)
    req = request_for(api, "dv", "delete", uid)
    assert req["id"] != uid, "the delete needs its own id: the save's is in snapshotOperations already"
    s = get(api, SNAPS, "ds")
    assert s and s["metadata"].get("deletionTimestamp") and FINALIZER in s["metadata"]["finalizers"], s
    launcher.run(req)
    wait_for("snapshot gone", lambda: get(api, SNAPS, "ds") is None)
    assert get(api, CONTENTS, "ds-content") is None and launcher.snaps == []
    wait_for("request removed", lambda: requests(api, "dv") == [])
    # the VM stopped: nothing to ask, the finalizer goes at once
    saved(api, launcher, "dv", "ds2")
    api.merge("%s/dv" % VMS, {"spec": {"runStrategy": "Halted"}})
    wait_for("VMI gone", lambda: tc.vmi_get(api, "dv") is None, timeout=20)
    api.ok("DELETE", "%s/ds2" % SNAPS)
    wait_for("snapshot gone", lambda: get(api, SNAPS, "ds2") is None)
    assert get(api, CONTENTS, "ds2-content") is None


CLAIMS = "/api/v1/namespaces/%s/persistentvolumeclaims" % NS


def bound_claim(api, name, node=None):
    """A Bound claim; node: a node-local one, on that node (kube-scheduler's selected-node annotation)."""
    md = {"name": name, "annotations": {"volume.kubernetes.io/selected-node": node} if node else {}}
    api.create(CLAIMS, {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": md,
                        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Mi"}}}})
    api.merge("%s/%s/status" % (CLAIMS, name), {"status": {"phase": "Bound"}})


def clone_done(api, name, node=None):
    """Plays the kubelet for the clone Pod filling backup claim `name`: the claim Bound, the Pod Succeeded.
    node: the node of the source claim, where the backup claim is made and the Pod pinned. Returns the Pod's
    command."""
    claim = wait_for("backup claim %s" % name, lambda: get(api, CLAIMS, name))
    assert (claim["metadata"].get("annotations") or {}).get("volume.kubernetes.io/selected-node") == node, claim
    api.merge("%s/%s/status" % (CLAIMS, name), {"status": {"phase": "Bound"}})
    pod = wait_for("clone Pod %s" % name, lambda: get(api, PODS, name))
    assert pod["spec"].get("nodeName") == node, pod["spec"]
    api.merge("%s/%s/status" % (PODS, name), {"status": {"phase": "Succeeded"}})
    return pod["spec"]["containers"][0]["command"]


def vm_status(api, name):
    return get(api, VMS, name).get("status") or {}


def test_claims(srv, ctl):
    """A running VM with a node-local claim: the content names backup claims (annotated as the launcher's), the
    save request → the launcher's backup (the guest agent froze) → a clone Pod copying the backup file (the
    backup claim made on the claim's node, the Pod pinned there) → the
    release (a delete of the tag) → Succeeded with indications Online, GuestAgent. Meanwhile the VM status says
    snapshotInProgress. A stopped VM whose snapshot copies does not start until it is done; a restore of the
    running VM from claims is refused; a hostDisk of a running VM is refused. Deleting them asks the launcher to
    remove the tag's files. The stopped VM restored into its claim: the restore Pod pinned to the claim's node;
    refused once the claim is on another node than the backup."""
    api = srv.api
    bound_claim(api, "cdata", node="node01")  # node-local: its clone Pods are pinned there
    m = vm_manifest("cv", "Always")
    m["spec"]["template"]["spec"]["volumes"].append({"name": "data", "persistentVolumeClaim": {"claimName": "cdata"}})
    m["spec"]["template"]["spec"]["domain"]["devices"]["disks"].append({"name": "data", "disk": {"bus": "virtio"}})
    launcher = running_vm(api, "cv", m)
    uid = snapshot(api, "cs", "cv")["metadata"]["uid"]
    backup = "vmsnapshot-%s-volume-data" % uid
    req = request_for(api, "cv", "save", uid)
    c = get(api, CONTENTS, "cs-content")
    assert c["metadata"]["annotations"] == {"kvlite.io/volume-backups": "claims",
                                            "kvlite.io/backup-source": "launcher"}, c["metadata"]
    assert c["spec"]["volumeBackups"] == [{"volumeName": "data", "persistentVolumeClaim": {"metadata": {"name": "cdata"}},
                                           "volumeSnapshotName": backup}], c["spec"]
    wait_for("InProgress", lambda: snap_phase(api, "cs", "InProgress"))
    wait_for("VM snapshotInProgress", lambda: vm_status(api, "cv").get("snapshotInProgress") == "cs")
    assert get(api, PODS, backup) is None, "no copy before the launcher's point in time"
    launcher.run(req, extra={"backups": 1, "guestAgent": True})
    cmd = clone_done(api, backup, node="node01")
    assert cmd[cmd.index("--pvc-source-file") + 1] == "disk.img.vmsnapshot-" + uid, cmd
    rel = request_for(api, "cv", "delete", uid)
    assert rel["id"] == uid + "-release", rel
    assert snap_phase(api, "cs", "InProgress"), "ready only once the launcher released its files"
    launcher.run(rel)
    s = wait_for("Succeeded", lambda: snap_phase(api, "cs", "Succeeded"))
    assert s["status"]["indications"] == ["Online", "GuestAgent"] and s["status"]["readyToUse"], s["status"]
    assert s["status"]["creationTime"] == "2030-01-01T00:00:05Z", s["status"]
    assert get(api, CONTENTS, "cs-content")["status"]["readyToUse"] is True
    wait_for("requests removed", lambda: requests(api, "cv") == [])
    wait_for("VM snapshot no longer in progress", lambda: "snapshotInProgress" not in vm_status(api, "cv"))
    # a restore of the running VM from claims: refused (it is restored stopped)
    restore(api, "rc", "cv", "cs")
    r = wait_for("Failure", lambda: condition(get(api, RESTORES, "rc"), "Failure").get("status") == "True" and
                 get(api, RESTORES, "rc"))
    assert "VirtualMachine cv is not stopped" in r["status"]["error"]["message"], r["status"]
    # a failed backup: Failed with the launcher's message
    uid2 = snapshot(api, "cs2", "cv")["metadata"]["uid"]
    launcher.run(request_for(api, "cv", "save", uid2), phase="Failed", message="disk node x is hot-plugged")
    s = wait_for("Failed", lambda: snap_phase(api, "cs2", "Failed"))
    assert "failed to back up the VM's disks: disk node x" in s["status"]["error"]["message"], s["status"]
    # deleted while the VM runs, even Failed: the launcher removes any backup file of the tag; the backup
    # claims go with the content
    for name, u in (("cs2", uid2), ("cs", uid)):
        api.ok("DELETE", "%s/%s" % (SNAPS, name))
        req = request_for(api, "cv", "delete", u)
        assert req["id"] == u + "-delete", req
        launcher.run(req)
        wait_for("snapshot %s gone" % name, lambda: get(api, SNAPS, name) is None)
    assert get(api, CLAIMS, backup) is None and get(api, CONTENTS, "cs-content") is None
    # the VM stopped: a snapshot copying its claim holds its start
    api.merge("%s/cv" % VMS, {"spec": {"runStrategy": "Halted"}})
    wait_for("VMI gone", lambda: tc.vmi_get(api, "cv") is None, timeout=20)
    uid3 = snapshot(api, "cs3", "cv")["metadata"]["uid"]
    wait_for("InProgress", lambda: snap_phase(api, "cs3", "InProgress"))
    api.merge("%s/cv" % VMS, {"spec": {"runStrategy": "Always"}})
    wait_for("VM snapshotInProgress", lambda: vm_status(api, "cv").get("snapshotInProgress") == "cs3")
    assert tc.vmi_get(api, "cv") is None, "the VM started while its snapshot copies"
    clone_done(api, "vmsnapshot-%s-volume-data" % uid3, node="node01")
    wait_for("Succeeded", lambda: snap_phase(api, "cs3", "Succeeded"))
    wait_for("the VM starts once the snapshot is done", lambda: tc.vmi_get(api, "cv"), timeout=20)
    assert "snapshotInProgress" not in vm_status(api, "cv")
    # restored into its node-local claim: the restore Pod pinned to the claim's node; once the claim is on another
    # node than the backup, refused
    api.merge("%s/cv" % VMS, {"spec": {"runStrategy": "Halted"}})
    wait_for("VMI gone", lambda: tc.vmi_get(api, "cv") is None, timeout=20)
    ruid = restore(api, "rc3", "cv", "cs3")["metadata"]["uid"]
    pod = wait_for("restore Pod", lambda: get(api, PODS, "restore-%s-data" % ruid))
    assert pod["spec"].get("nodeName") == "node01", pod["spec"]
    api.merge("%s/%s/status" % (PODS, pod["metadata"]["name"]), {"status": {"phase": "Succeeded"}})
    wait_for("restored", lambda: (get(api, RESTORES, "rc3").get("status") or {}).get("complete"))
    api.merge("%s/cdata" % CLAIMS, {"metadata": {"annotations": {"volume.kubernetes.io/selected-node": "node02"}}})
    restore(api, "rc4", "cv", "cs3")
    r = wait_for("Failure", lambda: condition(get(api, RESTORES, "rc4"), "Failure").get("status") == "True" and
                 get(api, RESTORES, "rc4"))
    assert "volume data: claim vmsnapshot-%s-volume-data is on node node01 and the copy has to run on node node02" \
        % uid3 in r["status"]["error"]["message"], r["status"]
    # a hostDisk of a running VM without capacity: nothing to size its backup claim with
    h = vm_manifest("ch", "Always")
    h["spec"]["template"]["spec"]["volumes"].append({"name": "hd", "hostDisk": {"path": "/tmp/x.img", "type": "Disk"}})
    h["spec"]["template"]["spec"]["domain"]["devices"]["disks"].append({"name": "hd", "disk": {"bus": "virtio"}})
    running_vm(api, "ch", h)
    snapshot(api, "chs", "ch")
    s = wait_for("Failed", lambda: snap_phase(api, "chs", "Failed"))
    assert "volume hd (hostDisk) has no capacity" in s["status"]["error"]["message"], s["status"]
    assert requests(api, "ch") == []


def hostdisk_vm(name, strategy, node=None):
    m = vm_manifest(name, strategy)
    spec = m["spec"]["template"]["spec"]
    spec["volumes"].append({"name": "hd", "hostDisk": {"path": "/var/lib/hd/vm.img", "type": "DiskOrCreate",
                                                       "capacity": "64Mi"}})
    spec["domain"]["devices"]["disks"].append({"name": "hd", "disk": {"bus": "virtio"}})
    if node:
        spec["nodeSelector"] = {"kubernetes.io/hostname": node}
    return m


def host_volume(pod, name):
    return next(v["hostPath"]["path"] for v in pod["spec"]["volumes"] if v["name"] == name)


def test_hostdisk(srv, ctl):
    """hostDisk volumes backed up into claims: a running VM's (the launcher's copy next to the image, read by a
    clone Pod on the VM's node through a hostPath), a stopped VM's (the image itself, on the node its template
    pins); the backup claim sized by hostDisk.capacity. A restore of the same VM writes the image back on that
    node (--dest-file, the Succeeded Pod its record); a restore to a new VM gives it a claim instead."""
    api = srv.api
    launcher = running_vm(api, "hv", hostdisk_vm("hv", "Always"))
    uid = snapshot(api, "hs", "hv")["metadata"]["uid"]
    backup = "vmsnapshot-%s-volume-hd" % uid
    req = request_for(api, "hv", "save", uid)
    c = get(api, CONTENTS, "hs-content")
    assert c["metadata"]["annotations"] == {"kvlite.io/volume-backups": "claims", "kvlite.io/backup-source": "launcher",
                                            "kvlite.io/backup-node": "node01"}, c["metadata"]
    assert c["spec"]["volumeBackups"] == [{"volumeName": "hd", "hostDisk": {
        "path": "/var/lib/hd/vm.img", "type": "DiskOrCreate", "capacity": "64Mi"}, "volumeSnapshotName": backup}], c
    launcher.run(req, extra={"backups": 1, "guestAgent": False})
    wait_for("backup claim", lambda: get(api, CLAIMS, backup))
    pvc = get(api, CLAIMS, backup)
    assert pvc["spec"]["resources"]["requests"]["storage"] == "64Mi" and pvc["spec"]["accessModes"] == \
        ["ReadWriteOnce"], pvc["spec"]
    source = pvc["metadata"]["annotations"]["kvlite.io/clone-source"]
    assert source == "hostPath node01:/var/lib/hd/vm.img.vmsnapshot-" + uid, pvc
    pod = wait_for("clone Pod", lambda: (api.merge("%s/%s/status" % (CLAIMS, backup), {"status": {"phase": "Bound"}}),
                                         get(api, PODS, backup))[1])
    cmd = pod["spec"]["containers"][0]["command"]
    assert pod["spec"]["nodeName"] == "node01" and host_volume(pod, "source") == "/var/lib/hd", pod["spec"]
    assert cmd[cmd.index("--pvc-source-file") + 1] == "vm.img.vmsnapshot-" + uid, cmd
    clone_done(api, backup, node="node01")  # the backup claim made on the image's node
    launcher.run(request_for(api, "hv", "delete", uid))
    s = wait_for("Succeeded", lambda: snap_phase(api, "hs", "Succeeded"))
    assert s["status"]["indications"] == ["Online", "NoGuestAgent"], s["status"]

    # stopped, pinned to node02: the image itself is copied there
    api.create(VMS, hostdisk_vm("hw", "Halted", node="node02"))
    uid = snapshot(api, "ws", "hw")["metadata"]["uid"]
    backup = "vmsnapshot-%s-volume-hd" % uid
    cmd = clone_done(api, backup, node="node02")
    pod = get(api, PODS, backup)
    assert pod["spec"]["nodeName"] == "node02" and host_volume(pod, "source") == "/var/lib/hd", pod["spec"]
    assert cmd[cmd.index("--pvc-source-file") + 1] == "vm.img" and "--dest-file" not in cmd, cmd
    s = wait_for("Succeeded", lambda: snap_phase(api, "ws", "Succeeded"))
    assert s["status"]["indications"] == [], s["status"]
    assert get(api, CONTENTS, "ws-content")["metadata"]["annotations"]["kvlite.io/backup-node"] == "node02"
    # restored into the same VM: the backup claim written over its image on node02
    ruid = restore(api, "wr", "hw", "ws")["metadata"]["uid"]
    rpod = "restore-%s-hd" % ruid
    pod = wait_for("restore Pod", lambda: get(api, PODS, rpod))
    cmd = pod["spec"]["containers"][0]["command"]
    assert pod["spec"]["nodeName"] == "node02" and host_volume(pod, "cdi-data-vol") == "/var/lib/hd", pod["spec"]
    assert cmd[cmd.index("--dest-file") + 1] == "vm.img" and cmd[cmd.index("--pvc-source") + 1] == "/source", cmd
    claim = next(v["persistentVolumeClaim"]["claimName"] for v in pod["spec"]["volumes"] if v["name"] == "source")
    assert claim == backup, pod["spec"]["volumes"]
    api.merge("%s/%s/status" % (PODS, rpod), {"status": {"phase": "Succeeded"}})
    r = wait_for("complete", lambda: (get(api, RESTORES, "wr").get("status") or {}).get("complete") and
                 get(api, RESTORES, "wr"))
    assert r["status"]["restores"] == [{"volumeName": "hd", "hostDisk": {"path": "/var/lib/hd/vm.img"},
                                        "volumeSnapshotName": backup}], r["status"]
    assert get(api, PODS, rpod)["status"]["phase"] == "Succeeded", "the Pod records the copy into the node's file"
    # restored into a new VM: the hostDisk becomes a claim cloned from the backup
    ruid = restore(api, "wn", "hw2", "ws")["metadata"]["uid"]
    clone_done(api, "restore-%s-hd" % ruid, node="node02")  # from the backup claim, on node02
    vm = wait_for("new VM", lambda: get(api, VMS, "hw2"))
    assert {"name": "hd", "persistentVolumeClaim": {"claimName": "restore-%s-hd" % ruid}} in \
        vm["spec"]["template"]["spec"]["volumes"], vm["spec"]
    api.ok("DELETE", "%s/wr" % RESTORES)
    wait_for("restore Pod deleted with its restore", lambda: get(api, PODS, rpod) is None)


def test_hotplug(srv, ctl):
    """A claim hot-plugged into the running VMI only (not the VM's template): backed up with the others (the
    launcher's copy next to its disk.img), restored into that claim once the VM is stopped; a restore to a new
    VM leaves it out (the new VM has no such disk)."""
    api = srv.api
    bound_claim(api, "hpdata")
    launcher = running_vm(api, "pv")
    vmi = tc.vmi_get(api, "pv")
    spec = vmi["spec"]
    spec["volumes"].append({"name": "hp", "persistentVolumeClaim": {"claimName": "hpdata", "hotpluggable": True}})
    spec["domain"]["devices"]["disks"].append({"name": "hp", "disk": {"bus": "scsi"}})
    api.merge("/apis/kubevirt.io/v1/namespaces/%s/virtualmachineinstances/pv" % NS, {"spec": spec})
    wait_for("the VMI's hot-plugged volume",
             lambda: "hp" in [v["name"] for v in tc.vmi_get(api, "pv")["spec"]["volumes"]])
    uid = snapshot(api, "ps", "pv")["metadata"]["uid"]
    backup = "vmsnapshot-%s-volume-hp" % uid
    req = request_for(api, "pv", "save", uid)
    c = get(api, CONTENTS, "ps-content")
    assert {"volumeName": "hp", "persistentVolumeClaim": {"metadata": {"name": "hpdata"}},
            "volumeSnapshotName": backup} in c["spec"]["volumeBackups"], c["spec"]
    launcher.run(req, extra={"backups": 1, "guestAgent": False})
    cmd = clone_done(api, backup)
    assert cmd[cmd.index("--pvc-source-file") + 1] == "disk.img.vmsnapshot-" + uid, cmd
    launcher.run(request_for(api, "pv", "delete", uid))
    wait_for("Succeeded", lambda: snap_phase(api, "ps", "Succeeded"))
    api.merge("%s/pv" % VMS, {"spec": {"runStrategy": "Halted"}})
    wait_for("VMI gone", lambda: tc.vmi_get(api, "pv") is None, timeout=20)
    ruid = restore(api, "pr", "pv", "ps")["metadata"]["uid"]
    pod = wait_for("restore Pod", lambda: get(api, PODS, "restore-%s-hp" % ruid))
    dst = next(v["persistentVolumeClaim"]["claimName"] for v in pod["spec"]["volumes"] if v["name"] == "cdi-data-vol")
    assert dst == "hpdata", pod["spec"]["volumes"]
    api.merge("%s/restore-%s-hp/status" % (PODS, ruid), {"status": {"phase": "Succeeded"}})
    r = wait_for("complete", lambda: (get(api, RESTORES, "pr").get("status") or {}).get("complete") and
                 get(api, RESTORES, "pr"))
    assert {"volumeName": "hp", "persistentVolumeClaim": "hpdata", "volumeSnapshotName": backup} in \
        r["status"]["restores"], r["status"]
    # to a new VM: only the disks of the VM's spec
    ruid = restore(api, "pn", "pv2", "ps")["metadata"]["uid"]
    r = wait_for("complete", lambda: (get(api, RESTORES, "pn").get("status") or {}).get("complete") and
                 get(api, RESTORES, "pn"))
    assert "hp" not in [x["volumeName"] for x in r["status"].get("restores", [])], r["status"]
    assert get(api, CLAIMS, "restore-%s-hp" % ruid) is None and get(api, PODS, "restore-%s-hp" % ruid) is None


def test_restart(srv, ctl):
    """The controller SIGKILLed after writing the request, and again after the launcher reported: one content,
    the snapshot Succeeded; a restore resumes the same way."""
    api = srv.api
    launcher = running_vm(api, "kv")
    uid = snapshot(api, "ks", "kv")["metadata"]["uid"]
    req = request_for(api, "kv", "save", uid)
    ctl.stop(signal.SIGKILL)
    ctl2 = Controller(srv).start()
    try:
        wait_for("InProgress", lambda: snap_phase(api, "ks", "InProgress"))
        assert requests(api, "kv") == [req], requests(api, "kv")
        ctl2.stop(signal.SIGKILL)
        launcher.run(req)
        ctl2 = Controller(srv).start()
        s = wait_for("Succeeded", lambda: snap_phase(api, "ks", "Succeeded"))
        assert s["status"]["readyToUse"] and len(api.items(CONTENTS)) == 1
        wait_for("request removed", lambda: requests(api, "kv") == [])
        restore(api, "kr", "kv", "ks")
        req = request_for(api, "kv", "load", uid)
        ctl2.stop(signal.SIGKILL)
        launcher.run(req)
        ctl2 = Controller(srv).start()
        wait_for("complete", lambda: (get(api, RESTORES, "kr").get("status") or {}).get("complete"))
        wait_for("request removed", lambda: requests(api, "kv") == [])
        assert [o["op"] for o in launcher.ops] == ["save", "load"]
    finally:
        ctl2.stop()


if __name__ == "__main__":
    tc.main(globals())
