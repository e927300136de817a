#!/usr/bin/env python3
# DataVolumes end to end with the real kubectl: two Debian docker-registry instances on loopback hold the test
# guest's disk as a VM image (buildah: FROM scratch / ADD disk.qcow2 /disk/; its syslinux line gets diskw=vdb so
# the guest writes a counter to its second disk). A VM with a registry dataVolumeTemplate (system disk) and a
# blank one (data disk) → every registry down: the DataVolume's import fails with a clear reason, is retried
# with backoff, the VM shows DataVolumeError → the second registry back: Succeeded, served by it, the first
# named as passed over → the VM boots the imported disk (serial READY) and the guest writes its data disk →
# the VM deleted: DataVolumes and claims kept, marked with the VM → the VM created again: adopted, no importer
# Pod, the guest runs on the same disks. The kubelet stand-in runs on the host network (the registries listen
# on the host's loopback) and binds claims to directories (--provision-claims).
# Usage: test_datavolume.py
import gzip
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import test_e2e as e2e  # noqa: E402
from kubetest import BUILD, POD_PATH, wait_for  # noqa: E402

sys.path.insert(0, os.path.join(e2e.SRC, "importer", "tests"))
from regfixtures import Registry, build_with_buildah, htpasswd_file, make_tls, run  # noqa: E402
import authhttp  # noqa: E402

VM = "dvvm"
REF = "docker://vms.example/vms/guest:1"
TLS_DV = "dvtls"


def skip(why):
    print("SKIP: " + why)
    sys.exit(77)


class DvEnv(e2e.Env):
    kubelet_opts = {"host_network": True, "extra": ["--provision-claims"],
                    "path": [os.path.join(BUILD, "importer")]}
    schedule = ("kubevirt.io=virt-launcher", "app=containerized-data-importer")
    controller_args = ("--importer-image", "kvlite/importer:e2e", "--registry-config", "default/kvlite-registries")

    def __init__(self):
        super().__init__()
        self.srv.extra += ["--pod-log-dir", os.path.join(self.srv.dir, "kubelet", "logs")]

    def get(self, kind, name):
        out = self.kubectl("get", kind, name, "-o", "json", check=False)
        return json.loads(out) if out.strip() else None

    def claim_file(self, claim):
        return os.path.join(self.kubelet.state, "claims", "default", claim, "disk.img")

    def importer_pods(self):
        return [p for p in self.srv.api.items(POD_PATH % "default", "app=containerized-data-importer")]


def guest_image(root):
    """The guest's disk with diskw=vdb shell=1 on its kernel line: the guest writes DISKCNT <n> to its second disk
    and has a shell on its serial console."""
    raw = os.path.join(root, "disk.raw")
    run("qemu-img", "convert", "-O", "raw", os.path.join(e2e.GUEST, "disk.qcow2"), raw)
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
    cfg = subprocess.run(["mtype", "-i", raw, "::/syslinux.cfg"], check=True, capture_output=True, text=True,
                         env=env).stdout
    assert "APPEND console=ttyS0" in cfg, cfg
    path = os.path.join(root, "syslinux.cfg")
    with open(path, "w") as f:
        f.write(cfg.replace("APPEND console=ttyS0", "APPEND console=ttyS0 diskw=vdb shell=1"))
    subprocess.run(["mcopy", "-o", "-i", raw, path, "::/syslinux.cfg"], check=True, capture_output=True, env=env)
    disk = os.path.join(root, "disk.qcow2")
    run("qemu-img", "convert", "-O", "qcow2", raw, disk)
    return disk


def vm_manifest():
    disk = lambda name, boot=None: dict({"name": name, "disk": {"bus": "virtio"}}, **({"bootOrder": boot} if boot else {}))
    return {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": {"name": VM, "namespace": "default"},
            "spec": {"runStrategy": "Always",
                     "dataVolumeTemplates": [
                         {"metadata": {"name": VM + "-root", "labels": {"disk": "root"}},
                          "spec": {"source": {"registry": {"url": REF}},
                                   "storage": {"resources": {"requests": {"storage": "1Gi"}}}}},
                         {"metadata": {"name": VM + "-data"},
                          "spec": {"source": {"blank": {}}, "storage": {"resources": {"requests": {"storage": "1Mi"}}}}}],
                     "template": {"spec": {
                         "domain": {"memory": {"guest": "256Mi"},
                                    "devices": {"disks": [disk("root", 1), disk("data")]}},
                         "volumes": [{"name": "root", "dataVolume": {"name": VM + "-root"}},
                                     {"name": "data", "dataVolume": {"name": VM + "-data"}}]}}}}


def tls_objects(r3, ca):
    """CDI's per-DataVolume credentials and CA: a Secret with accessKeyId/secretKey, a ConfigMap with ca.crt,
    and a DataVolume from the TLS+htpasswd registry using both (no cluster registry configuration applies)."""
    with open(ca) as f:
        pem = f.read()
    return [{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "tls-auth"},
             "stringData": {"accessKeyId": "kv", "secretKey": "s3cret"}},
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "tls-ca"}, "data": {"ca.crt": pem}},
            {"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume", "metadata": {"name": TLS_DV},
             "spec": {"source": {"registry": {"url": "docker://%s/vms/guest:1" % r3.addr, "secretRef": "tls-auth",
                                              "certConfigMap": "tls-ca"}},
                      "storage": {"resources": {"requests": {"storage": "1Gi"}}}}}]


HTTP_DV, HTTP_BAD_DV = "dvhttp", "dvhttp-bad"
HTTP_HEADERS = {"X-Api-Token": "t0k3n", "X-Secret-Token": "s3cr3t-hdr"}


def http_server(root, crt, key):
    """The test guest's disk, gz-compressed, on an https server that wants basic auth kv:s3cret and both
    HTTP_HEADERS (authhttp.AuthServer)."""
    www = os.path.join(root, "www")
    os.makedirs(www)
    with open(os.path.join(e2e.GUEST, "disk.qcow2"), "rb") as f, \
            gzip.open(os.path.join(www, "disk.qcow2.gz"), "wb", compresslevel=1) as g:
        shutil.copyfileobj(f, g)
    return authhttp.AuthServer(www, 0, "kv", "s3cret", HTTP_HEADERS, tls=(crt, key))


def http_objects(srv, ca):
    """CDI's http source with everything: secretRef, certConfigMap (ca.pem, as `kubectl create configmap
    --from-file=ca.pem` in CDI's docs), extraHeaders and secretExtraHeaders; and the same with a wrong secretKey."""
    with open(ca) as f:
        pem = f.read()

    def dv(name, secret):
        return {"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume", "metadata": {"name": name},
                "spec": {"source": {"http": {"url": srv.url("disk.qcow2.gz"), "secretRef": secret,
                                             "certConfigMap": "http-ca", "extraHeaders": ["X-Api-Token: t0k3n"],
                                             "secretExtraHeaders": ["http-hdr"]}},
                         "storage": {"resources": {"requests": {"storage": "1Gi"}}}}}
    secret = lambda name, data: {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": data}
    return [secret("http-auth", {"accessKeyId": "kv", "secretKey": "s3cret"}),
            secret("http-bad", {"accessKeyId": "kv", "secretKey": "wrong"}),
            secret("http-hdr", {"token": "X-Secret-Token: s3cr3t-hdr"}),
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "http-ca"}, "data": {"ca.pem": pem}},
            dv(HTTP_DV, "http-auth"), dv(HTTP_BAD_DV, "http-bad")]


def check_http(env, srv):
    """The https DataVolume Succeeded with the source's bytes; the one with a wrong secret keeps failing (CDI:
    ImportInProgress, the importer restarted) with Running False reason Error and a Warning Event naming the 401."""
    d = wait_for("https DataVolume Succeeded", lambda: (lambda x: x if x["status"].get("phase") == "Succeeded" else None)(
        env.get("dv", HTTP_DV)), timeout=60, interval=0.5)
    same = subprocess.run(["qemu-img", "compare", "-q", os.path.join(e2e.GUEST, "disk.qcow2"),
                           env.claim_file(HTTP_DV)]).returncode
    got = srv.served("disk.qcow2.gz")
    assert same == 0 and got and all(r[3].get(k) == v for r in got for k, v in HTTP_HEADERS.items()), (same, got)
    print("ok - https DataVolume (secretRef, certConfigMap, extraHeaders, secretExtraHeaders) Succeeded; disk.img "
          "is the source's disk:", condition(d, "Running")["message"])

    def refused():
        b = env.get("dv", HTTP_BAD_DV)
        c = condition(b, "Running")
        return b if c.get("reason") == "Error" and "HTTP 401 Unauthorized" in c.get("message", "") and \
            b["status"].get("restartCount", 0) >= 1 else None
    b = wait_for("https DataVolume with a wrong secret failing and retried", refused, timeout=60, interval=0.5)
    assert b["status"]["phase"] == "ImportInProgress" and not os.path.exists(env.claim_file(HTTP_BAD_DV)), b["status"]
    events = json.loads(env.kubectl("get", "events", "-o", "json"))["items"]
    ev = [e for e in events if e["involvedObject"]["name"] == HTTP_BAD_DV and e["type"] == "Warning" and
          e["reason"] == "Error" and "HTTP 401 Unauthorized" in e["message"]]
    assert ev and not srv.served("disk.qcow2.gz")[len(got):], (events, srv.requests)
    print("ok - https DataVolume with a wrong secret: %s, restarts %d, Event %s: %s" % (
        b["status"]["phase"], b["status"]["restartCount"], ev[0]["reason"], ev[0]["message"]))
    env.kubectl("delete", "dv", HTTP_BAD_DV, "--timeout=30s")


def guest_shell(env, pod):
    """ask(tag, cmd) -> cmd's output from the guest's serial shell, typed through the launcher's control socket."""
    run_dir = env.kubelet.run_dir(pod)
    con = socket.socket(socket.AF_UNIX)
    con.settimeout(5)
    con.connect(os.path.join(run_dir, "control.sock"))
    con.sendall(b'{"cmd":"console"}\n')
    line = b""
    while not line.endswith(b"\n"):
        line += con.recv(1)
    assert json.loads(line)["ok"], line

    def ask(tag, cmd):
        con.sendall(('echo "%s: $(%s) :%s"\n' % (tag, cmd, tag)).encode())
        answer = re.compile(r"%s: ([^$\n]*) :%s" % (tag, tag))  # the typed line (echoed) has a "$"
        got = wait_for("guest answers " + tag, lambda: answer.search(
            e2e._read(os.path.join(run_dir, "serial.log")).decode(errors="replace")), timeout=20, interval=0.2)
        return got.group(1).strip()
    ask.close = con.close
    return ask


def ask_until(ask, tag, cmd, ok, tries=4):
    """cmd's output once ok(output) holds, asked again (a new tag each time) while it does not: QEMU's console
    log can double or drop a byte of a line under load. The last answer when none held."""
    got = None
    for i in range(tries):
        got = ask("%s%d" % (tag, i), cmd)
        if ok(got):
            break
    return got


def condition(obj, ctype):
    return next((c for c in (obj or {}).get("status", {}).get("conditions", []) if c["type"] == ctype), {})


def disk_counter(path):
    """n of the DISKCNT line the guest wrote to sector 0 of its data disk, or None."""
    try:
        with open(path, "rb") as f:
            head = f.read(32).split(b"\n")[0]
    except OSError:
        return None
    return int(head.split()[1]) if head.startswith(b"DISKCNT ") else None


def wait_guest(env, timeout=120):
    vmi = wait_for("VMI Running", lambda: (lambda v: v if v and v.get("status", {}).get("phase") == "Running" else None)(
        env.vmi(VM)), timeout=timeout, interval=0.5)
    pod = env.launcher_pod(vmi)
    serial = os.path.join(env.kubelet.run_dir(pod), "serial.log")
    wait_for("guest READY on the serial console", lambda: b"KVGUEST READY" in e2e._read(serial), timeout=90,
             interval=0.5)
    st = json.loads(e2e._read(os.path.join(env.kubelet.run_dir(pod), "status.json")) or b"{}")
    if st.get("qemuPid"):
        env.qemu_pids.add(st["qemuPid"])
    return vmi, pod


def main():
    for tool in ("docker-registry", "buildah", "skopeo", "qemu-img", "mtype", "mcopy", "openssl", "htpasswd"):
        if not shutil.which(tool):
            skip("%s is not installed (ci/deps.sh installs it)" % tool)
    if not os.path.exists(os.path.join(e2e.GUEST, "disk.qcow2")):
        skip("test guest missing (tests/guest/build.sh)")
    if os.geteuid() != 0:
        skip("the kubelet stand-in needs root for its mount namespaces")
    root = tempfile.mkdtemp(prefix="kv-dv-e2e-")
    regs, srv = [], None
    try:
        ca, crt, key = make_tls(root)
        r1, r2 = Registry(root, "r1"), Registry(root, "r2")
        r3 = Registry(root, "r3", tls=(crt, key), htpasswd=htpasswd_file(root, "kv", "s3cret"))
        regs = [r1, r2, r3]
        build_with_buildah(root, guest_image(root), regs, creds="kv:s3cret")
        srv = http_server(root, crt, key)
        r1.stop()
        r2.stop()
        cfg = os.path.join(root, "registries.yaml")
        with open(cfg, "w") as f:
            json.dump({"connectTimeoutSeconds": 1, "lowSpeedTimeoutSeconds": 5,
                       "registries": [{"prefix": "vms.example", "mirrors": [
                           {"location": r1.addr, "plainHTTP": True}, {"location": r2.addr, "plainHTTP": True}]}]}, f)
        with DvEnv() as env:
            run_scenario(env, cfg, r1, r2, (r3, ca), (srv, ca))
        shutil.rmtree(root, ignore_errors=True)
    finally:
        for r in regs:
            r.stop()
        if srv:
            srv.stop()


def run_scenario(env, cfg, r1, r2, tls=None, https=None):
    root_dv, data_dv = VM + "-root", VM + "-data"
    with open(cfg) as f:
        secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "kvlite-registries"},
                  "stringData": {"registries.yaml": f.read()}}
    env.kubectl("apply", "-f", "-", input=json.dumps(secret))
    env.kubectl("apply", "-f", "-", input=json.dumps(vm_manifest()))
    if tls:  # imported meanwhile, from the TLS registry with the DataVolume's own secretRef and certConfigMap
        for obj in tls_objects(*tls):
            env.kubectl("apply", "-f", "-", input=json.dumps(obj))
    for obj in http_objects(*https) if https else []:
        env.kubectl("apply", "-f", "-", input=json.dumps(obj))

    # 1. Every registry down: the import fails with the registries' reasons, the importer is restarted with
    #    backoff, the VM says DataVolumeError and has no VMI.
    def failing():
        dv = env.get("dv", root_dv)
        run_c = condition(dv, "Running")
        ok = run_c.get("status") == "False" and run_c.get("reason") == "Error" and dv["status"].get("restartCount", 0) >= 2
        return dv if ok else None
    dv = wait_for("DataVolume import failing and retried", failing, timeout=90, interval=0.5)
    msg = condition(dv, "Running")["message"]
    print("ok - all registries down:", dv["status"]["phase"], "restarts", dv["status"]["restartCount"], "-", msg)
    assert r1.addr in msg and r2.addr in msg and "exit 3" in msg, msg
    assert dv["status"]["phase"] == "ImportInProgress", dv["status"]
    vm = wait_for("VM DataVolumeError", lambda: (lambda v: v if v.get("status", {}).get("printableStatus") ==
                                                 "DataVolumeError" else None)(env.get("vm", VM)), timeout=30)
    assert env.vmi(VM) is None, "no VMI while the disk is not imported"
    row = env.kubectl("get", "vm", VM, "--no-headers").split()
    assert row[2] == "DataVolumeError", row
    data = env.get("dv", data_dv)
    assert data["status"]["phase"] == "Succeeded" and os.path.getsize(env.claim_file(data_dv)) == 1 << 20, data["status"]
    owner = dv["metadata"]["ownerReferences"][0]
    assert owner["kind"] == "VirtualMachine" and owner["name"] == VM and owner["controller"], owner
    assert dv["metadata"]["labels"]["kubevirt.io/created-by"] == vm["metadata"]["uid"], dv["metadata"]
    assert dv["metadata"]["labels"]["disk"] == "root"
    pvc = env.get("pvc", root_dv)
    assert pvc["metadata"]["ownerReferences"][0]["kind"] == "DataVolume", pvc["metadata"]

    # 2. The second registry back: the next retry imports from it; the status says who served, who failed.
    r2.start()
    dv = wait_for("DataVolume Succeeded", lambda: (lambda d: d if d["status"].get("phase") == "Succeeded" else None)(
        env.get("dv", root_dv)), timeout=90, interval=0.5)
    reg = dv["status"]["registry"]
    assert reg["servedBy"] == [r2.addr] and reg["resolvedBy"] == r2.addr, reg
    assert any(f["registry"] == r1.addr for f in reg["failed"]), reg
    ran = condition(dv, "Running")
    assert ran["reason"] == "Completed" and "served by " + r2.addr in ran["message"] and r1.addr in ran["message"], ran
    assert condition(dv, "Ready")["status"] == "True" and condition(dv, "Bound")["status"] == "True", dv["status"]
    row = env.kubectl("get", "dv", root_dv, "--no-headers").split()
    assert row[1:3] == ["Succeeded", "100.0%"] and int(row[3]) >= 2, row
    print("ok - imported:", " ".join(row), "-", ran["message"])
    if tls:
        t = wait_for("DataVolume from the TLS registry Succeeded", lambda: (lambda d: d if d["status"].get(
            "phase") == "Succeeded" else None)(env.get("dv", TLS_DV)), timeout=60, interval=0.5)
        assert t["status"]["registry"]["servedBy"] == [tls[0].addr], t["status"]
        assert json.loads(run("qemu-img", "info", "--output=json", env.claim_file(TLS_DV)).stdout)["format"] == "raw"
        print("ok - DataVolume with secretRef + certConfigMap imported from the TLS+htpasswd registry:",
              condition(t, "Running")["message"])
    if https:
        check_http(env, https[0])
    wait_for("importer Pods deleted", lambda: not env.importer_pods(), timeout=30)
    events = json.loads(env.kubectl("get", "events", "-o", "json"))["items"]
    assert any(e["reason"] == "ImportSucceeded" and e["involvedObject"]["name"] == root_dv and r2.addr in e["message"]
               for e in events), events
    out = subprocess.run(["qemu-img", "compare", "-q", os.path.join(e2e.GUEST, "disk.qcow2"),
                          env.claim_file(root_dv)], capture_output=True)
    # the image carries diskw=vdb in syslinux.cfg: the same size, different bytes; a raw disk of that size
    info = json.loads(run("qemu-img", "info", "--output=json", env.claim_file(root_dv)).stdout)
    assert info["format"] == "raw" and out.returncode in (0, 1), (info, out)

    # 3. The VM boots the imported disk; the guest writes its data disk.
    vmi, pod = wait_guest(env)
    vols = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert vols["vol-root"]["persistentVolumeClaim"]["claimName"] == root_dv, pod["spec"]["volumes"]
    n = wait_for("guest writes DISKCNT to its data disk", lambda: (lambda c: c if c and c >= 3 else None)(
        disk_counter(env.claim_file(data_dv))), timeout=60, interval=0.5)
    print("ok - VM Running from the imported disk; the guest wrote DISKCNT %d" % n)
    marker = "DVMARK-" + secrets.token_hex(4)
    ask = guest_shell(env, pod)
    wrote = ask("W", "echo %s | dd of=/dev/vdb bs=512 seek=8 conv=sync,fsync 2>/dev/null && echo done" % marker)
    ask.close()
    assert wrote == "done", wrote
    print("ok - the guest wrote %s to sector 8 of its data disk" % marker)

    # 4. Delete the VM: VMI and Pod go; DataVolumes and claims stay, marked with the VM.
    old = {name: env.get("dv", name)["metadata"]["uid"] for name in (root_dv, data_dv)}
    env.kubectl("delete", "vm", VM, "--timeout=60s")
    wait_for("VMI and launcher Pod gone", lambda: env.vmi(VM) is None and not env.srv.api.pods_of(vmi), timeout=60)
    kept = disk_counter(env.claim_file(data_dv))
    for name in (root_dv, data_dv):
        dv = env.get("dv", name)
        assert dv and dv["metadata"]["uid"] == old[name], name
        assert not dv["metadata"].get("ownerReferences"), dv["metadata"]
        assert dv["metadata"]["annotations"]["kvlite.io/retained-from-vm"] == VM, dv["metadata"]
        assert env.get("pvc", name), name
    assert kept and kept >= n, (kept, n)
    print("ok - VM deleted; DataVolumes and claims kept; data disk holds DISKCNT %d" % kept)

    # 5. The VM again: its DataVolumes are adopted (no importer Pod), the guest runs on the same disks.
    seen_importers = []
    env.kubectl("apply", "-f", "-", input=json.dumps(vm_manifest()))
    vm = wait_for("VM adopts its DataVolumes", lambda: (lambda v, d: v if v and d.get("metadata", {}).get(
        "ownerReferences", [{}])[0].get("uid") == v["metadata"]["uid"] else None)(env.get("vm", VM), env.get("dv", root_dv)),
        timeout=30, interval=0.3)
    assert disk_counter(env.claim_file(data_dv)) >= kept, "the data disk still holds what the guest wrote"

    def running():
        seen_importers.extend(p["metadata"]["name"] for p in env.importer_pods())
        v = env.vmi(VM)
        return v if v and v.get("status", {}).get("phase") == "Running" else None
    wait_for("VMI Running again", running, timeout=120, interval=0.3)
    assert not seen_importers, seen_importers
    for name in (root_dv, data_dv):
        dv = env.get("dv", name)
        assert dv["metadata"]["uid"] == old[name] and dv["status"]["phase"] == "Succeeded", dv
        assert "kvlite.io/retained-from-vm" not in dv["metadata"].get("annotations", {}), dv["metadata"]
    vmi, pod = wait_guest(env)
    ask = guest_shell(env, pod)
    got = ask("R", "dd if=/dev/vdb bs=512 skip=8 count=1 2>/dev/null | head -n 1")
    ask.close()
    assert got == marker, (got, marker)
    wait_for("the new guest writes the kept data disk", lambda: (lambda c: c is not None and c < kept)(
        disk_counter(env.claim_file(data_dv))), timeout=60, interval=0.5)
    print("ok - VM created again: DataVolumes adopted (uids kept, no importer Pod); the guest reads back %s from "
          "its data disk" % marker)


if __name__ == "__main__":
    main()
