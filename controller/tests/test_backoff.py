#!/usr/bin/env python3
# A VM whose VMI cannot start must not be restarted at API-server speed. Over one minute each, with the real
# virt-controller against the API test server, counting every VMI and Pod created (a watch sees each uid):
#   invalid_template  templates the launcher's VMI model refuses (`bus: ide`, a `memoryDump` volume): no VMI
#                     at all, the field named once in the VM's Failure condition, CrashLoopBackOff; fixing the
#                     spec starts it at once
#   launcher_fails    a hostDisk missing inside the Pod, run by the kubelet stand-in with the real launcher
#                     (tests/e2e's Env): runStrategy Always and RerunOnFailure restart with KubeVirt's backoff
#                     (10-15 s, then 40-60 s), startFailure.consecutiveFailCount counts up, the launcher's
#                     reason is on the VM
# Usage: test_backoff.py invalid_template|launcher_fails
import http.client
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kubetest import POD_PATH, SRC, VM_PATH, VMI_PATH, vm_manifest, wait_for  # noqa: E402
import test_controller  # noqa: E402

NS = "default"
VMS = VM_PATH % NS
OBSERVE_S = 60


class Creations(threading.Thread):
    """Watches a collection and keeps the uids of every object ADDED, by name: creations, not survivors."""

    def __init__(self, port, path):
        super().__init__(daemon=True)
        self.port, self.path = port, path
        self.uids, self.lock = {}, threading.Lock()
        self.ready = threading.Event()

    def run(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=3600)
        conn.request("GET", self.path + "?watch=true")
        resp = conn.getresponse()
        self.ready.set()
        for line in resp:
            ev = json.loads(line)
            if ev.get("type") == "ADDED":
                md = ev["object"]["metadata"]
                with self.lock:
                    self.uids.setdefault(md["name"], set()).add(md["uid"])

    def count(self, prefix=""):
        with self.lock:
            return sum(len(u) for n, u in self.uids.items() if n.startswith(prefix))


def vm_status(api, name):
    code, vm = api.get("%s/%s" % (VMS, name))
    return (vm or {}).get("status") or {} if code == 200 else {}


def failure(status):
    return next((c for c in status.get("conditions") or [] if c.get("type") == "Failure"), None)


def observe(api, names, seconds):
    """Polls the VMs' status for `seconds`: every printableStatus, fail count and Failure message seen."""
    seen = {n: {"printable": set(), "counts": [], "messages": set()} for n in names}
    deadline = time.time() + seconds
    while time.time() < deadline:
        for n in names:
            st, s = vm_status(api, n), seen[n]
            if st.get("printableStatus"):  # a VM the controller has not written a status for yet shows none
                s["printable"].add(st.get("printableStatus"))
            count = (st.get("startFailure") or {}).get("consecutiveFailCount")
            if count and (not s["counts"] or s["counts"][-1] != count):
                s["counts"].append(count)
            if failure(st):
                s["messages"].add(failure(st).get("message"))
        time.sleep(0.5)
    return seen


def writes(api, key):
    return api.ok("GET", "/_test/stats")["requests"].get(key, 0)


def test_invalid_template(srv, ctl):
    api = srv.api
    vmis = Creations(srv.port, VMI_PATH % NS)
    pods = Creations(srv.port, POD_PATH % NS)
    for w in (vmis, pods):
        w.start()
        w.ready.wait(10)
    ide = vm_manifest("bad-ide", "Always")
    ide["spec"]["template"]["spec"]["domain"]["devices"]["disks"][0]["disk"]["bus"] = "ide"
    dv = vm_manifest("bad-dv", "RerunOnFailure")
    dv["spec"]["template"]["spec"]["volumes"][0] = {"name": "root", "memoryDump": {"claimName": "x"}}
    for vm in (ide, dv):
        api.create(VMS, vm)
    seen = observe(api, ["bad-ide", "bad-dv"], OBSERVE_S)
    assert vmis.count() == 0 and pods.count() == 0, (vmis.uids, pods.uids)
    assert writes(api, "POST virtualmachineinstances") == 0
    # reported once: a handful of status writes, not one per reconcile
    status_writes = writes(api, "PUT virtualmachines/status")
    assert status_writes <= 8, status_writes
    for name, field in (("bad-ide", 'disks[0].disk.bus: "ide"'), ("bad-dv", "volumes[0]")):
        s = seen[name]
        assert s["printable"] == {"CrashLoopBackOff"}, (name, s)
        assert len(s["messages"]) == 1, (name, s)
        msg = next(iter(s["messages"]))
        assert field in msg and msg.startswith("Failure while starting VMI: "), (name, msg)
        assert failure(vm_status(api, name))["reason"] == "FailedCreate"
    # the spec changes (a new generation): validated again, and this time it runs
    api.merge("%s/bad-ide" % VMS, {"spec": {"template": {"spec": {"domain": {"devices": {
        "disks": [{"name": "root", "disk": {"bus": "virtio"}}]}}}}}})
    wait_for("the fixed VM's VMI", lambda: test_controller.vmi_get(api, "bad-ide"), timeout=10)
    st = wait_for("VM Starting", lambda: (lambda s: s if s.get("printableStatus") == "Starting" else None)(
        vm_status(api, "bad-ide")))
    assert failure(st) is None and "startFailure" not in st, st
    assert vmis.count("bad-ide") == 1 and vmis.count("bad-dv") == 0, vmis.uids
    print("invalid_template: %d VMIs, %d Pods, %d VM status writes in %d s" % (
        vmis.count(), pods.count(), status_writes, OBSERVE_S))


def launcher_fails(env):
    api = env.srv.api
    vmis = Creations(env.srv.port, VMI_PATH % NS)
    pods = Creations(env.srv.port, POD_PATH % NS)
    for w in (vmis, pods):
        w.start()
        w.ready.wait(10)
    missing = os.path.join(env.srv.dir, "disks", "missing.img")
    os.makedirs(os.path.dirname(missing))
    names = {"lost-always": "Always", "lost-rerun": "RerunOnFailure"}
    for name, strategy in names.items():
        vm = vm_manifest(name, strategy)
        vm["spec"]["template"]["spec"]["volumes"][0] = {"name": "root", "hostDisk": {"path": missing,
                                                                                    "type": "Disk"}}
        api.create(VMS, vm)
    t0 = time.time()
    seen = observe(api, list(names), OBSERVE_S)
    creates = writes(api, "POST virtualmachineinstances")
    for name in names:
        s = seen[name]
        # KubeVirt's backoff: start, fail, 10-15 s, start, fail, 40-60 s: two or three starts in a minute
        assert 2 <= vmis.count(name) <= 4, (name, vmis.uids, s)
        assert pods.count("virt-launcher-" + name) <= vmis.count(name), (name, pods.uids)
        assert "CrashLoopBackOff" in s["printable"], (name, s)
        assert s["counts"][:2] == [1, 2], (name, s)  # consecutiveFailCount counts up, one per failed VMI
        assert any("missing.img" in m for m in s["messages"]), (name, s)  # the launcher's own reason
        st = vm_status(api, name)
        assert failure(st)["reason"] == "StartFailure", st
        assert st["startFailure"]["lastFailedVMIUID"] in vmis.uids[name], st
    assert creates <= 8, creates
    print("launcher_fails: %s VMIs, %d Pods, %d VMI creates in %.0f s; %s" % (
        {n: vmis.count(n) for n in names}, pods.count(), creates, time.time() - t0,
        failure(vm_status(api, "lost-always"))["message"]))


def run_launcher_fails():
    sys.path.insert(0, os.path.join(SRC, "tests", "e2e"))
    import test_e2e  # its Env: API server, kubelet stand-in running virt-launcher, scheduler, controller
    if os.geteuid() != 0:
        print("SKIP: the kubelet stand-in needs root (mount namespaces)")
        sys.exit(77)
    with test_e2e.Env() as env:
        launcher_fails(env)
    print("ok launcher_fails")


if __name__ == "__main__":
    if sys.argv[1:] == ["launcher_fails"]:
        run_launcher_fails()
    else:
        test_controller.main(globals())
