#!/usr/bin/env python3
"""virt-handler against the kubelet stand-in over real gRPC (the device-plugin API v1beta1):
1. one node: the agent registers its plugins, the Node shows devices.kubevirt.io/* capacity and the labels
   kvmcheck implies (both derived from kvmcheck's live verdict and the host's /dev, never constants); a Pod
   asking for devices.kubevirt.io/tun gets /dev/net/tun and no other device node; a Pod asking for a device
   the node does not advertise fails admission; on SIGTERM the agent leaves and the devices go with it.
2. two nodes, one tainted for VMs: the scheduler puts a VMI's launcher Pod (with the controller's default
   toleration) on the VM node, a plain container Pod on the other node, and keeps a Pod without the
   toleration off the VM node."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("KV_SOURCE_ROOT") or os.path.abspath(os.path.join(HERE, "..", ".."))
BUILD = os.environ.get("KV_BUILD_ROOT") or os.path.join(SRC, "build")
sys.path[:0] = [os.path.join(SRC, "tests"), os.path.join(SRC, "tests", "kube-api"),
                os.path.join(SRC, "controller", "tests")]
import hostcaps  # noqa: E402
from proclib import stop_process  # noqa: E402
from kubetest import POD_PATH, VMI_PATH, Controller, Server, vmi_manifest, wait_for  # noqa: E402

SKIP = 77
KINDS = {"kvm": "/dev/kvm", "tun": "/dev/net/tun", "vhost-net": "/dev/vhost-net", "vhost-vsock": "/dev/vhost-vsock"}
TAINT = "kvlite.io/vms=true:NoSchedule"


def kvmcheck():
    """The live verdict and the labels kvmcheck says a labeller sets."""
    exe = os.path.join(BUILD, "kvmcheck", "kvmcheck")
    verdict = json.loads(subprocess.run([exe, "--json"], capture_output=True, text=True).stdout)["verdict"]
    labels = dict(l.split("=", 1) for l in subprocess.run([exe, "--node-labels"], capture_output=True,
                                                           text=True).stdout.split())
    return verdict, labels


def expected_capacity(verdict):
    def chardev(p):
        try:
            return os.path.exists(p) and (os.stat(p).st_mode & 0o170000) == 0o020000
        except OSError:
            return False
    return {"devices.kubevirt.io/" + k: "1000" if chardev(p) and (k != "kvm" or verdict == "usable") else "0"
            for k, p in KINDS.items()}


class Node:
    def __init__(self, srv, name, tmp, *kubelet_args):
        self.name, self.srv = name, srv
        self.dp = os.path.join(tmp, name, "device-plugins")
        self.logs = os.path.join(tmp, name, "logs")
        self.kubelet_log = os.path.join(tmp, name + "-kubelet.log")
        self.agent_log = os.path.join(tmp, name + "-agent.log")
        self.kubelet = subprocess.Popen(
            [sys.executable, os.path.join(SRC, "tests", "kube-api", "kubelet.py"), "--server", srv.url,
             "--node-name", name, "--state-dir", os.path.join(tmp, name, "state"), "--log-dir", self.logs,
             "--device-plugin-dir", self.dp] + list(kubelet_args),
            stdout=subprocess.DEVNULL, stderr=open(self.kubelet_log, "w"))
        wait_for("kubelet.sock of " + name, lambda: os.path.exists(os.path.join(self.dp, "kubelet.sock")))
        self.agent = subprocess.Popen([os.path.join(BUILD, "handler", "virt-handler"), "--node-name", name,
                                       "--kubeconfig", srv.kubeconfig, "--device-plugin-dir", self.dp],
                                      stdout=subprocess.DEVNULL, stderr=open(self.agent_log, "w"))

    def node(self):
        code, node = self.srv.api.get("/api/v1/nodes/" + self.name)
        return node if code == 200 else {"metadata": {}}

    def stop(self):
        for p in (self.agent, self.kubelet):
            stop_process(p, grace=20)
        self.srv.api.request("DELETE", "/api/v1/nodes/" + self.name)  # the node leaves the cluster

    def dump(self):
        for path in (self.agent_log, self.kubelet_log):
            with open(path, errors="replace") as f:
                print("--- %s (tail)\n%s" % (path, "".join(f.readlines()[-25:])))


def pod(name, script, limits=None, node=None, selector=None):
    spec = {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", script],
                            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": limits or {}}}]}
    if node:
        spec["nodeName"] = node
    if selector:
        spec["nodeSelector"] = selector
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def pod_get(srv, name):
    return srv.api.ok("GET", POD_PATH % "default" + "/" + name)


def one_node(srv, tmp, verdict, kvm_labels):
    n = Node(srv, "n1", tmp)
    try:
        want = expected_capacity(verdict)

        def shown():
            st = n.node().get("status") or {}
            return all(st.get(k, {}).get(r) == v for r in want for k in ("capacity", "allocatable")
                       for v in [want[r]])
        try:
            wait_for("device capacity on n1 %s" % want, shown, timeout=30)
        except AssertionError:
            print("node n1 status: %s" % json.dumps(n.node().get("status")))
            raise
        labels = wait_for("kvmcheck labels on n1", lambda: (lambda l: l if all(
            l.get(k) == v for k, v in kvm_labels.items()) else None)(n.node()["metadata"].get("labels") or {}))
        assert labels.get("cpu-model.node.kubevirt.io/qemu64") == "true", labels
        features = [k for k in labels if k.startswith("cpu-feature.node.kubevirt.io/")]
        assert bool(features) == (verdict == "usable"), (verdict, features)
        print("n1: capacity %s, kvm %s, %d CPU feature labels" % (want, verdict, len(features)))

        # a Pod with devices.kubevirt.io/tun sees /dev/net/tun and nothing beyond a runtime's standard nodes
        if want["devices.kubevirt.io/tun"] != "0":
            srv.api.create(POD_PATH % "default", pod("tun", "ls -A /dev; ls -A /dev/net; test -c /dev/net/tun && "
                                                     "echo TUN-OK", {"devices.kubevirt.io/tun": "1"}, node="n1"))
            wait_for("Pod tun done", lambda: pod_get(srv, "tun")["status"].get("phase") in ("Succeeded", "Failed"))
            with open(os.path.join(n.logs, "default_tun_c.log")) as f:
                out = f.read().split()
            assert pod_get(srv, "tun")["status"]["phase"] == "Succeeded" and out[-1] == "TUN-OK", out
            seen = set(out[:-2])
            standard = {"null", "zero", "full", "random", "urandom", "tty", "shm", "pts", "fd", "stdin", "stdout",
                        "stderr", "net", "termination-log"}
            assert seen <= standard and "net" in seen and out[-2] == "tun", out
            assert not seen & {"kvm", "vhost-net", "vhost-vsock", "sda", "mem"}, out
            print("Pod tun: /dev holds %s and net/tun only" % sorted(seen))
        # a device the node does not advertise: admission fails, as the kubelet's does
        if want["devices.kubevirt.io/kvm"] == "0":
            srv.api.create(POD_PATH % "default", pod("kvm", "true", {"devices.kubevirt.io/kvm": "1"}, node="n1"))
            st = wait_for("Pod kvm rejected", lambda: (lambda s: s if s.get("phase") == "Failed" else None)(
                pod_get(srv, "kvm")["status"]))
            assert st["reason"] == "UnexpectedAdmissionError" and "devices.kubevirt.io/kvm" in st["message"], st

        # the agent leaves on SIGTERM: exit 0, sockets gone, the kubelet drops the devices
        n.agent.send_signal(signal.SIGTERM)
        assert n.agent.wait(20) == 0
        left = [f for f in os.listdir(n.dp) if f.startswith("kubevirt-")]
        assert not left, left
        wait_for("devices gone from n1", lambda: all(
            (n.node()["status"]["allocatable"].get(r) or "0") == "0" for r in want), timeout=30)
    except BaseException:
        n.dump()
        raise
    finally:
        n.stop()


def two_nodes(srv, tmp, verdict):
    from kubelet import Client
    from scheduler import Scheduler
    vm = Node(srv, "vm1", tmp, "--register-with-taint", TAINT, "--node-label", "kvlite.io/vm-node=true")
    plain = Node(srv, "plain1", tmp)
    sched = Scheduler(Client(srv.url))
    sched.start()
    emulation = [] if expected_capacity(verdict)["devices.kubevirt.io/kvm"] != "0" else ["--use-emulation"]
    ctl = Controller(srv, "--launcher-image", "kvlite/virt-launcher:test", "--vm-toleration", TAINT,
                     *emulation).start()
    try:
        for n in (vm, plain):
            wait_for("node agent labels on " + n.name, lambda: n.node()["metadata"].get("labels", {}).get(
                "kubevirt.io/schedulable") == "true", timeout=30)
        vmi = vmi_manifest("placed")
        vmi["spec"]["nodeSelector"] = {"kvlite.io/vm-node": "true"}
        srv.api.create(VMI_PATH % "default", vmi)
        launcher = wait_for("launcher Pod bound", lambda: next(
            (p for p in srv.api.items(POD_PATH % "default", "kubevirt.io/created-by") if p["spec"].get("nodeName")),
            None), timeout=30)
        assert launcher["spec"]["nodeName"] == "vm1", launcher["spec"]
        assert any(t.get("key") == "kvlite.io/vms" for t in launcher["spec"]["tolerations"])
        assert launcher["spec"]["containers"][0]["resources"]["limits"]["devices.kubevirt.io/tun"] == "1"
        print("launcher Pod on %s, %s" % (launcher["spec"]["nodeName"], "emulation" if emulation else "KVM"))

        srv.api.create(POD_PATH % "default", pod("web", "sleep 30"))
        bound = wait_for("web bound", lambda: pod_get(srv, "web")["spec"].get("nodeName"))
        assert bound == "plain1", bound
        srv.api.create(POD_PATH % "default", pod("intruder", "sleep 30", selector={"kvlite.io/vm-node": "true"}))
        cond = wait_for("intruder unschedulable", lambda: next(
            (c for c in pod_get(srv, "intruder")["status"].get("conditions") or []
             if c["type"] == "PodScheduled" and c["status"] == "False"), None))
        time.sleep(0.5)
        assert not pod_get(srv, "intruder")["spec"].get("nodeName")
        assert "untolerated taint {kvlite.io/vms: true}" in cond["message"], cond
        print("plain Pod on plain1; a Pod without the toleration stays off vm1: %s" % cond["message"])
    except BaseException:
        vm.dump()
        plain.dump()
        for p in srv.api.items(POD_PATH % "default"):
            print("pod %s node=%s status=%s" % (p["metadata"]["name"], p["spec"].get("nodeName"), p.get("status")))
        with open(ctl.logpath, errors="replace") as f:
            print("--- controller (tail)\n" + "".join(f.readlines()[-15:]))
        raise
    finally:
        sched.stop()
        ctl.stop()
        for n in (vm, plain):
            n.stop()


def main():
    why = hostcaps.missing("root", "mountns")
    if why:
        print("SKIP: %s" % why)
        return SKIP
    try:
        from deviceplugin import load
        load()
    except ImportError as e:
        print("SKIP: the test kubelet's gRPC side is unavailable (python3-grpcio, python3-protobuf, protoc): %s" % e)
        return SKIP
    verdict, kvm_labels = kvmcheck()
    tmp = tempfile.mkdtemp(prefix="node-agent-test.")
    srv = Server().start()
    try:
        one_node(srv, tmp, verdict, kvm_labels)
        two_nodes(srv, tmp, verdict)
    finally:
        srv.stop()
    shutil.rmtree(tmp, ignore_errors=True)  # kept when the test fails
    print("node agent: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
