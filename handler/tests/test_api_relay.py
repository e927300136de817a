#!/usr/bin/env python3
"""virt-handler --api-relay-dir against the API test server over HTTPS (issue #21: a launcher Pod whose
address went to the guest reaches the API server through the node agent):
1. the directory and DIR/apiserver.sock are created with modes 0755 and 0666 whatever the umask;
2. two concurrent HTTPS connections through the socket (TLS end to end, verified against the API server's
   CA for 127.0.0.1, the Pod's bearer token), kept alive for a second request, and a response far larger
   than the relay's buffer arrive intact; a half-close is passed on to the server;
3. virt-launcher-reporter with KUBERNETES_SERVICE_PORT on a closed port and KVLITE_API_RELAY on the socket
   delivers its status onto the Pod: it dialled the relay;
4. SIGTERM: exit 0 and the socket is gone.
Usage: test_api_relay.py VIRT_HANDLER VIRT_LAUNCHER_REPORTER"""
import http.client
import json
import os
import shutil
import socket
import ssl
import stat
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("KV_SOURCE_ROOT") or os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path[:0] = [os.path.join(SRC, "tests"), os.path.join(SRC, "controller", "tests")]
from proclib import stop_process  # noqa: E402
from kubetest import POD_PATH, Server, wait_for  # noqa: E402

HANDLER, REPORTER = (os.path.abspath(a) for a in sys.argv[1:3])
ANN = "kvlite.io/launcher-status"


class RelayedHTTPS(http.client.HTTPSConnection):
    """HTTPS to the API server's name (127.0.0.1) over the relay's unix socket."""

    def __init__(self, path, ctx):
        super().__init__("127.0.0.1", 443, context=ctx, timeout=10)
        self.path = path

    def connect(self):
        raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        raw.settimeout(self.timeout)
        raw.connect(self.path)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)


def get(conn, path, token):
    conn.request("GET", path, headers={"Authorization": "Bearer " + token})
    r = conn.getresponse()
    return r.status, r.read()


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # never listened: connections are refused
    return port


def annotation(srv, pod):
    _, obj = srv.api.get(POD_PATH % "default" + "/" + pod)
    return ((obj or {}).get("metadata", {}).get("annotations") or {}).get(ANN)


def main():
    srv = Server("--tls-port", "0")
    srv.sa_dir = os.path.join(srv.dir, "sa")
    srv.extra += ["--serviceaccount-dir", srv.sa_dir]
    tmp = tempfile.mkdtemp(prefix="api-relay-test.")
    relay_dir = os.path.join(tmp, "node", "kvlite")  # neither exists yet
    sock_path = os.path.join(relay_dir, "apiserver.sock")
    log_path = os.path.join(tmp, "handler.log")
    os.mkdir(os.path.join(tmp, "dp"))
    handler = reporter = None
    try:
        srv.start()
        host, port = srv.info["https_url"].rsplit("//", 1)[1].rsplit(":", 1)
        in_cluster = dict(os.environ, KUBERNETES_SERVICE_HOST=host, KUBERNETES_SERVICE_PORT=port,
                          KVLITE_SA_DIR=srv.sa_dir)
        big = "x" * (300 * 1024)  # ~10 times a direction's buffer
        srv.api.create(POD_PATH % "default", {"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": "relayed", "annotations": {"big": big}}, "spec": {"containers": [{"name": "c", "image": "x"}]}})

        handler = subprocess.Popen(
            [HANDLER, "--node-name", "n1", "--in-cluster", "--no-labels", "--no-hotplug", "--devices", "tun",
             "--device-plugin-dir", os.path.join(tmp, "dp"), "--api-relay-dir", relay_dir,
             "--kvm-replay", os.path.join(SRC, "kvmcheck", "testdata", "profile-no-device.json")],
            env=in_cluster, stdout=subprocess.DEVNULL, stderr=open(log_path, "w"),
            preexec_fn=lambda: os.umask(0o077))
        wait_for("relay socket", lambda: handler.poll() is not None or os.path.exists(sock_path), timeout=15)
        assert handler.poll() is None, "virt-handler exited with %s" % handler.returncode
        dmode, smode = os.stat(relay_dir).st_mode, os.stat(sock_path).st_mode
        assert stat.S_IMODE(dmode) == 0o755 and stat.S_ISSOCK(smode) and stat.S_IMODE(smode) == 0o666, \
            (oct(dmode), oct(smode))

        ctx = ssl.create_default_context(cafile=os.path.join(srv.sa_dir, "ca.crt"))
        with open(os.path.join(srv.sa_dir, "token")) as f:
            token = f.read().strip()
        a, b = RelayedHTTPS(sock_path, ctx), RelayedHTTPS(sock_path, ctx)
        a.connect()
        b.connect()  # both open at once: two relayed connections
        code, body = get(a, "/version", token)
        assert code == 200 and json.loads(body)["gitVersion"].startswith("v1."), (code, body[:200])
        code, body = get(b, POD_PATH % "default" + "/relayed", token)
        assert code == 200 and json.loads(body)["metadata"]["annotations"]["big"] == big, (code, len(body))
        code, body = get(a, "/api", token)  # the same kept-alive connection
        assert code == 200 and json.loads(body)["kind"] == "APIVersions", (code, body[:200])
        code, _ = get(b, "/api", "not-a-token")  # the server, not the relay, authenticates
        assert code == 401, code
        a.close()
        b.close()
        # a half-close reaches the API server: it sees the end of an empty TLS stream and closes, and that
        # end comes back (without the shutdown passed on, both would wait and recv would time out)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as raw:
            raw.settimeout(10)
            raw.connect(sock_path)
            raw.shutdown(socket.SHUT_WR)
            while raw.recv(4096):  # perhaps a TLS alert first; a timeout raises
                pass
        print("relay: two concurrent HTTPS connections, keep-alive, %d KiB through the socket, half-close"
              % (len(big) // 1024))

        # the reporter reaches the API server only through the relay: its TCP port is closed
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = dict(in_cluster, POD_NAME="relayed", POD_NAMESPACE="default",
                   KUBERNETES_SERVICE_PORT=str(closed_port()), KVLITE_API_RELAY=sock_path)
        reporter = subprocess.Popen([REPORTER], stdin=theirs, env=env, stderr=subprocess.PIPE)
        theirs.close()
        doc = json.dumps({"phase": "Running", "via": "relay"})
        mine.send(doc.encode())
        mine.close()
        assert reporter.wait(20) == 0, reporter.stderr.read().decode()
        assert annotation(srv, "relayed") == doc, annotation(srv, "relayed")
        print("reporter: status delivered through the relay, its own TCP port closed")

        handler.terminate()
        assert handler.wait(20) == 0, handler.returncode
        assert not os.path.exists(sock_path), os.listdir(relay_dir)
        print("ok: api relay")
        srv.remove()
        shutil.rmtree(tmp, ignore_errors=True)  # kept when the test fails
    except BaseException:
        with open(log_path, errors="replace") as f:
            print("--- virt-handler (tail)\n" + "".join(f.readlines()[-20:]))
        raise
    finally:
        for p in (reporter, handler):
            if p and p.poll() is None:
                stop_process(p)
        srv.stop()


if __name__ == "__main__":
    main()
