# Helpers for the kube-api tests (and for other suites that need a test apiserver): start the server on a free
# port, find the real kubectl, run it with a private cache and kubeconfig, and stop every process on exit.
import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
from proclib import stop_process  # noqa: E402
SKIP = 77


def find_kubectl():
    """The bundled kubectl 1.32 of the Google Cloud SDK when present (it skips the dispatcher's /version probe),
    else $KUBECTL or `kubectl` on PATH."""
    if os.environ.get("KUBECTL"):
        return os.environ["KUBECTL"]
    path = shutil.which("kubectl")
    if path:
        bundled = os.path.join(os.path.dirname(os.path.realpath(path)), "kubectl.1.32")
        return bundled if os.access(bundled, os.X_OK) else path
    return None


class Failure(AssertionError):
    pass


def check(cond, what, *detail):
    if not cond:
        raise Failure(what + ("".join("\n  " + str(d) for d in detail)))
    print("ok -", what, flush=True)


class ApiServer:
    def __init__(self, *extra, tls=False):
        self.dir = tempfile.mkdtemp(prefix="kube-api-test.")
        _dirs.append(self.dir)
        port_file = os.path.join(self.dir, "ready.json")
        args = [sys.executable, os.path.join(HERE, "kube_api_server.py"), "--port", "0", "--port-file", port_file]
        if tls:
            args += ["--tls-port", "0", "--cert-dir", os.path.join(self.dir, "certs")]
        self.proc = subprocess.Popen(args + list(extra), stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(self.dir, "server.log"), "w"))
        atexit.register(self.stop)
        deadline = time.monotonic() + 20
        while not os.path.exists(port_file):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise Failure("server did not start: " + open(os.path.join(self.dir, "server.log")).read())
            time.sleep(0.05)
        with open(port_file) as f:
            self.info = json.load(f)
        self.url = self.info["http_url"]
        self.kubeconfig = os.path.join(self.dir, "kubeconfig")
        with open(self.kubeconfig, "w") as f:
            json.dump({"apiVersion": "v1", "kind": "Config", "current-context": "t",
                       "clusters": [{"name": "t", "cluster": {"server": self.url}}],
                       "users": [{"name": "t", "user": {}}],
                       "contexts": [{"name": "t", "context": {"cluster": "t", "user": "t"}}]}, f)

    def stop(self):
        stop_process(self.proc)

    def request(self, method, path, body=None, ctype="application/json", headers=None, raw=False):
        """(status, parsed JSON or bytes) without raising on HTTP errors."""
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", ctype)
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                payload, code = resp.read(), resp.status
        except urllib.error.HTTPError as e:
            payload, code = e.read(), e.code
        return code, payload if raw else (json.loads(payload) if payload.strip() else None)


class Kubectl:
    def __init__(self, server, kubeconfig=None):
        self.bin = find_kubectl()
        self.home = tempfile.mkdtemp(prefix="kubectl-home.", dir=server.dir)
        self.kubeconfig = kubeconfig or server.kubeconfig

    def __call__(self, *args, stdin=None, timeout=60, ok=True):
        env = dict(os.environ, HOME=self.home, KUBECONFIG=self.kubeconfig)
        proc = subprocess.run([self.bin, "--cache-dir", os.path.join(self.home, "cache"), *args], env=env,
                              input=stdin, capture_output=True, text=True, timeout=timeout)
        if ok and proc.returncode != 0:
            raise Failure("kubectl %s failed (%d): %s%s" % (" ".join(args), proc.returncode, proc.stdout,
                                                            proc.stderr))
        return proc

    def popen(self, *args):
        env = dict(os.environ, HOME=self.home, KUBECONFIG=self.kubeconfig)
        proc = subprocess.Popen([self.bin, "--cache-dir", os.path.join(self.home, "cache"), *args], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        atexit.register(lambda: proc.poll() is None and (proc.kill(), proc.wait()))
        return proc


def wait_for(what, fn, timeout=20, interval=0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise Failure("timed out waiting for " + what)
        time.sleep(interval)


_dirs = []  # the servers' directories, removed when the test passes (kept to read when it fails)


def run(main):
    try:
        main()
    except Failure as e:
        print("FAIL -", e, flush=True)
        sys.exit(1)
    for d in _dirs:
        shutil.rmtree(d, ignore_errors=True)
    sys.exit(0)
