#!/usr/bin/env python3
# End to end with virtctl and virt-api (tests/e2e's Env: kubectl → API test server → virt-controller → kubelet
# stand-in → virt-launcher → QEMU): `virtctl start` of a Halted VM → Running, refusals with KubeVirt's words,
# pause → the Paused condition, restart → a new VMI, expose → KubeVirt's Service, stop; start/stop of a Manual VM
# through status.stateChangeRequests; `kubectl virt` (the kubectl-virt plugin); no subresource without the API
# server's authentication.
# Usage: test_virtctl.py [lifecycle|unauthenticated]
import http.client
import http.server
import json
import os
import ssl
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_e2e import BUILD, GUEST, Env, hostcaps, vm_yaml, wait_for  # noqa: E402

VIRTCTL = os.path.join(BUILD, "virtctl", "virtctl")
VIRT_API = os.path.join(BUILD, "virt-api", "virt-api")


class VirtApi:
    """virt-api serving with the API test server's certificates: its CA stands for the front-proxy CA."""

    def __init__(self, srv):
        self.srv = srv
        self.portfile = os.path.join(srv.dir, "virt-api.port")
        self.log = open(os.path.join(srv.dir, "virt-api.log"), "ab")
        info = srv.info
        self.proc = subprocess.Popen([VIRT_API, "--tls-cert", info["server_crt"], "--tls-key", info["server_key"],
                                      "--client-ca", info["ca_crt"], "--listen", "127.0.0.1:0", "--port-file",
                                      self.portfile, "--kubeconfig", srv.kubeconfig, "-v"],
                                     stdout=self.log, stderr=self.log)
        self.port = wait_for("virt-api port file", lambda: self._port(), timeout=15)

    def _port(self):
        if self.proc.poll() is not None:
            raise AssertionError("virt-api exited with %d" % self.proc.returncode)
        try:
            with open(self.portfile) as f:
                return json.load(f)["port"]
        except (OSError, ValueError):
            return None

    def request(self, method, path, client_cert=True, user="e2e-user", body=None):
        ctx = ssl.create_default_context(cafile=self.srv.info["ca_crt"])
        ctx.check_hostname = False
        if client_cert:
            ctx.load_cert_chain(self.srv.info["client_crt"], self.srv.info["client_key"])
        c = http.client.HTTPSConnection("127.0.0.1", self.port, context=ctx, timeout=30)
        headers = {"X-Remote-User": user} if user else {}
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


class FrontProxy(threading.Thread):
    """TEST-ONLY stand-in for the API server's APIService proxy, used through virtctl's
    KVLITE_VIRTCTL_TEST_SUBRESOURCE_SERVER until the API test server proxies subresources.kubevirt.io itself
    (branch `admission`): it forwards to virt-api with the client certificate and X-Remote-User, as
    kube-apiserver does. When that lands, drop this class and the variable: virtctl then talks to the API
    server only."""

    def __init__(self, vapi):
        super().__init__(daemon=True)
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _forward(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else None
                code, data = vapi.request(self.command, self.path, body=body)
                outer.seen.append((self.command, self.path, code))
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_POST = _forward

            def log_message(self, *a):
                pass

        self.seen = []
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]

    def run(self):
        self.httpd.serve_forever()

    def stop(self):
        self.httpd.shutdown()


class Virtctl:
    def __init__(self, env, proxy):
        self.env = env
        self.bindir = tempfile.mkdtemp(prefix="virtctl-bin.", dir=env.srv.dir)
        os.symlink(VIRTCTL, os.path.join(self.bindir, "kubectl-virt"))
        self.environ = dict(os.environ, KVLITE_VIRTCTL_TEST_SUBRESOURCE_SERVER=proxy.url,
                            KUBECONFIG=env.srv.kubeconfig, PATH=self.bindir + ":" + os.environ["PATH"])

    def __call__(self, *args, rc=0):
        p = subprocess.run([VIRTCTL, "--kubeconfig", self.env.srv.kubeconfig, *args], capture_output=True, text=True,
                           timeout=60, env=self.environ)
        assert p.returncode == rc, "virtctl %s: rc %d (wanted %d)\n%s%s" % (" ".join(args), p.returncode, rc,
                                                                           p.stdout, p.stderr)
        return p.stdout + p.stderr

    def kubectl_virt(self, *args):
        p = subprocess.run(["kubectl", "virt", *args], capture_output=True, text=True, timeout=60, env=self.environ)
        assert p.returncode == 0, "kubectl virt %s: rc %d\n%s%s" % (" ".join(args), p.returncode, p.stdout, p.stderr)
        return p.stdout


def vm_status(env, name):
    return (env.srv.api.get("/apis/kubevirt.io/v1/namespaces/default/virtualmachines/" + name)[1] or {}).get("status", {})


def paused(vmi):
    return any(c["type"] == "Paused" and c["status"] == "True" for c in (vmi or {}).get("status", {}).get("conditions", []))


def test_lifecycle(env):
    vapi = VirtApi(env.srv)
    proxy = FrontProxy(vapi)
    proxy.start()
    try:
        vctl = Virtctl(env, proxy)
        assert "v0.1.0" in vctl("version")
        env.kubectl("apply", "-f", "-", input=vm_yaml("e2e-vctl", "Halted"))
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
        assert all(code in (200, 202, 409, 404) for _, _, code in proxy.seen), proxy.seen
    finally:
        proxy.stop()
        vapi.stop()


def test_unauthenticated(env):
    """Nothing of the subresource API without the API server's authentication: virt-api refuses a caller
    without the front-proxy client certificate or without X-Remote-User (401), and the API server refuses a
    client without credentials (401) before anything is proxied."""
    vapi = VirtApi(env.srv)
    try:
        path = "/apis/subresources.kubevirt.io/v1/namespaces/default/virtualmachines/x/start"
        assert vapi.request("PUT", path, client_cert=False)[0] == 401
        assert vapi.request("PUT", path, user=None)[0] == 401
        assert vapi.request("GET", "/apis/subresources.kubevirt.io/v1", client_cert=False)[0] == 401
        code, body = vapi.request("PUT", path)  # the proxy's credentials: reaches the handler
        assert code == 404 and b"not found" in body, (code, body)
        code, body = vapi.request("GET", "/apis/subresources.kubevirt.io/v1")
        names = [r["name"] for r in json.loads(body)["resources"]]
        assert "virtualmachines/start" in names and "virtualmachineinstances/pause" in names, names
        # virtctl against the API server's HTTPS listener with no credentials
        kc = os.path.join(env.srv.dir, "anon.kubeconfig")
        with open(kc, "w") as f:
            json.dump({"apiVersion": "v1", "kind": "Config", "current-context": "a",
                       "clusters": [{"name": "a", "cluster": {"server": env.srv.info["https_url"],
                                                              "certificate-authority": env.srv.info["ca_crt"]}}],
                       "users": [{"name": "a", "user": {}}],
                       "contexts": [{"name": "a", "context": {"cluster": "a", "user": "a"}}]}, f)
        p = subprocess.run([VIRTCTL, "--kubeconfig", kc, "start", "x"], capture_output=True, text=True, timeout=60)
        assert p.returncode == 1 and "Unauthorized" in p.stderr, (p.returncode, p.stderr)
    finally:
        vapi.stop()


TESTS = {"lifecycle": test_lifecycle, "unauthenticated": test_unauthenticated}

if __name__ == "__main__":
    if not os.path.exists(os.path.join(GUEST, "containerdisk", "disk")):
        print("SKIP: no test guest in %s (tests/guest/build.sh)" % GUEST)
        sys.exit(77)
    why = hostcaps.missing("root", "ip", "mountns", "netns", "veth", "bridge", "tun", "nftables")
    if why:
        print("SKIP: the kubelet stand-in and Pod networking: %s" % why)
        sys.exit(77)
    for name in sys.argv[1:] or list(TESTS):
        t0 = time.time()
        with Env() as env:
            TESTS[name](env)
        print("ok %s (%.1f s)" % (name, time.time() - t0))
