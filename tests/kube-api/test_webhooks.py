#!/usr/bin/env python3
# Admission webhooks in the test apiserver, driven by the real kubectl: a webhook server (HTTPS, with the
# certificates virt-api's certs_ensure() makes) answers with virt-api's admission cores (admission-tool),
# reached through a Service and verified with the caBundle. A bad VMI is refused by `kubectl apply` naming the
# field; defaults are patched in; failurePolicy Fail/Ignore; a wrong caBundle; Service → Pod resolution;
# matchPolicy Equivalent: a request in a version the rules do not name reaches the webhook converted.
import base64
import json
import os
import ssl
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from testlib import SKIP, ApiServer, Kubectl, check, find_kubectl, run  # noqa: E402

BUILD = os.environ.get("KV_BUILD_ROOT", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                                      "build"))
TOOL = os.path.join(BUILD, "virt-api", "admission-tool")
NS = "kubevirt"

VMI = """apiVersion: kubevirt.io/v1
kind: VirtualMachineInstance
metadata:
  name: %(name)s
spec:
  domain:
    memory:
      guest: 128Mi
    devices:
      disks:
      - name: root
        disk:
          bus: %(bus)s
  volumes:
  - name: root
    containerDisk:
      image: quay.io/kubevirt/cirros-container-disk-demo
"""


class WebhookServer:
    """HTTPS server answering /validate and /mutate with admission-tool; remembers the reviews."""

    def __init__(self, cert_dir):
        self.reviews = []
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.reviews.append((self.path, json.loads(body)))
                op = self.path.strip("/")
                answers = {"evict-once": self.evict_once, "label": self.label, "deny": self.deny}
                if op in answers:
                    resp = answers[op](json.loads(body)["request"])
                    return self.reply(200, json.dumps({"apiVersion": "admission.k8s.io/v1",
                                                       "kind": "AdmissionReview", "response": resp}).encode())
                p = subprocess.run([TOOL, op], input=body, capture_output=True)
                self.reply(200 if p.returncode == 0 else 400, p.stdout if p.returncode == 0 else p.stderr)

            def reply(self, code, out):
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            @staticmethod
            def evict_once(req):
                """KubeVirt's interceptor in short: the first eviction of a Pod is refused with 429 (it
                starts an evacuation), later ones are allowed."""
                first = req["name"] not in outer.evicted
                outer.evicted.add(req["name"])
                resp = {"uid": req["uid"], "allowed": not first}
                if first:
                    resp["status"] = {"code": 429, "message": 'Eviction triggered evacuation of VMI "%s/%s"'
                                      % (req["namespace"], req["name"])}
                return resp

            @staticmethod
            def label(req):
                """Allowed, with a JSONPatch labelling the object with the version it was sent in."""
                patch = [{"op": "add", "path": "/metadata/labels", "value": {
                    "admitted-as": req["object"]["apiVersion"].split("/")[-1]}}]
                return {"uid": req["uid"], "allowed": True, "patchType": "JSONPatch",
                        "patch": base64.b64encode(json.dumps(patch).encode()).decode()}

            @staticmethod
            def deny(req):
                return {"uid": req["uid"], "allowed": False, "status": {"code": 403, "message": "denied by test"}}

        self.evicted = set()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.cert_dir = cert_dir
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.reload()
        self.httpd.socket = self.ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def reload(self):
        """New connections get the certificate now in cert_dir (virt-api reloads after a rotation)."""
        self.ctx.load_cert_chain(os.path.join(self.cert_dir, "tls.crt"), os.path.join(self.cert_dir, "tls.key"))


def certs(cert_dir, names="virt-api.kubevirt.svc,virt-api.kubevirt.svc.cluster.local"):
    p = subprocess.run([TOOL, "certs", cert_dir, names, "30"], capture_output=True, text=True)
    check(p.returncode == 0, "certs_ensure made the webhook's certificates", p.stderr)
    return base64.b64encode(open(os.path.join(cert_dir, "ca.crt"), "rb").read()).decode()


def webhook_config(kind, name, hook, ca, resources, path, failure="Fail", service=None, url=None):
    cc = {"caBundle": ca}
    if url:
        cc["url"] = url
    else:
        cc["service"] = dict(service or {"namespace": NS, "name": "virt-api"}, path=path)
    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind, "metadata": {"name": name},
            "webhooks": [{"name": hook, "clientConfig": cc, "admissionReviewVersions": ["v1"],
                          "sideEffects": "None", "failurePolicy": failure, "timeoutSeconds": 5,
                          "rules": [{"apiGroups": ["kubevirt.io"], "apiVersions": ["v1"],
                                     "operations": ["CREATE", "UPDATE"], "resources": resources}]}]}


def create(srv, path, obj):
    code, out = srv.request("POST", path, obj)
    check(code == 201, "created %s %s" % (obj["kind"], obj["metadata"]["name"]), code, out)
    return out


def test_refuse_and_default(srv, k, hook_srv, ca):
    create(srv, "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    create(srv, "/api/v1/namespaces/%s/services" % NS,
           {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "virt-api", "annotations": {
                "kube-api-test.kvlite.io/endpoint": "127.0.0.1:%d" % hook_srv.port}},
            "spec": {"ports": [{"port": 443, "targetPort": 8443}], "selector": {"kubevirt.io": "virt-api"}}})
    vwc = webhook_config("ValidatingWebhookConfiguration", "virt-api-validator",
                         "virtualmachineinstances-validator.kubevirt.io", ca,
                         ["virtualmachineinstances", "virtualmachines"], "/validate")
    mwc = webhook_config("MutatingWebhookConfiguration", "virt-api-mutator",
                         "virtualmachineinstances-mutator.kubevirt.io", ca,
                         ["virtualmachineinstances", "virtualmachines"], "/mutate")
    for obj in (vwc, mwc):
        out = k("apply", "-f", "-", stdin=json.dumps(obj)).stdout
        check("created" in out, "kubectl apply registers a %s" % obj["kind"], out)

    p = k("apply", "-f", "-", stdin=VMI % {"name": "bad", "bus": "ide"}, ok=False)
    msg = p.stderr
    check(p.returncode != 0, "kubectl apply of a VMI with disk bus ide fails", p.stdout)
    # the denial carries KubeVirt's causes, so kubectl prints them as it does for real KubeVirt
    check(msg.startswith("The request is invalid: spec.domain.devices.disks[0].disk.bus:") and
          '"ide" is not supported' in msg, "kubectl shows the denial naming the field", msg)
    code, _ = srv.request("GET", "/apis/kubevirt.io/v1/namespaces/default/virtualmachineinstances/bad")
    check(code == 404, "the refused VMI was not stored", code)
    code, st = srv.request("POST", "/apis/kubevirt.io/v1/namespaces/default/virtualmachineinstances",
                           json.loads(k("create", "--dry-run=client", "-o", "json", "-f", "-",
                                        stdin=VMI % {"name": "bad", "bus": "ide"}).stdout))
    check(code == 422 and st["reason"] == "Invalid" and
          st["details"]["causes"][0]["field"] == "spec.domain.devices.disks[0].disk.bus" and
          st["message"].startswith('admission webhook "virtualmachineinstances-validator.kubevirt.io" denied the '
                                   'request: spec.domain.devices.disks[0].disk.bus: "ide"'),
          "the API answers the webhook's code 422, reason Invalid, causes and the denial message", code, st)

    out = k("apply", "-f", "-", stdin=VMI % {"name": "good", "bus": "virtio"}).stdout
    check("virtualmachineinstance.kubevirt.io/good created" in out, "a valid VMI is admitted", out)
    vmi = json.loads(k("get", "vmi", "good", "-o", "json").stdout)
    check(vmi["spec"]["domain"]["machine"] == {"type": "q35"}, "the mutating webhook set machine.type q35",
          vmi["spec"]["domain"])
    check(vmi["metadata"]["annotations"].get("kubevirt.io/latest-observed-api-version") == "v1",
          "and KubeVirt's observed-API-version annotations", vmi["metadata"]["annotations"])
    reviews = [r for p_, r in hook_srv.reviews if r["request"]["name"] == "good"]
    check(reviews and reviews[0]["request"]["userInfo"]["username"] == "system:anonymous" and
          reviews[0]["request"]["operation"] == "CREATE" and reviews[0]["request"]["namespace"] == "default",
          "the review carries the user, operation and namespace", reviews[:1])

    # a status-only update (what the controller writes) passes; a spec edit to something invalid does not
    vmi["status"] = {"phase": "Scheduling"}
    code, out = srv.request("PUT", "/apis/kubevirt.io/v1/namespaces/default/virtualmachineinstances/good", vmi)
    check(code == 200 and out["status"]["phase"] == "Scheduling", "a status update is admitted", code, out)
    p = k("patch", "vmi", "good", "--type=merge", "-p",
          '{"spec":{"domain":{"memory":{"guest":"1Ki"}}}}', ok=False)
    check(p.returncode != 0 and "spec.domain.memory.guest: " in p.stderr and "out of range" in p.stderr,
          "a patch to an invalid spec is refused naming the field", p.stderr)

    vm = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": {"name": "vm1"},
          "spec": {"runStrategy": "Halted", "template": {"spec": {"domain": {"devices": {}}}}}}
    p = k("apply", "-f", "-", stdin=json.dumps(vm), ok=False)
    check(p.returncode != 0 and "spec.template.spec.domain.memory.guest" in p.stderr,
          "a VM whose template has no memory is refused naming spec.template.spec…", p.stderr)


def test_failure_policy(srv, k, ca, other_ca):
    base = "/apis/kubevirt.io/v1/namespaces/default/virtualmachineinstancemigrations"
    vmim = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstanceMigration",
            "metadata": {"name": "m1"}, "spec": {"vmiName": "good"}}
    closed = webhook_config("ValidatingWebhookConfiguration", "down", "down.kubevirt.io", ca,
                            ["virtualmachineinstancemigrations"], "/validate", url="https://127.0.0.1:1/validate")
    create(srv, "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations", closed)
    code, st = srv.request("POST", base, vmim)
    check(code == 500 and 'failed calling webhook "down.kubevirt.io"' in st["message"],
          "failurePolicy Fail: an unreachable webhook fails the request", code, st)
    closed["webhooks"][0]["failurePolicy"] = "Ignore"
    code, cur = srv.request("GET", "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/down")
    closed["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"]
    code, _ = srv.request("PUT", "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/down",
                          closed)
    code, out = srv.request("POST", base, vmim)
    check(code == 201, "failurePolicy Ignore: the request goes through", code, out)
    srv.request("DELETE", "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/down")

    wrong = webhook_config("ValidatingWebhookConfiguration", "wrong-ca", "wrong-ca.kubevirt.io", other_ca,
                           ["virtualmachineinstancemigrations"], "/validate")
    create(srv, "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations", wrong)
    code, st = srv.request("POST", base, dict(vmim, metadata={"name": "m2"}))
    check(code == 500 and "CERTIFICATE_VERIFY_FAILED" in st["message"],
          "a caBundle that did not sign the server's certificate fails the call", code, st)
    srv.request("DELETE", "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/wrong-ca")


def test_service_to_pod(srv, k, ca, hook_srv):
    """Without the endpoint annotation the Service resolves to a selected Pod's podIP and named port."""
    create(srv, "/api/v1/namespaces/%s/services" % NS,
           {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "virt-api-pod"},
            "spec": {"ports": [{"port": 443, "targetPort": "webhooks"}], "selector": {"app": "virt-api"}}})
    pod = create(srv, "/api/v1/namespaces/%s/pods" % NS,
                 {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "virt-api-0", "labels": {"app": "virt-api"}},
                  "spec": {"nodeName": "n1", "containers": [{"name": "virt-api", "image": "x", "ports": [
                      {"name": "webhooks", "containerPort": hook_srv.port}]}]}})
    pod["status"] = {"phase": "Running", "podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}]}
    code, _ = srv.request("PUT", "/api/v1/namespaces/%s/pods/virt-api-0/status" % NS, pod)
    check(code == 200, "the Pod has a podIP", code)
    # the certificate must name this Service too
    certs(hook_srv.cert_dir, "virt-api.kubevirt.svc,virt-api.kubevirt.svc.cluster.local,virt-api-pod.kubevirt.svc")
    hook_srv.reload()
    cfg = webhook_config("ValidatingWebhookConfiguration", "via-pod", "via-pod.kubevirt.io", ca,
                         ["virtualmachineinstancemigrations"], "/validate",
                         service={"namespace": NS, "name": "virt-api-pod"})
    create(srv, "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations", cfg)
    code, st = srv.request("POST", "/apis/kubevirt.io/v1/namespaces/default/virtualmachineinstancemigrations",
                           {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstanceMigration",
                            "metadata": {"name": "m3"}, "spec": {}})
    check(code == 422 and 'admission webhook "via-pod.kubevirt.io" denied the request: spec.vmiName: is required'
          == st["message"], "the Service resolved to the Pod's named port and the webhook answered", code, st)


def test_drain(srv, k, ca, hook_srv):
    """kubectl cordon and drain: the eviction subresource runs the webhooks registered for pods/eviction,
    a denial reaches kubectl with its 429 and message, drain retries and the allowed eviction deletes the
    Pod."""
    create(srv, "/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n9"},
                                  "status": {"conditions": [{"type": "Ready", "status": "True"}]}})
    out = k("cordon", "n9").stdout
    check("node/n9 cordoned" in out, "kubectl cordon", out)
    code, node = srv.request("GET", "/api/v1/nodes/n9")
    check(node["spec"].get("unschedulable") is True, "a cordoned Node is unschedulable", node)
    k("uncordon", "n9")
    owner = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance", "name": "vm1",
             "uid": "0b7ad0f4-2d2c-4f5e-9d1a-4f0e2b3c4d5e", "controller": True}
    for name in ("launcher-a", "other-b"):
        create(srv, "/api/v1/namespaces/default/pods",
               {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "ownerReferences": [owner]},
                "spec": {"nodeName": "n9", "containers": [{"name": "c", "image": "x"}],
                         "volumes": [{"name": "scratch", "emptyDir": {}}]}})
    code, st = srv.request("POST", "/api/v1/namespaces/default/pods/launcher-a/eviction",
                           {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "other"}})
    check(code == 400 and "does not match" in st["message"], "an Eviction naming another Pod is refused", code, st)
    hook = webhook_config("ValidatingWebhookConfiguration", "evictions", "evict-once.kubevirt.io", ca, [],
                          "/evict-once", failure="Ignore")
    hook["webhooks"][0]["rules"] = [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
                                     "resources": ["pods/eviction"]}]
    create(srv, "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations", hook)
    code, st = srv.request("POST", "/api/v1/namespaces/default/pods/other-b/eviction",
                           {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "other-b"}})
    check(code == 429 and st["message"] == 'admission webhook "evict-once.kubevirt.io" denied the request: '
          'Eviction triggered evacuation of VMI "default/other-b"', "the webhook's 429 and message", code, st)
    req = [r for p_, r in hook_srv.reviews if p_ == "/evict-once"][0]["request"]
    check(req["kind"] == {"group": "policy", "version": "v1", "kind": "Eviction"} and
          req["resource"]["resource"] == "pods" and req["subResource"] == "eviction" and
          req["name"] == "other-b" and req["object"]["kind"] == "Eviction", "the review of an eviction", req)
    p = k("drain", "n9", "--ignore-daemonsets", "--delete-emptydir-data", "--grace-period=0", "--timeout=60s")
    out = p.stdout + p.stderr
    check("node/n9 cordoned" in out and "evicting pod default/launcher-a" in out and
          'denied the request: Eviction triggered evacuation of VMI "default/launcher-a"' in out and
          "pod/launcher-a evicted" in out and "pod/other-b evicted" in out and "node/n9 drained" in out,
          "kubectl drain retries the refused eviction and finishes", out)
    for name in ("launcher-a", "other-b"):
        code, _ = srv.request("GET", "/api/v1/namespaces/default/pods/" + name)
        check(code == 404, "the evicted Pod %s is gone" % name, code)
    code, st = srv.request("POST", "/api/v1/namespaces/default/pods/launcher-a/eviction",
                           {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "launcher-a"}})
    check(code == 404, "evicting a Pod that is gone: 404", code, st)


SNAPSHOT = """apiVersion: snapshot.kubevirt.io/v1alpha1
kind: VirtualMachineSnapshot
metadata:
  name: %(name)s
spec:
  source:
    apiGroup: %(group)s
    kind: VirtualMachine
    name: larry
"""


def test_match_policy(srv, k, ca, hook_srv):
    """Webhooks registered for snapshot.kubevirt.io/v1beta1 only (as virt-api's are) see a v1alpha1 request
    converted to v1beta1 (matchPolicy Equivalent, the default); a mutation comes back in v1alpha1; with
    matchPolicy Exact the webhook is not called."""
    rule = {"apiGroups": ["snapshot.kubevirt.io"], "apiVersions": ["v1beta1"], "operations": ["CREATE", "UPDATE"],
            "resources": ["virtualmachinesnapshots"]}
    configs = [webhook_config("MutatingWebhookConfiguration", "snap-label", "snap-label.kubevirt.io", ca, [],
                              "/label"),
               webhook_config("ValidatingWebhookConfiguration", "snap-validator",
                              "virtualmachinesnapshot-validator.snapshot.kubevirt.io", ca, [], "/validate"),
               webhook_config("ValidatingWebhookConfiguration", "snap-exact", "snap-exact.kubevirt.io", ca, [],
                              "/deny")]
    for cfg in configs:
        cfg["webhooks"][0]["rules"] = [rule]
    configs[0]["webhooks"][0]["rules"] = [dict(rule, operations=["CREATE"])]  # its patch sets all the labels
    configs[2]["webhooks"][0]["matchPolicy"] = "Exact"
    for cfg in configs:
        k("apply", "-f", "-", stdin=json.dumps(cfg))
    p = k("apply", "-f", "-", stdin=SNAPSHOT % {"name": "bad", "group": "example.org"}, ok=False)
    check(p.returncode != 0 and 'spec.source.apiGroup' in p.stderr and 'invalid apiGroup' in p.stderr,
          "virt-api's v1beta1 validator refuses a bad v1alpha1 snapshot", p.stderr)
    out = k("apply", "-f", "-", stdin=SNAPSHOT % {"name": "good", "group": "kubevirt.io"}).stdout
    check("virtualmachinesnapshot.snapshot.kubevirt.io/good created" in out,
          "a v1alpha1 snapshot passes the v1beta1 webhooks; the Exact one is not called", out)
    req = [r for p_, r in hook_srv.reviews if p_ == "/label" and r["request"]["name"] == "good"][-1]["request"]
    v1beta1 = {"group": "snapshot.kubevirt.io", "version": "v1beta1"}
    v1alpha1 = {"group": "snapshot.kubevirt.io", "version": "v1alpha1"}
    check(req["kind"] == dict(v1beta1, kind="VirtualMachineSnapshot") and
          req["requestKind"] == dict(v1alpha1, kind="VirtualMachineSnapshot") and
          req["resource"] == dict(v1beta1, resource="virtualmachinesnapshots") and
          req["requestResource"] == dict(v1alpha1, resource="virtualmachinesnapshots") and
          req["object"]["apiVersion"] == "snapshot.kubevirt.io/v1beta1",
          "the review names v1beta1 in kind/resource, v1alpha1 in requestKind/requestResource; object converted",
          req)
    snap = json.loads(k("get", "virtualmachinesnapshots.v1alpha1.snapshot.kubevirt.io", "good", "-o", "json").stdout)
    check(snap["apiVersion"] == "snapshot.kubevirt.io/v1alpha1" and
          snap["metadata"]["labels"] == {"admitted-as": "v1beta1"},
          "the mutating webhook's patch (made on the v1beta1 object) is kept", snap)
    k("label", "virtualmachinesnapshots.v1alpha1.snapshot.kubevirt.io", "good", "x=y")
    req = [r for p_, r in hook_srv.reviews if p_ == "/validate" and r["request"]["name"] == "good"][-1]["request"]
    check(req["operation"] == "UPDATE" and req["object"]["apiVersion"] == req["oldObject"]["apiVersion"] ==
          "snapshot.kubevirt.io/v1beta1" and req["object"]["metadata"]["labels"]["x"] == "y",
          "an UPDATE through v1alpha1: object and oldObject converted", req)
    p = k("apply", "-f", "-", stdin=(SNAPSHOT % {"name": "beta", "group": "kubevirt.io"}).replace("v1alpha1",
                                                                                                   "v1beta1"), ok=False)
    check(p.returncode != 0 and 'admission webhook "snap-exact.kubevirt.io" denied the request: denied by test'
          in p.stderr, "the Exact webhook is called for its own version", p.stderr)
    for cfg in configs:
        k("delete", cfg["kind"].lower(), cfg["metadata"]["name"])


def main():
    if not os.access(TOOL, os.X_OK):
        print("SKIP - %s is not built" % TOOL)
        sys.exit(SKIP)
    if not find_kubectl():
        print("SKIP - no kubectl")
        sys.exit(SKIP)
    srv = ApiServer()
    k = Kubectl(srv)
    cert_dir = os.path.join(srv.dir, "virt-api-certs")
    ca = certs(cert_dir)
    other_ca = certs(os.path.join(srv.dir, "other-certs"))
    hook_srv = WebhookServer(cert_dir)
    test_refuse_and_default(srv, k, hook_srv, ca)
    test_failure_policy(srv, k, ca, other_ca)
    test_service_to_pod(srv, k, ca, hook_srv)
    test_drain(srv, k, ca, hook_srv)
    test_match_policy(srv, k, ca, hook_srv)


if __name__ == "__main__":
    run(main)
