"""An http(s) image server that wants what CDI's http source can send: it serves the files of a folder only to
requests with the right HTTP basic auth (a DataVolume's secretRef: accessKeyId/secretKey) and every required
header (extraHeaders, secretExtraHeaders), over TLS when given a certificate (certConfigMap's CA verifies it).
Refused requests get 401 (no or wrong credentials, with a WWW-Authenticate challenge) or 403 (a required
header missing or wrong). Each request is recorded: (method, path, status, headers). Shared by the importer's
test and the DataVolume end-to-end test."""
import base64
import functools
import http.server
import ssl
import threading


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _refuse(self):
        srv = self.server.owner
        want = "Basic " + base64.b64encode(("%s:%s" % (srv.user, srv.password)).encode()).decode()
        if self.headers.get("Authorization") != want:
            return 401
        for name, value in srv.headers.items():
            if self.headers.get(name) != value:
                return 403
        return None

    def _serve(self, send):
        code = self._refuse()
        self.server.owner.requests.append((self.command, self.path, code or 200, dict(self.headers.items())))
        if code is None:
            return send()
        self.send_response(code)
        if code == 401:
            self.send_header("WWW-Authenticate", 'Basic realm="kvlite-images"')
        self.send_header("Content-Length", "0")
        self.end_headers()
        return None

    def do_GET(self):
        self._serve(super().do_GET)

    def do_HEAD(self):
        self._serve(super().do_HEAD)


class AuthServer:
    """AuthServer(folder, port, user, password, headers={name: value}, tls=(cert, key) or None)."""

    def __init__(self, folder, port, user, password, headers, tls=None):
        self.user, self.password, self.headers = user, password, dict(headers)
        self.requests = []
        handler = functools.partial(_Handler, directory=folder)
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.httpd.owner = self
        scheme = "http"
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
            scheme = "https"
        self.base = "%s://127.0.0.1:%d" % (scheme, self.httpd.server_address[1])
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, name):
        return "%s/%s" % (self.base, name)

    def served(self, name):
        """The recorded requests for /name that got the file."""
        return [r for r in self.requests if r[1] == "/" + name and r[2] == 200]

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
