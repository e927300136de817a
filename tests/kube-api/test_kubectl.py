#!/usr/bin/env python3
# The test apiserver driven by the real kubectl 1.32: apply, get with printer columns, get -w, patch, delete,
# selectors, errors as kubectl prints them, TLS with a bearer token, `kubectl apply -f crds/`, and every served
# version of a CRD (one stored object, each answer in the version asked for, deprecation warnings, discovery's
# preferred versions).
import base64
import glob
import json
import os
import random
import re
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from testlib import SKIP, ApiServer, Kubectl, check, find_kubectl, run, wait_for  # noqa: E402
import k8sproto  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("KV_SOURCE_ROOT", os.path.join(HERE, "..", ".."))
FIX = os.path.join(HERE, "fixtures")


def header(out):
    return out.splitlines()[0].split()


def row(out, name):
    return next((line.split() for line in out.splitlines() if line.split()[:1] == [name]), None)


def test_basics(k, srv):
    res = k("api-resources").stdout
    for short in ("vmi,vmis", "vm,vms", "vmim,vmims", "po", "ns"):
        check(re.search(r"\b%s\b" % short, res), "api-resources lists short names " + short, res)
    check(k("get", "vmi").stderr.strip() == "No resources found in default namespace.", "empty get vmi")

    out = k("apply", "-f", os.path.join(FIX, "vmi.yaml")).stdout
    check("virtualmachineinstance.kubevirt.io/testvmi created" in out, "apply creates", out)
    out = k("apply", "-f", os.path.join(FIX, "vmi.yaml")).stdout
    check("unchanged" in out, "re-apply is unchanged", out)
    edited = open(os.path.join(FIX, "vmi.yaml")).read().replace("app: a", "app: b")
    out = k("apply", "-f", "-", stdin=edited).stdout
    check("configured" in out, "apply after an edit configures (merge patch)", out)

    out = k("get", "vmi").stdout
    check(header(out) == ["NAME", "AGE", "PHASE", "IP", "NODENAME", "READY"], "get vmi printer columns", out)
    out = k("get", "vmi", "-o", "wide").stdout
    check(header(out)[-2:] == ["LIVE-MIGRATABLE", "PAUSED"], "-o wide adds the priority-1 columns", out)

    status = ('{"status":{"phase":"Running","nodeName":"n1","interfaces":[{"ipAddress":"10.0.0.5"}],'
              '"conditions":[{"type":"Ready","status":"True"}]}}')
    out = k("patch", "vmi", "testvmi", "--type=merge", "-p", status).stdout
    check("patched" in out and "no change" not in out, "patch --type=merge", out)
    out = k("patch", "vmi", "testvmi", "--type=merge", "-p", status).stdout
    check("patched (no change)" in out, "repeated patch is a no-op", out)
    r = row(k("get", "vmi").stdout, "testvmi")
    check(r and r[2:] == ["Running", "10.0.0.5", "n1", "True"], "row shows phase, IP, node and Ready", r)

    p = k("patch", "vmi", "testvmi", "-p", '{"metadata":{"labels":{"x":"y"}}}', ok=False)
    check(p.returncode != 0 and "application/strategic-merge-patch+json is not supported by kubevirt.io/v1, "
          "Kind=VirtualMachineInstance" in p.stderr, "strategic patch of a CR is refused like upstream", p.stderr)

    out = k("get", "vmi", "-A", "--show-labels").stdout
    check(header(out)[0] == "NAMESPACE" and "app=b" in out and "default" in out, "-A --show-labels", out)
    check("testvmi" in k("get", "vmi", "-l", "app=b").stdout, "label selector matches")
    check("No resources" in k("get", "vmi", "-l", "app notin (b)").stderr, "notin selector excludes")
    check("testvmi" in k("get", "virtualmachineinstance.kubevirt.io", "testvmi").stdout, "fully qualified name")
    check("virtualmachineinstance.kubevirt.io/testvmi" in k("get", "all").stdout, "get all uses categories")

    p = k("get", "vmi", "nope", ok=False)
    check('Error from server (NotFound): virtualmachineinstances.kubevirt.io "nope" not found' in p.stderr,
          "404 message", p.stderr)
    p = k("create", "-f", os.path.join(FIX, "vmi.yaml"), ok=False)
    check("Error from server (AlreadyExists)" in p.stderr and
          'virtualmachineinstances.kubevirt.io "testvmi" already exists' in p.stderr, "409 AlreadyExists", p.stderr)
    p = k("get", "pods", "--field-selector", "spec.foo=x", ok=False)
    check("field label not supported: spec.foo" in p.stderr, "unsupported field selector", p.stderr)


def test_vm_vmim(k):
    out = k("apply", "-f", os.path.join(FIX, "vm.yaml")).stdout
    check("virtualmachine.kubevirt.io/testvm created" in out and "testvmim created" in out, "apply VM and VMIM", out)
    check(header(k("get", "vm").stdout) == ["NAME", "AGE", "STATUS", "READY"], "get vm columns")
    out = k("get", "vmim").stdout
    check(header(out) == ["NAME", "PHASE", "VMI"] and row(out, "testvmim")[-1] == "testvmi", "get vmim columns", out)
    # VM has the status subresource: status through the main resource is ignored
    k("patch", "vm", "testvm", "--type=merge", "-p", '{"status":{"printableStatus":"Running"}}')
    check(row(k("get", "vm").stdout, "testvm")[2:] == [], "main-resource patch leaves VM status alone")
    k("patch", "vm", "testvm", "--subresource=status", "--type=merge", "-p",
      '{"status":{"printableStatus":"Stopped"}}')
    check(row(k("get", "vm").stdout, "testvm")[2] == "Stopped", "status subresource patch writes status")


def test_watch_and_delete(k):
    w = k.popen("get", "vmi", "-w")
    time.sleep(1.5)
    k("label", "vmi", "testvmi", "watched=yes")
    k("patch", "vmi", "testvmi", "--type=merge", "-p", '{"metadata":{"finalizers":["kvlite.io/test"]}}')
    d = k.popen("delete", "vmi", "testvmi")
    time.sleep(1.5)
    check(d.poll() is None, "delete blocks on a finalizer")
    out = k("get", "vmi", "testvmi", "-o", "jsonpath={.metadata.deletionTimestamp}").stdout
    check(out.endswith("Z"), "deletionTimestamp is set", out)
    p = k("patch", "vmi", "testvmi", "--type=merge", "-p", '{"metadata":{"finalizers":["a/b","kvlite.io/test"]}}',
          ok=False)
    check("no new finalizers can be added if the object is being deleted" in p.stderr, "no new finalizers", p.stderr)
    k("patch", "vmi", "testvmi", "--type=json", "-p", '[{"op":"remove","path":"/metadata/finalizers"}]')
    d.wait(20)
    check(d.returncode == 0 and 'virtualmachineinstance.kubevirt.io "testvmi" deleted' in d.stdout.read(),
          "delete returns once the finalizer is gone")
    check("NotFound" in k("get", "vmi", "testvmi", ok=False).stderr, "object is gone")
    w.kill()
    out = w.communicate()[0]
    check(len([line for line in out.splitlines() if line.startswith("testvmi")]) >= 3,
          "get -w saw the updates", out)


# As published (KubeVirt's docs, most manifests): the snapshot API before v1beta1 existed.
SNAPSHOT_V1ALPHA1 = """apiVersion: snapshot.kubevirt.io/v1alpha1
kind: VirtualMachineSnapshot
metadata:
  name: snap-larry
spec:
  source:
    apiGroup: kubevirt.io
    kind: VirtualMachine
    name: larry
"""
# KubeVirt's examples/vm-pool-cirros.yaml as older releases have it (pool.kubevirt.io/v1alpha1).
POOL_V1ALPHA1 = """apiVersion: pool.kubevirt.io/v1alpha1
kind: VirtualMachinePool
metadata:
  name: vm-pool-cirros
spec:
  replicas: 3
  selector:
    matchLabels:
      kubevirt.io/vmpool: vm-pool-cirros
  virtualMachineTemplate:
    metadata:
      creationTimestamp: null
      labels:
        kubevirt.io/vmpool: vm-pool-cirros
    spec:
      running: true
      template:
        metadata:
          creationTimestamp: null
          labels:
            kubevirt.io/vmpool: vm-pool-cirros
        spec:
          domain:
            devices:
              disks:
              - disk:
                  bus: virtio
                name: containerdisk
            resources:
              requests:
                memory: 128Mi
          terminationGracePeriodSeconds: 0
          volumes:
          - containerDisk:
              image: registry:5000/kubevirt/cirros-container-disk-demo:devel
            name: containerdisk
"""
ALPHA_SNAP = "virtualmachinesnapshots.v1alpha1.snapshot.kubevirt.io"


def test_crd_versions(k, srv):
    """Every served version of a CRD is served, as kube-apiserver does with conversion None."""
    p = k("apply", "-f", "-", stdin=SNAPSHOT_V1ALPHA1)
    check("virtualmachinesnapshot.snapshot.kubevirt.io/snap-larry created" in p.stdout and "Warning" not in p.stderr,
          "kubectl apply of a v1alpha1 VirtualMachineSnapshot (KubeVirt does not deprecate v1alpha1: no warning)",
          p.stdout, p.stderr)
    check("unchanged" in k("apply", "-f", "-", stdin=SNAPSHOT_V1ALPHA1).stdout,
          "re-applied through v1alpha1: unchanged")
    out = k("get", "vmsnapshot", "snap-larry", "-o", "yaml").stdout
    check("apiVersion: snapshot.kubevirt.io/v1beta1\n" in out and "name: larry" in out,
          "kubectl get vmsnapshot answers in the preferred version, v1beta1", out)
    out = k("get", ALPHA_SNAP, "snap-larry", "-o", "jsonpath={.apiVersion}").stdout
    check(out == "snapshot.kubevirt.io/v1alpha1", "…and through virtualmachinesnapshots.v1alpha1 in v1alpha1", out)
    out = k("get", ALPHA_SNAP).stdout
    check(header(out) == ["NAME", "SOURCEKIND", "SOURCENAME", "PHASE", "READYTOUSE", "CREATIONTIME", "ERROR"] and
          row(out, "snap-larry")[1:3] == ["VirtualMachine", "larry"], "v1alpha1's printer columns", out)
    base = "/apis/snapshot.kubevirt.io/%s/namespaces/default/virtualmachinesnapshots"
    _, a = srv.request("GET", base % "v1alpha1" + "/snap-larry")
    _, b = srv.request("GET", base % "v1beta1" + "/snap-larry")
    check(a["metadata"] == b["metadata"] and a["apiVersion"].endswith("v1alpha1") and
          b["apiVersion"].endswith("v1beta1"), "one stored object: same uid and resourceVersion in both", a, b)
    _, lst = srv.request("GET", base % "v1alpha1")
    check(lst["apiVersion"] == "snapshot.kubevirt.io/v1alpha1" and len(lst["items"]) == 1 and
          lst["items"][0]["apiVersion"] == "snapshot.kubevirt.io/v1alpha1", "a v1alpha1 list", lst)

    # a watch through one version sees what the other writes, in its own version
    w = k.popen("get", ALPHA_SNAP, "-w", "-o", "jsonpath={.apiVersion} {.metadata.labels.seen}{\"\\n\"}")
    time.sleep(1.5)
    k("label", "vmsnapshot", "snap-larry", "seen=beta")
    k("patch", ALPHA_SNAP, "snap-larry", "--type=json", "-p",
      '[{"op":"add","path":"/metadata/labels/via","value":"json"}]')
    time.sleep(1.5)
    w.kill()
    out = w.communicate()[0]
    check("snapshot.kubevirt.io/v1alpha1 beta" in out and "v1beta1" not in out,
          "kubectl get -w through v1alpha1 sees the label set through v1beta1, in v1alpha1", out)
    labels = json.loads(k("get", "vmsnapshot", "snap-larry", "-o", "jsonpath={.metadata.labels}").stdout)
    check(labels == {"seen": "beta", "via": "json"}, "a JSON patch through v1alpha1", labels)

    # writes through v1alpha1: merge patch, status subresource, PUT; a strategic patch of a CR is refused
    k("patch", ALPHA_SNAP, "snap-larry", "--type=merge", "--subresource=status", "-p",
      '{"status":{"phase":"Succeeded","readyToUse":true}}')
    check(row(k("get", "vmsnapshot").stdout, "snap-larry")[3:5] == ["Succeeded", "true"],
          "the status subresource through v1alpha1, seen through v1beta1")
    p = k("patch", ALPHA_SNAP, "snap-larry", "-p", '{"metadata":{"labels":{"x":"y"}}}', ok=False)
    check(p.returncode != 0 and "is not supported by snapshot.kubevirt.io/v1alpha1, Kind=VirtualMachineSnapshot"
          in p.stderr, "a strategic patch through v1alpha1 is refused as for any CR", p.stderr)
    obj = json.loads(k("get", ALPHA_SNAP, "snap-larry", "-o", "json").stdout)
    obj["metadata"]["annotations"] = {"replaced": "yes"}
    p = k("replace", "-f", "-", stdin=json.dumps(obj))
    check("replaced" in p.stdout and k("get", "vmsnapshot", "snap-larry", "-o",
                                       "jsonpath={.metadata.annotations.replaced}").stdout == "yes",
          "kubectl replace (PUT) of a v1alpha1 object", p.stdout)
    # a body in the other served version is refused, as upstream (the request's version decodes it)
    code, st = srv.request("POST", base % "v1alpha1", {"apiVersion": "snapshot.kubevirt.io/v1beta1",
                                                       "kind": "VirtualMachineSnapshot", "metadata": {"name": "mixed"}})
    check(code == 400 and st["message"] == "the API version in the data (snapshot.kubevirt.io/v1beta1) does not "
          "match the expected API version (snapshot.kubevirt.io/v1alpha1)", "a v1beta1 body posted to v1alpha1: 400",
          code, st)
    out = k("delete", ALPHA_SNAP, "--all").stdout
    check('virtualmachinesnapshot.snapshot.kubevirt.io "snap-larry" deleted' in out and
          "No resources" in k("get", "vmsnapshot").stderr, "deletecollection through v1alpha1", out)

    # VirtualMachinePool v1alpha1 (KubeVirt serves it beside v1beta1), its scale subresource
    out = k("apply", "-f", "-", stdin=POOL_V1ALPHA1).stdout
    check("virtualmachinepool.pool.kubevirt.io/vm-pool-cirros created" in out, "a v1alpha1 pool is accepted", out)
    out = k("scale", "virtualmachinepools.v1alpha1.pool.kubevirt.io", "vm-pool-cirros", "--replicas=1").stdout
    check("scaled" in out and row(k("get", "vmpool").stdout, "vm-pool-cirros")[1] == "1" and
          k("get", "vmpool", "vm-pool-cirros", "-o", "jsonpath={.apiVersion}").stdout == "pool.kubevirt.io/v1beta1",
          "kubectl scale through v1alpha1; kubectl get vmpool answers in v1beta1", out)
    k("delete", "virtualmachinepools.v1alpha1.pool.kubevirt.io", "vm-pool-cirros")

    # KubeVirt deprecates instancetype.kubevirt.io v1alpha1 and v1alpha2: kubectl prints the warning
    it = ("apiVersion: instancetype.kubevirt.io/%s\nkind: VirtualMachineInstancetype\nmetadata:\n  name: small\n"
          "spec:\n  cpu:\n    guest: 1\n  memory:\n    guest: 128Mi\n")
    p = k("apply", "-f", "-", stdin=it % "v1alpha1")
    check("virtualmachineinstancetype.instancetype.kubevirt.io/small created" in p.stdout and
          p.stderr.strip() == "Warning: instancetype.kubevirt.io/v1alpha1 VirtualMachineInstancetypes is now "
          "deprecated and will be removed in v1.", "apply through a deprecated version prints KubeVirt's warning",
          p.stdout, p.stderr)
    p = k("get", "virtualmachineinstancetypes.v1alpha2.instancetype.kubevirt.io", "small", "-o", "name")
    check("instancetype.kubevirt.io/v1alpha2 VirtualMachineInstancetypes is now deprecated" in p.stderr,
          "a read through v1alpha2 warns too", p.stderr)
    p = k("get", "vminstancetype", "small", "-o", "jsonpath={.apiVersion}")
    check(p.stdout == "instancetype.kubevirt.io/v1beta1" and p.stderr == "", "v1beta1 (preferred) does not warn",
          p.stdout, p.stderr)
    k("delete", "vminstancetype", "small")


def test_preferred_versions(k, srv):
    """Discovery lists every served version, ordered as kube-apiserver orders them (GA, then beta, then alpha,
    then by number); the first is the preferred version, whatever the storage version is."""
    code, groups = srv.request("GET", "/apis")
    pref = {g["name"]: (g["preferredVersion"]["version"], [v["version"] for v in g["versions"]])
            for g in groups["groups"]}
    check(pref["snapshot.kubevirt.io"] == ("v1beta1", ["v1beta1", "v1alpha1"]) and
          pref["instancetype.kubevirt.io"] == ("v1beta1", ["v1beta1", "v1alpha2", "v1alpha1"]) and
          pref["pool.kubevirt.io"] == ("v1beta1", ["v1beta1", "v1alpha1"]) and
          pref["kubevirt.io"] == ("v1", ["v1"]), "/apis: versions and preferredVersion", pref)
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "gadgets.example.kvlite.io"},
           "spec": {"group": "example.kvlite.io", "scope": "Namespaced",
                    "names": {"kind": "Gadget", "plural": "gadgets", "singular": "gadget", "listKind": "GadgetList"},
                    "versions": [{"name": n, "served": True, "storage": n == "v1alpha1",
                                  "schema": {"openAPIV3Schema": {"type": "object",
                                                                 "x-kubernetes-preserve-unknown-fields": True}}}
                                 for n in ("v1alpha1", "v1", "v1beta2", "v2alpha1")]}}
    crd["spec"]["versions"][3]["deprecated"] = True
    k("apply", "-f", "-", stdin=json.dumps(crd))
    code, group = srv.request("GET", "/apis/example.kvlite.io")
    check(group["preferredVersion"]["version"] == "v1" and
          [v["version"] for v in group["versions"]] == ["v1", "v1beta2", "v2alpha1", "v1alpha1"],
          "/apis/<group>: the preferred version is v1, not the storage version v1alpha1", group)
    code, agg = srv.request("GET", "/apis", headers={"Accept": "application/json;g=apidiscovery.k8s.io;v=v2;"
                                                               "as=APIGroupDiscoveryList,application/json"})
    item = next(i for i in agg["items"] if i["metadata"]["name"] == "example.kvlite.io")
    check([v["version"] for v in item["versions"]] == ["v1", "v1beta2", "v2alpha1", "v1alpha1"],
          "aggregated discovery lists the versions in the same order", item)
    code, rl = srv.request("GET", "/apis/example.kvlite.io/v1beta2")
    check(code == 200 and [r["name"] for r in rl["resources"]] == ["gadgets"], "/apis/<group>/v1beta2", rl)
    p = k("apply", "-f", "-", stdin="apiVersion: example.kvlite.io/v2alpha1\nkind: Gadget\nmetadata:\n"
                                    "  name: g1\n")
    check(p.stderr.strip() == "Warning: example.kvlite.io/v2alpha1 Gadget is deprecated; use example.kvlite.io/v1 "
          "Gadget", "a deprecated version without deprecationWarning: apiextensions' default text", p.stderr)
    check(k("get", "gadget", "g1", "-o", "jsonpath={.apiVersion}").stdout == "example.kvlite.io/v1",
          "kubectl get uses the preferred version")
    k("delete", "crd", "gadgets.example.kvlite.io")


def test_pods(k):
    out = k("run", "p1", "--image=busybox:1", "--overrides", '{"spec":{"nodeName":"n1"}}', "--command", "--",
            "sleep", "1").stdout
    check("pod/p1 created" in out, "kubectl run creates a pod", out)
    out = k("get", "pods", "-o", "wide").stdout
    check(header(out)[:5] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"] and row(out, "p1")[1:3] == ["0/1", "Pending"],
          "get pods columns", out)
    check("p1" in k("get", "pods", "--field-selector", "spec.nodeName=n1").stdout, "field selector spec.nodeName")
    out = k("apply", "-f", "-", stdin="apiVersion: v1\nkind: Pod\nmetadata:\n  name: p2\n  labels: {a: b}\n"
            "spec:\n  containers:\n  - name: c\n    image: busybox\n").stdout
    check("pod/p2 created" in out, "apply a pod", out)
    out = k("apply", "-f", "-", stdin="apiVersion: v1\nkind: Pod\nmetadata:\n  name: p2\n  labels: {a: c}\n"
            "spec:\n  containers:\n  - name: c\n    image: busybox\n").stdout
    check("pod/p2 configured" in out, "re-apply a pod (strategic merge patch)", out)
    check("a=c" in k("get", "pod", "p2", "--show-labels").stdout, "pod label updated")
    out = k("delete", "pod", "p1", "--grace-period=0", "--force").stdout
    check("deleted" in out, "force delete a bound pod", out)
    k("delete", "pod", "p2")


def test_examples(k):
    files = sorted(glob.glob(os.path.join(ROOT, "examples", "*.yaml")))
    if not files:
        print("ok - examples/ is empty (skipped)")
        return
    for f in files:
        out = k("apply", "--dry-run=server", "-f", f).stdout
        check("(server dry run)" in out, "apply --dry-run=server " + os.path.basename(f), out)


def test_tls():
    srv = ApiServer("--token", "sekret", tls=True)
    kc = os.path.join(srv.dir, "tls-kubeconfig")
    with open(kc, "w") as f:
        f.write("apiVersion: v1\nkind: Config\ncurrent-context: t\nclusters:\n- name: t\n  cluster:\n"
                "    server: %s\n    certificate-authority: %s\nusers:\n- name: t\n  user:\n    token: sekret\n"
                "contexts:\n- name: t\n  context: {cluster: t, user: t}\n"
                % (srv.info["https_url"], srv.info["ca_crt"]))
    k = Kubectl(srv, kc)
    check("default" in k("get", "ns").stdout, "https with CA and bearer token")
    p = k("get", "vmi", "--token", "wrong", ok=False)
    check("error: You must be logged in to the server (Unauthorized)" in p.stderr, "wrong token is 401", p.stderr)
    p = k("get", "ns", "--client-certificate", srv.info["client_crt"], "--client-key", srv.info["client_key"],
          "--token", "", ok=False)
    check(p.returncode == 0, "client certificate authenticates", p.stderr)
    srv.stop()


def test_apply_crds():
    srv = ApiServer("--no-crds", "--legacy-discovery")
    k = Kubectl(srv)
    p = k("get", "vmi", ok=False)
    check('the server doesn\'t have a resource type "vmi"' in p.stderr, "no CRDs, no vmi", p.stderr)
    out = k("apply", "-f", os.path.join(ROOT, "crds")).stdout
    check("customresourcedefinition.apiextensions.k8s.io/virtualmachineinstances.kubevirt.io created" in out and
          "deployment.apps/virt-controller created" in out, "kubectl apply -f crds/", out)
    check("validatingwebhookconfiguration.admissionregistration.k8s.io/virt-api-validator created" in out and
          "apiservice.apiregistration.k8s.io/v1.subresources.kubevirt.io created" in out,
          "crds/ registers virt-api's webhooks and APIService", out)
    # No virt-api runs here: its webhooks (failurePolicy Fail, as KubeVirt's) refuse VMIs until it serves.
    p = k("apply", "-f", os.path.join(FIX, "vmi.yaml"), ok=False)
    check(p.returncode != 0 and 'failed calling webhook "virtualmachineinstances-mutator.kubevirt.io"' in p.stderr,
          "without virt-api its webhooks refuse a VMI", p.stderr)
    k("delete", "validatingwebhookconfiguration,mutatingwebhookconfiguration", "-l", "app.kubernetes.io/part-of=kvlite")
    out = k("apply", "-f", os.path.join(FIX, "vmi.yaml")).stdout
    check("testvmi created" in out, "a VMI after the CRDs (legacy discovery)", out)
    check(header(k("get", "vmi").stdout)[:3] == ["NAME", "AGE", "PHASE"], "columns come from the applied CRD")
    # the scale subresource of a CRD (the replica set's): kubectl scale, and the Scale object itself
    rs = ("apiVersion: kubevirt.io/v1\nkind: VirtualMachineInstanceReplicaSet\nmetadata: {name: rs}\nspec:\n"
          "  replicas: 2\n  selector: {matchLabels: {a: b}}\n  template: {metadata: {labels: {a: b}}, spec: {}}\n")
    k("apply", "-f", "-", stdin=rs)
    out = k("scale", "vmirs", "rs", "--replicas=5").stdout
    check("virtualmachineinstancereplicaset.kubevirt.io/rs scaled" in out and
          k("get", "vmirs", "rs", "-o", "jsonpath={.spec.replicas}").stdout == "5", "kubectl scale vmirs", out)
    check(row(k("get", "vmirs").stdout, "rs")[1] == "5", "kubectl get vmirs: Desired")
    code, scale = srv.request("GET", "/apis/kubevirt.io/v1/namespaces/default/virtualmachineinstancereplicasets/rs/"
                              "scale")
    check(code == 200 and scale["kind"] == "Scale" and scale["spec"] == {"replicas": 5}, "GET .../scale", scale)
    p = k("scale", "vmirs", "rs", "--replicas=-1", ok=False)
    check(p.returncode != 0, "a negative scale is refused", p.stderr)
    srv.stop()


def test_typed_create(k, srv):
    """kubectl's create secret|configmap|namespace|serviceaccount post protobuf (k8sproto.py)."""
    out = k("create", "secret", "generic", "keys", "--from-literal=key1=ssh-ed25519 AAAA k@x",
            "--from-literal=empty=", "--type=Opaque").stdout
    check("secret/keys created" in out, "kubectl create secret generic (a protobuf body)", out)
    sec = json.loads(k("get", "secret", "keys", "-o", "json").stdout)
    check(sec["data"] == {"key1": base64.b64encode(b"ssh-ed25519 AAAA k@x").decode(), "empty": ""} and
          sec["type"] == "Opaque" and sec["metadata"]["namespace"] == "default" and "generateName" not in sec["metadata"],
          "its data decoded from protobuf", sec)
    k("patch", "secret", "keys", "--type=merge", "-p", '{"stringData":{"k2":"v2"}}')
    sec = json.loads(k("get", "secret", "keys", "-o", "json").stdout)
    check(sec["data"].get("k2") == base64.b64encode(b"v2").decode() and "stringData" not in sec,
          "stringData is merged into data and not stored", sec)
    k("create", "secret", "docker-registry", "pull", "--docker-server=r:5000", "--docker-username=u",
      "--docker-password=p")
    cfg = json.loads(base64.b64decode(json.loads(k("get", "secret", "pull", "-o", "json").stdout)["data"][
        ".dockerconfigjson"]))
    check(cfg["auths"]["r:5000"]["username"] == "u", "create secret docker-registry", cfg)
    k("create", "configmap", "cm", "--from-literal=a=b", "--from-literal=c=d")
    check(k("get", "configmap", "cm", "-o", "jsonpath={.data}").stdout == '{"a":"b","c":"d"}', "create configmap")
    k("create", "namespace", "made-by-create")
    check("Active" in k("get", "namespace", "made-by-create").stdout, "create namespace")
    k("create", "serviceaccount", "robot")
    check("robot" in k("get", "serviceaccount").stdout, "create serviceaccount")
    # the decoder on garbage: an error for the client, never a crash of the server
    rnd = random.Random(7)
    good = b"k8s\x00\x0a\x0c\x0a\x02v1\x12\x06Secret\x12\x0a\x0a\x08\x0a\x06secret"
    check(k8sproto.decode(good)["metadata"] == {"name": "secret"}, "a hand-made Secret body decodes")
    for n in range(3000):
        body = bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(64))) if n % 2 else \
            bytearray(good)
        if not n % 2:
            body[rnd.randrange(len(body))] = rnd.getrandbits(8)
            body = bytes(body[:rnd.randrange(len(body) + 1)])
        try:
            k8sproto.decode(body)
        except (ValueError, UnicodeDecodeError, struct.error):
            pass
    status, reply = srv.request("POST", "/api/v1/namespaces/default/secrets", good.replace(b"Secret", b"Podxxx"),
                                ctype="application/vnd.kubernetes.protobuf")
    check(status == 415 and "decodes protobuf only for" in reply.get("message", ""), "an unknown kind: 415", reply)


def main():
    if not find_kubectl():
        print("SKIP: no kubectl")
        sys.exit(SKIP)
    srv = ApiServer()
    k = Kubectl(srv)
    test_basics(k, srv)
    test_vm_vmim(k)
    test_watch_and_delete(k)
    test_crd_versions(k, srv)
    test_preferred_versions(k, srv)
    test_pods(k)
    test_examples(k)
    test_typed_create(k, srv)
    srv.stop()
    test_tls()
    test_apply_crds()


if __name__ == "__main__":
    run(main)
