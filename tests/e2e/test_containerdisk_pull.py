#!/usr/bin/env python3
# containerDisk volumes through the registry pull path, end to end with the real kubectl: the test guest's disk
# pushed as a containerDisk image (buildah: FROM scratch / ADD disk.qcow2 /disk/, KubeVirt's layout) to two
# Debian docker-registry instances; the cluster's registry Secret lists them in that order for vms.example. The
# first registry stopped, a VMI with containerDisk {image: vms.example/vms/guest:1} → the launcher Pod's
# container-disk-root init container (kvlite-importer --container-disk) pulls it from the second into an
# emptyDir → the guest boots (serial READY), and the init container's termination message says which registry
# served it (digest pinned) and which was passed over; so do the VMI's annotation kvlite.io/container-disk-pulls
# and its Event ContainerDiskPulled.
# Usage: test_containerdisk_pull.py
import json
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import test_datavolume as dvt  # noqa: E402
import test_e2e as e2e  # noqa: E402
from kubetest import wait_for  # noqa: E402
from regfixtures import Registry, build_with_buildah  # noqa: E402

VMI = "cdpull"


def vmi_manifest():
    return {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
            "metadata": {"name": VMI, "namespace": "default"},
            "spec": {"domain": {"memory": {"guest": "256Mi"}, "devices": {"disks": [{"name": "root", "disk": {"bus": "virtio"}}]}},
                     "volumes": [{"name": "root", "containerDisk": {"image": "vms.example/vms/guest:1"}}]}}


def pull_result(pod):
    """The init container's result line (its termination message), or None while it has not finished."""
    for st in pod.get("status", {}).get("initContainerStatuses") or []:
        if st["name"] == "container-disk-root" and "terminated" in st.get("state", {}):
            msg = st["state"]["terminated"].get("message", "")
            return json.loads(msg.strip().splitlines()[-1])
    return None


def run_scenario(env, cfg, r1, r2):
    with open(cfg) as f:
        secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "kvlite-registries"},
                  "stringData": {"registries.yaml": f.read()}}
    env.kubectl("apply", "-f", "-", input=json.dumps(secret))
    env.kubectl("apply", "-f", "-", input=json.dumps(vmi_manifest()))
    vmi = wait_for("VMI Running", lambda: (lambda v: v if v and v.get("status", {}).get("phase") == "Running" else None)(
        env.vmi(VMI)), timeout=120, interval=0.5)
    pod = env.get("pod", env.launcher_pod(vmi)["metadata"]["name"])
    spec = pod["spec"]
    assert [c["name"] for c in spec["initContainers"]] == ["container-disk-root"], spec["initContainers"]
    assert not any("image" in v for v in spec["volumes"]), "no kubelet image volumes: %s" % spec["volumes"]
    res = pull_result(pod)
    assert res and res["result"] == "Succeeded", pod["status"]
    reg = res["registry"]
    print("ok - containerDisk pulled by the init container:", json.dumps(reg))
    assert reg["servedBy"] == [r2.addr], reg
    assert reg["digest"].startswith("sha256:"), reg
    assert any(f["registry"] == r1.addr for f in reg["failed"]), reg
    # the VMI says which registry served its containerDisk: an annotation and an Event
    pulls = wait_for("VMI annotated with the pull result", lambda: json.loads(
        (env.vmi(VMI) or {}).get("metadata", {}).get("annotations", {}).get("kvlite.io/container-disk-pulls", "null")),
        timeout=30, interval=0.3)
    assert pulls["root"]["registry"]["servedBy"] == [r2.addr] and pulls["root"]["result"] == "Succeeded", pulls
    events = json.loads(env.kubectl("get", "events", "-o", "json"))["items"]
    ev = [e for e in events if e["reason"] == "ContainerDiskPulled" and e["involvedObject"]["name"] == VMI]
    assert len(ev) == 1 and "served by " + r2.addr in ev[0]["message"] and r1.addr in ev[0]["message"], events
    print("ok - VMI Event ContainerDiskPulled:", ev[0]["message"])
    serial = os.path.join(env.kubelet.run_dir(pod), "serial.log")
    wait_for("guest READY on the serial console", lambda: b"KVGUEST READY" in e2e._read(serial), timeout=90,
             interval=0.5)
    st = json.loads(e2e._read(os.path.join(env.kubelet.run_dir(pod), "status.json")) or b"{}")
    if st.get("qemuPid"):
        env.qemu_pids.add(st["qemuPid"])
    print("ok - the guest booted the containerDisk served by the second registry")
    env.kubectl("delete", "vmi", VMI, "--wait=false")
    wait_for("VMI gone", lambda: env.vmi(VMI) is None, timeout=90, interval=0.5)
    print("ok - VMI deleted")


def main():
    for tool in ("docker-registry", "buildah", "qemu-img"):
        if not shutil.which(tool):
            dvt.skip("%s is not installed (ci/deps.sh installs it)" % tool)
    if not os.path.exists(os.path.join(e2e.GUEST, "disk.qcow2")):
        dvt.skip("test guest missing (tests/guest/build.sh)")
    if os.geteuid() != 0:
        dvt.skip("the kubelet stand-in needs root for its mount namespaces")
    root = tempfile.mkdtemp(prefix="kv-cdpull-e2e-")
    regs = []
    try:
        r1, r2 = Registry(root, "r1"), Registry(root, "r2")
        regs = [r1, r2]
        build_with_buildah(root, os.path.join(e2e.GUEST, "disk.qcow2"), regs)
        r1.stop()
        cfg = os.path.join(root, "registries.yaml")
        with open(cfg, "w") as f:
            json.dump({"connectTimeoutSeconds": 1,
                       "registries": [{"prefix": "vms.example", "mirrors": [
                           {"location": r1.addr, "plainHTTP": True}, {"location": r2.addr, "plainHTTP": True}]}]}, f)
        with dvt.DvEnv() as env:
            run_scenario(env, cfg, r1, r2)
        shutil.rmtree(root, ignore_errors=True)
    finally:
        for r in regs:
            r.stop()


if __name__ == "__main__":
    main()
