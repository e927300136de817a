#!/usr/bin/env python3
# APIService proxying in the test apiserver: /apis/subresources.kubevirt.io/v1/... goes to a tiny HTTPS backend
# over TLS verified with the APIService's caBundle; the backend requires the front-proxy client certificate
# (trusted through the CA the server publishes in kube-system/extension-apiserver-authentication, as virt-api
# reads it) and sees the authenticated user in X-Remote-User/X-Remote-Group; an upgrade (websocket) is spliced.
import base64
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from testlib import ApiServer, check, run  # noqa: E402

GV = "/apis/subresources.kubevirt.io/v1"


def make_backend_certs(directory):
    """A CA and a serving certificate for virt-api.kubevirt.svc, with openssl."""
    def openssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    p = lambda n: os.path.join(directory, n)  # noqa: E731
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", p("ca.key"), "-out", p("ca.crt"), "-days", "2", "-subj", "/CN=b-ca")
    with open(p("srv.ext"), "w") as f:
        f.write("subjectAltName=DNS:virt-api.kubevirt.svc\nextendedKeyUsage=serverAuth\n")
    openssl("req", *ec, "-keyout", p("srv.key"), "-out", p("srv.csr"), "-subj", "/CN=virt-api")
    openssl("x509", "-req", "-in", p("srv.csr"), "-CA", p("ca.crt"), "-CAkey", p("ca.key"), "-CAcreateserial",
            "-out", p("srv.crt"), "-days", "2", "-extfile", p("srv.ext"))
    return p("ca.crt"), p("srv.crt"), p("srv.key")


class Backend:
    """Answers any request with what it saw; `Upgrade: websocket` gets a 101 and an echo of the bytes."""

    def __init__(self, crt, key, client_ca_pem):
        self.seen = []
        outer = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def handle_one(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                peer = self.connection.getpeercert()
                cn = dict(x[0] for x in peer["subject"]).get("commonName") if peer else None
                seen = {"method": self.command, "path": self.path, "body": body.decode(), "client_cn": cn,
                        "user": self.headers.get("X-Remote-User"),
                        "groups": self.headers.get_all("X-Remote-Group") or [],
                        "authorization": self.headers.get("Authorization")}
                outer.seen.append(seen)
                if self.headers.get("Upgrade") == "websocket":
                    self.send_response(101)
                    self.send_header("Upgrade", "websocket")
                    self.send_header("Connection", "Upgrade")
                    self.end_headers()
                    while True:
                        data = self.connection.recv(4096)
                        if not data:
                            break
                        self.connection.sendall(data.upper())
                    self.close_connection = True
                    return
                out = json.dumps(seen).encode()
                self.send_response(202)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_PUT = do_POST = handle_one

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(crt, key)
        ctx.load_verify_locations(cadata=client_ca_pem)
        ctx.verify_mode = ssl.CERT_REQUIRED  # only the aggregator may call
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def https(srv, method, path, body=None, token=None):
    ctx = ssl.create_default_context(cafile=srv.info["ca_crt"])
    req = urllib.request.Request(srv.info["https_url"] + path, data=body, method=method)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=20) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def main():
    srv = ApiServer(tls=True)
    token = srv.info["token"]
    code, cm = srv.request("GET", "/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication")
    check(code == 200 and json.loads(cm["data"]["requestheader-allowed-names"]) == ["front-proxy-client"] and
          json.loads(cm["data"]["requestheader-username-headers"]) == ["X-Remote-User"] and
          "client-ca-file" in cm["data"], "the server publishes extension-apiserver-authentication", cm)
    ca, crt, key = make_backend_certs(tempfile.mkdtemp(dir=srv.dir))
    backend = Backend(crt, key, cm["data"]["requestheader-client-ca-file"])

    srv.request("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                               "metadata": {"name": "kubevirt"}})
    code, _ = srv.request("POST", "/api/v1/namespaces/kubevirt/services", {
        "apiVersion": "v1", "kind": "Service", "metadata": {
            "name": "virt-api", "annotations": {"kube-api-test.kvlite.io/endpoint": "127.0.0.1:%d" % backend.port}},
        "spec": {"ports": [{"port": 443}]}})
    apisvc = {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
              "metadata": {"name": "v1.subresources.kubevirt.io"},
              "spec": {"group": "subresources.kubevirt.io", "version": "v1", "groupPriorityMinimum": 1000,
                       "versionPriority": 15, "service": {"namespace": "kubevirt", "name": "virt-api", "port": 443},
                       "caBundle": base64.b64encode(open(ca, "rb").read()).decode()}}
    code, out = srv.request("POST", "/apis/apiregistration.k8s.io/v1/apiservices", apisvc)
    check(code == 201, "an APIService is registered", code, out)
    code, groups = srv.request("GET", "/apis")
    check(any(g["name"] == "subresources.kubevirt.io" for g in groups["groups"]), "/apis lists the group", groups)

    code, out = https(srv, "PUT", GV + "/namespaces/default/virtualmachines/vm1/start?dryRun=All",
                      b'{"paused":false}', token)
    check(code == 202 and out["path"] == GV + "/namespaces/default/virtualmachines/vm1/start?dryRun=All" and
          out["body"] == '{"paused":false}' and out["method"] == "PUT",
          "a PUT is proxied with its path, query and body, and the backend's answer relayed", code, out)
    check(out["client_cn"] == "front-proxy-client" and out["authorization"] is None,
          "the proxy presents the front-proxy client certificate and drops the client's credentials", out)
    check(out["user"] == "system:admin" and out["groups"] == ["system:masters", "system:authenticated"],
          "the authenticated user is in X-Remote-User/X-Remote-Group", out)

    before = len(backend.seen)
    code, out = https(srv, "PUT", GV + "/namespaces/default/virtualmachines/vm1/stop", b"{}", None)
    check(code == 401 and len(backend.seen) == before, "an unauthenticated request never reaches the backend",
          code, out)

    # an upgrade is spliced: bytes both ways after the 101
    raw = ssl.create_default_context(cafile=srv.info["ca_crt"]).wrap_socket(
        socket.create_connection(("127.0.0.1", srv.info["https_port"]), timeout=10), server_hostname="127.0.0.1")
    raw.sendall(("GET %s/namespaces/default/virtualmachineinstances/vmi1/console HTTP/1.1\r\nHost: x\r\n"
                 "Authorization: Bearer %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                 "Sec-WebSocket-Protocol: plain.kubevirt.io\r\n\r\n" % (GV, token)).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += raw.recv(4096)
    check(head.startswith(b"HTTP/1.1 101"), "an upgrade request gets the backend's 101", head)
    raw.sendall(b"hello console")
    got = b""
    while len(got) < 13:
        got += raw.recv(4096)
    check(got == b"HELLO CONSOLE", "bytes flow both ways through the upgraded connection", got)
    raw.close()

    backend.httpd.shutdown()
    backend.httpd.server_close()
    code, out = https(srv, "PUT", GV + "/namespaces/default/virtualmachines/vm1/start", b"{}", token)
    check(code == 503 and "error trying to reach service" in out["message"],
          "a backend that is down gives 503 ServiceUnavailable", code, out)


if __name__ == "__main__":
    run(main)
