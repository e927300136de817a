"""The guest agent and probes on the real test guest (docs/guest-agent.md): Debian's qemu-guest-agent in the
guest answers on the channel virt-launcher always adds, so the status gets AgentConnected, guestOSInfo and the
guest's interface names; a guestAgentPing readiness probe holds Ready at False until the agent answers; an
exec liveness probe (guest-exec) that fails stops the VMI as Failed; in a test Pod netns a tcpSocket readiness
probe to the guest's httpd flips Ready, and an httpGet liveness probe to a port nobody listens on fails the VMI."""
import os
import sys
import time

from launcherlib import Launcher, check, cleanup, need_guest, vmi

sys.path.insert(0, os.path.join(os.environ.get("KV_SOURCE_ROOT", "."), "launcher", "net"))
from kvnet_fixture import HTTP_PORT, PodNet, can_run  # noqa: E402


def ready(L):
    c = L.condition("Ready")
    return c and c["status"]


def test_agent_and_ready():
    probe = {"guestAgentPing": {}, "periodSeconds": 1, "timeoutSeconds": 2}
    L = Launcher(vmi("agentvm", readinessProbe=probe,
                     livenessProbe={"exec": {"command": ["cat", "/proc/uptime"]}, "initialDelaySeconds": 15,
                                    "periodSeconds": 2, "timeoutSeconds": 5, "failureThreshold": 10}))
    L.wait_phase("Running", 60)
    c = L.condition("Ready")
    check(c and c["status"] == "False" and c["reason"] == "GuestNotReady",
          f"Running but Ready False until the readiness probe passes: {c}", L)
    L.wait(lambda: (L.condition("AgentConnected") or {}).get("status") == "True", 90, "AgentConnected True")
    L.wait(lambda: (L.status().get("guestOSInfo") or {}).get("id"), 30, "guestOSInfo")
    info = L.status()["guestOSInfo"]
    check(info.get("id") == "debian" and info.get("versionId") == "12" and info.get("kernelRelease", "").endswith(
        "-cloud-amd64"), f"guestOSInfo from the guest's agent: {info}", L)
    L.wait(lambda: ready(L) == "True", 30, "Ready True")
    check(True, "guestAgentPing readiness probe: Ready True")
    L.wait(lambda: any(i.get("interfaceName") == "eth0" for i in L.status().get("interfaces", [])), 30,
           "interfaceName eth0")
    iface = L.status()["interfaces"][0]
    check(iface.get("name") == "default" and iface.get("interfaceName") == "eth0" and
          iface.get("infoSource") == "domain, guest-agent" and iface.get("ipAddress", "").startswith("10.0.2."),
          f"status.interfaces[0] merges the guest agent's view: {iface}", L)
    while time.monotonic() < L.t0 + 25:  # a few liveness periods (guest-exec + guest-exec-status) pass
        time.sleep(0.5)
    check(L.status().get("phase") == "Running", "a passing exec liveness probe keeps the VMI Running", L)
    L.cleanup()


def test_exec_liveness_fails():
    L = Launcher(vmi("liveexec", livenessProbe={"exec": {"command": ["cat", "/nonexistent"]},
                                                "initialDelaySeconds": 10, "periodSeconds": 2,
                                                "failureThreshold": 10, "timeoutSeconds": 5}))
    rc = L.wait_exit(120)
    st = L.status()
    check(rc == 1 and st.get("phase") == "Failed" and "liveness probe failed: command exited with 1" in st.get("reason", ""),
          f"a failing exec liveness probe fails the VMI: exit {rc}, {st.get('phase')}: {st.get('reason')}", L)
    L.cleanup()


class TestPod(PodNet):
    def _start_driver(self):
        pass

    def launcher(self, manifest):
        L = Launcher(manifest, prefix=["ip", "netns", "exec", self.ns_pod], args=["--pod-network"])
        self.driver_proc = L.proc
        return L


def test_pod_probes(index):
    with TestPod("-", "masquerade", index) as pod:
        try:
            manifest = vmi("probevm", kernel_args=f"http={HTTP_PORT}", networks=[{"name": "default", "pod": {}}],
                           readinessProbe={"tcpSocket": {"port": HTTP_PORT}, "periodSeconds": 1},
                           livenessProbe={"httpGet": {"port": 1, "path": "/"}, "initialDelaySeconds": 40,
                                          "periodSeconds": 1, "failureThreshold": 2})
            manifest["spec"]["domain"]["devices"]["interfaces"] = [{"name": "default", "masquerade": {}}]
            L = pod.launcher(manifest)
            L.wait_phase("Running", 60)
            L.wait(lambda: ready(L) == "True", 60, "Ready True")
            check(True, f"tcpSocket readiness probe to the guest's :{HTTP_PORT}: Ready True")
            rc = L.wait_exit(90)
            st = L.status()
            check(rc == 1 and st.get("phase") == "Failed" and "connection refused" in st.get("reason", "").lower(),
                  f"httpGet liveness probe to :1 fails the VMI: exit {rc}, {st.get('reason')}", L)
            L.cleanup()
        finally:
            cleanup()


def test_needs_pod_network():
    L = Launcher(vmi("noroute", readinessProbe={"tcpSocket": {"port": 80}}))
    rc = L.wait_exit(15)
    with open(L.log_path) as f:
        log = f.read()
    check(rc == 2 and "--pod-network" in log, f"tcpSocket without a Pod network is refused (exit {rc})", L)
    L.cleanup()


need_guest()
try:
    test_needs_pod_network()
    test_agent_and_ready()
    test_exec_liveness_fails()
finally:
    cleanup()
why = can_run()
if why:
    print(f"SKIP (Pod netns part): {why}")
    sys.exit(0)
test_pod_probes(4)
