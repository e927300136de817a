#!/usr/bin/env python3
"""virt-controller with instancetypes against the API test server: a VM's VMI takes the instancetype's size,
the instancetype is kept in a ControllerRevision named by spec.instancetype.revisionName, editing the
instancetype changes neither the running VMI nor the next start, clearing revisionName picks up the new
size (as KubeVirt's user guide shows), and conflicts are refused with KubeVirt's message.
usage: test_instancetype.py [TEST...]"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_controller as tc  # noqa: E402
from kubetest import VM_PATH, wait_for  # noqa: E402

NS = "default"
VMS = VM_PATH % NS
ITS = "/apis/instancetype.kubevirt.io/v1beta1/namespaces/%s/virtualmachineinstancetypes" % NS
PREFS = "/apis/instancetype.kubevirt.io/v1beta1/virtualmachineclusterpreferences"
REVS = "/apis/apps/v1/namespaces/%s/controllerrevisions" % NS


def vm(name, strategy="Always", domain=None):
    return {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": {"name": name},
            "spec": {"runStrategy": strategy,
                     "instancetype": {"kind": "VirtualMachineInstancetype", "name": "small"},
                     "preference": {"name": "virtio"},
                     "template": {"spec": {"domain": domain or {"devices": {"disks": [{"name": "root"}]}},
                                           "volumes": [{"name": "root",
                                                        "containerDisk": {"image": "/nonexistent/image"}}]}}}}


def setup(api, guest=2):
    api.create(ITS, {"apiVersion": "instancetype.kubevirt.io/v1beta1", "kind": "VirtualMachineInstancetype",
                     "metadata": {"name": "small"}, "spec": {"cpu": {"guest": guest}, "memory": {"guest": "96Mi"}}})
    api.create(PREFS, {"apiVersion": "instancetype.kubevirt.io/v1beta1", "kind": "VirtualMachineClusterPreference",
                       "metadata": {"name": "virtio"}, "spec": {"devices": {"preferredDiskBus": "sata"}}})


def vmi_cpu(api, name):
    v = tc.vmi_get(api, name)
    return v and v["spec"]["domain"]["cpu"]


def restart(api, name):
    api.merge("%s/%s" % (VMS, name), {"spec": {"runStrategy": "Halted"}})
    wait_for("VMI stopped", lambda: tc.vmi_get(api, name) is None, timeout=30)
    api.merge("%s/%s" % (VMS, name), {"spec": {"runStrategy": "Always"}})
    return wait_for("VMI again", lambda: tc.vmi_get(api, name), timeout=30)


def test_revision(srv, ctl):
    api = srv.api
    setup(api)
    api.create(VMS, vm("sized"))
    v = wait_for("VMI of VM", lambda: tc.vmi_get(api, "sized"))
    spec = v["spec"]["domain"]
    assert spec["cpu"] == {"sockets": 2, "cores": 1, "threads": 1}, spec["cpu"]
    assert spec["memory"]["guest"] == "96Mi", spec
    assert spec["devices"]["disks"][0]["disk"]["bus"] == "sata", spec  # the preference
    ann = v["metadata"].get("annotations", {})
    assert ann.get("kubevirt.io/instancetype-name") == "small", ann
    assert ann.get("kubevirt.io/cluster-preference-name") == "virtio", ann
    rev = wait_for("revisionName", lambda: api.get("%s/sized" % VMS)[1]["spec"]["instancetype"].get("revisionName"))
    code, cr = api.get("%s/%s" % (REVS, rev))
    assert code == 200 and cr["data"]["spec"]["cpu"]["guest"] == 2, (code, cr)
    assert cr["metadata"]["ownerReferences"][0]["kind"] == "VirtualMachine", cr
    assert api.get("%s/sized" % VMS)[1]["spec"]["preference"].get("revisionName"), "preference revision"
    uid = v["metadata"]["uid"]
    # editing the instancetype: the running VMI stays as it is
    api.merge("%s/small" % ITS, {"spec": {"cpu": {"guest": 4}}})
    time.sleep(1.0)
    assert tc.vmi_get(api, "sized")["metadata"]["uid"] == uid
    assert vmi_cpu(api, "sized")["sockets"] == 2
    # a restart keeps the revision the VM started with
    restart(api, "sized")
    assert vmi_cpu(api, "sized")["sockets"] == 2, vmi_cpu(api, "sized")
    # clearing revisionName opts in to the edited instancetype
    api.merge("%s/sized" % VMS, {"spec": {"runStrategy": "Halted"}})
    wait_for("VMI stopped", lambda: tc.vmi_get(api, "sized") is None, timeout=30)
    api.merge("%s/sized" % VMS, {"spec": {"instancetype": {"revisionName": ""}}})
    new_rev = wait_for("new revisionName", lambda: (api.get("%s/sized" % VMS)[1]["spec"]["instancetype"].get(
        "revisionName") or rev) != rev and api.get("%s/sized" % VMS)[1]["spec"]["instancetype"]["revisionName"])
    assert api.get("%s/%s" % (REVS, new_rev))[1]["data"]["spec"]["cpu"]["guest"] == 4
    api.merge("%s/sized" % VMS, {"spec": {"runStrategy": "Always"}})
    wait_for("4 vCPUs", lambda: (vmi_cpu(api, "sized") or {}).get("sockets") == 4, timeout=30)


def test_conflict(srv, ctl):
    api = srv.api
    setup(api)
    api.create(VMS, vm("clash", domain={"cpu": {"sockets": 1}, "devices": {}}))

    def failure():
        conds = api.get("%s/clash" % VMS)[1].get("status", {}).get("conditions", [])
        return next((c for c in conds if c["type"] == "Failure"), None)
    c = wait_for("Failure condition", failure)
    want = "VM field(s) spec.template.spec.domain.cpu.sockets conflicts with selected instance type"
    assert want in c["message"], c
    assert tc.vmi_get(api, "clash") is None
    # a VM naming an instancetype that does not exist is refused naming it
    api.create(VMS, dict(vm("lost"), spec=dict(vm("lost")["spec"], instancetype={"name": "nope"})))
    wait_for("not found", lambda: any("virtualmachineclusterinstancetypes.instancetype.kubevirt.io \"nope\" not found"
                                      in c.get("message", "") for c in api.get("%s/lost" % VMS)[1].get(
                                          "status", {}).get("conditions", [])))


if __name__ == "__main__":
    tc.main(globals())
