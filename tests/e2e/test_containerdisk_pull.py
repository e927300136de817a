#!/usr/bin/env python3
# containerDisk volumes through the registry pull path, end to end with the real kubectl: the test guest's disk
# pushed as a containerDisk image (buildah: FROM scratch / ADD disk.qcow2 /disk/, KubeVirt's layout) to two
# Debian docker-registry instances; the cluster's registry Secret lists them in that order for vms.example. The
# first registry stopped, a VMI with containerDisk {image: vms.example/vms/guest:1} → the launcher Pod's
# container-disk-root init container (kvlite-importer --container-disk) pulls it from the second into an
# emptyDir → the guest boots (serial READY), and the init container's termination message says which registry
# served it (digest pinned) and which was passed over; so do the VMI's annotation kvlite.io/container-disk-pulls
# and its Event ContainerDiskPulled. Meanwhile a second VMI boots with kernelBoot from a container image
# (vms.example/vms/kernel:1: the test guest's kernel and an initrd carrying a token, FROM scratch) pulled the same
# way by the launcher Pod's container-disk-kernelboot init container: the guest's /proc/cmdline holds the kernel
# arguments of the VMI and the guest reads the token from its initramfs.
# Usage: test_containerdisk_pull.py
import json
import os
import secrets
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import test_datavolume as dvt  # noqa: E402
import test_e2e as e2e  # noqa: E402
from kubetest import wait_for  # noqa: E402
from regfixtures import Registry, build_image, build_with_buildah  # noqa: E402

VMI = "cdpull"
KB_VMI = "kbpull"
TOKEN = "kvpull-" + secrets.token_hex(4)


def newc(entries):
    """An uncompressed cpio archive (newc, what the kernel unpacks into its initramfs) of [(name, data)]."""
    out = b""
    for ino, (name, data, mode) in enumerate([(n, d, 0o100644) for n, d in entries] + [("TRAILER!!!", b"", 0)], 1):
        nb = name.encode() + b"\0"
        fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(nb), 0)
        out += ("070701" + "".join("%08X" % v for v in fields)).encode() + nb
        out += b"\0" * (-len(out) % 4) + data
        out += b"\0" * (-len(out) % 4)
    return out + b"\0" * (-len(out) % 512)


def kernel_image(root, regs):
    """vms/kernel:1 (pushed to regs): the guest's kernel at /boot/vmlinuz and at /boot/initrd.img its initrd
    after a first archive holding /kvpull (TOKEN), as Debian puts early microcode before the compressed
    initramfs."""
    initrd = os.path.join(root, "initrd.img")
    with open(initrd, "wb") as f, open(os.path.join(e2e.GUEST, "initrd.img"), "rb") as g:
        f.write(newc([("kvpull", TOKEN.encode() + b"\n")]))
        shutil.copyfileobj(g, f)
    build_image(root, "kernel", {"vmlinuz": os.path.join(e2e.GUEST, "vmlinuz"), "initrd.img": initrd},
                "FROM scratch\nADD vmlinuz initrd.img /boot/\n", regs, "vms/kernel:1")


def kb_vmi_manifest():
    return {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
            "metadata": {"name": KB_VMI, "namespace": "default"},
            "spec": {"domain": {"memory": {"guest": "128Mi"}, "devices": {},
                                "firmware": {"kernelBoot": {"kernelArgs": "console=ttyS0 shell=1 " + TOKEN,
                                                            "container": {"image": "vms.example/vms/kernel:1",
                                                                          "kernelPath": "/boot/vmlinuz",
                                                                          "initrdPath": "/boot/initrd.img"}}}}}}


def vmi_manifest():
    return {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
            "metadata": {"name": VMI, "namespace": "default"},
            "spec": {"domain": {"memory": {"guest": "256Mi"}, "devices": {"disks": [{"name": "root", "disk": {"bus": "virtio"}}]}},
                     "volumes": [{"name": "root", "containerDisk": {"image": "vms.example/vms/guest:1"}}]}}


def pull_result(pod, name="container-disk-root"):
    """The init container's result line (its termination message), or None while it has not finished."""
    for st in pod.get("status", {}).get("initContainerStatuses") or []:
        if st["name"] == name and "terminated" in st.get("state", {}):
            msg = st["state"]["terminated"].get("message", "")
            return json.loads(msg.strip().splitlines()[-1])
    return None


def run_scenario(env, cfg, r1, r2):
    with open(cfg) as f:
        secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "kvlite-registries"},
                  "stringData": {"registries.yaml": f.read()}}
    env.kubectl("apply", "-f", "-", input=json.dumps(secret))
    env.kubectl("apply", "-f", "-", input=json.dumps(vmi_manifest()))
    env.kubectl("apply", "-f", "-", input=json.dumps(kb_vmi_manifest()))
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
    check_kernel_boot(env, r1, r2)
    for name in (VMI, KB_VMI):
        env.kubectl("delete", "vmi", name, "--wait=false")
    wait_for("VMIs gone", lambda: env.vmi(VMI) is None and env.vmi(KB_VMI) is None, timeout=90, interval=0.5)
    print("ok - VMIs deleted")


def check_kernel_boot(env, r1, r2):
    """The kernelBoot VMI: its kernel and initrd pulled by an init container (no image volume) from the second
    registry; the guest booted them with the VMI's kernelArgs and reads the token of the pushed initrd."""
    vmi = wait_for("kernelBoot VMI Running", lambda: (lambda v: v if v and v.get("status", {}).get(
        "phase") == "Running" else None)(env.vmi(KB_VMI)), timeout=120, interval=0.5)
    pod = env.get("pod", env.launcher_pod(vmi)["metadata"]["name"])
    assert [c["name"] for c in pod["spec"]["initContainers"]] == ["container-disk-kernelboot"], pod["spec"]
    assert not any("image" in v for v in pod["spec"]["volumes"]), pod["spec"]["volumes"]
    res = pull_result(pod, "container-disk-kernelboot")
    assert res and res["result"] == "Succeeded" and res["registry"]["servedBy"] == [r2.addr], res
    assert any(f["registry"] == r1.addr for f in res["registry"]["failed"]), res
    serial = os.path.join(env.kubelet.run_dir(pod), "serial.log")
    wait_for("kernelBoot guest READY", lambda: b"KVGUEST READY" in e2e._read(serial), timeout=90, interval=0.5)
    st = json.loads(e2e._read(os.path.join(env.kubelet.run_dir(pod), "status.json")) or b"{}")
    if st.get("qemuPid"):
        env.qemu_pids.add(st["qemuPid"])
    ask = dvt.guest_shell(env, pod)
    cmdline = dvt.ask_until(ask, "C", "cat /proc/cmdline", lambda got: "console=ttyS0 shell=1 " + TOKEN in got)
    got = dvt.ask_until(ask, "K", "cat /kvpull", lambda got: got == TOKEN)
    ask.close()
    assert "console=ttyS0 shell=1 " + TOKEN in cmdline, (cmdline, TOKEN)
    assert got == TOKEN, (got, TOKEN)
    print("ok - kernelBoot from vms.example/vms/kernel:1 (pulled from %s): the guest booted with the VMI's "
          "kernelArgs and reads %s from the pulled initrd" % (r2.addr, got))


def main():
    for tool in ("docker-registry", "buildah", "qemu-img"):
        if not shutil.which(tool):
            dvt.skip("%s is not installed (ci/deps.sh installs it)" % tool)
    if not all(os.path.exists(os.path.join(e2e.GUEST, f)) for f in ("disk.qcow2", "vmlinuz", "initrd.img")):
        dvt.skip("test guest missing (tests/guest/build.sh)")
    if os.geteuid() != 0:
        dvt.skip("the kubelet stand-in needs root for its mount namespaces")
    root = tempfile.mkdtemp(prefix="kv-cdpull-e2e-")
    regs = []
    try:
        r1, r2 = Registry(root, "r1"), Registry(root, "r2")
        regs = [r1, r2]
        build_with_buildah(root, os.path.join(e2e.GUEST, "disk.qcow2"), regs)
        kernel_image(root, [r2])  # the first registry is stopped before any pull anyway
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
