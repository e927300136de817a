#!/usr/bin/env python3
# End to end with virtctl and virt-api (tests/e2e's Env: kubectl → API test server → virt-controller → kubelet
# stand-in → virt-launcher → QEMU): `virtctl start` of a Halted VM → Running, refusals with KubeVirt's words,
# pause → the Paused condition, restart → a new VMI, expose → KubeVirt's Service, stop; start/stop of a Manual VM
# through status.stateChangeRequests; `kubectl virt` (the kubectl-virt plugin); no subresource without the API
# server's authentication; virt-api's webhooks refuse a bad manifest at `kubectl apply`. virt-api runs as crds/
# installs it: the API test server reaches it through the APIService and the webhook configurations, verified
# with the CA virt-api made and published itself, presenting the front-proxy client certificate.
# console: `virtctl console` and `virtctl vnc --proxy-only` through the API server, virt-api and virt-handler's
# mutual-TLS console channel (docs/console.md) to the launcher's serial console and VNC.
# ops: one VM's life through virtctl: `create vm` piped to `kubectl apply`, start, addvolume/removevolume of a
# claim, migrate, and migrate-cancel of a migration a MigrationPolicy holds back.
# Usage: test_virtctl.py [lifecycle|unauthenticated|admission|console|ops]
import base64
import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_e2e import (BUILD, GUEST, NODE, SRC, Env, _read, alive, cnt_values,  # noqa: E402
                      kernelboot_vmi_yaml, kubectl_json, skip_without_pod_network, vm_yaml, vmi_yaml, wait_for)
from proclib import stop_process  # noqa: E402  (tests/ is on the path test_e2e set)
from test_datavolume import ask_until, guest_shell  # noqa: E402

VIRTCTL = os.path.join(BUILD, "virtctl", "virtctl")
VIRT_API = os.path.join(BUILD, "virt-api", "virt-api")
VIRT_HANDLER = os.path.join(BUILD, "handler", "virt-handler")


CRDS = os.path.join(SRC, "crds")


class VirtApi:
    """virt-api as installed by crds/: it keeps its own certificates (--cert-dir) and writes its CA into the
    APIService (crds/32) and the webhook configurations (crds/33); it trusts the API server's front-proxy CA
    from kube-system/extension-apiserver-authentication. The Service virt-api names its local port in the
    API test server's endpoint annotation (no cluster network here)."""

    def __init__(self, env, *extra):
        self.env, srv = env, env.srv
        self.srv = srv
        self.certs = os.path.join(srv.dir, "virt-api-certs")
        self.portfile = os.path.join(srv.dir, "virt-api.port")
        self.log = open(os.path.join(srv.dir, "virt-api.log"), "ab")
        self.proc = subprocess.Popen([VIRT_API, "--cert-dir", self.certs, "--service", "virt-api.kvlite",
                                      "--listen", "127.0.0.1:0", "--port-file", self.portfile,
                                      "--kubeconfig", srv.kubeconfig, "-v", *extra], stdout=self.log,
                                     stderr=self.log)
        self.port = wait_for("virt-api port file", lambda: self._port(), timeout=15)
        env.kubectl("apply", "-f", os.path.join(CRDS, "00-namespace.yaml"))
        env.kubectl("apply", "-f", "-", input=SERVICE % self.port)
        env.kubectl("apply", "-f", os.path.join(CRDS, "32-virt-api-apiservice.yaml"), "-f",
                    os.path.join(CRDS, "33-virt-api-webhooks.yaml"))
        with open(os.path.join(self.certs, "ca.crt")) as f:
            ca = base64.b64encode(f.read().encode()).decode()
        wait_for("virt-api publishes its CA", lambda: self._published(ca), timeout=20, interval=0.3)

    def _published(self, ca):
        svc = json.loads(self.env.kubectl("get", "apiservice", "v1.subresources.kubevirt.io", "-o", "json"))
        hooks = [json.loads(self.env.kubectl("get", kind, name, "-o", "json"))
                 for kind, name in (("validatingwebhookconfiguration", "virt-api-validator"),
                                    ("mutatingwebhookconfiguration", "virt-api-mutator"))]
        return svc["spec"].get("caBundle") == ca and all(
            w["clientConfig"].get("caBundle") == ca for h in hooks for w in h["webhooks"])

    def _port(self):
        if self.proc.poll() is not None:
            raise AssertionError("virt-api exited with %d" % self.proc.returncode)
        try:
            with open(self.portfile) as f:
                return json.load(f)["port"]
        except (OSError, ValueError):
            return None

    def request(self, method, path, cert="front_proxy_client", user="e2e-user", body=None, headers=None):
        """A request straight to virt-api, bypassing the API server; cert: which of the API test server's
        client certificates to present ("front_proxy_client", "client" or None)."""
        ctx = ssl.create_default_context(cafile=os.path.join(self.certs, "ca.crt"))
        ctx.check_hostname = False
        if cert:
            ctx.load_cert_chain(self.srv.info[cert + "_crt"], self.srv.info[cert + "_key"])
        c = http.client.HTTPSConnection("127.0.0.1", self.port, context=ctx, timeout=30)
        headers = dict(headers or {}, **({"X-Remote-User": user} if user else {}))
        if body is not None:
            headers["Content-Type"] = "application/json"
        c.request(method, path, body=body, headers=headers)
        r = c.getresponse()
        return r.status, r.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        assert self.proc.returncode == 0, "virt-api exit code %d" % self.proc.returncode


SERVICE = """apiVersion: v1
kind: Service
metadata:
  name: virt-api
  namespace: kvlite
  annotations: {kube-api-test.kvlite.io/endpoint: "127.0.0.1:%d"}
spec:
  selector: {app.kubernetes.io/name: virt-api}
  ports: [{name: https, port: 443, targetPort: 8443}]
"""


def tls_kubeconfig(srv, name, token=True):
    """A kubeconfig for the API server's HTTPS listener: with its bearer token (system:admin), or none."""
    kc = os.path.join(srv.dir, name)
    with open(kc, "w") as f:
        json.dump({"apiVersion": "v1", "kind": "Config", "current-context": "a",
                   "clusters": [{"name": "a", "cluster": {"server": srv.info["https_url"],
                                                          "certificate-authority": srv.info["ca_crt"]}}],
                   "users": [{"name": "a", "user": {"token": srv.info["token"]} if token else {}}],
                   "contexts": [{"name": "a", "context": {"cluster": "a", "user": "a"}}]}, f)
    return kc


class Virtctl:
    """virtctl against the API server's HTTPS listener: subresources go through its APIService proxy."""

    def __init__(self, env):
        self.env = env
        self.kubeconfig = tls_kubeconfig(env.srv, "virtctl.kubeconfig")
        self.bindir = tempfile.mkdtemp(prefix="virtctl-bin.", dir=env.srv.dir)
        os.symlink(VIRTCTL, os.path.join(self.bindir, "kubectl-virt"))
        self.environ = dict(os.environ, KUBECONFIG=self.kubeconfig, PATH=self.bindir + ":" + os.environ["PATH"])

    def __call__(self, *args, rc=0):
        p = subprocess.run([VIRTCTL, "--kubeconfig", self.kubeconfig, *args], capture_output=True, text=True,
                           timeout=60, env=self.environ)
        assert p.returncode == rc, "virtctl %s: rc %d (wanted %d)\n%s%s" % (" ".join(args), p.returncode, rc,
                                                                           p.stdout, p.stderr)
        return p.stdout + p.stderr

    def kubectl_virt(self, *args):
        p = subprocess.run(["kubectl", "virt", *args], capture_output=True, text=True, timeout=60, env=self.environ)
        assert p.returncode == 0, "kubectl virt %s: rc %d\n%s%s" % (" ".join(args), p.returncode, p.stdout, p.stderr)
        return p.stdout


def proxied(vapi):
    """The subresource requests virt-api saw, from its debug log: (verb path, user) of each."""
    with open(os.path.join(vapi.srv.dir, "virt-api.log")) as f:
        return [json.loads(line)["msg"] for line in f if line.startswith("{") and " by " in line]


ACCESS_CREDENTIALS = "".join("        " + line + "\n" for line in """accessCredentials:
- sshPublicKey:
    source:
      secret:
        secretName: e2e-vctl-keys
    propagationMethod:
      qemuGuestAgent:
        users: [root]
- userPassword:
    source:
      secret:
        secretName: e2e-vctl-pw
    propagationMethod:
      qemuGuestAgent: {}""".splitlines())


def access_condition(env, status):
    return next((c for c in (env.vmi("e2e-vctl") or {}).get("status", {}).get("conditions", [])
                 if c["type"] == "AccessCredentialsSynchronized" and c["status"] == status), None)


def vm_status(env, name):
    return (env.srv.api.get("/apis/kubevirt.io/v1/namespaces/default/virtualmachines/" + name)[1] or {}).get("status", {})


def paused(vmi):
    return any(c["type"] == "Paused" and c["status"] == "True" for c in (vmi or {}).get("status", {}).get("conditions", []))


def test_lifecycle(env):
    vapi = VirtApi(env)
    try:
        vctl = Virtctl(env)
        assert "v0.1.0" in vctl("version")
        # accessCredentials as the user guide has them: a Secret made with kubectl, the qemuGuestAgent method
        env.kubectl("create", "secret", "generic", "e2e-vctl-keys",
                    "--from-literal=key1=ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAe2e e2e@kvlite")
        env.kubectl("create", "secret", "generic", "e2e-vctl-pw", "--from-literal=root=e2e-password")
        env.kubectl("apply", "-f", "-", input=vm_yaml("e2e-vctl", "Halted") + ACCESS_CREDENTIALS)
        wait_for("VM Stopped", lambda: vm_status(env, "e2e-vctl").get("printableStatus") == "Stopped", timeout=20)
        assert "VM e2e-vctl was scheduled to start" in vctl("start", "e2e-vctl")
        assert env.kubectl("get", "vm", "e2e-vctl", "-o", "jsonpath={.spec.runStrategy}") == "Always"
        vmi, pod, _ = env.wait_running("e2e-vctl")
        out = vctl("start", "e2e-vctl", rc=1)
        assert "Error starting VirtualMachine" in out and "VM is already running" in out, out
        assert "not found" in vctl("start", "nope", rc=1)

        # pause: the Paused condition comes back from the launcher through its reporter
        assert "VMI e2e-vctl was scheduled to pause" in vctl("pause", "vmi", "e2e-vctl")
        wait_for("Paused condition", lambda: paused(env.vmi("e2e-vctl")), timeout=30, interval=0.3)
        assert "already paused" in vctl("pause", "vm", "e2e-vctl", rc=1)
        assert "VM e2e-vctl was scheduled to unpause" in vctl("unpause", "vm", "e2e-vctl")
        wait_for("Paused condition gone", lambda: not paused(env.vmi("e2e-vctl")), timeout=30, interval=0.3)

        # guestosinfo: what the guest's qemu-guest-agent told the launcher; soft-reboot: the guest boots
        # again inside the same VMI (the launcher's serial log shows a second boot)
        wait_for("AgentConnected", lambda: any(c["type"] == "AgentConnected" and c["status"] == "True"
                                               for c in env.vmi("e2e-vctl")["status"].get("conditions", [])),
                 timeout=90, interval=0.5)
        synced = wait_for("AccessCredentialsSynchronized", lambda: access_condition(env, "True"), timeout=30,
                          interval=0.5)
        assert synced["reason"] == "AccessCredentialsSyncSuccess", synced
        # a Secret changed with kubectl reaches the guest (the kubelet refreshes the mounted Secret): a password
        # for a user the guest lacks turns the condition False naming it; its removal, True again
        env.kubectl("patch", "secret", "e2e-vctl-pw", "--type=merge", "-p", '{"stringData":{"nobody":"x"}}')
        failed = wait_for("AccessCredentialsSynchronized False", lambda: access_condition(env, "False"),
                          timeout=30, interval=0.5)
        assert failed["reason"] == "AccessCredentialsSyncFailed" and "for user nobody" in failed["message"], failed
        env.kubectl("patch", "secret", "e2e-vctl-pw", "--type=merge", "-p", '{"data":{"nobody":null}}')
        wait_for("AccessCredentialsSynchronized True again", lambda: access_condition(env, "True"), timeout=30,
                 interval=0.5)
        events = [(e["type"], e["reason"], e["message"]) for e in json.loads(env.kubectl(
            "get", "events", "--field-selector", "involvedObject.name=e2e-vctl", "-o", "json"))["items"]
            if e["reason"].startswith("AccessCredentialsSync")]
        assert events[:3] == [("Normal", "AccessCredentialsSyncSuccess", "Access credentials sync successful."),
                              ("Warning", "AccessCredentialsSyncFailed", "Access credentials sync failed: " +
                               failed["message"]),
                              ("Normal", "AccessCredentialsSyncSuccess", "Access credentials sync successful.")], \
            events
        info = wait_for("guestosinfo with the agent's host name", lambda: (lambda i: i if i.get("hostname") else None)(
            json.loads(vctl("guestosinfo", "e2e-vctl"))), timeout=30, interval=1)
        assert info["os"].get("id") == "debian" and info["os"].get("versionId") == "12", info
        assert info["guestAgentVersion"].startswith("7.") and info["supportedCommands"], info
        assert json.loads(vctl("userlist", "e2e-vctl")) == {"metadata": {}, "items": []}
        fs = json.loads(vctl("fslist", "e2e-vctl"))
        assert isinstance(fs["items"], list) and all("mountPoint" in d for d in fs["items"]), fs
        serial = os.path.join(env.kubelet.run_dir(pod), "serial.log")
        boots = open(serial, "rb").read().count(b"KVGUEST READY")
        assert "VMI e2e-vctl was scheduled to soft reboot" in vctl("soft-reboot", "e2e-vctl")
        wait_for("the guest boots again", lambda: open(serial, "rb").read().count(b"KVGUEST READY") > boots,
                 timeout=60, interval=0.5)
        assert env.vmi("e2e-vctl")["metadata"]["uid"] == vmi["metadata"]["uid"]
        assert "not found" in vctl("soft-reboot", "nope", rc=1)

        # expose: KubeVirt's Service, selecting the launcher Pod, owned by the VM
        assert "Service vctl-ssh successfully exposed for vm e2e-vctl" in vctl(
            "expose", "vm", "e2e-vctl", "--name", "vctl-ssh", "--port", "2222", "--target-port", "22")
        svc = json.loads(env.kubectl("get", "service", "vctl-ssh", "-o", "json"))
        assert svc["spec"]["ports"] == [{"protocol": "TCP", "port": 2222, "targetPort": 22}], svc["spec"]
        assert svc["spec"]["type"] == "ClusterIP"
        sel = svc["spec"]["selector"]
        assert sel == {"vm.kubevirt.io/name": "e2e-vctl"}, sel
        assert all(pod["metadata"]["labels"].get(k) == v for k, v in sel.items()), pod["metadata"]["labels"]
        owner = svc["metadata"]["ownerReferences"][0]
        vm = json.loads(env.kubectl("get", "vm", "e2e-vctl", "-o", "json"))
        assert owner["kind"] == "VirtualMachine" and owner["uid"] == vm["metadata"]["uid"], owner

        # restart: a new VMI, running again
        assert "VM e2e-vctl was scheduled to restart" in vctl("restart", "e2e-vctl")
        wait_for("a new VMI", lambda: (env.vmi("e2e-vctl") or vmi)["metadata"]["uid"] != vmi["metadata"]["uid"],
                 timeout=90, interval=0.5)
        env.wait_running("e2e-vctl")
        assert not vm_status(env, "e2e-vctl").get("stateChangeRequests")

        # stop through the kubectl plugin: runStrategy Halted, the VMI goes
        assert "VM e2e-vctl was scheduled to stop" in vctl.kubectl_virt("stop", "e2e-vctl")
        assert env.kubectl("get", "vm", "e2e-vctl", "-o", "jsonpath={.spec.runStrategy}") == "Halted"
        wait_for("VMI gone", lambda: env.vmi("e2e-vctl") is None, timeout=90, interval=0.5)
        wait_for("VM Stopped", lambda: vm_status(env, "e2e-vctl").get("printableStatus") == "Stopped", timeout=20)
        assert "VM is not running" in vctl("stop", "e2e-vctl", rc=1)
        assert "Halted does not support manual restart requests" in vctl("restart", "e2e-vctl", rc=1)

        # Manual: start and stop are stateChangeRequests; the runStrategy stays
        env.kubectl("apply", "-f", "-", input=vm_yaml("e2e-manual", "Manual"))
        time.sleep(1)
        assert env.vmi("e2e-manual") is None
        vctl("start", "e2e-manual")
        man = wait_for("Manual VM's VMI", lambda: env.vmi("e2e-manual"), timeout=30, interval=0.3)
        wait_for("start request done", lambda: not vm_status(env, "e2e-manual").get("stateChangeRequests"), timeout=30)
        vctl("stop", "e2e-manual")
        wait_for("Manual VM's VMI gone", lambda: env.vmi("e2e-manual") is None, timeout=90, interval=0.5)
        assert env.kubectl("get", "vm", "e2e-manual", "-o", "jsonpath={.spec.runStrategy}") == "Manual"
        assert man["metadata"]["uid"]
        # every action reached virt-api through the API server's proxy, as the token's user
        seen = proxied(vapi)
        assert any("/virtualmachines/e2e-manual/start by system:admin" in m for m in seen), seen
    finally:
        vapi.stop()


def test_unauthenticated(env):
    """Nothing of the subresource API without the API server's authentication: virt-api refuses a caller
    without the front-proxy client certificate or without X-Remote-User (401), and the API server refuses a
    client without credentials (401) before anything is proxied."""
    vapi = VirtApi(env)
    try:
        path = "/apis/subresources.kubevirt.io/v1/namespaces/default/virtualmachines/x/start"
        assert vapi.request("PUT", path, cert=None)[0] == 401
        assert vapi.request("PUT", path, user=None)[0] == 401
        assert vapi.request("PUT", path, cert="client")[0] == 401  # the API server's CA, not the front-proxy's
        assert vapi.request("GET", "/apis/subresources.kubevirt.io/v1", cert=None)[0] == 401
        code, body = vapi.request("PUT", path)  # the proxy's credentials: reaches the handler
        assert code == 404 and b"not found" in body, (code, body)
        code, body = vapi.request("GET", "/apis/subresources.kubevirt.io/v1")
        names = [r["name"] for r in json.loads(body)["resources"]]
        assert "virtualmachines/start" in names and "virtualmachineinstances/pause" in names, names
        # virtctl against the API server's HTTPS listener with no credentials
        kc = tls_kubeconfig(env.srv, "anon.kubeconfig", token=False)
        p = subprocess.run([VIRTCTL, "--kubeconfig", kc, "start", "x"], capture_output=True, text=True, timeout=60)
        assert p.returncode == 1 and "Unauthorized" in p.stderr, (p.returncode, p.stderr)
    finally:
        vapi.stop()


def refused(env, manifest):
    p = subprocess.run(["kubectl", "--kubeconfig", env.srv.kubeconfig, "apply", "-f", "-"], input=manifest,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0, p.stdout
    return p.stderr


def replicas_refused(env, bad_vm):
    """A replica set's and a pool's templates are checked as KubeVirt's admitters do: the VMI template and the
    VM template with their paths, a selector that does not select the template, a pool's selector change."""
    vmi_spec = vmi_yaml("x").split("spec:\n", 1)[1]
    rs = ("apiVersion: kubevirt.io/v1\nkind: VirtualMachineInstanceReplicaSet\nmetadata: {name: e2e-rs}\nspec:\n"
          "  replicas: 0\n  selector: {matchLabels: {app: %s}}\n  template:\n    metadata: {labels: {app: web}}\n"
          "    spec:\n" + "".join("      " + line + "\n" for line in vmi_spec.splitlines()))
    err = refused(env, rs % "db")
    assert 'spec.selector: selector does not match labels.' in err, err
    err = refused(env, (rs % "web").replace("bus: virtio", "bus: ide"))
    assert 'spec.template.spec.domain.devices.disks[0].disk.bus: "ide" is not supported' in err, err
    assert "created" in env.kubectl("apply", "-f", "-", input=rs % "web")
    vm_spec = bad_vm.split("spec:\n", 1)[1]
    pool = ("apiVersion: pool.kubevirt.io/v1beta1\nkind: VirtualMachinePool\nmetadata: {name: e2e-pool}\nspec:\n"
            "  replicas: 0\n  selector: {matchLabels: {vm: %s}}\n  virtualMachineTemplate:\n"
            "    metadata: {labels: {vm: e2e-bad}}\n    spec:\n" +
            "".join("    " + line + "\n" for line in vm_spec.splitlines()))
    err = refused(env, pool % "e2e-bad")
    assert ('spec.virtualMachineTemplate.spec.template.spec.domain.devices.disks[0].disk.bus: "ide" is not '
            'supported') in err, err
    good = pool.replace("bus: ide", "bus: virtio")
    assert "created" in env.kubectl("apply", "-f", "-", input=good % "e2e-bad")
    err = refused(env, (good % "e2e-bad").replace("{vm: e2e-bad}}", "{vm: e2e-bad, x: y}}"))
    assert "spec.selector: selector is immutable after creation." in err, err
    env.kubectl("delete", "vmirs", "e2e-rs")
    env.kubectl("delete", "vmpool", "e2e-pool")


def test_admission(env):
    """kubectl apply of a bad VM is refused at once by virt-api's validating webhook, naming the field; a VMI
    gets KubeVirt's defaults from its mutating webhook and still runs."""
    vapi = VirtApi(env)
    try:
        bad = vm_yaml("e2e-bad", "Always").replace("bus: virtio", "bus: ide")
        p = subprocess.run(["kubectl", "--kubeconfig", env.srv.kubeconfig, "apply", "-f", "-"], input=bad,
                           capture_output=True, text=True, timeout=60)
        assert p.returncode != 0, p.stdout
        # kubectl prints the causes of the 422 (field: message)
        assert 'spec.template.spec.domain.devices.disks[0].disk.bus: "ide" is not supported' in p.stderr, p.stderr
        # the Status says who refused it
        code, status = env.srv.api.request("POST", "/apis/kubevirt.io/v1/namespaces/default/virtualmachines",
                                           json.loads(env.kubectl("create", "--dry-run=client", "-o", "json", "-f", "-",
                                                                  input=bad)))
        assert code == 422 and status["message"].startswith(
            'admission webhook "virtualmachine-validator.kubevirt.io" denied the request: '
            'spec.template.spec.domain.devices.disks[0].disk.bus'), (code, status)
        assert status["details"]["causes"][0]["field"] == "spec.template.spec.domain.devices.disks[0].disk.bus"
        assert env.kubectl("get", "vm", "e2e-bad", check=False) == ""
        replicas_refused(env, bad)
        env.kubectl("apply", "-f", "-", input=vmi_yaml("e2e-adm"))
        vmi = env.vmi("e2e-adm")
        assert vmi["spec"]["domain"]["machine"] == {"type": "q35"}, vmi["spec"]["domain"]
        assert "kubevirt.io/latest-observed-api-version" in vmi["metadata"].get("annotations", {}), vmi["metadata"]
        infer_from_volume(env)
        preference_first(env)
        env.wait_running("e2e-adm")
    finally:
        vapi.stop()


def preference_first(env):
    """A VM naming a preference: virt-api leaves its template's disk bus and machine type unset, so the VMI the
    controller creates has the preference's bus (sata), and the VMI's own mutation the default machine type."""
    env.kubectl("apply", "-f", "-", input="apiVersion: instancetype.kubevirt.io/v1beta1\n"
                "kind: VirtualMachineClusterPreference\nmetadata: {name: e2e-sata}\n"
                "spec: {devices: {preferredDiskBus: sata}}\n")
    vm = vm_yaml("e2e-pref", "Always").replace("disk: {bus: virtio}", "disk: {}").replace(
        "spec:\n", "spec:\n  preference: {name: e2e-sata}\n", 1)
    env.kubectl("apply", "-f", "-", input=vm)
    tmpl = kubectl_json(env, "get", "vm", "e2e-pref")["spec"]["template"]["spec"]["domain"]
    assert tmpl["devices"]["disks"] == [{"name": "root", "disk": {}}] and "machine" not in tmpl, tmpl
    vmi = wait_for("the VMI of e2e-pref", lambda: env.vmi("e2e-pref"), timeout=30, interval=0.3)
    domain = vmi["spec"]["domain"]
    assert domain["devices"]["disks"][0]["disk"].get("bus") == "sata" and domain["machine"] == {"type": "q35"}, domain
    env.kubectl("delete", "vm", "e2e-pref", "--wait=false")
    print("ok - a VM with a preference: its VMI has the preferred disk bus (sata) and the default machine type")


INFER_OBJECTS = """apiVersion: instancetype.kubevirt.io/v1beta1
kind: VirtualMachineClusterInstancetype
metadata: {name: e2e-tiny}
spec: {cpu: {guest: 1}, memory: {guest: 128Mi}}
---
apiVersion: instancetype.kubevirt.io/v1beta1
kind: VirtualMachineClusterPreference
metadata: {name: e2e-cirros}
spec: {devices: {preferredDiskBus: virtio}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: cirros-pvc
  labels: {instancetype.kubevirt.io/default-instancetype: e2e-tiny, instancetype.kubevirt.io/default-preference: e2e-cirros}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Mi}}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: plain-pvc}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Mi}}}
---
apiVersion: cdi.kubevirt.io/v1beta1
kind: DataSource
metadata: {name: cirros-datasource}
spec: {source: {pvc: {name: cirros-pvc, namespace: default}}}
"""

# The user guide's inferFromVolume example (a DataVolume template cloning a DataSource's claim), %(policy)s
INFER_VM = """apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: %(name)s}
spec:
  instancetype: {inferFromVolume: cirros-volume%(policy)s}
  preference: {inferFromVolume: cirros-volume%(policy)s}
  runStrategy: Halted
  dataVolumeTemplates:
  - metadata: {name: %(name)s-dv}
    spec:
      pvc: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Mi}}}
      sourceRef: {kind: DataSource, name: %(source)s, namespace: default}
  template:
    spec:
      domain: %(domain)s
      volumes:
      - name: cirros-volume
        %(volume)s
"""


def infer_vm(name, policy="", source="cirros-datasource", volume=None, domain="{devices: {}}"):
    volume = volume or "dataVolume: {name: %s-dv}" % name
    return INFER_VM % {"name": name, "policy": policy, "source": source, "volume": volume, "domain": domain}


def infer_from_volume(env):
    """inferFromVolume through kubectl and virt-api's mutating webhook, as KubeVirt's user guide shows it: the
    labels of the claim under a DataSource become the VM's instancetype and preference, and the controller
    keeps their revisions; Ignore clears a matcher it cannot infer; Reject (the default) refuses the VM."""
    env.kubectl("apply", "-f", "-", input=INFER_OBJECTS)
    env.kubectl("apply", "-f", "-", input=infer_vm("cirros"))
    vm = kubectl_json(env, "get", "vm", "cirros")
    assert {k: vm["spec"]["instancetype"].get(k) for k in ("name", "kind")} == {
        "name": "e2e-tiny", "kind": "virtualmachineclusterinstancetype"}, vm["spec"]
    assert {k: vm["spec"]["preference"].get(k) for k in ("name", "kind")} == {
        "name": "e2e-cirros", "kind": "virtualmachineclusterpreference"}, vm["spec"]
    assert "inferFromVolume" not in vm["spec"]["instancetype"], vm["spec"]
    wait_for("the inferred instancetype kept as a ControllerRevision", lambda: all(
        kubectl_json(env, "get", "vm", "cirros")["spec"][m].get("revisionName") for m in ("instancetype", "preference")),
        timeout=30, interval=0.3)
    print("ok - inferFromVolume: the claim under the DataSource names instancetype e2e-tiny and preference "
          "e2e-cirros, kept as revisions")
    # the same through `virtctl create vm` (the user guide's "cloned DataSource and inferred instance type")
    manifest = subprocess.run([VIRTCTL, "create", "vm", "--name", "from-ds", "--run-strategy", "Halted",
                               "--volume-import=type:ds,src:cirros-datasource,size:1Mi", "--infer-instancetype",
                               "--infer-preference"], capture_output=True, text=True, timeout=10, check=True).stdout
    env.kubectl("apply", "-f", "-", input=manifest)
    vm = kubectl_json(env, "get", "vm", "from-ds")
    # (the controller may have added the revisionName already)
    assert {k: vm["spec"]["instancetype"].get(k) for k in ("name", "kind")} == {
        "name": "e2e-tiny", "kind": "virtualmachineclusterinstancetype"} and \
        vm["spec"]["preference"]["name"] == "e2e-cirros", vm["spec"]
    print("ok - virtctl create vm --volume-import type:ds --infer-instancetype --infer-preference | kubectl apply")
    plain = "\n".join(["apiVersion: cdi.kubevirt.io/v1beta1", "kind: DataSource", "metadata: {name: plain-ds}",
                       "spec: {source: {pvc: {name: plain-pvc}}}"])
    env.kubectl("apply", "-f", "-", input=plain)
    # (its template has the memory no instancetype gives it then)
    env.kubectl("apply", "-f", "-", input=infer_vm("ignored", ", inferFromVolumeFailurePolicy: Ignore", "plain-ds",
                                                   domain="{devices: {}, memory: {guest: 128Mi}}"))
    vm = kubectl_json(env, "get", "vm", "ignored")
    assert "instancetype" not in vm["spec"] and "preference" not in vm["spec"], vm["spec"]
    p = subprocess.run(["kubectl", "--kubeconfig", env.srv.kubeconfig, "apply", "-f", "-"], capture_output=True,
                       text=True, timeout=60, input=infer_vm("rejected", "", "plain-ds"))
    assert p.returncode != 0 and "spec.instancetype.inferFromVolume: unable to find required " \
        "instancetype.kubevirt.io/default-instancetype label on the volume" in p.stderr, (p.returncode, p.stderr)
    p = subprocess.run(["kubectl", "--kubeconfig", env.srv.kubeconfig, "apply", "-f", "-"], capture_output=True,
                       text=True, timeout=60, input=infer_vm("nodisk", ", inferFromVolumeFailurePolicy: Ignore",
                                                             volume="containerDisk: {image: kvlite/none}")
                       .replace("inferFromVolume: cirros-volume", "inferFromVolume: missing"))
    assert p.returncode != 0 and "unable to find volume missing to infer defaults" in p.stderr, p.stderr
    assert env.kubectl("get", "vm", "rejected", "nodisk", "--ignore-not-found") == ""
    env.kubectl("delete", "vm", "cirros", "ignored", "from-ds", "--wait=false")
    print("ok - inferFromVolume: Ignore clears what it cannot infer; Reject and a missing volume refuse the VM")


HANDLER_POD = """apiVersion: v1
kind: Pod
metadata:
  name: virt-handler-e2e
  namespace: kvlite
  labels: {kubevirt.io: virt-handler}
spec:
  nodeName: %(node)s
  hostNetwork: true
  containers:
  - name: virt-handler
    command: [%(bin)s, --node-name, %(node)s, --no-labels, --devices, tun, --device-plugin-dir, %(plugins)s,
              --console-certs, /etc/kvlite/console, --console-listen, "127.0.0.1:%(port)d",
              --pods-dir, /var/lib/kubelet/pods]
    volumeMounts:
    - {name: console-certs, mountPath: /etc/kvlite/console, readOnly: true}
    - {name: kubelet-pods, mountPath: /var/lib/kubelet/pods}
  volumes:
  - name: console-certs
    secret: {secretName: kvlite-handler-certs}
  - name: kubelet-pods
    hostPath: {path: %(pods)s, type: DirectoryOrCreate}
"""


class HostNetworkEnv(Env):
    """Pods on the kubelet's network (hostNetwork: podIP 127.0.0.1), where virt-api reaches virt-handler."""
    kubelet_opts = {"host_network": True}


def start_handler_pod(env, port):
    """virt-handler as a hostNetwork Pod with the Secret virt-api wrote (its console channel on port): the
    Secret and virt-handler's log."""
    secret = wait_for("virt-api writes virt-handler's Secret", lambda: json.loads(
        env.kubectl("get", "secret", "-n", "kvlite", "kvlite-handler-certs", "-o", "json", check=False) or "null"),
        timeout=20, interval=0.3)
    plugins = tempfile.mkdtemp(prefix="plugins.", dir=env.srv.dir)
    env.kubectl("apply", "-f", "-", input=HANDLER_POD % {"node": NODE, "bin": VIRT_HANDLER, "plugins": plugins,
                                                          "port": port, "pods": os.path.join(env.kubelet.state, "pods")})
    hlog = os.path.join(env.kubelet.state, "logs", "kvlite_virt-handler-e2e_virt-handler.log")
    wait_for("virt-handler's console channel", lambda: b"console channel on port" in _read(hlog), timeout=20)
    return secret, hlog


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stream(threading.Thread):
    """Everything a pipe yields, collected in the background."""

    def __init__(self, pipe):
        super().__init__(daemon=True)
        self.pipe, self.data = pipe, b""
        self.start()

    def run(self):
        for chunk in iter(lambda: os.read(self.pipe.fileno(), 65536), b""):
            self.data += chunk


class Console:
    """`virtctl console NAME` with stdin and stdout on pipes."""

    def __init__(self, vctl, name):
        self.proc = subprocess.Popen([VIRTCTL, "--kubeconfig", vctl.kubeconfig, "console", name], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=vctl.environ)
        self.out, self.err = Stream(self.proc.stdout), Stream(self.proc.stderr)

    def type(self, line):
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def wait_output(self, what, text, timeout=30):
        wait_for(what, lambda: text.encode() in self.out.data, timeout=timeout, interval=0.1)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


def tls_channel(port, cert=None, key=None, ca=None):
    """A TLS connection to virt-handler's console channel, asking for a console; what it answers (b"" when it
    refused the handshake or closed)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    if cert:
        ctx.load_cert_chain(cert, key)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, ctx.wrap_socket(raw) as s:
            s.sendall(b"console 00000000-0000-0000-0000-000000000000\n")
            return s.recv(100)
    except (OSError, ssl.SSLError):
        return b""


def test_console(env):
    """virtctl console: the guest's console output, a typed line reaching the guest's shell; a second session
    closes the first; vnc --proxy-only serves the guest's RFB handshake; none of it without the API server's
    authentication, and virt-handler's channel only for virt-api's certificate."""
    port = free_port()
    # the guest boots while virt-api starts (before its webhooks exist: this VMI is not what is tested here)
    env.kubectl("apply", "-f", "-", input=kernelboot_vmi_yaml("e2e-con", "console=ttyS0 shell=1 cnt=0",
                                                              "      autoattachGraphicsDevice: true\n"))
    vapi = VirtApi(env, "--handler-port", str(port))
    try:
        secret, hlog = start_handler_pod(env, port)
        wait_for("VMI Running", lambda: (env.vmi("e2e-con") or {}).get("status", {}).get("phase") == "Running",
                 timeout=60, interval=0.3)
        pod = env.launcher_pod(env.vmi("e2e-con"))
        wait_for("guest shell", lambda: b"KVGUEST READY" in _read(os.path.join(env.kubelet.run_dir(pod), "serial.log")),
                 timeout=60, interval=0.3)
        vctl = Virtctl(env)

        # the console: the guest's output (the backlog holds its boot), then a line typed into its shell
        first = Console(vctl, "e2e-con")
        wait_for("connected", lambda: b"Successfully connected to e2e-con console. The escape sequence is ^]"
                 in first.err.data, timeout=20, interval=0.1)
        first.wait_output("the guest's console output", "KVGUEST READY")
        first.type("echo typed-$((6*7))-ok")
        first.wait_output("the typed line's result from the guest", "typed-42-ok")

        # a second session closes the first, and works
        second = Console(vctl, "e2e-con")
        wait_for("the first session ends", lambda: first.proc.poll() is not None, timeout=20, interval=0.1)
        assert first.proc.returncode == 0, first.err.data
        second.type("echo second-$((1+1))-ok")
        second.wait_output("the second session's line", "second-2-ok")
        second.stop()

        # vnc --proxy-only: {"port": N}, where QEMU's VNC server greets a viewer
        vnc = subprocess.Popen([VIRTCTL, "--kubeconfig", vctl.kubeconfig, "vnc", "e2e-con", "--proxy-only"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=vctl.environ)
        try:
            line = vnc.stdout.readline()
            vport = json.loads(line)["port"]
            with socket.create_connection(("127.0.0.1", vport), timeout=20) as viewer:
                greeting = b""
                while len(greeting) < 12:
                    data = viewer.recv(12 - len(greeting))
                    assert data, "the VNC proxy closed before the RFB greeting (%r)" % greeting
                    greeting += data
                assert greeting == b"RFB 003.008\n", greeting
        finally:
            vnc.kill()
            vnc.wait(10)

        # refusals: an unknown VMI, no credentials, straight to virt-api without the proxy's certificate
        assert 'virtualmachineinstances.kubevirt.io "nope" not found' in vctl("console", "nope", rc=1)
        anon = tls_kubeconfig(env.srv, "anon-console.kubeconfig", token=False)
        for cmd in (["console", "e2e-con"], ["vnc", "e2e-con", "--proxy-only"]):
            p = subprocess.run([VIRTCTL, "--kubeconfig", anon, *cmd], capture_output=True, text=True, timeout=60)
            assert p.returncode == 1 and "Unauthorized" in p.stderr and "port" not in p.stdout, (cmd, p.stdout,
                                                                                                  p.stderr)
        ws = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
              "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Protocol": "plain.kubevirt.io"}
        path = "/apis/subresources.kubevirt.io/v1/namespaces/default/virtualmachineinstances/e2e-con/"
        for kind in ("console", "vnc"):
            assert vapi.request("GET", path + kind, cert=None, headers=ws)[0] == 401
            assert vapi.request("GET", path + kind, cert="client", headers=ws)[0] == 401

        # virt-handler's channel: nothing without a certificate, nor with the API server's client certificate,
        # nor with virt-handler's own (virt-api's CA, but not virt-api's name); virt-api's own is answered
        certs = tempfile.mkdtemp(prefix="handler-certs.", dir=env.srv.dir)
        for k in ("tls.crt", "tls.key"):
            with open(os.path.join(certs, k), "wb") as f:
                f.write(base64.b64decode(secret["data"][k]))
        assert tls_channel(port) == b""
        assert tls_channel(port, env.srv.info["client_crt"], env.srv.info["client_key"]) == b""
        assert tls_channel(port, os.path.join(certs, "tls.crt"), os.path.join(certs, "tls.key")) == b""
        assert tls_channel(port, os.path.join(vapi.certs, "tls.crt"), os.path.join(vapi.certs, "tls.key")) \
            .startswith(b"error no console socket"), "virt-api's certificate must be accepted"
        assert b"refused a client" in _read(hlog)
    finally:
        vapi.stop()


class OpsEnv(Env):
    """Claims bound to directories by the kubelet stand-in (--provision-claims), as test_datavolume.py's."""
    kubelet_opts = {"extra": ["--provision-claims"]}


CLAIM = """apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: %s}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 16Mi}}
"""


def blk_values(data):
    """The block devices of the guest's last `CNT ... blk=...` line."""
    lines = [line for line in data.decode(errors="replace").splitlines() if "CNT " in line and " blk=" in line]
    return lines[-1].split(" blk=", 1)[1].split(" ", 1)[0].split(",") if lines else None


def migration_done(env, name):
    m = kubectl_json(env, "get", "vmim", name)
    return m if (m.get("status") or {}).get("phase") in ("Succeeded", "Failed") else None


def live_migratable(env, name, status):
    """The VMI's LiveMigratable condition when its status is `status`, else None."""
    conds = (env.vmi(name).get("status") or {}).get("conditions") or []
    return next((c for c in conds if c["type"] == "LiveMigratable" and c["status"] == status), None)


def sector_line(path, sector):
    """The first line of a 512-byte sector of a disk image (a marker the guest wrote)."""
    with open(path, "rb") as f:
        f.seek(sector * 512)
        return f.read(64).split(b"\n")[0].decode(errors="replace")


def migrate_with_claim(env, vctl, vmi, pod):
    """`virtctl migrate` of e2e-ops with its claim e2e-ops-data hot-plugged: the VMIM Succeeded; the target Pod's own
    attachment Pod on its node, the source's gone; the disk in the guest on the target and Ready there. The target
    Pod, its serial log and QEMU pid."""
    assert "VM e2e-ops was scheduled to migrate" in vctl("migrate", "e2e-ops")
    m = wait_for("the VMIM with the claim Succeeded or Failed", lambda: [
        x for x in kubectl_json(env, "get", "vmim")["items"] if x["spec"]["vmiName"] == "e2e-ops" and
        (x.get("status") or {}).get("phase") in ("Succeeded", "Failed")], timeout=120, interval=0.5)[0]
    if m["status"]["phase"] != "Succeeded":  # what the launchers said, for the failure's cause
        ms = m["status"].get("migrationState") or {}
        for name in (ms.get("sourcePod"), ms.get("targetPod")):
            log = os.path.join(env.kubelet.state, "logs", "default_%s_compute.log" % name)
            print("---- %s\n%s" % (log, _read(log).decode(errors="replace")[-6000:]))
    assert m["status"]["phase"] == "Succeeded", m["status"]
    ms = env.vmi("e2e-ops")["status"]["migrationState"]
    assert ms["completed"] and ms["sourcePod"] == pod["metadata"]["name"], ms
    target = {p["metadata"]["name"]: p for p in env.srv.api.pods_of(vmi)}[ms["targetPod"]]
    att = wait_for("only the target's attachment Pod", lambda: (lambda a: a if len(a) == 1 and a[0]["metadata"][
        "ownerReferences"][0]["uid"] == target["metadata"]["uid"] else None)(attachment_pods(env)), timeout=30,
                   interval=0.3)
    assert att[0]["spec"]["nodeName"] == target["spec"]["nodeName"] == NODE, att[0]
    assert att[0]["spec"]["volumes"][0]["persistentVolumeClaim"] == {"claimName": "e2e-ops-data"}, att[0]
    assert "vol-e2e-ops-data" not in [v["name"] for v in target["spec"]["volumes"]], target["spec"]["volumes"]
    tst = json.loads(_read(os.path.join(env.kubelet.run_dir(target), "status.json")) or b"{}")
    if tst.get("qemuPid"):
        env.qemu_pids.add(tst["qemuPid"])
    tgt_serial = os.path.join(env.kubelet.run_dir(target), "serial.log")
    wait_for("the claim in the guest on the target", lambda: blk_values(_read(tgt_serial)) == ["vda", "sda"],
             timeout=30, interval=0.3)
    assert b"KVGUEST READY" not in _read(tgt_serial), "the target booted a guest of its own"
    vs = wait_for("volumeStatus Ready from the target", lambda: [
        v for v in env.vmi("e2e-ops")["status"].get("volumeStatus") or []
        if v["name"] == "e2e-ops-data" and v["phase"] == "Ready"], timeout=20, interval=0.3)
    assert "hotplugVolume" in vs[0], vs
    env.kubectl("delete", "vmim", m["metadata"]["name"])
    return target, tgt_serial, tst.get("qemuPid")


def counter_goes_on(serial, after=None, timeout=20):
    """The guest's counter advances in this serial log (past `after` when given); its last value."""
    base = after if after is not None else (cnt_values(_read(serial)) or [-1])[-1]
    return wait_for("the guest's counter going on", lambda: (lambda v: v[-1] if v and v[-1] > base else None)(
        cnt_values(_read(serial))), timeout=timeout, interval=0.3)


class Handler:
    """virt-handler as a local process on the kubelet's node: the API (for attachment Pods) without node labels."""

    def __init__(self, env):
        plugins = tempfile.mkdtemp(prefix="plugins.", dir=env.srv.dir)
        self.log_path = os.path.join(env.srv.dir, "virt-handler.log")
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([VIRT_HANDLER, "--node-name", NODE, "--kubeconfig", env.srv.kubeconfig,
                                      "--no-labels", "--devices", "tun", "--device-plugin-dir", plugins,
                                      "--pods-dir", os.path.join(env.kubelet.state, "pods")],
                                     stdout=self.log, stderr=self.log)

    def stop(self):
        stop_process(self.proc)
        self.log.close()


def start_handler(env):
    h = Handler(env)
    try:
        wait_for("virt-handler's hot-plug agent", lambda: b"hot-plug agent watching" in _read(h.log_path), timeout=10)
    except BaseException:
        h.stop()
        raise
    return h


def attachment_pods(env):
    return [p for p in kubectl_json(env, "get", "pods", "-l", "kubevirt.io=hotplug-disk")["items"]
            if not p["metadata"].get("deletionTimestamp")]


def test_ops(env):
    """One VM's life through virtctl: `virtctl create vm` → `kubectl apply -f -` → `virtctl start` → running;
    `addvolume --persist` of a claim → the VMI's and the VM's spec, the guest sees a new disk, volumeStatus
    Ready; `virtctl migrate` with the claim attached → the target's own attachment Pod, the disk and a marker the
    guest wrote still there; `removevolume --persist` → gone from both and from the guest; `virtctl migrate` → a
    VMIM that Succeeds, the guest's counter going on in the target; a MigrationPolicy capping the bandwidth →
    `virtctl migrate` again → `virtctl migrate-cancel` → the migration aborted, the guest running on."""
    vapi, handler = VirtApi(env), None
    try:
        vctl = Virtctl(env)
        manifest = vctl("create", "vm", "--name", "e2e-ops", "--run-strategy", "Halted", "--memory", "128Mi",
                        "--volume-containerdisk", "src:%s,bootorder:1" % os.path.join(GUEST, "containerdisk"))
        assert "virtualmachine.kubevirt.io/e2e-ops created" in env.kubectl("apply", "-f", "-", input=manifest)
        vm = kubectl_json(env, "get", "vm", "e2e-ops")
        assert vm["spec"]["template"]["spec"]["volumes"] == [
            {"name": "e2e-ops-containerdisk-0", "containerDisk": {"image": os.path.join(GUEST, "containerdisk")}}], vm
        # the default pod interface binds as bridge, which KubeVirt cannot live-migrate: masquerade instead; the
        # test guest's kernel booted directly with a shell on its console (the containerDisk stays its vda)
        env.kubectl("patch", "vm", "e2e-ops", "--type=merge", "-p", json.dumps({"spec": {"template": {"spec": {
            "domain": {"devices": {"interfaces": [{"name": "default", "masquerade": {}}]},
                       "firmware": {"kernelBoot": {"kernelArgs": "console=ttyS0 shell=1", "container": {
                           "image": os.path.join(GUEST, "kernelboot"), "kernelPath": "/boot/vmlinuz",
                           "initrdPath": "/boot/initrd.img"}}}},
            "networks": [{"name": "default", "pod": {}}]}}}}))
        assert "VM e2e-ops was scheduled to start" in vctl("start", "e2e-ops")
        vmi, pod, qemu = env.wait_running("e2e-ops")
        serial = os.path.join(env.kubelet.run_dir(pod), "serial.log")
        wait_for("the boot disk in the guest", lambda: blk_values(_read(serial)) == ["vda"], timeout=30, interval=0.3)

        # addvolume --persist of a claim holding a disk image: the running VMI's spec and the VM's template get
        # the volume (hotpluggable) and its disk; the controller's attachment Pod mounts the claim on the node,
        # virt-handler hands its image to the launcher, the guest sees a new disk and volumeStatus says Ready;
        # removevolume --persist takes all of it away again (docs/hotplug-volumes.md).
        handler = start_handler(env)
        env.kubectl("apply", "-f", "-", input=CLAIM % "e2e-ops-data")
        wait_for("claim Bound", lambda: env.kubectl("get", "pvc", "e2e-ops-data", "-o", "jsonpath={.status.phase}")
                 == "Bound", timeout=20, interval=0.3)
        with open(os.path.join(env.kubelet.state, "claims", "default", "e2e-ops-data", "disk.img"), "wb") as f:
            f.truncate(8 << 20)
        assert "Successfully submitted add volume request to VM e2e-ops for volume e2e-ops-data" in vctl(
            "addvolume", "e2e-ops", "--volume-name=e2e-ops-data", "--persist")
        for spec in (kubectl_json(env, "get", "vm", "e2e-ops")["spec"]["template"]["spec"], env.vmi("e2e-ops")["spec"]):
            vol = {v["name"]: v for v in spec["volumes"]}.get("e2e-ops-data")
            assert vol and vol["persistentVolumeClaim"] == {"claimName": "e2e-ops-data", "hotpluggable": True}, spec
            disk = {d["name"]: d for d in spec["domain"]["devices"]["disks"]}.get("e2e-ops-data")
            assert disk and disk["disk"] == {"bus": "scsi"}, spec["domain"]["devices"]
        out = vctl("addvolume", "e2e-ops", "--volume-name=e2e-ops-data", rc=1)
        assert "e2e-ops-data" in out and "already exists" in out, out
        att = wait_for("the attachment Pod", lambda: attachment_pods(env), timeout=20, interval=0.3)
        assert len(att) == 1 and att[0]["metadata"]["name"].startswith("hp-volume-"), att
        assert att[0]["spec"]["nodeName"] == NODE and att[0]["metadata"]["ownerReferences"][0]["uid"] == \
            pod["metadata"]["uid"], att[0]
        assert att[0]["spec"]["volumes"] == [{"name": "e2e-ops-data",
                                              "persistentVolumeClaim": {"claimName": "e2e-ops-data"}}], att[0]
        wait_for("the hot-plugged disk in the guest", lambda: blk_values(_read(serial)) == ["vda", "sda"],
                 timeout=30, interval=0.3)
        vs = wait_for("volumeStatus Ready", lambda: [v for v in env.vmi("e2e-ops")["status"].get("volumeStatus") or []
                                                     if v["name"] == "e2e-ops-data" and v["phase"] == "Ready"],
                      timeout=20, interval=0.3)
        assert "hotplugVolume" in vs[0], vs
        assert b"handed to launcher pod " + pod["metadata"]["uid"].encode() in _read(handler.log_path)
        # the attachment follows a migration (docs/hotplug-volumes.md): LiveMigratable stays True; the guest writes
        # a marker to the hot-plugged disk, the VMI migrates, the target's own attachment Pod hands the claim to
        # the target launcher, which plugs it before it takes the stream; the guest reads the marker back there
        assert wait_for("LiveMigratable True with the claim", lambda: live_migratable(env, "e2e-ops", "True"),
                        timeout=20, interval=0.3)
        claim_img = os.path.join(env.kubelet.state, "claims", "default", "e2e-ops-data", "disk.img")
        marker, marker2 = "HPMARK-%d" % os.getpid(), "HPMARK2-%d" % os.getpid()
        ask = guest_shell(env, pod)
        write = "echo %s | dd of=/dev/sda bs=512 seek=%d conv=sync,fsync 2>/dev/null && echo done"
        assert ask_until(ask, "W", write % (marker, 8), lambda got: got == "done") == "done"
        ask.close()
        assert sector_line(claim_img, 8) == marker
        pod, serial, qemu = migrate_with_claim(env, vctl, vmi, pod)
        ask = guest_shell(env, pod)
        read = "echo 3 >/proc/sys/vm/drop_caches; dd if=/dev/sda bs=512 skip=8 count=1 2>/dev/null | head -n 1"
        assert ask_until(ask, "R", read, lambda got: got == marker) == marker
        assert ask_until(ask, "W2", write % (marker2, 16), lambda got: got == "done") == "done"
        ask.close()
        assert sector_line(claim_img, 16) == marker2
        assert "Successfully submitted remove volume request to VM e2e-ops for volume e2e-ops-data" in vctl(
            "removevolume", "e2e-ops", "--volume-name=e2e-ops-data", "--persist")
        for spec in (kubectl_json(env, "get", "vm", "e2e-ops")["spec"]["template"]["spec"], env.vmi("e2e-ops")["spec"]):
            assert [v["name"] for v in spec["volumes"]] == ["e2e-ops-containerdisk-0"], spec
            assert "e2e-ops-data" not in [d["name"] for d in spec["domain"]["devices"]["disks"]], spec
        out = vctl("removevolume", "e2e-ops", "--volume-name=e2e-ops-data", rc=1)
        assert "e2e-ops-data" in out, out
        wait_for("the disk gone from the guest", lambda: blk_values(_read(serial)) == ["vda"], timeout=30,
                 interval=0.3)
        wait_for("the attachment Pod gone", lambda: not attachment_pods(env), timeout=20, interval=0.3)
        assert not [v for v in env.vmi("e2e-ops")["status"].get("volumeStatus") or [] if v["name"] == "e2e-ops-data"]
        wait_for("LiveMigratable True again", lambda: live_migratable(env, "e2e-ops", "True"), timeout=20,
                 interval=0.3)

        # migrate: a VMIM made by virt-api, Succeeded; the guest goes on in the target Pod
        counter_goes_on(serial)
        assert "VM e2e-ops was scheduled to migrate" in vctl("migrate", "e2e-ops")
        names = wait_for("the VMIM", lambda: [m["metadata"]["name"] for m in kubectl_json(env, "get", "vmim")["items"]
                                              if m["spec"]["vmiName"] == "e2e-ops"], timeout=10, interval=0.3)
        assert len(names) == 1 and names[0].startswith("kubevirt-migrate-vm-"), names
        m = wait_for("VMIM Succeeded or Failed", lambda: migration_done(env, names[0]), timeout=60, interval=0.5)
        assert m["status"]["phase"] == "Succeeded", m["status"]
        ms = kubectl_json(env, "get", "vmi", "e2e-ops")["status"]["migrationState"]
        assert ms["completed"] and not ms["failed"] and ms["sourcePod"] == pod["metadata"]["name"], ms
        target = {p["metadata"]["name"]: p for p in env.srv.api.pods_of(vmi)}[ms["targetPod"]]
        tst = json.loads(_read(os.path.join(env.kubelet.run_dir(target), "status.json")) or b"{}")
        if tst.get("qemuPid"):
            env.qemu_pids.add(tst["qemuPid"])
        tgt_serial = os.path.join(env.kubelet.run_dir(target), "serial.log")
        last_src = cnt_values(_read(serial))[-1]
        got = wait_for("counter on the target", lambda: cnt_values(_read(tgt_serial)), timeout=20, interval=0.3)
        assert last_src < got[0] <= last_src + 20, (last_src, got[:3])
        assert b"KVGUEST READY" not in _read(tgt_serial), "the target booted a guest of its own"
        if qemu:
            wait_for("the source QEMU gone", lambda: not alive(qemu), timeout=20)

        # migrate-cancel: a migration held back by a 1 MiB/s policy, cancelled while it runs
        env.kubectl("create", "-f", "-", input="apiVersion: migrations.kubevirt.io/v1alpha1\nkind: MigrationPolicy\n"
                    "metadata: {name: e2e-ops-slow}\nspec:\n  bandwidthPerMigration: 1Mi\n  selectors: {}\n")
        assert "VM e2e-ops was scheduled to migrate" in vctl("migrate", "e2e-ops")
        held = wait_for("the second migration running", lambda: (lambda ms: ms if ms and ms.get("migrationUid") !=
                                                                   m["metadata"]["uid"] and ms.get("startTimestamp")
                                                                   else None)(env.vmi("e2e-ops")["status"]
                                                                              .get("migrationState")),
                        timeout=30, interval=0.3)
        assert held["migrationPolicyName"] == "e2e-ops-slow" and not held.get("completed"), held
        time.sleep(1)
        assert "VM e2e-ops was scheduled to migrate cancel" in vctl("migrate-cancel", "e2e-ops")
        ms = wait_for("the migration aborted", lambda: (lambda ms: ms if ms.get("failed") else None)(
            env.vmi("e2e-ops")["status"]["migrationState"]), timeout=30, interval=0.3)
        assert ms["migrationUid"] == held["migrationUid"] and ms["abortRequested"] and not ms["completed"], ms
        wait_for("the VMIM gone", lambda: not [x for x in kubectl_json(env, "get", "vmim")["items"]
                                               if x["metadata"]["uid"] == held["migrationUid"]], timeout=30,
                 interval=0.3)
        st = env.vmi("e2e-ops")["status"]
        assert st["phase"] == "Running" and st["activePods"] == {target["metadata"]["uid"]: NODE}, st
        counter_goes_on(tgt_serial)
        assert "no migration" in vctl("migrate-cancel", "e2e-ops", rc=1).lower()
        env.kubectl("delete", "migrationpolicy", "e2e-ops-slow")
    finally:
        if handler:
            handler.stop()
        vapi.stop()


TESTS = {"lifecycle": test_lifecycle, "unauthenticated": test_unauthenticated, "admission": test_admission,
         "console": test_console, "ops": test_ops}

if __name__ == "__main__":
    skip_without_pod_network(os.path.join("containerdisk", "disk"))
    for name in sys.argv[1:] or list(TESTS):
        t0 = time.time()
        with {"console": HostNetworkEnv, "ops": OpsEnv}.get(name, Env)() as env:
            TESTS[name](env)
        print("ok %s (%.1f s)" % (name, time.time() - t0))
