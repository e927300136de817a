#!/usr/bin/env python3
# Cold migration of a stopped VM end to end with the real kubectl (issue #18; docs/cold-migration.md). Two nodes,
# two kubelet stand-ins with node-local claims (--provision-claims --local-claims: a claim's data is a directory
# of the node its volume.kubernetes.io/selected-node names) and the test scheduler honouring claim nodes. A
# kernelBoot VM whose disks are a claim and a blank DataVolume of its dataVolumeTemplates (adopting a claim), both
# on node01, starts there; the guest writes a marker to each disk through its serial shell; stopped, a start is
# held while `kubectl annotate vm kvlite.io/cold-migrate=` moves it: the scheduler picks node02, a copy claim per
# disk is bound there, filled over NBD and compared, and a DataVolume of the copy's name takes over the
# DataVolume's copy; the VM then names the copies (its volumes and its dataVolumeTemplates entry), the old
# DataVolume, claims and their directories on node01 go. Started again, the VMI runs on node02 and the guest
# reads the markers back from its disks. A request for a running VM, one naming the node the claims are on, and
# one naming a node that does not exist (its copy Pods and claim made, then removed) fail with their reason and
# leave everything as it was.
# Usage: test_cold_migration.py
import json
import os
import secrets
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import test_e2e as e2e  # noqa: E402
from kubetest import BUILD, POD_PATH, wait_for  # noqa: E402
from test_datavolume import guest_shell  # noqa: E402
from test_rename import read_marker  # noqa: E402
from test_snapshot_offline import SnapEnv, create, skip_without_guest_or_root  # noqa: E402

VM, CLAIM, DV = "cmvm", "cmvm-data", "cmvm-dv"
NODES = ("node01", "node02")
REQ, PROGRESS = "kvlite.io/cold-migrate", "kvlite.io/cold-migration"
T0 = time.monotonic()


def say(line):
    print("[%5.1f s] %s" % (time.monotonic() - T0, line), flush=True)


class TwoNodeEnv(SnapEnv):
    """Two nodes on the host network (the copy's NBD stream goes from one Pod IP to the other) with local claims,
    placed by tests/kube-api/scheduler.py."""
    kubelet_opts = {"host_network": True, "extra": ["--provision-claims", "--local-claims", "--node-label",
                                                    "kubevirt.io/schedulable=true"],
                    "path": [os.path.join(BUILD, "importer")]}
    controller_args = ("--importer-image", "kvlite/importer:e2e", "--use-emulation")  # no node agent, no devices

    def _start(self):
        from kubelet import Client
        from scheduler import Scheduler
        self.srv.start()
        self.parts.append(self.srv)
        self.kubelets = {}
        for n in NODES:
            k = e2e.Kubelet(self.srv, node=n, **self.kubelet_opts)
            self.parts.insert(0, k)
            self.kubelets[n] = k.start()
        self.kubelet = self.kubelets[NODES[0]]  # SnapEnv.claim_file, __exit__'s log
        for n in NODES:  # what the node agent's tun device plugin advertises (no node agent runs here)
            wait_for("node %s registered" % n, lambda: self.srv.api.get("/api/v1/nodes/" + n)[0] == 200, timeout=30)
            tun = {"devices.kubevirt.io/tun": "110"}
            self.srv.api.merge("/api/v1/nodes/%s/status" % n, {"status": {"capacity": tun, "allocatable": tun}})
        self.sched = Scheduler(Client(self.srv.url), local_claims=True)
        self.sched.start()
        self.parts.insert(0, self.sched)
        self.ctl = e2e.Controller(self.srv, "--launcher-image", "kvlite/virt-launcher:e2e",
                                  *self.controller_args).start()
        self.parts.insert(0, self.ctl)
        self.cache = e2e.tempfile.mkdtemp(prefix="kubectl-cache.", dir=self.srv.dir)
        self.qemu_pids = set()
        return self

    def claim_path(self, node, claim):
        return os.path.join(self.kubelets[node].state, "claims", "default", claim, "disk.img")


def vm_manifest():
    vm = e2e.kernelboot_vm(VM, "Halted", "console=ttyS0 shell=1", {"persistentVolumeClaim": {"claimName": CLAIM}},
                           data_volume=e2e.blank_data_volume(DV))
    tmpl = vm["spec"]["template"]["spec"]
    tmpl["domain"]["devices"]["disks"].append({"name": "dv", "disk": {"bus": "virtio"}})  # /dev/vdb
    tmpl["volumes"].append({"name": "dv", "dataVolume": {"name": DV}})
    return vm


def local_claim(env, name):
    """A claim on node01, Bound there, its disk.img (1 MiB) provisioned blank."""
    create(env, {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                 "metadata": {"name": name, "annotations": {"volume.kubernetes.io/selected-node": NODES[0]}},
                 "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Mi"}}}})
    wait_for("claim Bound on node01", lambda: env.get("pvc", name)["status"].get("phase") == "Bound", timeout=30)
    assert not os.path.exists(os.path.dirname(env.claim_path(NODES[1], name))), "the claim is local to node01"


def owner(obj):
    return [(o["kind"], o["name"]) for o in obj["metadata"].get("ownerReferences", []) if o.get("controller")]


def set_running(env, on):
    env.kubectl("patch", "vm", VM, "--type=merge", "-p",
                json.dumps({"spec": {"runStrategy": "Always" if on else "Halted"}}))
    if not on:
        wait_for("VMI gone", lambda: env.vmi(VM) is None, timeout=60, interval=0.3)
        return None
    vmi = wait_for("VMI Running", lambda: (lambda v: v if v and v.get("status", {}).get("phase") == "Running"
                                           else None)(env.vmi(VM)), timeout=120, interval=0.3)
    pod = env.launcher_pod(vmi)
    node = pod["spec"]["nodeName"]
    run = os.path.join(env.kubelets[node].state, "pods", pod["metadata"]["uid"], "volumes", "run")
    wait_for("guest READY", lambda: b"KVGUEST READY" in e2e._read(os.path.join(run, "serial.log")), timeout=60,
             interval=0.3)
    st = json.loads(e2e._read(os.path.join(run, "status.json")) or b"{}")
    if st.get("qemuPid"):
        env.qemu_pids.add(st["qemuPid"])
    env.kubelet = env.kubelets[node]  # guest_shell's run_dir
    return vmi, pod


def progress(env):
    ann = (env.get("vm", VM) or {}).get("metadata", {}).get("annotations") or {}
    return ann.get(REQ), json.loads(ann[PROGRESS]) if PROGRESS in ann else None


def wait_done(env):
    def done():
        req, st = progress(env)
        return st if req is None and st and st.get("phase") in ("Succeeded", "Failed") else None
    return wait_for("cold migration done", done, timeout=120, interval=0.3)


def run_scenario(env):
    local_claim(env, CLAIM)
    with open(env.claim_path(NODES[0], CLAIM), "wb") as f:  # a provisioned, blank raw disk
        f.truncate(1 << 20)
    local_claim(env, DV)  # the DataVolume's claim, on node01: adopted by the DataVolume, filled by its import
    create(env, vm_manifest())
    wait_for("DataVolume Succeeded", lambda: (env.get("dv", DV) or {}).get("status", {}).get("phase") == "Succeeded",
             timeout=60, interval=0.3)

    # 1. The VM runs on node01, where its claim is; the guest writes a marker to the claim's disk.
    vmi, pod = set_running(env, True)
    assert pod["spec"]["nodeName"] == NODES[0] and vmi["status"]["nodeName"] == NODES[0], vmi["status"]
    marker, dvmark = "CMMARK-" + secrets.token_hex(4), "CMDV-" + secrets.token_hex(4)
    ask = guest_shell(env, pod)
    for m, dev in ((marker, "vda"), (dvmark, "vdb")):
        write = "echo %s | dd of=/dev/%s bs=512 seek=8 conv=sync,fsync 2>/dev/null && echo done" % (m, dev)
        assert ask("W" + dev, write) == "done"
    ask.close()
    # a running VM is not cold-migrated: refused, nothing touched
    env.kubectl("annotate", "vm", VM, REQ + "=")
    st = wait_done(env)
    assert st["phase"] == "Failed" and "is running" in st["message"], st
    assert env.vmi(VM)["status"]["phase"] == "Running"
    set_running(env, False)
    assert read_marker(env.claim_path(NODES[0], CLAIM)) == marker
    assert read_marker(env.claim_path(NODES[0], DV)) == dvmark
    say("ok - the guest on node01 wrote %s and %s to its claim and DataVolume; a cold migration of the running VM "
        "is refused: %s" % (marker, dvmark, st["message"]))

    # 2. A request naming the node the claims are on fails with its reason.
    env.kubectl("annotate", "vm", VM, REQ + "=" + NODES[0])
    st = wait_done(env)
    assert st["phase"] == "Failed" and "on node node01 already" in st["message"], st
    say("ok - refused: %s" % st["message"])
    # a node no copy Pod can go to: the copy fails once its source is up; the copy claim goes, the VM is as it was
    env.kubectl("annotate", "vm", VM, REQ + "=node09")
    st = wait_done(env)
    assert st["phase"] == "Failed" and "cannot be scheduled" in st["message"] and st["sourceNode"] == NODES[0], st
    assert env.get("vm", VM)["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == CLAIM
    assert env.get("vm", VM)["spec"]["dataVolumeTemplates"][0]["metadata"]["name"] == DV
    wait_for("copy claim deleted", lambda: env.get("pvc", CLAIM + "-cm1") is None, timeout=30, interval=0.3)
    assert env.get("pvc", DV + "-cm1") is None and env.get("dv", DV + "-cm1") is None
    wait_for("copy Pods deleted", lambda: not env.srv.api.items(POD_PATH % "default", "kvlite.io/cold-migration=" + VM),
             timeout=30, interval=0.3)
    assert read_marker(env.claim_path(NODES[0], CLAIM)) == marker
    say("ok - failed and undone: %s" % st["message"])

    # 3. The cold migration: the scheduler picks node02; a start asked for meanwhile waits for its end.
    env.kubectl("annotate", "vm", VM, REQ + "=")
    t = time.monotonic()
    wait_for("copying", lambda: (progress(env)[1] or {}).get("phase") in ("Copying", "Switching", "Succeeded"),
             timeout=30, interval=0.1)
    env.kubectl("patch", "vm", VM, "--type=merge", "-p", '{"spec":{"runStrategy":"Always"}}')
    seen_vmi = False
    while progress(env)[0] is not None and time.monotonic() - t < 120:
        seen_vmi = seen_vmi or env.vmi(VM) is not None
        time.sleep(0.1)
    st = wait_done(env)
    assert st["phase"] == "Succeeded", st
    assert not seen_vmi, "the VM started while its claims were moving"
    copy, dvcopy = CLAIM + "-cm1", DV + "-cm1"
    assert st["sourceNode"] == NODES[0] and st["targetNode"] == NODES[1], st
    assert st["claims"] == [{"volume": "data", "from": CLAIM, "to": copy},
                            {"volume": "dv", "from": DV, "to": dvcopy, "dataVolume": True}], st
    vm = env.get("vm", VM)
    assert vm["spec"]["template"]["spec"]["volumes"] == [
        {"name": "data", "persistentVolumeClaim": {"claimName": copy}},
        {"name": "dv", "dataVolume": {"name": dvcopy}}], vm["spec"]
    assert [t["metadata"]["name"] for t in vm["spec"]["dataVolumeTemplates"]] == [dvcopy], vm["spec"]
    for c, m in ((copy, marker), (dvcopy, dvmark)):
        pvc = env.get("pvc", c)
        assert pvc["metadata"]["annotations"]["volume.kubernetes.io/selected-node"] == NODES[1], pvc["metadata"]
        assert read_marker(env.claim_path(NODES[1], c)) == m
    # the copy's DataVolume: the template's spec, owned by the VM, Succeeded over the copy claim it took over
    dv = env.get("dv", dvcopy)
    assert dv["status"]["phase"] == "Succeeded" and owner(dv) == [("VirtualMachine", VM)], dv
    assert dv["metadata"]["annotations"]["cdi.kubevirt.io/storage.prePopulated"] == dvcopy, dv["metadata"]
    assert dv["spec"] == vm["spec"]["dataVolumeTemplates"][0]["spec"], dv["spec"]
    assert owner(env.get("pvc", dvcopy)) == [("DataVolume", dvcopy)], env.get("pvc", dvcopy)["metadata"]
    for c in (CLAIM, DV):
        wait_for("old claim %s gone" % c, lambda: env.get("pvc", c) is None, timeout=30, interval=0.3)
        wait_for("old data gone from node01", lambda: not os.path.exists(env.claim_path(NODES[0], c)), timeout=30)
    assert env.get("dv", DV) is None, "the old DataVolume is left"
    assert not env.srv.api.items(POD_PATH % "default", "kvlite.io/cold-migration=" + VM), "copy Pods left"
    say("ok - moved to node02 in %.1f s: claims %s and %s hold the markers, the VM names them, %s and %s are gone"
        % (time.monotonic() - t, copy, dvcopy, CLAIM, DV))

    # 4. The VM (its start was held) runs on node02 and its guest reads the marker back.
    vmi, pod = set_running(env, True)
    assert pod["spec"]["nodeName"] == NODES[1] and vmi["status"]["nodeName"] == NODES[1], vmi["status"]
    ask = guest_shell(env, pod)
    for m, dev in ((marker, "vda"), (dvmark, "vdb")):
        assert ask("R" + dev, "dd if=/dev/%s bs=512 skip=8 count=1 2>/dev/null | head -n 1" % dev) == m
    ask.close()
    row = env.kubectl("get", "vmi", VM, "--no-headers").split()
    assert NODES[1] in row, row
    set_running(env, False)
    say("ok - the VM started on node02 and its guest reads %s and %s" % (marker, dvmark))


def main():
    skip_without_guest_or_root()
    with TwoNodeEnv() as env:
        run_scenario(env)


if __name__ == "__main__":
    main()
