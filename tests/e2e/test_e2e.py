#!/usr/bin/env python3
# End to end on one machine: real kubectl → API test server → virt-controller → launcher Pod → kubelet
# stand-in → virt-launcher → QEMU (TCG) boots the test guest. Every Pod gets its own network namespace from the
# kubelet stand-in (--pod-cidr), its veth on a bridge in a node netns made here, so virt-launcher runs with
# --pod-network as in a cluster and nothing touches the machine's own namespace.
# Usage: test_e2e.py [vmi|vm_always|vm_halted|kernelboot_secret|pod_network|migration|migration_abort|
#                    migration_postcopy|hotplug]
import ipaddress
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

SRC = os.environ.get("KV_SOURCE_ROOT") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(SRC, "controller", "tests"))
sys.path.insert(0, os.path.join(SRC, "tests", "kube-api"))
sys.path.insert(0, os.path.join(SRC, "kvmcheck"))
sys.path.insert(0, os.path.join(SRC, "tests"))
import hostcaps  # noqa: E402
from proclib import stop_process  # noqa: E402
import hostkvm  # noqa: E402
from kubetest import BUILD, POD_PATH, Controller, Server, cleanup, wait_for  # noqa: E402
from kubelet import cleanup_state, netns_kill_all  # noqa: E402

GUEST = os.environ.get("KV_GUEST_DIR") or os.path.join(SRC, ".cache", "guest")
NODE = "node01"
POD_CIDR = "10.244.0.0/24"
POD_CIDR6 = "fd00:10:244::/120"  # dual-stack Envs: a Pod's IPv6 address has its IPv4 address' offset


class Kubelet:
    def __init__(self, srv, host_network=False, extra=(), path=(), dual_stack=False, node=NODE, pod_cidr=POD_CIDR,
                 node_ns=None):
        """node_ns: a node netns another Kubelet made (several nodes on one Pod bridge); else one of its own."""
        self.srv, self.proc, self.dual_stack = srv, None, dual_stack
        self.node, self.pod_cidr, self.shared_ns = node, pod_cidr, node_ns
        self.state = os.path.join(srv.dir, "kubelet" if node == NODE else "kubelet-" + node)
        self.node_ns = None
        self.host_network, self.extra, self.path = host_network, list(extra), list(path)

    def start(self):
        bins = [os.path.join(BUILD, "launcher", "supervisor")] + self.path
        env = dict(os.environ, PATH=":".join(bins + [os.environ["PATH"]]))
        self.log = open(os.path.join(self.srv.dir, os.path.basename(self.state) + ".log"), "ab")
        net = ["--host-network"]
        if self.shared_ns:
            net = ["--pod-cidr", self.pod_cidr, "--node-netns", self.shared_ns]
        elif not self.host_network:
            self.node_ns = "kvle2e-%d" % os.getpid()  # the node's netns: holds the Pod bridge, has no uplink
            subprocess.run(["ip", "netns", "add", self.node_ns], check=True, capture_output=True)
            net = ["--pod-cidr", self.pod_cidr, "--node-netns", self.node_ns]
            if self.dual_stack:
                net += ["--pod-cidr6", POD_CIDR6]
        self.proc = subprocess.Popen([sys.executable, os.path.join(SRC, "tests", "kube-api", "kubelet.py"),
                                      "--server", self.srv.url, "--node-name", self.node, "--state-dir", self.state,
                                      "--serviceaccount-dir", self.srv.sa_dir,
                                      "--in-cluster-server", self.srv.info["https_url"]] + net + self.extra,
                                     stdout=subprocess.DEVNULL, stderr=self.log, env=env)
        return self

    def in_node(self, *cmd, timeout=20):
        return subprocess.run(["ip", "netns", "exec", self.node_ns or self.shared_ns, *cmd], capture_output=True, text=True,
                              timeout=timeout)

    def run_dir(self, pod):
        return os.path.join(self.state, "pods", pod["metadata"]["uid"], "volumes", "run")

    def stop(self):
        stop_process(self.proc, grace=30)
        # whatever the kubelet left (it may have been killed): Pod netns with their processes, then the node's
        left = cleanup_state(self.state)
        if left:
            print("removed Pod network namespaces the kubelet left: %s" % left, file=sys.stderr)
        if self.node_ns:
            netns_kill_all(self.node_ns)
            subprocess.run(["ip", "netns", "del", self.node_ns], capture_output=True)
            self.node_ns = None


class Scheduler(threading.Thread):
    """The scheduler's one job here: bind unscheduled launcher Pods to the kubelet's node (with several
    nodes: the first one not cordoned)."""

    def __init__(self, api, selectors=("kubevirt.io=virt-launcher",), nodes=(NODE,)):
        super().__init__(daemon=True)
        self.api, self.halt, self.selectors, self.nodes = api, threading.Event(), selectors, nodes

    def node(self, api):
        for n in self.nodes[:-1]:
            code, obj = api.get("/api/v1/nodes/" + n)
            if code == 200 and not (obj.get("spec") or {}).get("unschedulable"):
                return n
        return self.nodes[-1]

    def run(self):
        from kubetest import Api
        api = Api(self.api.port)
        while not self.halt.wait(0.1):
            try:
                for p in [p for sel in self.selectors for p in api.items(POD_PATH % "default", sel)]:
                    if not p["spec"].get("nodeName") and not p["metadata"].get("deletionTimestamp"):
                        api.merge("%s/%s" % (POD_PATH % "default", p["metadata"]["name"]),
                                  {"spec": {"nodeName": self.node(api)}})
            except Exception as e:  # the server may be stopping
                print("scheduler: %s" % e, file=sys.stderr)

    def stop(self):
        self.halt.set()


class Env:
    kubelet_opts = {}  # Kubelet(host_network=, extra=, path=, dual_stack=)
    schedule = ("kubevirt.io=virt-launcher",)  # the Pods the Scheduler binds
    controller_args = ()

    def __init__(self):
        self.srv = Server("--tls-port", "0")
        self.srv.sa_dir = os.path.join(self.srv.dir, "sa")
        self.srv.extra += ["--serviceaccount-dir", self.srv.sa_dir]
        self.parts = []

    def __enter__(self):
        try:
            return self._start()
        except BaseException:
            self.__exit__(None, None, None)  # __exit__ does not run when __enter__ raises
            raise

    def _start(self):
        self.srv.start()
        self.parts.append(self.srv)
        self.kubelet = Kubelet(self.srv, **self.kubelet_opts)
        self.parts.insert(0, self.kubelet)  # before start: its stop() removes the node netns start() makes
        self.kubelet.start()
        self.sched = Scheduler(self.srv.api, self.schedule)
        self.sched.start()
        self.parts.insert(0, self.sched)
        self.ctl = Controller(self.srv, "--launcher-image", "kvlite/virt-launcher:e2e", *self.controller_args).start()
        self.parts.insert(0, self.ctl)
        self.cache = tempfile.mkdtemp(prefix="kubectl-cache.", dir=self.srv.dir)
        self.qemu_pids = set()
        return self

    def __exit__(self, *exc):
        if exc[0] and hasattr(self, "ctl"):
            for name, path in (("controller", self.ctl.logpath), ("kubelet", os.path.join(self.srv.dir, "kubelet.log"))):
                with open(path, errors="replace") as f:
                    print("--- %s log (tail)\n%s" % (name, "".join(f.readlines()[-30:])))
        cleanup(*self.parts)
        for pid in getattr(self, "qemu_pids", ()):  # never leave a QEMU behind, whatever failed
            try:
                os.kill(pid, 9)
            except OSError:
                pass
        if not exc[0]:
            self.srv.remove()

    def kubectl(self, *args, input=None, check=True):
        p = subprocess.run(["kubectl", "--kubeconfig", self.srv.kubeconfig, "--cache-dir", self.cache, *args],
                           input=input, capture_output=True, text=True, timeout=60)
        if check and p.returncode != 0:
            raise AssertionError("kubectl %s: rc %d\n%s%s" % (" ".join(args), p.returncode, p.stdout, p.stderr))
        return p.stdout

    def vmi_row(self, name):
        out = self.kubectl("get", "vmi", name, "--no-headers", check=False).split()
        return out

    def vmi(self, name):
        code, obj = self.srv.api.get("/apis/kubevirt.io/v1/namespaces/default/virtualmachineinstances/" + name)
        return obj if code == 200 else None

    def launcher_pod(self, vmi):
        pods = self.srv.api.pods_of(vmi)
        assert len(pods) <= 1, "duplicate launcher Pods"
        return pods[0] if pods else None

    def launcher_ctl(self, pod, command):
        subprocess.run([os.path.join(BUILD, "launcher", "supervisor", "virt-launcher"), "ctl", "--run-dir",
                        self.kubelet.run_dir(pod), command], check=True, timeout=30, capture_output=True)

    def wait_running(self, name, timeout=90, replaced_ok=1):
        """Running in kubectl's columns, and the guest's serial console says it booted. A VMI that fails while it
        boots and is replaced (its VM restarts it: QEMU 7.2's TCG has been seen to die of SIGSEGV in a 2-vCPU
        boot) is followed once, saying so; what the test asserts of the guest then holds for the new VMI."""
        row = wait_for("kubectl get vmi %s Running" % name,
                       lambda: (lambda r: r if len(r) >= 5 and r[2] == "Running" else None)(self.vmi_row(name)),
                       timeout=timeout, interval=0.5)
        vmi = self.vmi(name)
        pod = self.launcher_pod(vmi)
        pod_ip = pod["status"]["podIP"]
        assert ipaddress.ip_address(pod_ip) in ipaddress.ip_network(POD_CIDR), pod["status"]
        assert row[3] == pod_ip and row[4] == NODE and row[5] == "True", row  # IP, NODENAME, READY
        run = self.kubelet.run_dir(pod)

        def ready():
            if b"KVGUEST READY" in _read(os.path.join(run, "serial.log")):
                return "ready"
            now = self.vmi(name)
            gone = now is None or now["metadata"]["uid"] != vmi["metadata"]["uid"] or \
                (now.get("status") or {}).get("phase") == "Failed"
            return "replaced" if gone and replaced_ok else None
        if wait_for("guest READY on the serial console", ready, timeout=60, interval=0.5) == "replaced":
            print("note: VMI %s failed while booting (%s); following its replacement" % (
                name, (self.vmi(name) or {}).get("status", {}).get("reason", "deleted")), flush=True)
            return self.wait_running(name, timeout, replaced_ok - 1)
        st = json.loads(_read(os.path.join(run, "status.json")) or b"{}")
        if st.get("qemuPid"):
            self.qemu_pids.add(st["qemuPid"])
        return vmi, pod, st.get("qemuPid")

PHASE_ORDER = ["Pending", "Scheduling", "Scheduled", "Running", "Succeeded"]


class PhaseRecorder(threading.Thread):
    """Every phase a VMI shows, in order, as the real kubectl's watch (`kubectl get vmi -w -o json`) sees it."""

    def __init__(self, env, name):
        super().__init__(daemon=True)
        self.name, self.phases, self.first_running = name, [], None
        self.proc = subprocess.Popen(["kubectl", "--kubeconfig", env.srv.kubeconfig, "--cache-dir", env.cache,
                                      "get", "vmi", "-w", "-o", "json"],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.start()

    def run(self):
        dec, buf = json.JSONDecoder(), ""
        for line in self.proc.stdout:
            buf += line
            try:
                obj, end = dec.raw_decode(buf.lstrip())
            except ValueError:
                continue
            buf = buf.lstrip()[end:]
            if obj.get("metadata", {}).get("name") != self.name:
                continue
            phase = (obj.get("status") or {}).get("phase")
            if phase and (not self.phases or self.phases[-1] != phase):
                self.phases.append(phase)
                if phase == "Running" and self.first_running is None:
                    self.first_running = obj

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.join(timeout=10)
        return self.phases


def assert_phases_forward(phases, vmi):
    """A VMI's phase only moves forward, and Running means the launcher reported QEMU running the guest."""
    ranks = [PHASE_ORDER.index(p) for p in phases]
    assert ranks == sorted(set(ranks)), "phase went backwards or repeated: %s" % phases
    recorded = [t["phase"] for t in vmi["status"]["phaseTransitionTimestamps"]]
    assert recorded == [p for p in PHASE_ORDER if p in recorded] and len(set(recorded)) == len(recorded), recorded


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def alive(pid):
    try:
        os.kill(pid, 0)
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def vmi_yaml(name):
    return """apiVersion: kubevirt.io/v1
kind: VirtualMachineInstance
metadata:
  name: %s
  labels: {app: %s}
spec:
  terminationGracePeriodSeconds: 5
  domain:
    resources: {requests: {memory: 128Mi}}
    devices:
      disks: [{name: root, disk: {bus: virtio}}]
  volumes:
  - name: root
    containerDisk: {image: %s}
""" % (name, name, os.path.join(GUEST, "containerdisk"))


def vm_yaml(name, strategy):
    vmi = vmi_yaml(name).split("spec:\n", 1)[1]
    spec = "".join("      " + line + "\n" for line in vmi.splitlines())
    return ("apiVersion: kubevirt.io/v1\nkind: VirtualMachine\nmetadata:\n  name: %s\nspec:\n"
            "  runStrategy: %s\n  template:\n    metadata: {labels: {vm: %s}}\n    spec:\n%s" % (name, strategy, name, spec))


def test_vmi(env):
    watch = PhaseRecorder(env, "e2e-vmi")
    time.sleep(1)  # the watch is established before the VMI exists
    assert "created" in env.kubectl("apply", "-f", "-", input=vmi_yaml("e2e-vmi"))
    vmi, pod, qemu = env.wait_running("e2e-vmi")
    wait_for("the watch saw Running", lambda: watch.first_running, timeout=10)
    first = watch.first_running
    assert [c["status"] for c in first["status"]["conditions"] if c["type"] == "Ready"] == ["True"], first["status"]
    # Running is only ever shown once the launcher says QEMU runs the guest (its Pod annotation).
    assert json.loads(pod["metadata"]["annotations"]["kvlite.io/launcher-status"])["phase"] == "Running"
    header = env.kubectl("get", "vmi").splitlines()[0].split()
    assert header == ["NAME", "AGE", "PHASE", "IP", "NODENAME", "READY"], header
    assert "kvlite.io/vmi-finalizer" in vmi["metadata"]["finalizers"]
    # The launcher's own status reaches the VMI through its Pod annotation (virt-launcher-reporter with the
    # kubelet's service-account token). The launcher runs with --accel auto: what it picks follows kvmcheck's
    # verdict for this host (TCG + SoftwareEmulation unless KVM is usable).
    verdict = hostkvm.live_verdict()["verdict"]
    accel, reason = hostkvm.expected_accel(verdict), hostkvm.expected_emulation_reason(verdict)
    status = wait_for("accel %s from the launcher" % accel, lambda: (lambda st: st if st.get("accel") else None)(
        json.loads(env.kubectl("get", "vmi", "e2e-vmi", "-o", "json")).get("status") or {}), timeout=30, interval=0.5)
    emulation = [c for c in status.get("conditions") or [] if c.get("type") == "SoftwareEmulation"]
    assert status["accel"] == accel, (verdict, status)
    if reason:
        assert len(emulation) == 1 and emulation[0]["status"] == "True" and emulation[0]["reason"] == reason, status
    else:
        assert not emulation, status
    assert "kvlite.io/launcher-status" in env.launcher_pod(env.vmi("e2e-vmi"))["metadata"]["annotations"]
    # The guest powers off (ACPI power button through the launcher) → the VMI reaches Succeeded and stays.
    env.launcher_ctl(pod, "shutdown")
    wait_for("VMI Succeeded", lambda: json.loads(env.kubectl("get", "vmi", "e2e-vmi", "-o", "json"))
             ["status"].get("phase") == "Succeeded", timeout=60, interval=0.5)
    phases = watch.stop()
    assert phases[-1] == "Succeeded" and "Running" in phases, phases
    assert_phases_forward(phases, env.vmi("e2e-vmi"))
    print("phases seen by kubectl --watch: %s" % " -> ".join(phases))
    reason = json.loads(env.launcher_pod(env.vmi("e2e-vmi"))["metadata"]["annotations"]["kvlite.io/launcher-status"])
    assert reason["phase"] == "Succeeded" and reason["reason"] == "guest powered off", reason
    if qemu:
        wait_for("QEMU gone", lambda: not alive(qemu), timeout=10)
    env.kubectl("delete", "vmi", "e2e-vmi", "--timeout=60s")
    assert env.vmi("e2e-vmi") is None
    assert env.srv.api.items(POD_PATH % "default") == [], "launcher Pod left behind"
    if qemu:
        wait_for("QEMU gone", lambda: not alive(qemu), timeout=10)


def test_vm_always(env):
    env.kubectl("apply", "-f", "-", input=vm_yaml("e2e-vm", "Always"))
    vmi, pod, qemu = env.wait_running("e2e-vm")
    # the guest powers off (ACPI power button through the launcher) → Succeeded → the VM starts a new VMI
    env.launcher_ctl(pod, "shutdown")
    wait_for("a new VMI", lambda: (env.vmi("e2e-vm") or vmi)["metadata"]["uid"] != vmi["metadata"]["uid"],
             timeout=60, interval=0.5)
    vmi2, pod2, qemu2 = env.wait_running("e2e-vm")
    assert pod2["metadata"]["name"] != pod["metadata"]["name"]
    if qemu:
        assert not alive(qemu), "the first QEMU is still running"
    out = env.kubectl("get", "vm", "e2e-vm", "--no-headers").split()
    assert out[2] == "Running" and out[3] == "True", out
    # Halted stops it for good
    env.kubectl("patch", "vm", "e2e-vm", "--type=merge", "-p", '{"spec":{"runStrategy":"Halted"}}')
    wait_for("VMI gone", lambda: env.vmi("e2e-vm") is None, timeout=60, interval=0.5)
    wait_for("VM Stopped", lambda: env.kubectl("get", "vm", "e2e-vm", "--no-headers").split()[2] == "Stopped",
             timeout=20, interval=0.5)
    if qemu2:
        wait_for("QEMU gone", lambda: not alive(qemu2), timeout=10)
    env.kubectl("delete", "vm", "e2e-vm")


def test_vm_halted(env):
    env.kubectl("apply", "-f", "-", input=vm_yaml("e2e-halted", "Halted"))
    wait_for("VM Stopped", lambda: (env.kubectl("get", "vm", "e2e-halted", "--no-headers").split() + ["", "", ""])[2]
             == "Stopped", timeout=20, interval=0.3)
    assert env.vmi("e2e-halted") is None
    env.kubectl("patch", "vm", "e2e-halted", "--type=merge", "-p", '{"spec":{"runStrategy":"Always"}}')
    env.wait_running("e2e-halted")
    env.kubectl("delete", "vm", "e2e-halted")
    wait_for("VMI of deleted VM gone", lambda: env.vmi("e2e-halted") is None, timeout=60, interval=0.5)
    wait_for("Pods gone", lambda: env.srv.api.items(POD_PATH % "default") == [], timeout=30, interval=0.5)


def vmirs_yaml(name, replicas):
    """KubeVirt's examples/vmi-replicaset-cirros.yaml with the test guest's containerDisk."""
    return """apiVersion: kubevirt.io/v1
kind: VirtualMachineInstanceReplicaSet
metadata:
  labels: {special: %s}
  name: %s
spec:
  replicas: %d
  selector:
    matchLabels: {kubevirt.io/vmReplicaSet: %s}
  template:
    metadata:
      labels: {kubevirt.io/vmReplicaSet: %s}
    spec:
      domain:
        devices:
          disks: [{disk: {bus: virtio}, name: containerdisk}]
        resources: {requests: {memory: 128Mi}}
      terminationGracePeriodSeconds: 0
      volumes:
      - containerDisk: {image: %s}
        name: containerdisk
""" % (name, name, replicas, name, name, os.path.join(GUEST, "containerdisk"))


def vmpool_yaml(name, replicas):
    """KubeVirt's examples/vm-pool-cirros.yaml with the test guest's containerDisk."""
    return """apiVersion: pool.kubevirt.io/v1beta1
kind: VirtualMachinePool
metadata:
  name: %s
spec:
  replicas: %d
  selector:
    matchLabels: {kubevirt.io/vmpool: %s}
  virtualMachineTemplate:
    metadata:
      labels: {kubevirt.io/vmpool: %s}
    spec:
      runStrategy: Always
      template:
        metadata:
          labels: {kubevirt.io/vmpool: %s}
        spec:
          domain:
            devices:
              disks: [{disk: {bus: virtio}, name: containerdisk}]
            memory: {guest: 128Mi}
            resources: {}
          terminationGracePeriodSeconds: 0
          volumes:
          - containerDisk: {image: %s}
            name: containerdisk
""" % (name, replicas, name, name, name, os.path.join(GUEST, "containerdisk"))


def test_vmirs(env):
    """A VirtualMachineInstanceReplicaSet: its VMIs run (kubectl get vmirs: Desired, Current, Ready); kubectl
    scale takes one away; a VMI deleted by hand is replaced; deleting the replica set takes its VMIs. Then a
    VirtualMachinePool: its VM runs, counts as Ready, and kubectl scale to 0 removes it."""
    def rs_row():
        row = env.kubectl("get", "vmirs", "e2e-rs", "--no-headers").split()
        return row[1:4] if len(row) >= 5 else None

    def owned():
        return [v for v in env.srv.api.items("/apis/kubevirt.io/v1/namespaces/default/virtualmachineinstances")
                if any(o.get("kind") == "VirtualMachineInstanceReplicaSet" and o.get("name") == "e2e-rs"
                       for o in v["metadata"].get("ownerReferences", []))
                and not v["metadata"].get("deletionTimestamp")]
    header = env.kubectl("get", "vmirs").splitlines()
    env.kubectl("apply", "-f", "-", input=vmirs_yaml("e2e-rs", 2))
    assert env.kubectl("get", "vmirs").splitlines()[0].split() == ["NAME", "DESIRED", "CURRENT", "READY", "AGE"], \
        header
    wait_for("2 VMIs of the replica set Ready", lambda: rs_row() == ["2", "2", "2"], timeout=120, interval=1)
    names = sorted(v["metadata"]["name"] for v in owned())
    assert len(names) == 2 and all(n.startswith("e2e-rs") for n in names), names
    for n in names:
        env.wait_running(n, replaced_ok=0)
    rs = json.loads(env.kubectl("get", "vmirs", "e2e-rs", "-o", "json"))
    assert rs["status"]["labelSelector"] == "kubevirt.io/vmReplicaSet=e2e-rs", rs["status"]
    print("ok - replica set: 2 VMIs %s running, Ready in kubectl get vmirs" % names)
    assert "scaled" in env.kubectl("scale", "vmirs", "e2e-rs", "--replicas=1")
    wait_for("one VMI left", lambda: len(owned()) == 1 and rs_row() == ["1", "1", "1"], timeout=60, interval=0.5)
    left = owned()[0]["metadata"]["name"]
    env.kubectl("delete", "vmi", left, "--wait=false")
    wait_for("a replacement VMI", lambda: [v for v in owned() if v["metadata"]["name"] != left], timeout=60,
             interval=0.5)
    new = [v["metadata"]["name"] for v in owned() if v["metadata"]["name"] != left][0]
    env.wait_running(new, replaced_ok=0)
    print("ok - kubectl scale --replicas=1 deleted one; the VMI deleted by hand was replaced by %s" % new)
    env.kubectl("delete", "vmirs", "e2e-rs")
    wait_for("the replica set's VMIs gone", lambda: not env.srv.api.items(
        "/apis/kubevirt.io/v1/namespaces/default/virtualmachineinstances"), timeout=90, interval=0.5)

    # KubeVirt's examples/vm-pool-cirros.yaml shape: a VirtualMachinePool's VMs e2e-pool-<index>
    pool = vmpool_yaml("e2e-pool", 1)
    env.kubectl("apply", "-f", "-", input=pool)
    env.wait_running("e2e-pool-0", replaced_ok=0)
    wait_for("kubectl get vmpool: 1 Ready", lambda: env.kubectl("get", "vmpool", "e2e-pool", "--no-headers").split()[1:4]
             == ["1", "1", "1"], timeout=60, interval=0.5)
    assert "scaled" in env.kubectl("scale", "vmpool", "e2e-pool", "--replicas=0")
    wait_for("the pool's VM and VMI gone", lambda: env.vmi("e2e-pool-0") is None and
             not env.kubectl("get", "vm", "--no-headers").strip(), timeout=90, interval=0.5)
    print("ok - VirtualMachinePool: VM e2e-pool-0 running and Ready; kubectl scale --replicas=0 removed it")
    env.kubectl("delete", "vmpool", "e2e-pool")


def kernelboot_vm(name, strategy, kernel_args, volume, data_volume=None, metadata=None, domain=None):
    """A VirtualMachine booting the test guest's kernel from its kernelboot image with one virtio disk "data"
    on `volume` (a volume source); data_volume: a dataVolumeTemplate for it; metadata, domain: extra fields."""
    spec = {"runStrategy": strategy,
            "template": {"spec": {
                "terminationGracePeriodSeconds": 5,
                "domain": {**(domain or {}), "memory": {"guest": "128Mi"},
                           "firmware": {"kernelBoot": {
                               "kernelArgs": kernel_args,
                               "container": {"image": os.path.join(GUEST, "kernelboot"),
                                             "kernelPath": "/boot/vmlinuz", "initrdPath": "/boot/initrd.img"}}},
                           "devices": {"disks": [{"name": "data", "disk": {"bus": "virtio"}}]}},
                "volumes": [{"name": "data", **volume}]}}}
    if data_volume:
        spec["dataVolumeTemplates"] = [data_volume]
    return {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
            "metadata": {"name": name, "namespace": "default", **(metadata or {})}, "spec": spec}


def blank_data_volume(name):
    """A dataVolumeTemplate of a blank 1Mi disk."""
    return {"metadata": {"name": name},
            "spec": {"source": {"blank": {}}, "storage": {"resources": {"requests": {"storage": "1Mi"}}}}}


def skip_without_pod_network(guest_file):
    """Exits 77 (skip) without the test guest's guest_file or what the kubelet stand-in's Pod networking needs."""
    if not os.path.exists(os.path.join(GUEST, guest_file)):
        print("SKIP: no test guest in %s (tests/guest/build.sh)" % GUEST)
        sys.exit(77)
    why = hostcaps.missing("root", "ip", "mountns", "netns", "veth", "bridge", "tun", "nftables")
    if why:
        print("SKIP: the kubelet stand-in and Pod networking: %s" % why)
        sys.exit(77)


def kernelboot_vmi_yaml(name, kernel_args, devices_and_rest, domain_extra=""):
    """A VMI booting the test guest's kernelBoot image; devices_and_rest goes under spec.domain.devices,
    domain_extra (indented 4) under spec.domain."""
    return """apiVersion: kubevirt.io/v1
kind: VirtualMachineInstance
metadata: {name: %s}
spec:
  terminationGracePeriodSeconds: 5
  domain:
    memory: {guest: 128Mi}
    firmware:
      kernelBoot:
        kernelArgs: %s
        container: {image: %s, kernelPath: /boot/vmlinuz, initrdPath: /boot/initrd.img}
%s    devices:
%s""" % (name, kernel_args, os.path.join(GUEST, "kernelboot"), domain_extra, devices_and_rest)


def test_kernelboot_secret(env):
    """kernelBoot image mounted by the Pod at <image-root>/kernelboot; cloud-init from two Secrets (a projected
    volume at /var/run/kvlite/secrets/<volume>) into the launcher's cidata ISO; a ConfigMap, a downwardAPI
    volume and a config drive's secretRef mounted by the Pod become their ISO disks."""
    for name, key, value in (("kb-user", "userdata", "#cloud-config\\nhostname: kb-secret\\n"),
                             ("kb-net", "networkData", "version: 2\\n")):
        env.kubectl("apply", "-f", "-", input="apiVersion: v1\nkind: Secret\nmetadata: {name: %s}\n"
                    "stringData: {%s: \"%s\"}\n" % (name, key, value))
    env.kubectl("apply", "-f", "-", input="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: kb-app}\n"
                "data: {app.properties: \"color=blue\\n\"}\n")
    env.kubectl("apply", "-f", "-", input=kernelboot_vmi_yaml("e2e-kb", "console=ttyS0", """\
      disks: [{name: ci, disk: {bus: virtio}}, {name: app, disk: {}}, {name: info, disk: {}}, {name: cd, disk: {}}]
  volumes:
  - name: ci
    cloudInitNoCloud:
      userDataSecretRef: {name: kb-user}
      networkDataSecretRef: {name: kb-net}
  - {name: app, configMap: {name: kb-app}}
  - {name: info, downwardAPI: {fields: [{path: ns, fieldRef: {fieldPath: metadata.namespace}}]}}
  - {name: cd, cloudInitConfigDrive: {secretRef: {name: kb-user}}}
"""))
    vmi, pod, qemu = env.wait_running("e2e-kb")
    assert {"name": "kernelboot", "mountPath": "/var/run/kvlite/images/kernelboot", "readOnly": True} in \
        pod["spec"]["containers"][0]["volumeMounts"], pod["spec"]["containers"][0]["volumeMounts"]
    iso = _read(os.path.join(env.kubelet.run_dir(pod), "cidata-ci.iso"))
    assert b"hostname: kb-secret" in iso and b"version: 2" in iso, "Secret data missing from the cidata ISO"
    mounts = {m["mountPath"]: m["name"] for m in pod["spec"]["containers"][0]["volumeMounts"]}
    assert all("/var/run/kvlite/secrets/" + v in mounts for v in ("app", "info", "cd")), mounts
    run = env.kubelet.run_dir(pod)
    assert b"color=blue\n" in _read(os.path.join(run, "data-app.iso")), "ConfigMap key missing from its ISO"
    assert b"cfgdata" in _read(os.path.join(run, "data-app.iso"))
    assert b"default" in _read(os.path.join(run, "data-info.iso")), "downwardAPI field missing from its ISO"
    drive = _read(os.path.join(run, "configdrive-cd.iso"))
    assert b"config-2" in drive and b"hostname: kb-secret" in drive, "config drive without the Secret's user data"
    env.kubectl("delete", "vmi", "e2e-kb", "--timeout=60s")
    if qemu:
        wait_for("QEMU gone", lambda: not alive(qemu), timeout=10)


def check_service(env, pod):
    """`virtctl expose vmi` makes KubeVirt's Service; with kube-controller-manager's endpoints controller
    (tests/kube-api/endpoints.py) its Endpoints list the launcher Pod, and the guest answers there."""
    sys.path.insert(0, os.path.join(SRC, "tests", "kube-api"))
    from endpoints import EndpointsController
    from kubelet import Client
    ctl = EndpointsController(Client(env.srv.url))
    ctl.start()
    try:
        p = subprocess.run([os.path.join(BUILD, "virtctl", "virtctl"), "--kubeconfig", env.srv.kubeconfig, "expose",
                            "vmi", "e2e-net", "--name", "e2e-net-http", "--port", "80", "--target-port", "8080"],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stdout + p.stderr
        ep = wait_for("the Service's endpoint", lambda: (lambda e: e.get("subsets") and e)(json.loads(
            env.kubectl("get", "endpoints", "e2e-net-http", "-o", "json", check=False) or "{}")), timeout=15,
            interval=0.3)
        addrs, ports = ep["subsets"][0].get("addresses") or [], ep["subsets"][0]["ports"]
        assert [a["targetRef"]["name"] for a in addrs] == [pod["metadata"]["name"]], ep
        url = "http://%s:%d/" % (addrs[0]["ip"], ports[0]["port"])
        r = env.kubelet.in_node("curl", "-s", "--max-time", "5", url)
        assert r.stdout.strip() == "kvguest e2e-net", (url, r.stdout, r.stderr)
    finally:
        ctl.stop()
    env.kubectl("delete", "service", "e2e-net-http")


class DualStackEnv(Env):
    kubelet_opts = {"dual_stack": True}


def test_pod_network(env):
    """masquerade on a dual-stack Pod network: the guest's HTTP server answers on the Pod IP from the node netns,
    as a client elsewhere in the cluster would reach it, also through the endpoint of the Service `virtctl
    expose` made; the launcher wires IPv6 too (ip6 NAT to fd10:0:2::2) and the VMI lists both Pod addresses;
    deleting the VMI removes the Pod's netns and veth."""
    env.kubectl("apply", "-f", "-", input=kernelboot_vmi_yaml("e2e-net", "console=ttyS0 http=8080", """\
      interfaces: [{name: default, masquerade: {}}]
  networks: [{name: default, pod: {}}]
"""))
    vmi, pod, qemu = env.wait_running("e2e-net")
    pod_ip = pod["status"]["podIP"]
    netns = "kvl-" + pod["metadata"]["uid"].replace("-", "")[:12]
    assert netns in netns_names(), (netns, netns_names())
    assert "--pod-network" in pod["spec"]["containers"][0]["command"] + pod["spec"]["containers"][0].get("args", [])
    serial = os.path.join(env.kubelet.run_dir(pod), "serial.log")
    wait_for("guest DHCP lease from the launcher", lambda: b"NET eth0 10.0.2.2" in _read(serial), timeout=30,
             interval=0.5)
    page = wait_for("the guest's page on the Pod IP", lambda: (lambda r: r.returncode == 0 and r.stdout.strip())(
        env.kubelet.in_node("curl", "-s", "--max-time", "3", "http://%s:8080/" % pod_ip)), timeout=30, interval=0.5)
    assert page == "kvguest e2e-net", page  # the hostname came with the launcher's DHCP lease
    ifaces = json.loads(env.kubectl("get", "vmi", "e2e-net", "-o", "json"))["status"].get("interfaces") or []
    assert ifaces and ifaces[0].get("ipAddress") == pod_ip, ifaces
    pod_ips = [p["ip"] for p in pod["status"]["podIPs"]]
    assert len(pod_ips) == 2 and ipaddress.ip_address(pod_ips[1]) in ipaddress.ip_network(POD_CIDR6), pod_ips
    nat6 = subprocess.run(["ip", "netns", "exec", netns, "nft", "list", "table", "ip6", "kvlite_nat"],
                          capture_output=True, text=True).stdout
    assert "ip6 daddr %s dnat to fd10:0:2::2" % pod_ips[1] in nat6, nat6
    wait_for("both Pod addresses in the VMI's status", lambda: (json.loads(env.kubectl(
        "get", "vmi", "e2e-net", "-o", "json"))["status"].get("interfaces") or [{}])[0].get("ipAddresses") == pod_ips,
        timeout=20, interval=0.5)
    check_service(env, pod)
    env.kubectl("delete", "vmi", "e2e-net", "--timeout=60s")
    assert env.vmi("e2e-net") is None
    wait_for("Pod gone", lambda: env.srv.api.items(POD_PATH % "default") == [], timeout=30, interval=0.3)
    assert netns not in netns_names(), "the Pod's network namespace is left"
    veths = env.kubelet.in_node("ip", "-o", "link", "show", "type", "veth").stdout
    assert veths == "", "veth left on the node bridge: " + veths
    if qemu:
        wait_for("QEMU gone", lambda: not alive(qemu), timeout=10)


POD_NIC = """\
      interfaces: [{name: default, masquerade: {}}]
  networks: [{name: default, pod: {}}]
"""


def cnt_values(data):
    """The guest's counter values (`CNT <n> …` lines) in a serial log."""
    out = []
    for line in data.decode(errors="replace").splitlines():
        i = line.find("CNT ")
        if i >= 0 and line[i + 4:].split(" ", 1)[0].isdigit():
            out.append(int(line[i + 4:].split(" ", 1)[0]))
    return out


def kubectl_json(env, *args):
    return json.loads(env.kubectl(*args, "-o", "json"))


def test_migration(env):
    """kubectl create -f vmim.yaml moves a running guest to a new launcher Pod: the VMIM Succeeded, the VMI's
    migrationState completed, the source Pod Completed and the target Running, the guest's counter continues in
    the target's serial log (which never saw a boot), and the guest answers HTTP on the VMI's new IP."""
    env.kubectl("apply", "-f", "-", input=kernelboot_vmi_yaml("e2e-mig", "console=ttyS0 http=8080", POD_NIC))
    vmi, src, qemu = env.wait_running("e2e-mig")
    src_serial = os.path.join(env.kubelet.run_dir(src), "serial.log")
    wait_for("the guest's page on the source Pod IP", lambda: env.kubelet.in_node(
        "curl", "-s", "--max-time", "3", "http://%s:8080/" % src["status"]["podIP"]).stdout.strip(), timeout=30,
        interval=0.5)
    wait_for("counter on the source", lambda: cnt_values(_read(src_serial)), timeout=20, interval=0.5)
    out = env.kubectl("create", "-f", "-", input="apiVersion: kubevirt.io/v1\nkind: VirtualMachineInstanceMigration\n"
                      "metadata: {name: e2e-mig-job}\nspec: {vmiName: e2e-mig}\n")
    assert "created" in out, out
    m = wait_for("VMIM Succeeded or Failed", lambda: (lambda m: m if (m.get("status") or {}).get("phase") in (
        "Succeeded", "Failed") else None)(kubectl_json(env, "get", "vmim", "e2e-mig-job")), timeout=150, interval=1)
    assert m["status"]["phase"] == "Succeeded", m["status"]
    row = env.kubectl("get", "vmim", "e2e-mig-job", "--no-headers").split()
    assert row[:3] == ["e2e-mig-job", "Succeeded", "e2e-mig"], row
    st = kubectl_json(env, "get", "vmi", "e2e-mig")["status"]
    ms = st["migrationState"]
    assert ms["completed"] and not ms["failed"] and ms["sourcePod"] == src["metadata"]["name"], ms
    pods = {p["metadata"]["name"]: p for p in env.srv.api.pods_of(vmi)}
    target = pods[ms["targetPod"]]
    assert target["metadata"]["labels"]["kubevirt.io/migrationJobUID"] == m["metadata"]["uid"]
    assert target["status"]["podIP"] != src["status"]["podIP"]
    rows = {r.split()[0]: r.split() for r in env.kubectl("get", "pods", "--no-headers").splitlines()}
    wait_for("source Pod Completed", lambda: env.kubectl("get", "pod", src["metadata"]["name"], "--no-headers").split()[2]
             == "Completed", timeout=30, interval=0.5)
    assert rows[ms["targetPod"]][2] == "Running", rows
    # the VMI is served by the target now
    row = env.vmi_row("e2e-mig")
    assert row[2] == "Running" and row[3] == target["status"]["podIP"] and row[5] == "True", row
    assert st["activePods"] == {target["metadata"]["uid"]: NODE}, st.get("activePods")
    # the same guest: its counter goes on in the target's serial log, which has never seen a boot
    tgt_serial = os.path.join(env.kubelet.run_dir(target), "serial.log")
    last_src = cnt_values(_read(src_serial))[-1]
    got = wait_for("counter on the target", lambda: cnt_values(_read(tgt_serial)), timeout=20, interval=0.5)
    assert last_src < got[0] <= last_src + 20, (last_src, got[:3])
    assert b"KVGUEST READY" not in _read(tgt_serial), "the target booted a guest of its own"
    page = wait_for("the guest's page on the VMI's new IP", lambda: (lambda r: r.returncode == 0 and r.stdout.strip())(
        env.kubelet.in_node("curl", "-s", "--max-time", "3", "http://%s:8080/" % target["status"]["podIP"])),
        timeout=30, interval=0.5)
    assert page.startswith("kvguest"), page
    if qemu:
        wait_for("the source QEMU gone", lambda: not alive(qemu), timeout=20)
    tst = json.loads(_read(os.path.join(env.kubelet.run_dir(target), "status.json")) or b"{}")
    if tst.get("qemuPid"):
        env.qemu_pids.add(tst["qemuPid"])
    env.kubectl("delete", "vmi", "e2e-mig", "--timeout=60s")
    wait_for("Pods gone", lambda: env.srv.api.items(POD_PATH % "default") == [], timeout=30, interval=0.3)
    env.kubectl("delete", "vmim", "e2e-mig-job", "--timeout=30s")


def test_migration_abort(env):
    """A MigrationPolicy slows the migration down (bandwidthPerMigration); the VMI's migrationState shows the
    policy's configuration; `kubectl delete vmim` while it runs aborts it (abortRequested → the source's
    reporter sends migrate-cancel): the VMIM goes, the target Pod is deleted, the guest keeps running on the
    source Pod and its counter goes on in the source's serial log."""
    out = env.kubectl("create", "-f", "-", input="apiVersion: migrations.kubevirt.io/v1alpha1\nkind: MigrationPolicy\n"
                      "metadata: {name: e2e-slow}\nspec:\n  bandwidthPerMigration: 1Mi\n  completionTimeoutPerGiB: 300\n"
                      "  selectors:\n    virtualMachineInstanceSelector: {app: e2e-abort}\n")
    assert "created" in out, out
    assert env.kubectl("get", "migrationpolicy", "e2e-slow", "--no-headers").split()[0] == "e2e-slow"
    vmi_doc = kernelboot_vmi_yaml("e2e-abort", "console=ttyS0", POD_NIC).replace(
        "metadata: {name: e2e-abort}", "metadata: {name: e2e-abort, labels: {app: e2e-abort}}")
    env.kubectl("apply", "-f", "-", input=vmi_doc)
    vmi, src, qemu = env.wait_running("e2e-abort")
    src_run = env.kubelet.run_dir(src)
    src_serial = os.path.join(src_run, "serial.log")
    wait_for("counter on the source", lambda: cnt_values(_read(src_serial)), timeout=20, interval=0.5)
    # The guest's 128 MiB hold ~20-40 MiB of non-zero pages after boot: at 1 MiB/s the migration needs far
    # longer than the abort takes.
    env.kubectl("create", "-f", "-", input="apiVersion: kubevirt.io/v1\nkind: VirtualMachineInstanceMigration\n"
                "metadata: {name: e2e-abort-job}\nspec: {vmiName: e2e-abort}\n")
    ms = wait_for("the VMI's migrationState", lambda: (kubectl_json(env, "get", "vmi", "e2e-abort")["status"]
                                                       .get("migrationState")), timeout=60, interval=0.5)
    assert ms["migrationPolicyName"] == "e2e-slow", ms
    cfg = ms["migrationConfiguration"]
    assert cfg["bandwidthPerMigration"] == 1 << 20 and cfg["completionTimeoutPerGiB"] == 300, cfg
    target = ms["targetPod"]
    # the source's launcher runs the migration (its status names this migration and has not ended)
    uid = ms["migrationUid"]
    lms = wait_for("the source launcher migrating", lambda: (lambda st: st if st.get("migrationUid") == uid
                                                             else None)((json.loads(_read(os.path.join(
                                                                 src_run, "status.json")) or b"{}")
                                                                 .get("migrationState") or {})), timeout=20,
                   interval=0.2)
    assert not lms.get("completed") and not lms.get("failed"), lms
    # unlimited, this guest migrates in well under a second here: still running 3 s later is the policy's doing
    time.sleep(3)
    m = kubectl_json(env, "get", "vmim", "e2e-abort-job")
    assert m["status"]["phase"] == "Running", m["status"]
    assert m["status"]["migrationState"]["migrationPolicyName"] == "e2e-slow", m["status"]
    env.kubectl("delete", "vmim", "e2e-abort-job", "--wait=false")
    wait_for("VMIM gone", lambda: env.kubectl("get", "vmim", "e2e-abort-job", "--ignore-not-found", "-o",
                                              "name") == "", timeout=30, interval=0.5)
    st = kubectl_json(env, "get", "vmi", "e2e-abort")["status"]
    ms = st["migrationState"]
    assert ms["abortRequested"] and ms["failed"] and not ms["completed"], ms
    # the reason is the abort, whichever end the controller saw first (the target's QEMU fails as soon as the
    # source cuts the stream, often before the source's report) ...
    assert ms["failureReason"].startswith("aborted: the VirtualMachineInstanceMigration was deleted"), ms
    # ... and what the source reported is added once it is there
    ms = wait_for("the source's report in the VMI's failureReason", lambda: (lambda m: m if "; source: " in m.get(
        "failureReason", "") else None)(kubectl_json(env, "get", "vmi", "e2e-abort")["status"]["migrationState"]),
        timeout=15, interval=0.5)
    assert ms["failureReason"] == "aborted: the VirtualMachineInstanceMigration was deleted; source: cancelled" \
        and ms.get("abortStatus") == "Succeeded", ms
    # the source's launcher cancelled it
    lms = json.loads(_read(os.path.join(src_run, "status.json")) or b"{}").get("migrationState") or {}
    assert lms.get("migrationUid") == uid and lms.get("failed") and lms.get("abortStatus") == "Succeeded", lms
    assert st["phase"] == "Running" and st["activePods"] == {src["metadata"]["uid"]: NODE}, st
    wait_for("target Pod deleted", lambda: all(p["metadata"]["name"] != target
                                                for p in env.srv.api.pods_of(vmi)), timeout=30, interval=0.5)
    row = env.vmi_row("e2e-abort")
    assert row[2] == "Running" and row[3] == src["status"]["podIP"], row
    # the same guest goes on in the source
    last = cnt_values(_read(src_serial))[-1]
    wait_for("counter goes on in the source", lambda: cnt_values(_read(src_serial))[-1] > last, timeout=10,
             interval=0.5)
    if qemu:
        assert alive(qemu), "the source QEMU is gone"
    env.kubectl("delete", "vmi", "e2e-abort", "--timeout=60s")
    env.kubectl("delete", "migrationpolicy", "e2e-slow")
    if qemu:
        wait_for("QEMU gone", lambda: not alive(qemu), timeout=10)


UFFD_SYSCTL = "/proc/sys/vm/unprivileged_userfaultfd"


def allow_userfaultfd():
    """A post-copy target's QEMU runs without capabilities: userfaultfd needs vm.unprivileged_userfaultfd=1 on
    the node (KubeVirt requires it too). Set when it can be (root) and left set: other post-copy tests may run
    at the same time."""
    try:
        with open(UFFD_SYSCTL) as f:
            if f.read().strip() != "0":
                return True
        with open(UFFD_SYSCTL, "w") as f:
            f.write("1")
        return True
    except FileNotFoundError:
        return True
    except OSError:
        return False


def test_migration_postcopy(env):
    """A MigrationPolicy with allowPostCopy, a tiny bandwidth and completionTimeoutPerGiB 1: the target Pod's
    launcher is started with the same configuration (--incoming-config), the source switches to post-copy after
    ~1 s and the migration completes in mode PostCopy; the guest's counter goes on in the target."""
    if not allow_userfaultfd():
        print("SKIP: vm.unprivileged_userfaultfd is 0 and cannot be set")
        sys.exit(77)
    env.kubectl("create", "-f", "-", input="apiVersion: migrations.kubevirt.io/v1alpha1\nkind: MigrationPolicy\n"
                "metadata: {name: e2e-pc}\nspec:\n  allowPostCopy: true\n  bandwidthPerMigration: 1Mi\n"
                "  completionTimeoutPerGiB: 1\n  selectors:\n    virtualMachineInstanceSelector: {app: e2e-pc}\n")
    vmi_doc = kernelboot_vmi_yaml("e2e-pc", "console=ttyS0", POD_NIC).replace(
        "metadata: {name: e2e-pc}", "metadata: {name: e2e-pc, labels: {app: e2e-pc}}")
    env.kubectl("apply", "-f", "-", input=vmi_doc)
    vmi, src, qemu = env.wait_running("e2e-pc")
    src_serial = os.path.join(env.kubelet.run_dir(src), "serial.log")
    wait_for("counter on the source", lambda: cnt_values(_read(src_serial)), timeout=20, interval=0.5)
    env.kubectl("create", "-f", "-", input="apiVersion: kubevirt.io/v1\nkind: VirtualMachineInstanceMigration\n"
                "metadata: {name: e2e-pc-job}\nspec: {vmiName: e2e-pc}\n")
    m = wait_for("VMIM Succeeded or Failed", lambda: (lambda m: m if (m.get("status") or {}).get("phase") in (
        "Succeeded", "Failed") else None)(kubectl_json(env, "get", "vmim", "e2e-pc-job")), timeout=60, interval=0.5)
    assert m["status"]["phase"] == "Succeeded", m["status"]
    ms = wait_for("mode PostCopy in the VMI's migrationState", lambda: (lambda ms: ms if ms.get("mode") == "PostCopy"
                  else None)(kubectl_json(env, "get", "vmi", "e2e-pc")["status"]["migrationState"]), timeout=10,
                  interval=0.5)
    assert ms["completed"] and ms["migrationPolicyName"] == "e2e-pc" and \
        ms["migrationConfiguration"]["allowPostCopy"] is True, ms
    target = {p["metadata"]["name"]: p for p in env.srv.api.pods_of(vmi)}[ms["targetPod"]]
    cmd = target["spec"]["containers"][0]["command"]
    assert json.loads(cmd[cmd.index("--incoming-config") + 1]) == ms["migrationConfiguration"], cmd
    tst = json.loads(_read(os.path.join(env.kubelet.run_dir(target), "status.json")) or b"{}")
    assert tst["migrationState"]["mode"] == "PostCopy" and tst["migrationState"]["completed"], tst["migrationState"]
    if tst.get("qemuPid"):
        env.qemu_pids.add(tst["qemuPid"])
    tgt_serial = os.path.join(env.kubelet.run_dir(target), "serial.log")
    last_src = cnt_values(_read(src_serial))[-1]
    got = wait_for("counter on the target", lambda: cnt_values(_read(tgt_serial)), timeout=20, interval=0.5)
    assert last_src < got[0] <= last_src + 20, (last_src, got[:3])
    env.kubectl("delete", "vmi", "e2e-pc", "--timeout=60s")
    wait_for("Pods gone", lambda: env.srv.api.items(POD_PATH % "default") == [], timeout=30, interval=0.3)
    env.kubectl("delete", "vmim", "e2e-pc-job", "--timeout=30s")
    env.kubectl("delete", "migrationpolicy", "e2e-pc")


def test_hotplug(env):
    """A VMI spec edited with kubectl reaches the running guest: the launcher's reporter watches the VMI and
    applies the change (a second vCPU socket, onlined by the guest)."""
    env.kubectl("apply", "-f", "-", input=kernelboot_vmi_yaml("e2e-hp", "console=ttyS0", POD_NIC,
                                                             "    cpu: {sockets: 1, maxSockets: 2}\n"))
    vmi, pod, qemu = env.wait_running("e2e-hp")
    serial = os.path.join(env.kubelet.run_dir(pod), "serial.log")
    wait_for("one vCPU", lambda: b"cpus=0 " in _read(serial), timeout=30, interval=0.5)
    env.kubectl("patch", "vmi", "e2e-hp", "--type=merge", "-p", '{"spec":{"domain":{"cpu":{"sockets":2}}}}')
    wait_for("the second vCPU online in the guest", lambda: b"cpus=0-1 " in _read(serial), timeout=60, interval=0.5)
    st = kubectl_json(env, "get", "vmi", "e2e-hp")["status"]
    assert st["phase"] == "Running" and not any(c["type"] == "RestartRequired" and c["status"] == "True"
                                                for c in st.get("conditions") or []), st
    env.kubectl("delete", "vmi", "e2e-hp", "--timeout=60s")
    if qemu:
        wait_for("QEMU gone", lambda: not alive(qemu), timeout=10)


def counter_back(data):
    """The first counter value in the serial log that is not above the one before it: where the guest went back
    in time (the guest booted once)."""
    vals = cnt_values(data)
    return next((b for a, b in zip(vals, vals[1:]) if b <= a), None)


def test_snapshot(env):
    """kubectl create -f a VirtualMachineSnapshot of a running VM (its containerDisk overlay is a writable qcow2):
    Succeeded, READYTOUSE true, a VirtualMachineSnapshotContent; a VirtualMachineRestore brings the running guest
    back to the snapshot instant (its counter goes on from the snapshot's value + 1); deleting the snapshot ends
    with its finalizer (the launcher deleted the qcow2 snapshot)."""
    env.kubectl("apply", "-f", "-", input=vm_yaml("e2e-snap", "Always"))
    vmi, pod, qemu = env.wait_running("e2e-snap")
    serial = os.path.join(env.kubelet.run_dir(pod), "serial.log")
    wait_for("counter", lambda: len(cnt_values(_read(serial))) >= 3, timeout=30, interval=0.5)
    before = cnt_values(_read(serial))[-1]
    out = env.kubectl("create", "-f", "-", input="apiVersion: snapshot.kubevirt.io/v1beta1\n"
                      "kind: VirtualMachineSnapshot\nmetadata: {name: e2e-snap-1}\n"
                      "spec: {source: {apiGroup: kubevirt.io, kind: VirtualMachine, name: e2e-snap}}\n")
    assert "created" in out, out
    s = wait_for("snapshot Succeeded or Failed", lambda: (lambda s: s if (s.get("status") or {}).get("phase") in (
        "Succeeded", "Failed") else None)(kubectl_json(env, "get", "vmsnapshot", "e2e-snap-1")), timeout=90,
        interval=0.5)
    assert s["status"]["phase"] == "Succeeded", s["status"]
    after = cnt_values(_read(serial))[-1]
    header = env.kubectl("get", "vmsnapshot").splitlines()[0].split()
    assert header[:6] == ["NAME", "SOURCEKIND", "SOURCENAME", "PHASE", "READYTOUSE", "CREATIONTIME"], header
    row = env.kubectl("get", "vmsnapshot", "e2e-snap-1", "--no-headers").split()
    assert row[:5] == ["e2e-snap-1", "VirtualMachine", "e2e-snap", "Succeeded", "true"], row
    content = kubectl_json(env, "get", "vmsnapshotcontent", s["status"]["virtualMachineSnapshotContentName"])
    assert content["status"]["readyToUse"] and content["spec"]["volumeBackups"][0]["volumeName"] == "root", content
    # the guest runs on past the snapshot, then goes back to it
    wait_for("counter past the snapshot", lambda: cnt_values(_read(serial))[-1] >= after + 6, timeout=30,
             interval=0.5)
    out = env.kubectl("create", "-f", "-", input="apiVersion: snapshot.kubevirt.io/v1beta1\n"
                      "kind: VirtualMachineRestore\nmetadata: {name: e2e-snap-back}\n"
                      "spec: {target: {apiGroup: kubevirt.io, kind: VirtualMachine, name: e2e-snap},"
                      " virtualMachineSnapshotName: e2e-snap-1}\n")
    assert "created" in out, out
    r = wait_for("restore complete or failed", lambda: (lambda r: r if (r.get("status") or {}).get("complete") or any(
        c["type"] == "Failure" and c["status"] == "True" for c in (r.get("status") or {}).get("conditions") or [])
        else None)(kubectl_json(env, "get", "vmrestore", "e2e-snap-back")), timeout=90, interval=0.5)
    assert r["status"]["complete"] is True, r["status"]
    row = env.kubectl("get", "vmrestore", "e2e-snap-back", "--no-headers").split()
    assert row[:4] == ["e2e-snap-back", "VirtualMachine", "e2e-snap", "true"], row
    try:
        back = wait_for("the counter going back", lambda: counter_back(_read(serial)), timeout=20, interval=0.5)
    except AssertionError:
        raise AssertionError("no counter going back after the restore: before=%d after=%d, serial log: %s" % (
            before, after, cnt_values(_read(serial))))
    # the snapshot instant lies between the last value before the request and the first after the result
    assert before + 1 <= back <= after + 1, (before, back, after)
    assert env.vmi_row("e2e-snap")[2] == "Running", env.vmi_row("e2e-snap")
    env.kubectl("delete", "vmsnapshot", "e2e-snap-1", "--timeout=60s")
    assert env.kubectl("get", "vmsnapshotcontent", "--no-headers", check=False).strip() == ""
    env.kubectl("delete", "vmrestore", "e2e-snap-back")
    env.kubectl("delete", "vm", "e2e-snap", "--timeout=60s")
    wait_for("Pods gone", lambda: env.srv.api.items(POD_PATH % "default") == [], timeout=30, interval=0.3)
    if qemu:
        wait_for("QEMU gone", lambda: not alive(qemu), timeout=10)


def netns_names():
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


TESTS = {"vmi": test_vmi, "vm_always": test_vm_always, "vm_halted": test_vm_halted, "vmirs": test_vmirs,
         "kernelboot_secret": test_kernelboot_secret, "pod_network": test_pod_network,
         "migration": test_migration, "migration_abort": test_migration_abort,
         "migration_postcopy": test_migration_postcopy, "hotplug": test_hotplug, "snapshot": test_snapshot}

if __name__ == "__main__":
    skip_without_pod_network(os.path.join("containerdisk", "disk"))
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))  # a meson timeout still cleans up (Env.__exit__)
    for name in sys.argv[1:] or list(TESTS):
        t0 = time.time()
        with (DualStackEnv if name == "pod_network" else Env)() as env:
            TESTS[name](env)
        print("ok %s (%.1f s)" % (name, time.time() - t0))
