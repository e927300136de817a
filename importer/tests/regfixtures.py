"""Fixtures shared by the importer's test and the DataVolume end-to-end test: Debian's docker-registry started
on loopback, and a VM image (FROM scratch / ADD disk.qcow2 /disk/) built with buildah and pushed to registries."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("KV_SOURCE_ROOT") or
                                os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."), "tests"))
from proclib import stop_process  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(*args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw)


def make_tls(root):
    """A CA and a server certificate for 127.0.0.1 signed by it: (ca.pem, srv.pem, srv.key)."""
    ca_key, ca = os.path.join(root, "ca.key"), os.path.join(root, "ca.pem")
    key, csr, crt = (os.path.join(root, n) for n in ("srv.key", "srv.csr", "srv.pem"))
    ext = os.path.join(root, "ext.cnf")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca, "-days", "2",
        "-subj", "/CN=kvlite test CA")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1")
    run("openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", crt,
        "-days", "2", "-extfile", ext)
    return ca, crt, key


def htpasswd_file(root, user, password):
    path = os.path.join(root, "htpasswd")
    with open(path, "w") as f:
        f.write(run("htpasswd", "-Bbn", user, password).stdout)
    return path


class Registry:
    def __init__(self, root, name, tls=None, htpasswd=None, host="127.0.0.1"):
        self.dir = os.path.join(root, name)
        os.makedirs(self.dir)
        self.port = free_port()
        self.host = host
        self.addr = f"{host}:{self.port}"
        cfg = {"version": 0.1, "log": {"level": "error"},
               "storage": {"filesystem": {"rootdirectory": os.path.join(self.dir, "data")}},
               "http": {"addr": self.addr}}
        if tls:
            cfg["http"]["tls"] = {"certificate": tls[0], "key": tls[1]}
        if htpasswd:
            cfg["auth"] = {"htpasswd": {"realm": "kvlite-test", "path": htpasswd}}
        self.config = os.path.join(self.dir, "config.yml")
        with open(self.config, "w") as f:
            json.dump(cfg, f)  # JSON is YAML
        self.tls = bool(tls)
        self.proc = None
        self.start()

    def start(self):
        self.log = open(os.path.join(self.dir, "log"), "a")
        self.proc = subprocess.Popen(["docker-registry", "serve", self.config], stdout=self.log, stderr=self.log)
        deadline = time.time() + 15
        while time.time() < deadline:
            try:
                socket.create_connection((self.host, self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"registry {self.addr} did not start")

    def stop(self, sig=signal.SIGTERM):
        stop_process(self.proc, sig)
        self.proc = None


def build_image(root, name, files, dockerfile, regs, repo, creds=None):
    """An image built by buildah (vfs) from a context holding files {name in the context: source path} and the
    Dockerfile text, pushed to every registry as repo (credentials for the TLS ones)."""
    ctx = os.path.join(root, "ctx-" + name)
    os.makedirs(ctx)
    for base, src in files.items():
        shutil.copy(src, os.path.join(ctx, base))
    with open(os.path.join(ctx, "Dockerfile"), "w") as f:
        f.write(dockerfile)
    store = ["--root", os.path.join(root, "bstore"), "--runroot", os.path.join(root, "brun"),
             "--storage-driver", "vfs"]
    run("buildah", *store, "bud", "--quiet", "-t", "localhost/%s:1" % name, ctx)
    for r in regs:
        extra = ["--creds", creds] if r.tls and creds else []
        run("buildah", *store, "push", "--quiet", "--tls-verify=false", *extra, "localhost/%s:1" % name,
            f"docker://{r.addr}/{repo}")


def build_with_buildah(root, disk, regs, creds=None, repo="vms/guest:1"):
    """FROM scratch + ADD disk.qcow2 /disk/, built by buildah (vfs) and pushed to every registry."""
    build_image(root, "guest", {"disk.qcow2": disk}, "FROM scratch\nADD disk.qcow2 /disk/\n", regs, repo, creds)
