#!/usr/bin/env python3
# Node drain end to end (docs/virt-api.md, "Evictions and node drains"): two nodes (two kubelet stand-ins whose
# Pods share one bridge, each node its own half of the Pod CIDR), virt-controller, virt-api with its
# pods/eviction webhook (cluster default --eviction-strategy LiveMigrate) and the real `kubectl drain`:
# - a VMI with no evictionStrategy of its own (so the cluster's LiveMigrate) is marked for evacuation, drain's
#   first eviction is refused with 429 "Eviction triggered evacuation of VMI", virt-controller migrates it to the
#   other node (a kubevirt-evacuation-* VMIM), the guest's counter goes on there, and drain finishes;
# - a VMI with evictionStrategy None has its Pod evicted at once and ends (no VM restarts it).
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_e2e import (NODE, POD_NIC, Controller, Env, Kubelet, Scheduler, _read, cnt_values,  # noqa: E402
                      kernelboot_vmi_yaml, kubectl_json, skip_without_pod_network, wait_for)
from test_virtctl import VirtApi  # noqa: E402

NODE2 = "node02"


class DrainEnv(Env):
    """Env with a second node on the first one's Pod bridge (10.244.0.0/25 and 10.244.0.128/25, routed by
    the node netns) and virt-api serving the eviction webhook."""

    def _start(self):
        import tempfile
        self.srv.start()
        self.parts.append(self.srv)
        self.kubelet = Kubelet(self.srv, pod_cidr="10.244.0.0/25")
        self.parts.insert(0, self.kubelet)
        self.kubelet.start()
        self.kubelet.in_node("sysctl", "-qw", "net.ipv4.ip_forward=1")
        self.kubelet2 = Kubelet(self.srv, node=NODE2, pod_cidr="10.244.0.128/25", node_ns=self.kubelet.node_ns)
        self.parts.insert(0, self.kubelet2)  # stopped before the first kubelet removes the shared netns
        self.kubelet2.start()
        self.sched = Scheduler(self.srv.api, nodes=(NODE, NODE2))
        self.sched.start()
        self.parts.insert(0, self.sched)
        self.ctl = Controller(self.srv, "--launcher-image", "kvlite/virt-launcher:e2e").start()
        self.parts.insert(0, self.ctl)
        self.cache = tempfile.mkdtemp(prefix="kubectl-cache.", dir=self.srv.dir)
        self.qemu_pids = set()
        self.vapi = VirtApi(self, "--eviction-strategy", "LiveMigrate")
        self.parts.insert(0, self.vapi)
        return self


def with_strategy(yaml, strategy):
    return yaml.replace("\nspec:\n", "\nspec:\n  evictionStrategy: %s\n" % strategy, 1) if strategy else yaml


def running_on(env, name, node):
    return wait_for("VMI %s Running on %s" % (name, node), lambda: (lambda st: st if st.get("phase") == "Running" and
                    st.get("nodeName") == node else None)((env.vmi(name) or {}).get("status") or {}),
                    timeout=90, interval=0.5)


def test_drain(env):
    env.kubectl("apply", "-f", "-", input=kernelboot_vmi_yaml("e2e-evac", "console=ttyS0", POD_NIC))
    env.kubectl("apply", "-f", "-", input=with_strategy(kernelboot_vmi_yaml("e2e-none", "console=ttyS0", POD_NIC),
                                                        "None"))
    for name in ("e2e-evac", "e2e-none"):
        running_on(env, name, NODE)
    vmi = env.vmi("e2e-evac")
    src = env.launcher_pod(vmi)
    none_pod = env.launcher_pod(env.vmi("e2e-none"))
    src_serial = os.path.join(env.kubelet.run_dir(src), "serial.log")
    wait_for("counter on the source", lambda: cnt_values(_read(src_serial)), timeout=60, interval=0.5)
    wait_for("LiveMigratable", lambda: any(c["type"] == "LiveMigratable" and c["status"] == "True" for c in
                                           env.vmi("e2e-evac")["status"].get("conditions", [])), timeout=20)

    t0 = time.time()
    p = subprocess.run(["kubectl", "--kubeconfig", env.srv.kubeconfig, "--cache-dir", env.cache, "drain", NODE,
                        "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=150s"],
                       capture_output=True, text=True, timeout=180)
    took = time.time() - t0
    out = p.stdout + p.stderr
    print(out)
    assert p.returncode == 0, out
    assert ('admission webhook "virt-launcher-eviction-interceptor.kubevirt.io" denied the request: Eviction '
            'triggered evacuation of VMI "default/e2e-evac"') in out, out
    assert "pod/%s evicted" % none_pod["metadata"]["name"] in out and "node/%s drained" % NODE in out, out
    node = kubectl_json(env, "get", "node", NODE)
    assert node["spec"].get("unschedulable") is True, node

    # the evacuation: KubeVirt's migration object, succeeded, the VMI on node02 with its mark cleared
    migs = kubectl_json(env, "get", "vmim", "-l", "kubevirt.io/vmi-name=e2e-evac")["items"]
    assert len(migs) == 1, migs
    m = migs[0]
    assert m["metadata"]["name"].startswith("kubevirt-evacuation-") and \
        m["metadata"]["annotations"]["kubevirt.io/evacuationMigration"] == NODE, m["metadata"]
    assert m["status"]["phase"] == "Succeeded", m["status"]
    st = running_on(env, "e2e-evac", NODE2)
    assert "evacuationNodeName" not in st and st["migrationState"]["completed"], st
    assert st["migrationState"]["sourcePod"] == src["metadata"]["name"], st["migrationState"]
    pods = env.srv.api.pods_of(env.vmi("e2e-evac"))
    assert [p["spec"]["nodeName"] for p in pods] == [NODE2], [(p["metadata"]["name"], p["spec"]) for p in pods]
    # the same guest, still running: its counter goes on in the target's serial log, which never saw a boot
    tgt_serial = os.path.join(env.kubelet2.run_dir(pods[0]), "serial.log")
    last_src = cnt_values(_read(src_serial))[-1]
    got = wait_for("counter on the target", lambda: (lambda v: v if len(v) >= 2 else None)(
        cnt_values(_read(tgt_serial))), timeout=30, interval=0.5)
    assert last_src < got[0] <= last_src + 30 and got[-1] > got[0], (last_src, got[:3])
    assert b"KVGUEST READY" not in _read(tgt_serial), "the target booted a guest of its own"
    tst = json.loads(_read(os.path.join(env.kubelet2.run_dir(pods[0]), "status.json")) or b"{}")
    if tst.get("qemuPid"):
        env.qemu_pids.add(tst["qemuPid"])

    # evictionStrategy None: the Pod was evicted (its launcher powered the guest off), the VMI ended and, with
    # no VM to start another, stays ended
    phase = wait_for("e2e-none ended", lambda: (lambda ph: ph if ph in ("Succeeded", "Failed") else None)(
        (env.vmi("e2e-none") or {}).get("status", {}).get("phase")), timeout=30, interval=0.5)
    print("e2e-none after its eviction: %s" % phase)
    assert not any(p["metadata"]["name"] == none_pod["metadata"]["name"]
                   for p in env.srv.api.pods_of(env.vmi("e2e-none"))), "the evicted Pod is still there"
    print("drain took %.1f s" % took)
    for name in ("e2e-evac", "e2e-none"):
        env.kubectl("delete", "vmi", name, "--timeout=60s")
    env.kubectl("delete", "vmim", "--all", "--timeout=30s")


if __name__ == "__main__":
    skip_without_pod_network("kernelboot")
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))
    t0 = time.time()
    with DrainEnv() as env:
        test_drain(env)
    print("ok drain (%.1f s)" % (time.time() - t0))
