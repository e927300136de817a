#!/usr/bin/env python3
# Benchmark (issue 17), one run, two figures:
#  1. start latency: a Halted VM started with `virtctl start` (virt-api's start subresource through the API
#     server's APIService proxy) vs `kubectl patch` of spec.runStrategy to Always doing the same, each timed
#     from the command to the guest's first line on its serial console (the launcher's serial.log), rounds
#     interleaved; the ratio virtctl/kubectl is printed against the goal (within 10%: <= 1.10);
#  2. virt-api's RSS with 1,000 VMIs: every VMI created through the API server's validating and mutating
#     webhooks (virt-api admits each), then a subresource call per VMI (pause, answered 409 after virt-api
#     reads the VMI); VmRSS and VmHWM against the goal (under 32 MiB).
# Usage: virtctl-virtapi.py [--rounds N] [--vmis M]   (needs root and the test guest, as tests/e2e)
import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time

SRC = os.environ.get("KV_SOURCE_ROOT") or os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "e2e"))
from test_e2e import GUEST, Env, _read, vm_yaml, wait_for  # noqa: E402
from test_virtctl import VirtApi, Virtctl  # noqa: E402
from kubetest import VMI_PATH, Server, cleanup, vmi_manifest  # noqa: E402

VM = "bench-start"
VMS = "/apis/kubevirt.io/v1/namespaces/default/virtualmachines/"


def first_console_line(env, t0, steps, timeout=120):
    """Seconds from t0 until the VM's new launcher's serial console has a complete first line; steps gets
    when the VMI and its Pod appeared."""
    def line():
        vmi = env.vmi(VM)
        if vmi:
            steps.setdefault("vmi", time.monotonic() - t0)
        pod = env.launcher_pod(vmi) if vmi else None
        if not pod:
            return None
        steps.setdefault("pod", time.monotonic() - t0)
        data = _read(os.path.join(env.kubelet.run_dir(pod), "serial.log"))
        return time.monotonic() if data and b"\n" in data else None
    return wait_for("first console line", line, timeout=timeout, interval=0.02) - t0


def stop_vm(env, vctl):
    vctl("stop", VM)
    wait_for("VMI gone", lambda: env.vmi(VM) is None, timeout=90, interval=0.2)
    wait_for("VM Stopped", lambda: (env.srv.api.get(VMS + VM)[1].get("status") or {}).get("printableStatus")
             == "Stopped", timeout=30, interval=0.2)


def start_latency(rounds):
    with Env() as env:
        vapi = VirtApi(env)
        env.parts.insert(0, vapi)
        vctl = Virtctl(env)
        env.kubectl("apply", "-f", "-", input=vm_yaml(VM, "Halted"))
        wait_for("VM Stopped", lambda: (env.srv.api.get(VMS + VM)[1].get("status") or {}).get(
            "printableStatus") == "Stopped", timeout=30)
        times = {"virtctl": [], "kubectl": [], "virtctl_cmd": [], "kubectl_cmd": []}
        for r in range(rounds):
            for how in (("virtctl", "kubectl") if r % 2 == 0 else ("kubectl", "virtctl")):
                t0 = time.monotonic()
                if how == "virtctl":
                    vctl("start", VM)
                else:
                    env.kubectl("patch", "vm", VM, "--type", "merge", "-p", '{"spec":{"runStrategy":"Always"}}')
                cmd_s = time.monotonic() - t0
                steps = {}
                times[how].append(first_console_line(env, t0, steps))
                times[how + "_cmd"].append(cmd_s)
                if how == "kubectl":
                    env.kubectl("patch", "vm", VM, "--type", "merge", "-p", '{"spec":{"runStrategy":"Halted"}}')
                    wait_for("VMI gone", lambda: env.vmi(VM) is None, timeout=90, interval=0.2)
                else:
                    stop_vm(env, vctl)
                print("round %d %-8s %.2f s (the command itself %.2f s, VMI after %.2f s, Pod after %.2f s)"
                      % (r + 1, how, times[how][-1], cmd_s, steps["vmi"], steps["pod"]), flush=True)
        return times


class ApiOnly:
    """The API test server and virt-api alone: no controller, so 1,000 VMIs stay objects."""

    def __init__(self):
        self.srv = Server("--tls-port", "0")
        self.parts = []

    def kubectl(self, *args, input=None):
        p = subprocess.run(["kubectl", "--kubeconfig", self.srv.kubeconfig, *args], input=input,
                           capture_output=True, text=True, timeout=60, check=True)
        return p.stdout


def rss_kib(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0])
    return out


def virtapi_rss(n):
    env = ApiOnly()
    env.srv.start()
    env.parts.append(env.srv)
    vapi = None
    try:
        vapi = VirtApi(env)
        api = env.srv.api
        before = rss_kib(vapi.proc.pid)
        t = time.monotonic()
        image = os.path.join(GUEST, "containerdisk")

        def create(names):
            from kubetest import Api
            c = Api(env.srv.port)
            for name in names:
                c.create(VMI_PATH % "default", vmi_manifest(name, image=image))
        names = ["rss-%04d" % i for i in range(n)]
        threads = [threading.Thread(target=create, args=(names[k::4],)) for k in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert len(api.items(VMI_PATH % "default")) == n
        admit_s = time.monotonic() - t
        calls = 0
        for i in range(n):
            code, _ = vapi.request("PUT", "/apis/subresources.kubevirt.io/v1/namespaces/default/"
                                   "virtualmachineinstances/rss-%04d/pause" % i, body="{}")
            calls += code == 409
        after = rss_kib(vapi.proc.pid)
        return before, after, admit_s, calls
    finally:
        cleanup(*([vapi] if vapi else []) + env.parts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--vmis", type=int, default=1000)
    a = ap.parse_args()
    if os.geteuid() != 0 or not os.path.isdir(os.path.join(GUEST, "containerdisk")):
        print("SKIP: needs root and the test guest (KV_GUEST_DIR)")
        return 77
    before, after, admit_s, calls = virtapi_rss(a.vmis)
    times = start_latency(a.rounds)
    v, k = statistics.median(times["virtctl"]), statistics.median(times["kubectl"])
    print("start → first console line, median of %d: virtctl start %.2f s, kubectl patch runStrategy %.2f s, "
          "ratio %.2f (goal <= 1.10: %s)" % (a.rounds, v, k, v / k, "met" if v / k <= 1.10 else "NOT met"))
    mib = after["VmHWM"] / 1024.0
    print("virt-api with %d VMIs (%d admitted through its webhooks in %.1f s, %d pause calls answered 409): "
          "VmRSS %.1f MiB (idle %.1f MiB), VmHWM %.1f MiB, ratio to the 32 MiB goal %.2f (%s)"
          % (a.vmis, a.vmis, admit_s, calls, after["VmRSS"] / 1024.0, before["VmRSS"] / 1024.0, mib, mib / 32.0,
             "met" if mib < 32 else "NOT met"))
    print(json.dumps({"virtctl_start_s": v, "kubectl_patch_s": k, "ratio": v / k,
                      "virt_api_hwm_mib": mib, "vmis": a.vmis}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
