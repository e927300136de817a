# kubetest: helpers shared by the controller's integration tests, the e2e tests and the benchmark: start the
# Python Kubernetes API test server and virt-controller, talk to the API with http.client, wait for states.
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse

SRC = os.environ.get("KV_SOURCE_ROOT") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("KV_BUILD_ROOT") or os.path.join(SRC, "build")
SERVER = os.path.join(SRC, "tests", "kube-api", "kube_api_server.py")
sys.path.insert(0, os.path.join(SRC, "tests"))
from proclib import stop_process  # noqa: E402
VMI_PATH = "/apis/kubevirt.io/v1/namespaces/%s/virtualmachineinstances"
VM_PATH = "/apis/kubevirt.io/v1/namespaces/%s/virtualmachines"
VMIM_PATH = "/apis/kubevirt.io/v1/namespaces/%s/virtualmachineinstancemigrations"
POD_PATH = "/api/v1/namespaces/%s/pods"


# http.server writes a response's headers and body in two send()s; without TCP_NODELAY the body waits for
# the client's delayed ACK (~40 ms per request on Linux), which caps any client at ~25 requests/s per
# connection. Until the server sets it itself, start it with Nagle disabled.
NODELAY_LAUNCH = ("import runpy, socketserver, sys; socketserver.StreamRequestHandler.disable_nagle_algorithm = True; "
                  "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")


def wait_for(what, fn, timeout=20.0, interval=0.05):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out waiting for %s (last: %r)" % (what, last))


class Api:
    """A keep-alive JSON client for the plain-HTTP listener."""

    def __init__(self, port, host="127.0.0.1"):
        self.host, self.port = host, port
        self.conn = None

    def request(self, method, path, body=None, ctype="application/json"):
        for attempt in range(3):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
                data = json.dumps(body).encode() if body is not None else None
                headers = {"Content-Type": ctype} if data is not None else {}
                self.conn.request(method, path, body=data, headers=headers)
                r = self.conn.getresponse()
                raw = r.read()
                try:
                    return r.status, (json.loads(raw) if raw else None)
                except ValueError:
                    return r.status, raw.decode(errors="replace")
            except (ConnectionError, http.client.HTTPException, OSError):
                self.conn = None
                if attempt == 2:
                    raise
                time.sleep(0.2)

    def get(self, path):
        return self.request("GET", path)

    def ok(self, method, path, body=None, ctype="application/json"):
        code, obj = self.request(method, path, body, ctype)
        if code >= 300:
            raise AssertionError("%s %s: %d %s" % (method, path, code, obj))
        return obj

    def create(self, path, obj):
        return self.ok("POST", path, obj)

    def merge(self, path, patch):
        return self.ok("PATCH", path, patch, "application/merge-patch+json")

    def items(self, path, selector=None):
        q = "?labelSelector=" + urllib.parse.quote(selector) if selector else ""
        return self.ok("GET", path + q)["items"]

    def pods_of(self, vmi, ns="default"):
        return self.items(POD_PATH % ns, "kubevirt.io/created-by=" + vmi["metadata"]["uid"])

    def fault(self, **rule):
        self.ok("POST", "/_test/fail", rule)

    def clear_faults(self):
        self.ok("DELETE", "/_test/fail")


class Server:
    def __init__(self, *extra, state_file=None, port=0):
        self.dir = tempfile.mkdtemp(prefix="kvlite-kapi-")
        self.extra = list(extra)
        self.state_file = state_file
        self.port = port
        self.proc = None

    def start(self):
        portfile = os.path.join(self.dir, "port.json")
        if os.path.exists(portfile):
            os.unlink(portfile)
        args = [sys.executable, "-c", NODELAY_LAUNCH, SERVER, "--port", str(self.port), "--port-file",
                portfile] + self.extra
        if self.state_file:
            args += ["--state-file", self.state_file]
        self.log = open(os.path.join(self.dir, "server.log"), "ab")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=self.log)
        try:
            info = wait_for("API server port file", lambda: self._exited() or _read_json(portfile), timeout=30)
            self.info = info
            self.port = info["http_port"]
            self.url = info["http_url"]
            self.api = Api(self.port, urllib.parse.urlsplit(self.url).hostname)
            wait_for("API server /healthz", lambda: self._healthy(), timeout=10)
        except BaseException:
            self.stop()  # never leave a server behind when startup fails
            raise
        self.kubeconfig = os.path.join(self.dir, "kubeconfig.json")
        with open(self.kubeconfig, "w") as f:
            json.dump({"apiVersion": "v1", "kind": "Config", "current-context": "t",
                       "clusters": [{"name": "t", "cluster": {"server": self.url}}],
                       "users": [{"name": "t", "user": {}}],
                       "contexts": [{"name": "t", "context": {"cluster": "t", "user": "t"}}]}, f)
        return self

    def _exited(self):
        if self.proc.poll() is not None:
            raise AssertionError("kube_api_server exited with %d (log in %s)" % (self.proc.returncode, self.dir))
        return None

    def _healthy(self):
        try:
            return self.api.get("/healthz")[0] == 200
        except Exception:
            return False

    def stop(self, sig=signal.SIGTERM):
        stop_process(self.proc, sig)
        self.proc = None

    def remove(self):
        """Deletes the server's directory (logs, state); tests keep it when they fail."""
        shutil.rmtree(self.dir, ignore_errors=True)


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


class Controller:
    def __init__(self, server, *extra, binary=None, config_args=None, env=None):
        self.server = server
        self.extra = list(extra)
        self.config_args = config_args if config_args is not None else ["--kubeconfig", server.kubeconfig]
        self.env = env
        self.binary = binary or os.path.join(BUILD, "controller", "virt-controller")
        self.proc = None
        self.logpath = os.path.join(server.dir, "controller-%d.log" % int(time.time() * 1000))

    def start(self):
        self.log = open(self.logpath, "ab")
        self.proc = subprocess.Popen([self.binary] + self.config_args + ["--metrics-addr", "127.0.0.1:0"] +
                                     self.extra, stdout=self.log, stderr=self.log,
                                     env=dict(os.environ, **(self.env or {})))
        try:
            port = wait_for("controller metrics port", self._metrics_port, timeout=10)
            self.metrics_api = Api(int(port))
            wait_for("controller /readyz", lambda: self._get("/readyz")[0] == 200, timeout=20)
        except BaseException:
            self.stop(signal.SIGKILL)
            raise
        return self

    def _metrics_port(self):
        if self.proc.poll() is not None:
            raise AssertionError("virt-controller exited with %d:\n%s" % (self.proc.returncode, self.logtext()))
        m = re.search(r"serving /metrics on port (\d+)", self.logtext())
        return m and m.group(1)

    def _get(self, path):
        c = http.client.HTTPConnection("127.0.0.1", self.metrics_api.port, timeout=5)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read().decode()
        except OSError:
            return 0, ""
        finally:
            c.close()

    def metrics(self):
        out = {}
        for line in self._get("/metrics")[1].splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                out[k] = float(v)
        return out

    def logtext(self):
        with open(self.logpath, errors="replace") as f:
            return f.read()

    def rss_kib(self, field="VmHWM"):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        return 0

    def stop(self, sig=signal.SIGTERM):
        rc = stop_process(self.proc, sig)
        self.proc = None
        return rc


def vmi_manifest(name, ns="default", labels=None, memory="64Mi", image="/nonexistent/image"):
    return {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
            "metadata": {"name": name, "namespace": ns, "labels": labels or {"app": name}},
            "spec": {"domain": {"resources": {"requests": {"memory": memory}},
                                "devices": {"disks": [{"name": "root", "disk": {"bus": "virtio"}}]}},
                     "volumes": [{"name": "root", "containerDisk": {"image": image}}]}}


def vm_manifest(name, strategy, ns="default", image="/nonexistent/image"):
    vmi = vmi_manifest(name, ns, image=image)
    return {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"runStrategy": strategy,
                     "template": {"metadata": {"labels": {"vm": name}}, "spec": vmi["spec"]}}}


def cleanup(*things):
    for t in things:
        try:
            t.stop()
        except Exception as e:  # keep stopping the others
            print("cleanup: %s" % e, file=sys.stderr)
