#!/usr/bin/env python3
# virt-launcher-reporter against the API test server over HTTPS with service-account credentials: the
# latest status lands on the Pod as kvlite.io/launcher-status (coalescing), failed patches are retried,
# the final status is delivered after the launcher closes its end, it dies with its parent, it holds no
# capabilities, and bad setups exit with their codes. Usage: launcher_reporter.py VIRT_LAUNCHER_REPORTER
import http.client
import json
import os
import socket
import ssl
import subprocess
import sys

SRC = os.environ.get("KV_SOURCE_ROOT") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
sys.path.insert(0, os.path.join(SRC, "controller", "tests"))
from kubetest import POD_PATH, Server, wait_for  # noqa: E402

REPORTER = os.path.abspath(sys.argv[1])
ANN = "kvlite.io/launcher-status"


def doc(phase, n=0):
    return json.dumps({"phase": phase, "n": n, "conditions": [{"type": "SoftwareEmulation", "status": "True"}]})


def annotation(srv, pod):
    _, obj = srv.api.get(POD_PATH % "default" + "/" + pod)
    return ((obj or {}).get("metadata", {}).get("annotations") or {}).get(ANN)


def start(srv, pod, env_extra=None, argv=()):
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    host, port = srv.info["https_url"].rsplit("//", 1)[1].rsplit(":", 1)
    env = dict(os.environ, POD_NAME=pod, POD_NAMESPACE="default", KUBERNETES_SERVICE_HOST=host,
               KUBERNETES_SERVICE_PORT=port, KVLITE_SA_DIR=srv.sa_dir)
    env.update(env_extra or {})
    proc = subprocess.Popen([REPORTER, *argv], stdin=theirs, env=env, stderr=subprocess.PIPE)
    theirs.close()
    return mine, proc


def tls_fault(srv, **rule):
    """Faults are per listener: queue this one on the HTTPS side the reporter talks to."""
    ctx = ssl.create_default_context(cafile=os.path.join(srv.sa_dir, "ca.crt"))
    with open(os.path.join(srv.sa_dir, "token")) as f:
        token = f.read().strip()
    host, port = srv.info["https_url"].rsplit("//", 1)[1].rsplit(":", 1)
    conn = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=10)
    conn.request("POST", "/_test/fail", body=json.dumps(rule),
                 headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    r = conn.getresponse()
    assert r.status == 200, (r.status, r.read())
    conn.close()


def status_field(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return line.split()[1]


def main():
    srv = Server("--tls-port", "0")
    srv.sa_dir = os.path.join(srv.dir, "sa")
    srv.extra += ["--serviceaccount-dir", srv.sa_dir]
    procs = []
    try:
        srv.start()
        for name in ("p1", "p2"):
            srv.api.create(POD_PATH % "default", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                                                  "spec": {"containers": [{"name": "c", "image": "x"}]}})

        # Coalescing: a burst ends with the latest document on the Pod.
        sock, proc = start(srv, "p1")
        procs.append(proc)
        for i in range(50):
            sock.send(doc("Running", i).encode())
        wait_for("latest status on the Pod", lambda: annotation(srv, "p1") == doc("Running", 49), timeout=15)
        assert status_field(proc.pid, "NoNewPrivs") == "1"
        assert int(status_field(proc.pid, "CapEff"), 16) == 0 and int(status_field(proc.pid, "CapPrm"), 16) == 0

        # Failed patches are retried; the final status is delivered after the launcher closes its end.
        tls_fault(srv, code=500, method="PATCH", path="/pods/p1$", count=3)
        sock.send(doc("Succeeded").encode())
        sock.close()
        assert proc.wait(10) == 0, proc.stderr.read().decode()
        assert annotation(srv, "p1") == doc("Succeeded")
        err = proc.stderr.read().decode()
        assert "retry in" in err and "status delivered after 3 retries" in err, err

        # Dies with its parent (PDEATHSIG set by the reporter itself for --parent).
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        holder = subprocess.Popen([sys.executable, "-c", "import os, sys, time; "
                                   "pid = os.fork()\n"
                                   "if pid == 0:\n"
                                   "    os.execv(sys.argv[1], [sys.argv[1], '--parent', str(os.getppid())])\n"
                                   "print(pid, flush=True); time.sleep(60)", REPORTER],
                                  stdin=theirs, stdout=subprocess.PIPE, env=dict(os.environ, POD_NAME="p2",
                                  POD_NAMESPACE="default", KUBERNETES_SERVICE_HOST="127.0.0.1",
                                  KUBERNETES_SERVICE_PORT="1", KVLITE_SA_DIR=srv.sa_dir))
        procs.append(holder)
        theirs.close()
        child = int(holder.stdout.readline())
        wait_for("reporter running", lambda: os.path.exists("/proc/%d/status" % child) and
                 status_field(child, "NoNewPrivs") == "1", timeout=5)
        holder.kill()
        holder.wait()
        wait_for("reporter gone with its parent", lambda: not os.path.exists("/proc/%d/stat" % child) or
                 open("/proc/%d/stat" % child).read().split()[2] == "Z", timeout=5)
        mine.close()

        # Bad setups.
        r = subprocess.run([REPORTER], stdin=subprocess.DEVNULL, env={"PATH": os.environ.get("PATH", "")},
                           capture_output=True, text=True, timeout=10)
        assert r.returncode == 3 and "POD_NAME" in r.stderr, r
        sock, proc = start(srv, "p1", {"KVLITE_SA_DIR": os.path.join(srv.dir, "nonexistent")})
        assert proc.wait(10) == 3 and b"ca.crt" in proc.stderr.read()
        sock.close()
        r = subprocess.run([REPORTER, "--parent", "x"], capture_output=True, text=True, timeout=10)
        assert r.returncode == 2 and "--parent" in r.stderr, r
        r = subprocess.run([REPORTER, "--help"], capture_output=True, text=True, timeout=10)
        assert r.returncode == 0 and "Usage" in r.stdout
        print("ok: launcher reporter")
        srv.remove()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        srv.stop()


if __name__ == "__main__":
    main()
