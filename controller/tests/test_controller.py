#!/usr/bin/env python3
# Integration tests: the real virt-controller against the Python Kubernetes API test server, with its
# fault-injection hooks (/_test/fail, /_test/compact, /_test/drop-watches). Usage: test_controller.py [NAME...]
import os
import json
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kubetest import (POD_PATH, VM_PATH, VMI_PATH, VMIM_PATH, Controller, Server, cleanup, vm_manifest,  # noqa
                      vmi_manifest, wait_for)

NS = "default"
VMIS = VMI_PATH % NS
PODS = POD_PATH % NS


def vmi_get(api, name):
    code, obj = api.get("%s/%s" % (VMIS, name))
    return obj if code == 200 else None


def phase_is(api, name, phase):
    v = vmi_get(api, name)
    return v if v and v.get("status", {}).get("phase") == phase else None


def one_pod(api, vmi):
    pods = api.pods_of(vmi)
    assert len(pods) <= 1, "duplicate Pods for %s: %s" % (vmi["metadata"]["name"],
                                                          [p["metadata"]["name"] for p in pods])
    return pods[0] if pods else None


def launcher_reports_running(api, pod_name):
    """What the launcher's reporter writes once QEMU runs the guest: only then is a VMI Running."""
    api.merge("%s/%s" % (PODS, pod_name),
              {"metadata": {"annotations": {"kvlite.io/launcher-status": '{"phase":"Running"}'}}})


def test_lifecycle(srv, ctl):
    """VMI → Pod shape → status from the Pod and the launcher annotation → deletion through the finalizer."""
    api = srv.api
    api.create(VMIS, vmi_manifest("life", labels={"app": "web"}))
    vmi = wait_for("Scheduling", lambda: phase_is(api, "life", "Scheduling"))
    assert "kvlite.io/vmi-finalizer" in vmi["metadata"]["finalizers"]
    pod = one_pod(api, vmi)
    md = pod["metadata"]
    assert md["name"].startswith("virt-launcher-life-"), md["name"]
    assert md["labels"]["app"] == "web" and md["labels"]["kubevirt.io"] == "virt-launcher"
    assert md["labels"]["vm.kubevirt.io/name"] == "life"
    owner = md["ownerReferences"][0]
    assert owner["uid"] == vmi["metadata"]["uid"] and owner["controller"] and owner["blockOwnerDeletion"]
    env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
    assert '"name":"life"' in env["KVLITE_VMI"]["value"]
    pname = md["name"]
    # the node binds it, the kubelet runs it
    api.merge("%s/%s" % (PODS, pname), {"spec": {"nodeName": "node01"}})
    wait_for("Scheduled", lambda: phase_is(api, "life", "Scheduled"))
    api.merge("%s/%s/status" % (PODS, pname), {"status": {"phase": "Running", "podIP": "10.1.2.3"}})
    # a Running Pod is not a running guest: until the launcher reports QEMU running, the VMI stays Scheduled
    api.merge("%s/%s" % (PODS, pname), {"metadata": {"labels": {"nudge": "1"}}})  # one more reconcile
    time.sleep(1)
    vmi = vmi_get(api, "life")
    assert vmi["status"]["phase"] == "Scheduled", vmi["status"]
    assert [c["status"] for c in vmi["status"]["conditions"] if c["type"] == "Ready"] == ["False"], vmi["status"]
    starting = '{"phase":"Scheduled","accel":"tcg"}'  # the launcher's first report: QEMU not running yet
    api.merge("%s/%s" % (PODS, pname), {"metadata": {"annotations": {"kvlite.io/launcher-status": starting}}})
    wait_for("accel", lambda: (vmi_get(api, "life") or {}).get("status", {}).get("accel") == "tcg")
    assert phase_is(api, "life", "Scheduled")
    # the launcher's report that QEMU runs the guest
    ann = '{"phase":"Running","accel":"tcg","conditions":[{"type":"SoftwareEmulation","status":"True"}]}'
    api.merge("%s/%s" % (PODS, pname), {"metadata": {"annotations": {"kvlite.io/launcher-status": ann}}})
    vmi = wait_for("Running", lambda: phase_is(api, "life", "Running"))
    st = vmi["status"]
    assert st["nodeName"] == "node01" and st["interfaces"][0]["ipAddress"] == "10.1.2.3", st
    assert [c["status"] for c in st["conditions"] if c["type"] == "Ready"] == ["True"], st
    assert any(c["type"] == "SoftwareEmulation" for c in st["conditions"])
    # a later report that goes back (a launcher restarted, a stale annotation) never moves the phase back
    api.merge("%s/%s" % (PODS, pname), {"metadata": {"annotations": {"kvlite.io/launcher-status": starting}}})
    time.sleep(1)
    st = vmi_get(api, "life")["status"]
    assert st["phase"] == "Running", st
    assert [t["phase"] for t in st["phaseTransitionTimestamps"]] == ["Pending", "Scheduling", "Scheduled",
                                                                     "Running"], st
    m = ctl.metrics()
    assert m['kvlite_vmis{phase="Running"}'] == 1 and m["kvlite_controller_pods_created_total"] == 1, m
    # delete: Pod deleted (graceful, finalized by the server), then the finalizer goes, then the VMI
    api.ok("DELETE", "%s/life" % VMIS, {"propagationPolicy": "Background"})
    wait_for("VMI gone", lambda: vmi_get(api, "life") is None, timeout=20)
    assert api.items(PODS) == []


def test_pod_gone_fails_vmi(srv, ctl):
    api = srv.api
    api.create(VMIS, vmi_manifest("lost"))
    vmi = wait_for("Scheduling", lambda: phase_is(api, "lost", "Scheduling"))
    pod = one_pod(api, vmi)
    api.merge("%s/%s/status" % (PODS, pod["metadata"]["name"]), {"status": {"phase": "Running"}})
    launcher_reports_running(api, pod["metadata"]["name"])
    wait_for("Running", lambda: phase_is(api, "lost", "Running"))
    api.ok("DELETE", "%s/%s" % (PODS, pod["metadata"]["name"]), {"gracePeriodSeconds": 0})
    vmi = wait_for("Failed", lambda: phase_is(api, "lost", "Failed"))
    assert "disappeared" in vmi["status"]["reason"]
    time.sleep(0.5)
    assert api.pods_of(vmi) == [], "a Failed VMI must not get a new Pod"


def test_invalid_vmi_fails(srv, ctl):
    api = srv.api
    bad = vmi_manifest("bad")
    bad["spec"]["domain"]["devices"]["disks"][0]["disk"]["bus"] = "ide"
    api.create(VMIS, bad)
    vmi = wait_for("Failed", lambda: phase_is(api, "bad", "Failed"))
    assert 'disks[0].disk.bus: "ide"' in vmi["status"]["reason"], vmi["status"]
    assert api.pods_of(vmi) == []


def test_relist_on_410(srv, ctl):
    api = srv.api
    api.create(VMIS, vmi_manifest("before"))
    wait_for("Scheduling", lambda: phase_is(api, "before", "Scheduling"))
    lists = ctl.metrics()['kvlite_controller_informer_relists_total{resource="virtualmachineinstances"}']
    # changes while the watch is down, then history compacted: resuming must fail with 410 → relist. The
    # controller is frozen so its watches cannot catch up before the compaction.
    ctl.proc.send_signal(signal.SIGSTOP)
    try:
        api.ok("POST", "/_test/drop-watches", {})
        for i in range(3):
            api.create(VMIS, vmi_manifest("burst%d" % i))
        # a deletion only a relist can reveal
        pod = api.pods_of(vmi_get(api, "before"))[0]
        api.ok("DELETE", "%s/%s" % (PODS, pod["metadata"]["name"]), {"gracePeriodSeconds": 0})
        api.ok("POST", "/_test/compact")
    finally:
        ctl.proc.send_signal(signal.SIGCONT)
    api.create(VMIS, vmi_manifest("after"))
    for name in ["burst0", "burst1", "burst2", "after"]:
        wait_for("Pod for " + name, lambda: vmi_get(api, name) and api.pods_of(vmi_get(api, name)))
        assert len(api.pods_of(vmi_get(api, name))) == 1
    wait_for("relist", lambda: ctl.metrics()[
        'kvlite_controller_informer_relists_total{resource="virtualmachineinstances"}'] > lists)
    vmi = wait_for("Failed after the relist", lambda: phase_is(api, "before", "Failed"))
    assert api.pods_of(vmi) == []


def test_watch_drop(srv, ctl):
    api = srv.api
    for abrupt in (False, True):
        api.ok("POST", "/_test/drop-watches", {"abrupt": abrupt})
        name = "drop-%d" % abrupt
        api.create(VMIS, vmi_manifest(name))
        wait_for("Pod for " + name, lambda: api.pods_of(vmi_get(api, name)), timeout=20)
        assert len(api.pods_of(vmi_get(api, name))) == 1


def test_conflict_on_status(srv, ctl):
    api = srv.api
    api.fault(code=409, method="PATCH", path="virtualmachineinstances/conf$", count=3)
    api.create(VMIS, vmi_manifest("conf"))
    wait_for("Scheduling despite 409s", lambda: phase_is(api, "conf", "Scheduling"))
    # VM status goes through PUT /status with resourceVersion: 409 → fresh read → retry
    api.fault(code=409, method="PUT", path="virtualmachines/vmc/status$", count=2)
    api.create(VM_PATH % NS, vm_manifest("vmc", "Halted"))
    wait_for("VM status", lambda: (api.get("%s/vmc" % (VM_PATH % NS))[1].get("status") or {}).get(
        "printableStatus") == "Stopped")
    assert api.get("/_test/stats")[1]["faultsInjected"] >= 5


def test_retries_500_429(srv, ctl):
    api = srv.api
    api.fault(code=500, method="POST", path="/pods$", count=2)
    api.fault(code=429, method="PATCH", path="virtualmachineinstances/flaky$", count=2)
    api.fault(code=503, method="GET", path="/pods\\?.*watch=true", count=1)
    api.create(VMIS, vmi_manifest("flaky"))
    vmi = wait_for("Pod after retries", lambda: api.pods_of(vmi_get(api, "flaky")), timeout=20)
    time.sleep(0.5)
    assert len(api.pods_of(vmi_get(api, "flaky"))) == 1
    wait_for("Scheduling", lambda: phase_is(api, "flaky", "Scheduling"))
    m = ctl.metrics()
    assert m['kvlite_controller_reconciles_total{kind="vmi",result="error"}'] >= 1, m


def test_restart_mid_reconcile(srv, ctl):
    """Pods created, status writes failing, controller SIGKILLed, restarted: no VMI gets a second Pod."""
    api = srv.api
    api.fault(code=500, method="PATCH", path="virtualmachineinstances/r\\d+$", count=100000)
    names = ["r%d" % i for i in range(20)]
    for n in names:
        m = vmi_manifest(n)
        # as if a previous controller had got as far as the finalizer: the Pod create comes next and the
        # status write after it fails, so the kill lands between the two
        m["metadata"]["finalizers"] = ["kvlite.io/vmi-finalizer"]
        api.create(VMIS, m)
    # kill while some have Pods and others do not yet
    wait_for("some Pods", lambda: len(api.items(PODS)) >= 1, timeout=20, interval=0.01)
    ctl.stop(signal.SIGKILL)
    api.clear_faults()
    ctl2 = Controller(srv).start()
    try:
        for n in names:
            wait_for("Scheduling " + n, lambda: phase_is(api, n, "Scheduling"), timeout=30)
        time.sleep(0.5)
        for n in names:
            assert len(api.pods_of(vmi_get(api, n))) == 1, n
        # and again, killed right after a burst of creates
        more = ["s%d" % i for i in range(30)]
        for n in more:
            api.create(VMIS, vmi_manifest(n))
        time.sleep(0.05)
        ctl2.stop(signal.SIGKILL)
        ctl3 = Controller(srv).start()
        try:
            for n in more:
                wait_for("Pod for " + n, lambda: phase_is(api, n, "Scheduling"), timeout=30)
            time.sleep(0.5)
            for n in names + more:
                assert len(api.pods_of(vmi_get(api, n))) == 1, n
        finally:
            ctl3.stop()
    finally:
        ctl2.stop()


def test_vm_run_strategies(srv, ctl):
    api = srv.api
    vms = VM_PATH % NS
    api.create(vms, vm_manifest("always", "Always"))
    vmi = wait_for("VMI of VM", lambda: vmi_get(api, "always"))
    assert vmi["metadata"]["ownerReferences"][0]["kind"] == "VirtualMachine"
    assert vmi["metadata"]["labels"]["vm"] == "always"
    first_uid = vmi["metadata"]["uid"]
    pod = wait_for("Pod", lambda: one_pod(api, vmi_get(api, "always")))
    wait_for("VM Starting", lambda: api.get("%s/always" % vms)[1].get("status", {}).get(
        "printableStatus") == "Starting")
    # the guest runs, then powers off: the launcher exits 0, the Pod Succeeded → VMI Succeeded → a new VMI at
    # once (a VMI that never ran would be a failed start, restarted only after a backoff: test_backoff.py)
    api.merge("%s/%s/status" % (PODS, pod["metadata"]["name"]), {"status": {"phase": "Running"}})
    launcher_reports_running(api, pod["metadata"]["name"])
    wait_for("VMI Running", lambda: phase_is(api, "always", "Running"))
    api.merge("%s/%s/status" % (PODS, pod["metadata"]["name"]), {"status": {"phase": "Succeeded"}})
    new = wait_for("restarted VMI", lambda: (vmi_get(api, "always") or {"metadata": {"uid": first_uid}})[
        "metadata"]["uid"] != first_uid and vmi_get(api, "always"), timeout=20)
    wait_for("new Pod", lambda: one_pod(api, new))
    # Halted stops it
    api.merge("%s/always" % vms, {"spec": {"runStrategy": "Halted"}})
    wait_for("VMI stopped", lambda: vmi_get(api, "always") is None, timeout=20)
    wait_for("VM Stopped", lambda: api.get("%s/always" % vms)[1].get("status", {}).get(
        "printableStatus") == "Stopped")
    # running: true maps to Always; deleting the VM removes its VMI
    api.create(vms, {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
                     "metadata": {"name": "legacy"}, "spec": {"running": True,
                                                              "template": vm_manifest("x", "Always")["spec"]["template"]}})
    wait_for("legacy VMI", lambda: vmi_get(api, "legacy"))
    api.ok("DELETE", "%s/legacy" % vms)
    wait_for("orphan VMI removed", lambda: vmi_get(api, "legacy") is None, timeout=20)
    # Manual: nothing created
    api.create(vms, vm_manifest("manual", "Manual"))
    time.sleep(0.5)
    assert vmi_get(api, "manual") is None


def test_vm_printable_status(srv, ctl):
    """KubeVirt's printableStatus and VM conditions from the VMI and its Pod: ErrorUnschedulable, ErrImagePull,
    Paused (the VMI's Paused condition shown on the VM), Running, and RestartRequired while the template
    differs from the one the running VMI started from (hot-plugged volumes aside)."""
    api = srv.api
    vms = VM_PATH % NS
    api.create(vms, vm_manifest("pstat", "Always"))

    def vm_status():
        return api.get("%s/pstat" % vms)[1].get("status", {})

    def vm_cond(t):
        return next((c for c in vm_status().get("conditions", []) if c["type"] == t), None)

    def printable_is(p):
        return wait_for("VM " + p, lambda: vm_status().get("printableStatus") == p, timeout=20)

    wait_for("VMI", lambda: vmi_get(api, "pstat"))
    pod = wait_for("Pod", lambda: one_pod(api, vmi_get(api, "pstat")))
    pname = pod["metadata"]["name"]
    api.merge("%s/%s/status" % (PODS, pname), {"status": {"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
         "message": "0/1 nodes are available: 1 Insufficient devices.kubevirt.io/kvm."}]}})
    printable_is("ErrorUnschedulable")
    c = vm_cond("PodScheduled")
    assert c and c["status"] == "False" and "Insufficient" in c["message"], vm_status()
    api.merge("%s/%s" % (PODS, pname), {"spec": {"nodeName": "node01"}})
    api.merge("%s/%s/status" % (PODS, pname), {"status": {"conditions": [], "initContainerStatuses": [
        {"name": "container-disk", "state": {"waiting": {"reason": "ErrImagePull", "message": "not found"}}}]}})
    printable_is("ErrImagePull")
    assert vm_cond("PodScheduled") is None, vm_status()
    api.merge("%s/%s/status" % (PODS, pname), {"status": {"phase": "Running", "initContainerStatuses": []}})
    api.merge("%s/%s" % (PODS, pname), {"metadata": {"annotations": {"kvlite.io/launcher-status": json.dumps(
        {"phase": "Running", "conditions": [{"type": "Paused", "status": "True", "reason": "PausedByUser"}]})}}})
    printable_is("Paused")
    assert vm_cond("Paused")["reason"] == "PausedByUser" and vm_cond("Synchronized") is None, vm_status()
    launcher_reports_running(api, pname)
    printable_is("Running")
    assert vm_cond("Paused") is None and vm_cond("RestartRequired") is None, vm_status()
    # a hot-plugged volume (virtctl addvolume --persist) is applied live: no restart needed
    tmpl = api.get("%s/pstat" % vms)[1]["spec"]["template"]["spec"]
    vols = tmpl.get("volumes", []) + [{"name": "hp", "persistentVolumeClaim": {"claimName": "c1",
                                                                              "hotpluggable": True}}]
    disks = tmpl["domain"]["devices"].get("disks", []) + [{"name": "hp", "disk": {"bus": "scsi"}}]
    api.merge("%s/pstat" % vms, {"spec": {"template": {"spec": {"volumes": vols,
                                                                "domain": {"devices": {"disks": disks}}}}}})
    time.sleep(1)
    assert vm_cond("RestartRequired") is None, vm_status()
    api.merge("%s/pstat" % vms, {"spec": {"template": {"spec": {"domain": {"memory": {"guest": "256Mi"}}}}}})
    c = wait_for("RestartRequired", lambda: vm_cond("RestartRequired"), timeout=20)
    assert c["status"] == "True" and "non-live-updatable" in c["message"], c
    assert vm_status()["printableStatus"] == "Running"
    # the VMI restarts from the new template: the condition goes
    first = vmi_get(api, "pstat")["metadata"]["uid"]
    api.merge("%s/%s/status" % (PODS, pname), {"status": {"phase": "Succeeded"}})
    wait_for("new VMI", lambda: (vmi_get(api, "pstat") or {"metadata": {"uid": first}})["metadata"]["uid"] != first,
             timeout=20)
    wait_for("RestartRequired gone", lambda: vm_cond("RestartRequired") is None, timeout=20)


def test_vm_state_change_requests(srv, ctl):
    """status.stateChangeRequests (virt-api's start/stop/restart): Manual and RerunOnFailure VMs start and
    stop on request; a fulfilled request is removed; a stopped RerunOnFailure VM stays stopped."""
    api = srv.api
    vms = VM_PATH % NS

    def requests(name):
        return api.get("%s/%s" % (vms, name))[1].get("status", {}).get("stateChangeRequests")

    def ask(name, *reqs):
        api.merge("%s/%s/status" % (vms, name), {"status": {"stateChangeRequests": list(reqs)}})

    for name, strategy in (("man", "Manual"), ("rerun", "RerunOnFailure")):
        api.create(vms, vm_manifest(name, strategy))
        if strategy == "Manual":
            time.sleep(0.5)
            assert vmi_get(api, name) is None
        else:
            wait_for("first VMI", lambda: vmi_get(api, name))
            ask(name, {"action": "Stop", "uid": vmi_get(api, name)["metadata"]["uid"]})
            wait_for("VMI stopped", lambda: vmi_get(api, name) is None, timeout=20)
        wait_for("Stop request cleared", lambda: requests(name) is None)
        wait_for("VM Stopped", lambda: api.get("%s/%s" % (vms, name))[1]["status"].get("printableStatus") ==
                 "Stopped")
        time.sleep(0.5)
        assert vmi_get(api, name) is None, "a stopped %s VM started again" % strategy
        assert api.get("%s/%s" % (vms, name))[1]["status"]["runStrategy"] == strategy
        ask(name, {"action": "Start"})
        vmi = wait_for("VMI started", lambda: vmi_get(api, name))
        wait_for("Start request cleared", lambda: requests(name) is None)
        # restart: Stop of this VMI, then Start: a new VMI
        ask(name, {"action": "Stop", "uid": vmi["metadata"]["uid"]}, {"action": "Start"})
        wait_for("new VMI", lambda: (vmi_get(api, name) or vmi)["metadata"]["uid"] != vmi["metadata"]["uid"],
                 timeout=20)
        wait_for("requests cleared", lambda: requests(name) is None)
        # a Stop naming a VMI that is gone does nothing
        ask(name, {"action": "Stop", "uid": vmi["metadata"]["uid"]})
        wait_for("stale Stop dropped", lambda: requests(name) is None)
        assert vmi_get(api, name) is not None


def test_vmirs(srv, ctl):
    """VirtualMachineInstanceReplicaSet: replicas from the template (set-based selector), a finished VMI replaced,
    status for kubectl (replicas, readyReplicas, labelSelector), paused, scaled to 0, and a refused template."""
    api = srv.api
    rss = "/apis/kubevirt.io/v1/namespaces/%s/virtualmachineinstancereplicasets" % NS
    tmpl = vmi_manifest("x", labels={"tier": "web", "rs": "r1"})
    rs = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstanceReplicaSet", "metadata": {"name": "r1"},
          "spec": {"replicas": 3, "selector": {"matchLabels": {"rs": "r1"}, "matchExpressions": [
              {"key": "tier", "operator": "In", "values": ["web", "api"]}]},
              "template": {"metadata": {"labels": tmpl["metadata"]["labels"]}, "spec": tmpl["spec"]}}}
    api.create(rss, rs)

    def owned():
        return [v for v in api.items(VMIS) if any(o.get("name") == "r1" and o.get("controller")
                                                  for o in v["metadata"].get("ownerReferences", []))
                and not v["metadata"].get("deletionTimestamp")]
    vmis = wait_for("3 VMIs", lambda: (lambda o: o if len(o) == 3 else None)(owned()))
    assert all(v["metadata"]["name"].startswith("r1") and v["metadata"]["labels"]["tier"] == "web" for v in vmis)
    st = wait_for("status", lambda: api.get(rss + "/r1")[1].get("status", {}).get("replicas") == 3 and
                  api.get(rss + "/r1")[1]["status"])
    assert st["labelSelector"] == "rs=r1,tier in (web,api)" and st["readyReplicas"] == 0, st
    # a VMI that finished is deleted and replaced
    done = vmis[0]["metadata"]["name"]
    api.merge("%s/%s" % (VMIS, done), {"status": {"phase": "Succeeded"}})
    wait_for("the finished VMI replaced", lambda: done not in [v["metadata"]["name"] for v in owned()] and
             len(owned()) == 3)
    # paused: nothing changes, the condition says so
    api.merge(rss + "/r1", {"spec": {"paused": True, "replicas": 1}})
    wait_for("ReplicaPaused", lambda: any(c["type"] == "ReplicaPaused" for c in
                                          api.get(rss + "/r1")[1].get("status", {}).get("conditions", [])))
    time.sleep(1)
    assert len(owned()) == 3
    api.merge(rss + "/r1", {"spec": {"paused": False, "replicas": 0}})
    wait_for("scaled to 0", lambda: not owned() and api.get(rss + "/r1")[1]["status"]["replicas"] == 0)
    # a template the API refuses: ReplicaFailure with its message
    bad = dict(rs, metadata={"name": "r2"})
    bad["spec"] = dict(rs["spec"], replicas=1, selector={"matchLabels": {"rs": "r2"}},
                       template={"metadata": {"labels": {"rs": "r2"}, "annotations": {"n": 1}}, "spec": tmpl["spec"]})
    api.create(rss, bad)
    cond = wait_for("ReplicaFailure", lambda: [c for c in api.get(rss + "/r2")[1].get("status", {}).get(
        "conditions", []) if c["type"] == "ReplicaFailure"])
    assert cond[0]["status"] == "True" and cond[0]["reason"] == "FailedCreate" and cond[0]["message"], cond


def test_vmpool(srv, ctl):
    """VirtualMachinePool (KubeVirt's examples/vm-pool-cirros.yaml shape): VMs <pool>-<index> with indexed
    DataVolume templates and Secret references, readyReplicas from the VMs, scale down from the highest index."""
    api = srv.api
    pools = "/apis/pool.kubevirt.io/v1beta1/namespaces/%s/virtualmachinepools" % NS
    vm = vm_manifest("x", "Halted")
    tspec = vm["spec"]["template"]["spec"]
    tspec["volumes"] += [{"name": "data", "dataVolume": {"name": "data"}},
                         {"name": "ci", "cloudInitNoCloud": {"secretRef": {"name": "userdata"}}}]
    vm["spec"]["dataVolumeTemplates"] = [{"metadata": {"name": "data"}, "spec": {
        "source": {"blank": {}}, "storage": {"resources": {"requests": {"storage": "1Mi"}}}}}]
    pool = {"apiVersion": "pool.kubevirt.io/v1beta1", "kind": "VirtualMachinePool", "metadata": {"name": "p"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"kubevirt.io/vmpool": "p"}},
                     "nameGeneration": {"appendIndexToSecretRefs": True},
                     "virtualMachineTemplate": {"metadata": {"labels": {"kubevirt.io/vmpool": "p"}},
                                                "spec": vm["spec"]}}}
    api.create(pools, pool)

    def owned():
        return sorted((v for v in api.items(VM_PATH % NS) if not v["metadata"].get("deletionTimestamp") and any(
            o.get("kind") == "VirtualMachinePool" and o.get("controller")
            for o in v["metadata"].get("ownerReferences", []))), key=lambda v: v["metadata"]["name"])
    vms = wait_for("3 VMs", lambda: (lambda o: o if len(o) == 3 else None)(owned()))
    assert [v["metadata"]["name"] for v in vms] == ["p-0", "p-1", "p-2"], [v["metadata"]["name"] for v in vms]
    spec = vms[1]["spec"]
    vols = {v["name"]: v for v in spec["template"]["spec"]["volumes"]}
    assert spec["dataVolumeTemplates"][0]["metadata"]["name"] == "data-1" and \
        vols["data"]["dataVolume"]["name"] == "data-1", spec
    assert vols["ci"]["cloudInitNoCloud"]["secretRef"]["name"] == "userdata-1", vols["ci"]
    st = wait_for("status", lambda: (lambda p: p.get("status") if p.get("status", {}).get("replicas") == 3 else
                                     None)(api.get(pools + "/p")[1]))
    assert st["labelSelector"] == "kubevirt.io/vmpool=p" and st["readyReplicas"] == 0, st
    api.merge(pools + "/p", {"spec": {"replicas": 1}})
    wait_for("scaled down from the highest index", lambda: [v["metadata"]["name"] for v in owned()] == ["p-0"])
    wait_for("status.replicas 1", lambda: api.get(pools + "/p")[1]["status"].get("replicas") == 1)


def test_vmpool_update(srv, ctl):
    """KubeVirt's rollout of a pool's template: revisions <pool>-<generation> as ControllerRevisions, the label
    kubevirt.io/vm-pool-revision-name on VMs and VMIs; a changed VMI template rewrites the VMs and restarts their
    VMIs, a change outside it (the VMs' labels) only relabels the VMIs, updateStrategy opportunistic leaves
    the VMIs alone, and revisions nothing names are pruned."""
    api = srv.api
    pools = "/apis/pool.kubevirt.io/v1beta1/namespaces/%s/virtualmachinepools" % NS
    revs = "/apis/apps/v1/namespaces/%s/controllerrevisions" % NS
    label = "kubevirt.io/vm-pool-revision-name"
    vm = vm_manifest("x", "Always")
    pool = {"apiVersion": "pool.kubevirt.io/v1beta1", "kind": "VirtualMachinePool", "metadata": {"name": "pu"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"pool": "pu"}},
                     "virtualMachineTemplate": {"metadata": {"labels": {"pool": "pu"}}, "spec": vm["spec"]}}}
    api.create(pools, pool)

    def state():
        vms = {v["metadata"]["name"]: v for v in api.items(VM_PATH % NS) if v["metadata"]["name"].startswith("pu-")}
        vmis = {v["metadata"]["name"]: v for v in api.items(VMIS) if v["metadata"]["name"] in vms}
        return vms, vmis

    def settled(rev, memory):
        vms, vmis = state()
        ok = len(vms) == 2 and len(vmis) == 2 and all(
            v["metadata"]["labels"].get(label) == rev and
            v["spec"]["template"]["metadata"]["labels"].get(label) == rev and
            v["spec"]["template"]["spec"]["domain"]["resources"]["requests"]["memory"] == memory
            for v in vms.values()) and all(
            i["metadata"]["labels"].get(label) == rev and not i["metadata"].get("deletionTimestamp") and
            i["spec"]["domain"]["resources"]["requests"]["memory"] == memory for i in vmis.values())
        return (vms, vmis) if ok else None

    _, vmis1 = wait_for("2 VMs and VMIs of revision pu-1", lambda: settled("pu-1", "64Mi"), timeout=30)
    code, rev1 = api.get(revs + "/pu-1")
    assert code == 200 and rev1["data"]["virtualMachineTemplate"] == pool["spec"]["virtualMachineTemplate"], rev1
    assert rev1["metadata"]["ownerReferences"][0]["kind"] == "VirtualMachinePool", rev1["metadata"]
    # the VMI template changes: VMs rewritten, VMIs restarted (not Ready here: at once), pu-1 pruned
    tmpl = pool["spec"]["virtualMachineTemplate"]
    tmpl["spec"]["template"]["spec"]["domain"]["resources"]["requests"]["memory"] = "96Mi"
    api.merge(pools + "/pu", {"spec": {"virtualMachineTemplate": tmpl}})
    _, vmis2 = wait_for("revision pu-2 rolled out", lambda: settled("pu-2", "96Mi"), timeout=60)
    assert all(vmis2[n]["metadata"]["uid"] != vmis1[n]["metadata"]["uid"] for n in vmis2), "VMIs not restarted"
    wait_for("revision pu-1 pruned", lambda: api.get(revs + "/pu-1")[0] == 404, timeout=60)
    # only the VMs' own labels change: the VMIs keep running and get the new revision label
    tmpl["metadata"]["labels"]["tier"] = "web"
    api.merge(pools + "/pu", {"spec": {"virtualMachineTemplate": tmpl}})
    _, vmis3 = wait_for("revision pu-3 relabelled", lambda: settled("pu-3", "96Mi"), timeout=60)
    assert all(vmis3[n]["metadata"]["uid"] == vmis2[n]["metadata"]["uid"] for n in vmis3), "VMIs restarted"
    # opportunistic: the VMs follow the template, their VMIs stay as they are
    tmpl["spec"]["template"]["spec"]["domain"]["resources"]["requests"]["memory"] = "128Mi"
    api.merge(pools + "/pu", {"spec": {"virtualMachineTemplate": tmpl, "updateStrategy": {"opportunistic": {}}}})
    wait_for("VMs at revision pu-4", lambda: all(
        v["metadata"]["labels"].get(label) == "pu-4" for v in state()[0].values()), timeout=60)
    time.sleep(2)
    vmis4 = state()[1]
    assert all(vmis4[n]["metadata"]["uid"] == vmis3[n]["metadata"]["uid"] and
               vmis4[n]["metadata"]["labels"][label] == "pu-3" for n in vmis4), vmis4
    assert api.get(revs + "/pu-3")[0] == 200  # still named by the VMIs
    api.ok("DELETE", pools + "/pu")


def test_vmim_phase(srv, ctl):
    api = srv.api
    api.create(VMIM_PATH % NS, {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstanceMigration",
                                "metadata": {"name": "mig"}, "spec": {"vmiName": "nope"}})
    wait_for("VMIM Failed", lambda: (api.get("%s/mig" % (VMIM_PATH % NS))[1].get("status") or {}).get(
        "phase") == "Failed")


def test_api_server_restart(srv, ctl):
    """The API server restarts (state kept, like etcd) in the middle of a burst: nothing lost, no duplicates."""
    ctl.stop()
    state = os.path.join(srv.dir, "state.json")
    s2 = Server("--pod-finalize-after", "0.2", "--no-gc", state_file=state).start()
    c = None
    try:
        c = Controller(s2).start()
        first = ["a%d" % i for i in range(40)]
        for n in first:
            s2.api.create(VMIS, vmi_manifest(n))
        # the test server saves its state on SIGTERM, and a write it acknowledges after that save is lost
        # (etcd would keep it); so the controller is frozen across the save, its connections still break
        time.sleep(0.2)
        c.proc.send_signal(signal.SIGSTOP)
        time.sleep(0.3)
        s2.stop()
        s2.start()  # same port, same objects and resourceVersion counter
        c.proc.send_signal(signal.SIGCONT)
        second = ["b%d" % i for i in range(40)]
        for n in second:
            s2.api.create(VMIS, vmi_manifest(n))
        for n in first + second:
            wait_for("Scheduling " + n, lambda: phase_is(s2.api, n, "Scheduling"), timeout=60)
        time.sleep(0.5)
        for n in first + second:
            assert len(s2.api.pods_of(vmi_get(s2.api, n))) == 1, n
        assert c.stop() == 0
    finally:
        cleanup(*(x for x in (c, s2) if x))
    s2.remove()


def tls_server():
    srv = Server("--tls-port", "0", "--token", "good-token", "--token", "rotated-token")
    srv.sa_dir = os.path.join(srv.dir, "sa")
    srv.extra += ["--serviceaccount-dir", srv.sa_dir]
    return srv.start()


def expect_pod(srv, name):
    srv.api.create(VMIS, vmi_manifest(name))
    wait_for("Pod for " + name, lambda: srv.api.pods_of(vmi_get(srv.api, name)))


def test_tls_in_cluster(srv, ctl):
    """Service-account credentials over HTTPS (token + CA), with the token file rotated under us."""
    ctl.stop()
    tls = tls_server()
    c = None
    try:
        env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(tls.info["https_port"]),
               "KVLITE_SA_DIR": tls.sa_dir}
        c = Controller(tls, config_args=["--in-cluster"], env=env).start()
        expect_pod(tls, "incluster")
        with open(os.path.join(tls.sa_dir, "token.new"), "w") as f:
            f.write("rotated-token\n")
        os.rename(os.path.join(tls.sa_dir, "token.new"), os.path.join(tls.sa_dir, "token"))
        expect_pod(tls, "rotated")
        assert c.stop() == 0
    finally:
        cleanup(*(x for x in (c, tls) if x))
    tls.remove()


def test_tls_client_cert_data(srv, ctl):
    """kubeconfig with certificate-authority-data and client-certificate-data/client-key-data (curl blobs)."""
    import base64
    ctl.stop()
    tls = tls_server()
    c = None
    try:
        b64 = lambda p: base64.b64encode(open(p, "rb").read()).decode()  # noqa: E731
        kc = os.path.join(tls.dir, "certs.kubeconfig")
        with open(kc, "w") as f:
            json.dump({"current-context": "c", "clusters": [{"name": "k", "cluster": {
                "server": tls.info["https_url"], "certificate-authority-data": b64(tls.info["ca_crt"])}}],
                "users": [{"name": "u", "user": {"client-certificate-data": b64(tls.info["client_crt"]),
                                                 "client-key-data": b64(tls.info["client_key"])}}],
                "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}]}, f)
        c = Controller(tls, config_args=["--kubeconfig", kc]).start()
        expect_pod(tls, "certdata")
        assert c.stop() == 0
    finally:
        cleanup(*(x for x in (c, tls) if x))
    tls.remove()


def test_cli_errors(srv, ctl):
    """--help, bad arguments and bad configuration: distinct exit codes, the field named."""
    import subprocess
    binary = ctl.binary

    def run(*args, env=None):
        p = subprocess.run([binary, *args], capture_output=True, text=True, timeout=20,
                           env=dict(os.environ, **(env or {})))
        return p.returncode, p.stdout + p.stderr

    rc, out = run("--help")
    assert rc == 0 and "Exit codes" in out, out
    rc, out = run("--bogus")
    assert rc == 2, (rc, out)
    rc, out = run("--workers", "0")
    assert rc == 2 and "--workers" in out, out
    bad = os.path.join(srv.dir, "bad.kubeconfig")
    with open(bad, "w") as f:
        f.write("current-context: c\nclusters:\n- name: k\n  cluster: {server: 'https://x:1'}\n"
                "users:\n- name: u\n  user: {client-certificate-data: aGVsbG8=, client-key-data: '!!'}\n"
                "contexts:\n- name: c\n  context: {cluster: k, user: u}\n")
    rc, out = run("--kubeconfig", bad)
    assert rc == 3 and "users[0].user.client-key-data: invalid base64" in out, (rc, out)
    rc, out = run("--in-cluster", env={"KUBERNETES_SERVICE_HOST": ""})
    assert rc == 3 and "KUBERNETES_SERVICE_HOST" in out, (rc, out)
    rc, out = run("--kubeconfig", srv.kubeconfig, "--metrics-addr", "nonsense")
    assert rc == 4 and "--metrics-addr" in out, (rc, out)


TESTS = {name[5:]: fn for name, fn in sorted(globals().items()) if name.startswith("test_")}


def run(name):
    srv = Server("--pod-finalize-after", "0.2", "--no-gc").start()
    ctl = None
    try:
        ctl = Controller(srv).start()
        TESTS[name](srv, ctl)
        if ctl.proc:
            rc = ctl.stop()
            assert rc == 0, "virt-controller exit code %s" % rc
        print("ok %s" % name)
        cleanup(*(x for x in (ctl, srv) if x))
        srv.remove()
        return True
    except Exception:
        import traceback
        traceback.print_exc()
        if ctl:
            print("--- controller log (last 40 lines)\n" + "\n".join(ctl.logtext().splitlines()[-40:]))
        return False
    finally:
        cleanup(*(x for x in (ctl, srv) if x))


def main(module_globals=None):
    """Run the tests named on the command line (default: all) of this module, or of the module whose
    globals are given (test_migration.py, test_snapshot.py share this runner and its server setup)."""
    if module_globals is not None:
        TESTS.clear()
        TESTS.update({n[5:]: fn for n, fn in sorted(module_globals.items()) if n.startswith("test_")})
    names = sys.argv[1:] or list(TESTS)
    failed = [n for n in names if not run(n)]
    if failed:
        print("FAILED: %s" % " ".join(failed))
        sys.exit(1)


if __name__ == "__main__":
    main()
