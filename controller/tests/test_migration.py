#!/usr/bin/env python3
# The VMIM state machine (docs/cluster-live-ops.md) of the real virt-controller against the Kubernetes API
# test server. No launcher runs: the tests play the kubelet (Pod phase, IP) and the two launchers (their
# kvlite.io/launcher-status annotations). Usage: test_migration.py [NAME...]
import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_controller as tc  # noqa: E402
from kubetest import POD_PATH, VMIM_PATH, Controller, vmi_manifest, wait_for  # noqa: E402

NS = "default"
PODS = POD_PATH % NS
VMIMS = VMIM_PATH % NS
JOB = "kubevirt.io/migrationJobUID"


def pod_set(api, name, phase=None, node=None, ip=None, ann=None):
    """As a launcher and the kubelet would: the launcher's report first, then the Pod's state."""
    if ann is not None:
        api.merge("%s/%s" % (PODS, name),
                  {"metadata": {"annotations": {"kvlite.io/launcher-status": json.dumps(ann)}}})
    if node:
        api.merge("%s/%s" % (PODS, name), {"spec": {"nodeName": node}})
    if phase or ip:
        st = {"phase": phase} if phase else {}
        if ip:
            st["podIP"] = ip
        api.merge("%s/%s/status" % (PODS, name), {"status": st})


def migratable(name, **kw):
    """A VMI with masquerade on the pod network: KubeVirt's default (bridge) is not live-migratable."""
    m = vmi_manifest(name, **kw)
    m["spec"]["domain"]["devices"]["interfaces"] = [{"name": "default", "masquerade": {}}]
    m["spec"]["networks"] = [{"name": "default", "pod": {}}]
    return m


def running_vmi(api, name):
    """A VMI whose (fake) launcher Pod runs on node01 at 10.0.0.1."""
    api.create(tc.VMIS, migratable(name))
    vmi = wait_for("Scheduling", lambda: tc.phase_is(api, name, "Scheduling"))
    src = tc.one_pod(api, vmi)["metadata"]["name"]
    pod_set(api, src, "Running", "node01", "10.0.0.1", {"phase": "Running"})
    wait_for("Running", lambda: tc.phase_is(api, name, "Running"))
    return src


def vmim(api, name, vmi):
    return api.create(VMIMS, {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstanceMigration",
                              "metadata": {"name": name}, "spec": {"vmiName": vmi}})


def vmim_get(api, name):
    code, obj = api.get("%s/%s" % (VMIMS, name))
    return obj if code == 200 else None


def vmim_phase(api, name, phase):
    m = vmim_get(api, name)
    return m if m and (m.get("status") or {}).get("phase") == phase else None


def targets(api, m):
    return api.items(PODS, "%s=%s" % (JOB, m["metadata"]["uid"]))


def ready_target(api, mname, node="node02", ip="10.0.0.2", until="Running"):
    """Target Pod created → bound → Running → its launcher ready: the VMIM reaches Running (or until)."""
    m = wait_for("Scheduling", lambda: vmim_phase(api, mname, "Scheduling"))
    tgts = targets(api, m)
    assert len(tgts) == 1, tgts
    t = tgts[0]["metadata"]["name"]
    pod_set(api, t, node=node)
    wait_for("Scheduled", lambda: vmim_phase(api, mname, "Scheduled"))
    pod_set(api, t, "Running", ip=ip)
    wait_for("PreparingTarget", lambda: vmim_phase(api, mname, "PreparingTarget"))
    pod_set(api, t, ann={"phase": "Scheduled", "migrationState": {"targetNodeAddress": "tcp:0.0.0.0:49152"}})
    m = wait_for(until, lambda: vmim_phase(api, mname, until))
    return m, t


def incoming_config(pod):
    """The --incoming-config the target Pod's launcher is started with."""
    cmd = pod["spec"]["containers"][0]["command"]
    return json.loads(cmd[cmd.index("--incoming-config") + 1])


def mstate(api, vmi):
    return (tc.vmi_get(api, vmi).get("status") or {}).get("migrationState") or {}


def test_migration(srv, ctl):
    """Pending → … → Succeeded; the VMI follows the target; the source ending Succeeded does not end it."""
    api = srv.api
    src = running_vmi(api, "mv")
    vmim(api, "mig", "mv")
    m = wait_for("Scheduling", lambda: vmim_phase(api, "mig", "Scheduling"))
    t = targets(api, m)[0]
    c = t["spec"]["containers"][0]
    assert c["command"][-6:-1] == ["--incoming", "tcp:0.0.0.0:49152", "--incoming-nbd", "0.0.0.0:49153",
                                   "--incoming-config"], c["command"]
    assert json.loads(c["command"][-1]) == DEFAULTS, c["command"]  # the source gets the same (below)
    assert t["metadata"]["labels"]["kubevirt.io/created-by"] == tc.vmi_get(api, "mv")["metadata"]["uid"]
    assert t["metadata"]["ownerReferences"][0]["name"] == "mv"
    assert any(e["name"] == "KVLITE_VMI" and '"name":"mv"' in e["value"] for e in c["env"])
    m, tname = ready_target(api, "mig")
    assert [p["phase"] for p in m["status"]["phaseTransitionTimestamps"]] == [
        "Pending", "Scheduling", "Scheduled", "PreparingTarget", "TargetReady", "Running"], m["status"]
    ms = mstate(api, "mv")
    assert ms["migrationUid"] == m["metadata"]["uid"] and ms["sourcePod"] == src and ms["targetPod"] == tname, ms
    assert ms["targetNodeAddress"] == "10.0.0.2" and ms["targetNode"] == "node02" and ms["mode"] == "PreCopy", ms
    assert ms["startTimestamp"] and not ms["completed"] and not ms["failed"], ms
    assert ms["migrationConfiguration"] == DEFAULTS, ms
    assert len(tc.vmi_get(api, "mv")["status"]["activePods"]) == 2
    # the source hands over and ends before the target reports: the VMI stays Running on its source's IP
    lms = {"startTimestamp": ms["startTimestamp"], "completed": True, "mode": "PreCopy"}
    pod_set(api, src, ann={"phase": "Succeeded", "reason": "migrated", "migrationState": lms})
    pod_set(api, src, "Succeeded")
    wait_for("the source out of activePods", lambda: len(tc.vmi_get(api, "mv")["status"].get("activePods", {})) == 1,
             timeout=3)
    st = tc.vmi_get(api, "mv")["status"]
    assert st["phase"] == "Running" and not st["migrationState"]["completed"], st
    # the target finishes by itself
    pod_set(api, tname, ann={"phase": "Running", "migrationState": {"completed": True,
                                                                     "endTimestamp": "2030-01-01T00:00:00Z"}})
    m = wait_for("Succeeded", lambda: vmim_phase(api, "mig", "Succeeded"))
    st = tc.vmi_get(api, "mv")["status"]
    assert st["phase"] == "Running" and st["migrationState"]["completed"], st
    assert st["migrationState"]["endTimestamp"] == "2030-01-01T00:00:00Z", st
    assert st["interfaces"][0]["ipAddress"] == "10.0.0.2" and st["nodeName"] == "node02", st
    assert list(st["activePods"].values()) == ["node02"], st
    assert m["status"]["migrationState"]["completed"], m["status"]
    # a second migration starts from the new source
    vmim(api, "mig2", "mv")
    m2, t2 = ready_target(api, "mig2", node="node03", ip="10.0.0.3")
    ms = mstate(api, "mv")
    assert ms["sourcePod"] == tname and ms["targetPod"] == t2, ms
    # deleting the finished first migration leaves its target alone: it is the VMI's Pod now
    api.ok("DELETE", "%s/mig" % VMIMS)
    wait_for("first VMIM gone", lambda: vmim_get(api, "mig") is None)
    code, p = api.get("%s/%s" % (PODS, tname))
    assert code == 200 and not p["metadata"].get("deletionTimestamp"), p
    # deleting the VMI removes all its Pods
    api.ok("DELETE", "%s/mv" % tc.VMIS, {"propagationPolicy": "Background"})
    wait_for("VMI gone", lambda: tc.vmi_get(api, "mv") is None, timeout=20)
    assert api.items(PODS) == []


def test_refusals(srv, ctl):
    api = srv.api
    vmim(api, "nothing", "nope")
    m = wait_for("Failed", lambda: vmim_phase(api, "nothing", "Failed"))
    assert "spec.vmiName: no VirtualMachineInstance nope" in m["status"]["conditions"][0]["message"], m["status"]
    api.create(tc.VMIS, migratable("early"))
    wait_for("Scheduling", lambda: tc.phase_is(api, "early", "Scheduling"))
    vmim(api, "tooearly", "early")
    m = wait_for("Failed", lambda: vmim_phase(api, "tooearly", "Failed"))
    assert "is Scheduling, not Running" in m["status"]["conditions"][0]["message"], m["status"]
    running_vmi(api, "busy")
    vmim(api, "first", "busy")
    wait_for("Scheduling", lambda: vmim_phase(api, "first", "Scheduling"))
    vmim(api, "second", "busy")
    m = wait_for("Failed", lambda: vmim_phase(api, "second", "Failed"))
    assert "migration first is not finished" in m["status"]["conditions"][0]["message"], m["status"]
    assert len(api.items(PODS, JOB)) == 1, "one target Pod only"
    # KubeVirt's default binding (bridge on the pod network): LiveMigratable False, the migration refused
    api.create(tc.VMIS, vmi_manifest("bridged"))
    src = wait_for("Scheduling", lambda: tc.phase_is(api, "bridged", "Scheduling"))
    pod_set(api, tc.one_pod(api, src)["metadata"]["name"], "Running", "node01", "10.0.0.2", {"phase": "Running"})
    v = wait_for("Running", lambda: tc.phase_is(api, "bridged", "Running"))
    lm = [c for c in v["status"]["conditions"] if c["type"] == "LiveMigratable"]
    assert lm and lm[0]["status"] == "False" and lm[0]["reason"] == "InterfaceNotLiveMigratable", lm
    vmim(api, "nobridge", "bridged")
    m = wait_for("Failed", lambda: vmim_phase(api, "nobridge", "Failed"))
    assert "is not live-migratable" in m["status"]["conditions"][0]["message"], m["status"]


def test_target_fails(srv, ctl):
    """Before the hand-over the target Pod fails; after it, the source reports failure: both end the VMIM
    Failed, delete the target Pod and leave the VMI Running on its source."""
    api = srv.api
    src = running_vmi(api, "tf")
    vmim(api, "m1", "tf")
    m = wait_for("Scheduling", lambda: vmim_phase(api, "m1", "Scheduling"))
    t = targets(api, m)[0]["metadata"]["name"]
    pod_set(api, t, ann={"phase": "Failed", "reason": "no room"})  # its launcher gave up
    m = wait_for("Failed", lambda: vmim_phase(api, "m1", "Failed"))
    assert "no room" in m["status"]["conditions"][0]["message"], m["status"]
    wait_for("target deleted", lambda: targets(api, m) == [])
    vmim(api, "m2", "tf")
    m, t = ready_target(api, "m2")
    ms = mstate(api, "tf")
    pod_set(api, src, ann={"phase": "Running", "migrationState": {
        "startTimestamp": ms["startTimestamp"], "failed": True, "failureReason": "progress timeout"}})
    m = wait_for("Failed", lambda: vmim_phase(api, "m2", "Failed"))
    assert "progress timeout" in m["status"]["migrationState"]["failureReason"], m["status"]
    wait_for("target deleted", lambda: targets(api, m) == [])
    st = tc.vmi_get(api, "tf")["status"]
    assert st["phase"] == "Running" and st["migrationState"]["failed"], st
    assert st["interfaces"][0]["ipAddress"] == "10.0.0.1", st


def test_abort(srv, ctl):
    """The VMIM deleted while running → abortRequested on the VMI; the source cancels → the VMIM goes, the
    target Pod is deleted, the VMI keeps running on the source."""
    api = srv.api
    src = running_vmi(api, "ab")
    vmim(api, "mab", "ab")
    m, t = ready_target(api, "mab")
    api.ok("DELETE", "%s/mab" % VMIMS)
    ms = wait_for("abortRequested", lambda: mstate(api, "ab").get("abortRequested") and mstate(api, "ab"))
    assert vmim_get(api, "mab"), "the VMIM waits for the abort"
    # the target's QEMU fails as soon as the source cuts the stream, before the source's report arrives
    pod_set(api, t, "Failed", ann={"phase": "Failed", "reason": "qemu exited with status 1"})
    ms = wait_for("failed", lambda: mstate(api, "ab").get("failed") and mstate(api, "ab"))
    assert ms["failureReason"] == "aborted: the VirtualMachineInstanceMigration was deleted", ms
    pod_set(api, src, ann={"phase": "Running", "migrationState": {
        "startTimestamp": ms["startTimestamp"], "failed": True, "abortRequested": True, "abortStatus": "Succeeded",
        "failureReason": "cancelled"}})
    wait_for("VMIM gone", lambda: vmim_get(api, "mab") is None)
    wait_for("target deleted", lambda: targets(api, m) == [])
    st = wait_for("the source's report", lambda: (lambda st: st if st["migrationState"].get("abortStatus")
                                                  else None)(tc.vmi_get(api, "ab")["status"]))
    assert st["phase"] == "Running" and st["migrationState"]["failed"], st
    assert st["migrationState"]["abortStatus"] == "Succeeded", st
    assert st["migrationState"]["failureReason"] == \
        "aborted: the VirtualMachineInstanceMigration was deleted; source: cancelled", st


POLICIES = "/apis/migrations.kubevirt.io/v1alpha1/migrationpolicies"


def policy(api, name, spec, vmi_labels=None, ns_labels=None):
    sel = {}
    if vmi_labels:
        sel["virtualMachineInstanceSelector"] = vmi_labels
    if ns_labels:
        sel["namespaceSelector"] = {"matchLabels": ns_labels}  # the matchLabels form, accepted too
    return api.create(POLICIES, {"apiVersion": "migrations.kubevirt.io/v1alpha1", "kind": "MigrationPolicy",
                                 "metadata": {"name": name}, "spec": dict(spec, selectors=sel)})


DEFAULTS = {"allowAutoConverge": False, "allowPostCopy": False, "bandwidthPerMigration": 0,
            "completionTimeoutPerGiB": 150, "progressTimeout": 150}


def test_policy_selection(srv, ctl):
    """KubeVirt's precedence: the policy matching the most labels (VMI + namespace) wins, ties by name; its
    values over the cluster defaults land in the VMI's migrationState.migrationConfiguration."""
    api = srv.api
    api.merge("/api/v1/namespaces/" + NS, {"metadata": {"labels": {"tier": "gold"}}})
    policy(api, "any", {"bandwidthPerMigration": "1Gi"})
    policy(api, "z-ns", {"completionTimeoutPerGiB": 10}, ns_labels={"tier": "gold"})
    policy(api, "a-ns", {"completionTimeoutPerGiB": 20}, ns_labels={"tier": "gold"})
    policy(api, "both", {"bandwidthPerMigration": "64Mi", "allowAutoConverge": True, "completionTimeoutPerGiB": 30,
                         "allowPostCopy": True}, vmi_labels={"app": "pa"}, ns_labels={"tier": "gold"})
    policy(api, "other-ns", {"allowAutoConverge": True}, ns_labels={"tier": "silver"})
    running_vmi(api, "pa")
    vmim(api, "mpa", "pa")
    m, _ = ready_target(api, "mpa")
    ms = mstate(api, "pa")
    assert ms["migrationPolicyName"] == "both", ms
    assert ms["migrationConfiguration"] == dict(DEFAULTS, bandwidthPerMigration=64 << 20, allowAutoConverge=True,
                                                completionTimeoutPerGiB=30, allowPostCopy=True), ms
    assert m["status"]["migrationState"]["migrationPolicyName"] == "both", m["status"]
    # the target launcher was started with the same configuration (post-copy must match on both QEMUs)
    assert incoming_config(targets(api, m)[0]) == ms["migrationConfiguration"]
    # one namespace label each: a-ns before z-ns
    running_vmi(api, "pb")
    vmim(api, "mpb", "pb")
    ready_target(api, "mpb", node="node03", ip="10.0.0.3")
    ms = mstate(api, "pb")
    assert ms["migrationPolicyName"] == "a-ns", ms
    assert ms["migrationConfiguration"] == dict(DEFAULTS, completionTimeoutPerGiB=20), ms
    # without namespace labels only the catch-all applies; without any policy, the defaults and no name
    api.merge("/api/v1/namespaces/" + NS, {"metadata": {"labels": {"tier": None}}})
    running_vmi(api, "pc")
    vmim(api, "mpc", "pc")
    ready_target(api, "mpc", node="node04", ip="10.0.0.4")
    ms = mstate(api, "pc")
    assert ms["migrationPolicyName"] == "any", ms
    assert ms["migrationConfiguration"] == dict(DEFAULTS, bandwidthPerMigration=1 << 30), ms
    for name in ("any", "z-ns", "a-ns", "both", "other-ns"):
        api.ok("DELETE", "%s/%s" % (POLICIES, name))
    wait_for("policies gone from the cache", lambda: not api.items(POLICIES))
    running_vmi(api, "pd")
    vmim(api, "mpd", "pd")
    ready_target(api, "mpd", node="node05", ip="10.0.0.5")
    ms = mstate(api, "pd")
    assert "migrationPolicyName" not in ms and ms["migrationConfiguration"] == DEFAULTS, ms


def test_bad_policy(srv, ctl):
    """A bad value in the policy that applies fails the VMIM with a message naming policy and field, at once (no
    target Pod). A policy going bad after the target Pod was made does not touch that migration: the target was
    started with the configuration, and the source gets the same one."""
    api = srv.api
    running_vmi(api, "bp")
    policy(api, "broken", {"bandwidthPerMigration": "fast"}, vmi_labels={"app": "bp"})
    vmim(api, "mbp", "bp")
    m = wait_for("Failed", lambda: vmim_phase(api, "mbp", "Failed"))
    msg = m["status"]["conditions"][0]["message"]
    assert msg.startswith('MigrationPolicy broken: spec.bandwidthPerMigration: "fast" is not a valid quantity'), msg
    assert api.items(PODS, JOB) == [], "no target Pod for a migration that cannot run"
    assert not mstate(api, "bp"), "the VMI was not touched"
    api.ok("DELETE", "%s/broken" % POLICIES)
    policy(api, "later", {"completionTimeoutPerGiB": 60}, vmi_labels={"app": "bp"})
    vmim(api, "mbp2", "bp")
    wait_for("Scheduling", lambda: vmim_phase(api, "mbp2", "Scheduling"))
    # the target Pod was started with the policy as it was: a change now does not touch this migration
    api.merge("%s/later" % POLICIES, {"spec": {"completionTimeoutPerGiB": -3}})
    wait_for("the policy change in the API", lambda: api.get("%s/later" % POLICIES)[1]["spec"]
             ["completionTimeoutPerGiB"] == -3)
    time.sleep(0.3)  # the controller's watch delivers it
    m, t = ready_target(api, "mbp2")
    ms = mstate(api, "bp")
    assert ms["migrationPolicyName"] == "later", ms
    assert ms["migrationConfiguration"] == dict(DEFAULTS, completionTimeoutPerGiB=60), ms
    assert incoming_config(api.get("%s/%s" % (PODS, t))[1]) == ms["migrationConfiguration"]


def test_restart(srv, ctl):
    """Controller SIGKILLed right after creating the target Pod, and again after the hand-over: one target Pod,
    the migration still completes."""
    api = srv.api
    running_vmi(api, "rs")
    vmim(api, "mrs", "rs")
    wait_for("target Pod", lambda: api.items(PODS, JOB), interval=0.01)
    ctl.stop(signal.SIGKILL)
    ctl2 = Controller(srv).start()
    try:
        m, t = ready_target(api, "mrs")
        assert len(api.items(PODS, JOB)) == 1
        ctl2.stop(signal.SIGKILL)
        pod_set(api, t, ann={"phase": "Running", "migrationState": {"completed": True}})
        ctl2 = Controller(srv).start()
        wait_for("Succeeded", lambda: vmim_phase(api, "mrs", "Succeeded"))
        assert mstate(api, "rs")["completed"] and len(api.items(PODS, JOB)) == 1
    finally:
        ctl2.stop()


def test_target_registry(srv, ctl):
    """A VMI with a registry containerDisk: its migration target Pod pulls it again as the source did, with the
    same copy of the cluster's registry configuration mounted in its pull init container."""
    api = srv.api
    ctl.stop()
    api.create("/api/v1/namespaces/default/secrets",
               {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "regs"},
                "stringData": {"registries.yaml": "registries: []\n"}})
    ctl2 = Controller(srv, "--importer-image", "kvlite/importer:t", "--registry-config", "default/regs").start()
    try:
        api.create(tc.VMIS, migratable("rg", image="vms.example/vms/guest:1"))
        vmi = wait_for("Scheduling", lambda: tc.phase_is(api, "rg", "Scheduling"))
        src = tc.one_pod(api, vmi)
        pod_set(api, src["metadata"]["name"], "Running", "node01", "10.0.0.1", {"phase": "Running"})
        wait_for("Running", lambda: tc.phase_is(api, "rg", "Running"))
        vmim(api, "mrg", "rg")
        m = wait_for("Scheduling", lambda: vmim_phase(api, "mrg", "Scheduling"))
        tgt = targets(api, m)[0]
        for pod in (src, tgt):
            init = pod["spec"]["initContainers"]
            assert [c["name"] for c in init] == ["container-disk-root"], init
            cmd = init[0]["command"]
            assert cmd[cmd.index("--container-disk") + 1] == "vms.example/vms/guest:1", cmd
            assert cmd[cmd.index("--registry-config") + 1] == "/etc/kvlite/registries/registries.yaml", cmd
            vols = {v["name"]: v for v in pod["spec"]["volumes"]}
            assert vols["registries"]["secret"]["secretName"] == "virt-launcher-rg-registries", vols
        code, copy = api.get("/api/v1/namespaces/default/secrets/virt-launcher-rg-registries")
        assert code == 200 and copy["metadata"]["ownerReferences"][0]["name"] == "rg", copy
    finally:
        ctl2.stop()


if __name__ == "__main__":
    tc.main(globals())
