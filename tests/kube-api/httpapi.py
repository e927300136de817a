# The HTTP face of the test apiserver: routing, authentication, discovery (legacy and aggregated), the OpenAPI v3
# stub kubectl apply needs, JSON/Table responses, chunked watch streams, and the /_test/ fault-injection hooks.
import hashlib
import json
import os
import random
import re
import socket
import ssl
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import admission as admissionlib
import tables
from api import ApiError, Manager, list_options_invalid
from store import Expired

AGG_TYPE = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
STATUS_VERBS = ["get", "patch", "update"]


def _unknown_path():
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def _wants_aggregated(accept):
    """True when the first acceptable media type is aggregated discovery v2 (clients list it first)."""
    for mt in accept.split(","):
        params = [p.strip() for p in mt.split(";")]
        if "as=APIGroupDiscoveryList" in params:
            if "v=v2" in params:
                return True
            continue
        if params[0] in ("application/json", "*/*"):
            return False
    return False


class Faults:
    """Queued failure rules: {"count": N, "code": 500|429|409|503|0, "method": "GET", "path": "regex",
    "watch": true}. Code 0 closes the connection without an answer."""

    def __init__(self):
        self.lock = threading.Lock()
        self.rules = []
        self.injected = 0

    def add(self, rule):
        rule = dict(rule)
        rule.setdefault("count", 1)
        rule.setdefault("code", 500)
        if rule.get("path"):
            re.compile(rule["path"])
        with self.lock:
            self.rules.append(rule)

    def take(self, method, path, is_watch):
        with self.lock:
            for rule in self.rules:
                if rule.get("method") and rule["method"].upper() != method:
                    continue
                if rule.get("path") and not re.search(rule["path"], path):
                    continue
                if is_watch and rule.get("watch") is False:
                    continue
                rule["count"] -= 1
                if rule["count"] <= 0:
                    self.rules.remove(rule)
                self.injected += 1
                return rule["code"]
        return None


def fault_error(code):
    if code == 429:
        return ApiError(429, "TooManyRequests", "injected: the server has received too many requests and has "
                        "asked us to try again later", {"retryAfterSeconds": 1}, {"Retry-After": "1"})
    if code == 409:
        return ApiError(409, "Conflict", "injected: Operation cannot be fulfilled: the object has been modified; "
                        "please apply your changes to the latest version and try again", {})
    if code == 503:
        return ApiError(503, "ServiceUnavailable", "injected: the server is currently unable to handle the request",
                        {}, {"Retry-After": "1"})
    if code == 504:
        return ApiError(504, "Timeout", "injected: the server was unable to return a response in the time allotted",
                        {})
    return ApiError(code, "InternalError", "injected: Internal error occurred: test fault", {})


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr, api, ssl_context=None, tokens=(), log_requests=False, pod_log_dir=None,
                 state_file=None):
        self.api, self.ssl_context, self.tokens = api, ssl_context, set(tokens)
        self.log_requests, self.pod_log_dir, self.state_file = log_requests, pod_log_dir, state_file
        self.faults = Faults()
        self.counts = {}
        self.counts_lock = threading.Lock()
        self.watchers = 0
        self.abrupt_epoch = -1
        super().__init__(addr, Handler)

    def finish_request(self, request, client_address):
        if self.ssl_context is not None:
            # the TLS handshake runs here, in the connection's own thread, never in the accept loop
            try:
                request.settimeout(10)
                request = self.ssl_context.wrap_socket(request, server_side=True)
                request.settimeout(None)
            except (ssl.SSLError, OSError):
                return
        self.RequestHandlerClass(request, client_address, self)

    def handle_error(self, request, client_address):
        pass

    def count(self, key):
        with self.counts_lock:
            self.counts[key] = self.counts.get(key, 0) + 1


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, each response waits for a delayed ACK (~40 ms).
    disable_nagle_algorithm = True
    server_version = "kvlite-kube-api-test-server"
    warnings = ()  # the request's Warning texts (a list once _dispatch starts)

    def log_message(self, fmt, *args):
        pass

    # --- plumbing ----------------------------------------------------------------------------------------
    def _body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, code, body, ctype="application/json", headers=None):
        data = body if isinstance(body, bytes) else (json.dumps(body, separators=(",", ":")) + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache, private")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self._send_warnings()
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        self._log(code)

    def _send_warnings(self):
        """The Warning headers of the request (net.NewWarningHeader: code 299, agent "-", a quoted text);
        kubectl prints each as "Warning: <text>"."""
        for text in self.warnings:
            self.send_header("Warning", '299 - "%s"' % text.replace("\\", "\\\\").replace('"', '\\"'))

    def _log(self, code):
        if self.server.log_requests:
            print(json.dumps({"component": "kube-api", "method": self.command, "path": self.path, "code": code,
                              "ua": self.headers.get("User-Agent", "")}), flush=True)

    def _error(self, err):
        self._send(err.code, err.status(), headers=err.headers)

    def do_GET(self):
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_GET

    def _authenticated(self):
        if self.server.ssl_context is None:
            return True
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer ") and auth[7:].strip() in self.server.tokens:
            return True
        try:
            return bool(self.connection.getpeercert())
        except (AttributeError, ValueError):
            return False

    def _user(self):
        """The authenticated user as kube-apiserver hands it to webhooks and aggregated servers."""
        if self.server.ssl_context is None:
            return {"username": "system:anonymous", "groups": ["system:unauthenticated"]}
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer ") and auth[7:].strip() in self.server.tokens:
            return {"username": "system:admin", "groups": ["system:masters", "system:authenticated"]}
        try:
            subject = dict(x[0] for x in (self.connection.getpeercert() or {}).get("subject", ()))
            groups = [x[0][1] for x in self.connection.getpeercert().get("subject", ()) if x[0][0] ==
                      "organizationName"]
        except (AttributeError, ValueError):
            subject, groups = {}, []
        return {"username": subject.get("commonName", ""), "groups": groups + ["system:authenticated"]}

    def _dispatch(self):
        url = urlsplit(self.path)
        self.warnings = []
        self.q = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        path = url.path.rstrip("/") or "/"
        body = self._body()
        try:
            if path in ("/healthz", "/livez", "/readyz") or path.startswith(("/healthz/", "/livez/", "/readyz/")):
                return self._send(200, b"ok", "text/plain; charset=utf-8")
            if path == "/version":
                return self._send(200, {"major": "1", "minor": "32", "gitVersion": "v1.32.0-kvlite",
                                        "gitCommit": "0000000000000000000000000000000000000000",
                                        "gitTreeState": "clean", "buildDate": "2025-01-01T00:00:00Z",
                                        "goVersion": "go1.23.0", "compiler": "gc", "platform": "linux/amd64"})
            if path.startswith("/_test"):
                return self._admin(path, body)
            if not self._authenticated():
                return self._error(ApiError(401, "Unauthorized", "Unauthorized"))
            accept = self.headers.get("Accept", "")
            if accept and "json" not in accept and "*/*" not in accept and not path.startswith("/openapi"):
                return self._error(ApiError(406, "NotAcceptable", "only the following media types are accepted: "
                                            "application/json, application/yaml"))
            if path.startswith(("/api", "/apis")) and path not in ("/api", "/apis"):
                code = self.server.faults.take(self.command, self.path, self.q.get("watch") in ("true", "1"))
                if code is not None:
                    if code == 0:
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    return self._error(fault_error(code))
            if path.startswith("/openapi"):
                return self._openapi(path)
            if path in ("/api", "/apis"):
                return self._discovery_root(path, accept)
            m = re.match(r"^/apis/([^/]+)/([^/]+)(/.*)?$", path)
            apisvc = m and self.server.api.admission.apiservice(m.group(1), m.group(2))
            if apisvc:
                return self._proxy(apisvc, body)
            return self._resource(path, body, accept)
        except ApiError as e:
            self._error(e)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    # --- APIService proxy (the aggregator) -------------------------------------------------------------------
    HOP_HEADERS = {"authorization", "connection", "keep-alive", "proxy-connection", "te", "trailer",
                   "transfer-encoding", "upgrade", "host", "content-length"}

    def _proxy(self, apisvc, body):
        """Forwards the request to the APIService's backend over TLS with the front-proxy client certificate
        and the user in X-Remote-User/X-Remote-Group; a 101 answer (websocket) splices both connections."""
        user = self._user()
        try:
            sock = self.server.api.admission.connect_apiservice(apisvc)
        except (admissionlib.CallError, OSError, ssl.SSLError) as e:
            raise ApiError(503, "ServiceUnavailable", "error trying to reach service: %s" % e)
        upgrade = "upgrade" in self.headers.get("Connection", "").lower() and self.headers.get("Upgrade")
        lines = ["%s %s HTTP/1.1" % (self.command, self.path), "Host: %s" % sock.server_hostname]
        lines += ["%s: %s" % (k, v) for k, v in self.headers.items()
                  if k.lower() not in self.HOP_HEADERS and not k.lower().startswith(("x-remote-", "impersonate-"))]
        lines.append("X-Remote-User: %s" % user["username"])
        lines += ["X-Remote-Group: %s" % g for g in user["groups"]]
        lines += ["Connection: Upgrade", "Upgrade: %s" % upgrade] if upgrade else ["Connection: close"]
        if body or self.command in ("POST", "PUT", "PATCH"):
            lines.append("Content-Length: %d" % len(body))
        try:
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
            head = b""
            while b"\r\n\r\n" not in head:
                data = sock.recv(65536)
                if not data:
                    raise OSError("the backend closed the connection")
                head += data
        except OSError as e:
            sock.close()
            raise ApiError(503, "ServiceUnavailable", "error trying to reach service: %s" % e)
        head, rest = head.split(b"\r\n\r\n", 1)
        status_line, *headers = head.decode("latin-1").split("\r\n")
        code = int(status_line.split()[1])
        self.close_connection = True
        self._log(code)
        if code == 101 and upgrade:
            self.wfile.write(head + b"\r\n\r\n" + rest)
            sock.settimeout(None)
            return self._splice(sock)
        headers = [h for h in headers if h.split(":")[0].strip().lower() not in ("connection", "keep-alive")]
        self.wfile.write(("\r\n".join([status_line] + headers + ["Connection: close"]) + "\r\n\r\n")
                         .encode("latin-1") + rest)
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                self.wfile.write(data)
        except OSError:
            pass
        sock.close()

    def _splice(self, sock):
        def upstream():
            try:
                while True:
                    data = self.rfile.read1(65536)
                    if not data:
                        break
                    sock.sendall(data)
            except (OSError, ValueError):
                pass
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

        t = threading.Thread(target=upstream, daemon=True)
        t.start()
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                self.wfile.write(data)
        except OSError:
            pass
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()
        t.join(5)

    # --- discovery -----------------------------------------------------------------------------------------
    def _gv_resources(self, group, version):
        out = []
        for r in self.server.api.registry.in_gv(group, version):
            entry = {"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced, "kind": r.kind,
                     "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]}
            if r.short_names:
                entry["shortNames"] = r.short_names
            if r.categories:
                entry["categories"] = r.categories
            out.append(entry)
            if r.has_status:
                out.append({"name": r.plural + "/status", "singularName": "", "namespaced": r.namespaced,
                            "kind": r.kind, "verbs": STATUS_VERBS})
            if r.scale:  # kubectl scale finds the Scale kind here
                out.append({"name": r.plural + "/scale", "singularName": "", "namespaced": r.namespaced,
                            "group": "autoscaling", "version": "v1", "kind": "Scale",
                            "verbs": ["get", "patch", "update"]})
            if r.plural == "pods" and not r.group:
                out.append({"name": "pods/log", "singularName": "", "namespaced": True, "kind": "Pod",
                            "verbs": ["get"]})
                # kubectl drain evicts only when this entry names its group and version (else it deletes)
                out.append({"name": "pods/eviction", "singularName": "", "namespaced": True, "group": "policy",
                            "version": "v1", "kind": "Eviction", "verbs": ["create"]})
        return out

    def _aggregated(self, group, version):
        resources = []
        for r in self.server.api.registry.in_gv(group, version):
            kind = {"group": group, "version": version, "kind": r.kind}
            entry = {"resource": r.plural, "responseKind": kind, "scope": "Namespaced" if r.namespaced else "Cluster",
                     "singularResource": r.singular,
                     "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]}
            if r.short_names:
                entry["shortNames"] = r.short_names
            if r.categories:
                entry["categories"] = r.categories
            subs = []
            if r.has_status:
                subs.append({"subresource": "status", "responseKind": kind, "verbs": STATUS_VERBS})
            if r.plural == "pods" and not r.group:
                subs.append({"subresource": "log", "responseKind": {"group": "", "version": "v1", "kind": "Pod"},
                             "verbs": ["get"]})
                subs.append({"subresource": "eviction", "verbs": ["create"],
                             "responseKind": {"group": "policy", "version": "v1", "kind": "Eviction"}})
            if subs:
                entry["subresources"] = subs
            resources.append(entry)
        return {"version": version, "resources": resources, "freshness": "Current"}

    def _discovery_root(self, path, accept):
        gvs = self.server.api.registry.group_versions()
        if self.server.api.config.aggregated_discovery and _wants_aggregated(accept):
            if path == "/api":
                items = [{"metadata": {"creationTimestamp": None}, "versions": [self._aggregated("", "v1")]}]
            else:
                items = [{"metadata": {"name": g, "creationTimestamp": None},
                          "versions": [self._aggregated(g, v) for v in vs]} for g, vs in sorted(gvs.items()) if g]
            return self._send(200, {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2",
                                    "metadata": {}, "items": items}, AGG_TYPE)
        host = "%s:%d" % self.server.server_address[:2]
        if path == "/api":
            return self._send(200, {"kind": "APIVersions", "versions": ["v1"],
                                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}]})
        for g, v in self.server.api.admission.apiservice_groups():
            gvs.setdefault(g, [])
            if v not in gvs[g]:
                gvs[g].append(v)
        return self._send(200, {"kind": "APIGroupList", "apiVersion": "v1",
                                "groups": [self._api_group(g, vs) for g, vs in sorted(gvs.items()) if g]})

    def _api_group(self, group, versions):
        gvs = [{"groupVersion": "%s/%s" % (group, v), "version": v} for v in versions]
        return {"name": group, "versions": gvs, "preferredVersion": gvs[0]}

    # --- OpenAPI v3 stub: enough for kubectl's fieldValidation check and patch-type choice -------------------
    def _openapi_doc(self, group, version):
        paths = {}
        for r in self.server.api.registry.in_gv(group, version):
            prefix = "/apis/%s/%s" % (group, version) if group else "/api/%s" % version
            item = "%s/namespaces/{namespace}/%s/{name}" % (prefix, r.plural) if r.namespaced else \
                "%s/%s/{name}" % (prefix, r.plural)
            op = {"x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": r.kind},
                  "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}]}
            if not r.strategic:
                # without strategic-merge-patch here, kubectl apply computes a JSON merge patch for this kind
                op["requestBody"] = {"content": {"application/json-patch+json": {},
                                                 "application/merge-patch+json": {},
                                                 "application/apply-patch+yaml": {}}}
            paths[item] = {"patch": op}
        return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.32.0-kvlite"}, "paths": paths,
                "components": {"schemas": {}}}

    def _openapi(self, path):
        if not self.server.api.config.openapi or path == "/openapi/v2":
            raise _unknown_path()
        gvs = self.server.api.registry.group_versions()
        docs = {}
        for g, vs in gvs.items():
            for v in vs:
                docs[("apis/%s/%s" % (g, v)) if g else "api/%s" % v] = (g, v)
        if path == "/openapi/v3":
            index = {}
            for key, (g, v) in sorted(docs.items()):
                digest = hashlib.sha256(json.dumps(self._openapi_doc(g, v), sort_keys=True).encode()).hexdigest()
                index[key] = {"serverRelativeURL": "/openapi/v3/%s?hash=%s" % (key, digest[:32].upper())}
            return self._send(200, {"paths": index})
        key = path[len("/openapi/v3/"):]
        if key not in docs:
            raise _unknown_path()
        return self._send(200, self._openapi_doc(*docs[key]))

    # --- resources ---------------------------------------------------------------------------------------
    def _route(self, path):
        """(resource, namespace, name, subresource) for an API path, or raises 404."""
        m = re.match(r"^/api/(v1)(/.*)?$", path) or re.match(r"^/apis/([^/]+)/([^/]+)(/.*)?$", path)
        if not m:
            m2 = re.match(r"^/apis/([^/]+)$", path)
            if m2:
                vs = self.server.api.registry.group_versions().get(m2.group(1))
                if vs:
                    raise _Answer(200, dict(self._api_group(m2.group(1), vs), kind="APIGroup", apiVersion="v1"))
            raise _unknown_path()
        group, version, rest = ("", m.group(1), m.group(2)) if path.startswith("/api/") else m.groups()
        reg = self.server.api.registry
        if not rest:
            if not reg.in_gv(group, version):
                raise _unknown_path()
            raise _Answer(200, {"kind": "APIResourceList", "apiVersion": "v1",
                                "groupVersion": "%s/%s" % (group, version) if group else version,
                                "resources": self._gv_resources(group, version)})
        segs = rest.strip("/").split("/")
        ns = None
        if len(segs) >= 3 and segs[0] == "namespaces":
            res = reg.get(group, version, segs[2])
            if res is not None and res.namespaced:
                ns, segs = segs[1], segs[2:]
        res = reg.get(group, version, segs[0])
        if res is None or (res.namespaced is False and ns is not None) or len(segs) > 3:
            raise _unknown_path()
        name = segs[1] if len(segs) > 1 else None
        sub = segs[2] if len(segs) > 2 else None
        if sub is not None and not ((sub == "status" and res.has_status) or (sub == "scale" and res.scale) or
                                    (sub in ("log", "eviction") and res.plural == "pods" and not group)):
            raise _unknown_path()
        return res, ns, name, sub

    def _manager(self):
        explicit = self.q.get("fieldManager")
        return Manager(explicit or self.headers.get("User-Agent", "unknown").split("/")[0], bool(explicit))

    def _resource(self, path, body, accept):
        try:
            res, ns, name, sub = self._route(path)
        except _Answer as a:
            return self._send(a.code, a.body)
        api = self.server.api
        if res.deprecation:  # every request to a deprecated CRD version, errors included, as upstream
            self.warnings.append(res.deprecation)
        table = "as=Table" in accept and api.config.tables
        method = self.command
        self.server.count("%s %s%s" % (method if name or method != "GET" else
                                       ("WATCH" if self.q.get("watch") in ("true", "1") else "LIST"),
                                       res.plural, "/" + sub if sub else ""))
        dry = self.q.get("dryRun") == "All"
        if sub == "log":
            return self._pod_log(res, ns, name)
        if sub == "scale":
            return self._scale(res, ns, name, method, body, dry)
        if sub == "eviction":
            if method != "POST":
                raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested "
                               "resource")
            return self._send(201, api.evict(res, ns, name, self._json(body), self._user()))
        if name is None:
            if method == "GET":
                if self.q.get("watch") in ("true", "1"):
                    return self._watch(res, ns, table)
                return self._list(res, ns, table)
            if method == "POST":
                if res.namespaced and ns is None:
                    raise _unknown_path()
                obj = api.create(res, ns, self._json(body), self._manager(), dry, self._user())
                return self._send(201, obj)
            if method == "DELETE":
                return self._delete_collection(res, ns, body)
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        if res.namespaced and ns is None:
            raise _unknown_path()
        if method == "GET":
            obj = api.get(res, ns, name)
            if table:
                return self._send(200, tables.table(res, [obj], {"resourceVersion": obj["metadata"]["resourceVersion"]},
                                                    self.q.get("includeObject", "Metadata")))
            return self._send(200, obj)
        if method == "PUT":
            return self._send(200, api.update(res, ns, name, self._json(body), sub, self._manager(), dry,
                                              self._user()))
        if method == "PATCH":
            ctype = self.headers.get("Content-Type", "").split(";")[0].strip()
            code, obj = api.patch(res, ns, name, ctype, body, sub, self._manager(), dry, self._user())
            return self._send(code, obj)
        if method == "DELETE" and sub is None:
            code, out = api.delete(res, ns, name, self._delete_options(body), dry)
            return self._send(code, out)
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    @staticmethod
    def _path_get(obj, path):
        for key in path.lstrip(".").split("."):
            obj = obj.get(key) if isinstance(obj, dict) else None
        return obj

    def _scale_of(self, res, obj):
        """autoscaling/v1 Scale of a CRD object with the scale subresource (its specReplicasPath, ...)."""
        sc, md = res.scale, obj["metadata"]
        out = {"kind": "Scale", "apiVersion": "autoscaling/v1",
               "metadata": {k: md[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                            if k in md},
               "spec": {"replicas": self._path_get(obj, sc.get("specReplicasPath", ".spec.replicas")) or 0},
               "status": {"replicas": self._path_get(obj, sc.get("statusReplicasPath", ".status.replicas")) or 0}}
        if sc.get("labelSelectorPath"):
            sel = self._path_get(obj, sc["labelSelectorPath"])
            if sel:
                out["status"]["selector"] = sel
        return out

    def _scale(self, res, ns, name, method, body, dry):
        """GET, PUT and PATCH of the scale subresource: spec.replicas of the Scale is the object's
        specReplicasPath (as the API server maps it for CRDs)."""
        api = self.server.api
        obj = api.get(res, ns, name)
        scale = self._scale_of(res, obj)
        if method == "GET":
            return self._send(200, scale)
        if method == "PUT":
            new = self._json(body)
        elif method == "PATCH":
            ctype = self.headers.get("Content-Type", "").split(";")[0].strip()
            try:
                doc = json.loads(body or b"null")
            except ValueError as e:
                raise ApiError(400, "BadRequest", "error decoding patch: %s" % e)
            import patch as patchlib
            try:
                new = patchlib.json_patch(scale, doc) if ctype == "application/json-patch+json" else \
                    patchlib.merge_patch(scale, doc)
            except patchlib.PatchError as e:
                raise ApiError(422, "Invalid", str(e))
        else:
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        replicas = (new or {}).get("spec", {}).get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise ApiError(422, "Invalid", "Scale.autoscaling \"%s\" is invalid: spec.replicas: Invalid value: %r: "
                           "must be greater than or equal to 0" % (name, replicas))
        keys = res.scale.get("specReplicasPath", ".spec.replicas").lstrip(".").split(".")
        change = replicas
        for key in reversed(keys):
            change = {key: change}
        _, updated = api.patch(res, ns, name, "application/merge-patch+json", json.dumps(change).encode(), None,
                               self._manager(), dry, self._user())
        return self._send(200, self._scale_of(res, updated))

    def _json(self, body):
        if self.headers.get("Content-Type", "").startswith("application/vnd.kubernetes.protobuf"):
            import k8sproto  # kubectl's typed create (secret, configmap, ...) posts protobuf
            try:
                return k8sproto.decode(body or b"")
            except k8sproto.Unsupported as e:
                raise ApiError(415, "UnsupportedMediaType", str(e))
            except (ValueError, UnicodeDecodeError, struct.error) as e:
                raise ApiError(400, "BadRequest", "error decoding protobuf body: %s" % e)
        try:
            return json.loads(body or b"null")
        except ValueError as e:
            if self.headers.get("Content-Type", "").startswith("application/yaml"):
                import yamlite
                try:
                    return yamlite.load(body.decode())
                except (ValueError, UnicodeDecodeError) as e2:
                    raise ApiError(400, "BadRequest", "error decoding YAML: %s" % e2)
            raise ApiError(400, "BadRequest", "error decoding body: %s" % e)

    def _delete_options(self, body):
        opts = self._json(body) if body and body.strip() else {}
        if not isinstance(opts, dict):
            raise ApiError(400, "BadRequest", "DeleteOptions must be an object")
        for key in ("gracePeriodSeconds",):
            if key in self.q:
                opts[key] = int(self.q[key])
        for key in ("propagationPolicy",):
            if key in self.q:
                opts[key] = self.q[key]
        if "orphanDependents" in self.q:
            opts["orphanDependents"] = self.q["orphanDependents"] == "true"
        return opts

    def _delete_collection(self, res, ns, body):
        api = self.server.api
        items, _, _, _ = api.list(res, ns, {k: v for k, v in self.q.items() if k in ("labelSelector", "fieldSelector")})
        opts = self._delete_options(body)
        for obj in items:
            try:
                api.delete(res, obj["metadata"].get("namespace"), obj["metadata"]["name"], opts)
            except ApiError:
                pass
        return self._send(200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"})

    def _list(self, res, ns, table):
        items, rv, token, remaining = self.server.api.list(res, ns, self.q)
        meta = {"resourceVersion": str(rv)}
        if token:
            meta["continue"] = token
            meta["remainingItemCount"] = remaining
        if table:
            return self._send(200, tables.table(res, items, meta, self.q.get("includeObject", "Metadata")))
        if not res.crd:
            items = [{k: v for k, v in o.items() if k not in ("apiVersion", "kind")} for o in items]
        return self._send(200, {"kind": res.kind + "List", "apiVersion": res.gv, "metadata": meta, "items": items})

    def _pod_log(self, res, ns, name):
        pod = self.server.api.get(res, ns, name)
        containers = [c["name"] for c in pod.get("spec", {}).get("containers", [])]
        container = self.q.get("container") or (containers[0] if len(containers) == 1 else None)
        if container is None:
            raise ApiError(400, "BadRequest", "a container name must be specified for pod %s, choose one of: [%s]"
                           % (name, " ".join(containers)))
        path = os.path.join(self.server.pod_log_dir or "/nonexistent", "%s_%s_%s.log" % (ns, name, container))
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            raise ApiError(400, "BadRequest", 'container "%s" in pod "%s" is waiting to start: no logs yet'
                           % (container, name))
        return self._send(200, data, "text/plain")

    # --- watch -------------------------------------------------------------------------------------------
    def _watch(self, res, ns, table):
        api, store = self.server.api, self.server.api.store
        q = self.q
        sel = api.selectors(res, q.get("labelSelector"), q.get("fieldSelector"))
        rv, match = q.get("resourceVersion"), q.get("resourceVersionMatch")
        initial_flag = q.get("sendInitialEvents")
        if initial_flag == "true" and match != "NotOlderThan":
            raise list_options_invalid("resourceVersionMatch: Forbidden: sendInitialEvents requires setting "
                                       "resourceVersionMatch to NotOlderThan")
        if match and initial_flag is None:
            raise list_options_invalid("resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for "
                                       "watch unless sendInitialEvents is provided")
        bookmarks = q.get("allowWatchBookmarks") in ("true", "1")
        timeout = float(q["timeoutSeconds"]) if q.get("timeoutSeconds") else \
            (api.config.watch_timeout or random.uniform(1800, 3600))
        send_initial = initial_flag == "true" or (initial_flag is None and rv in (None, "", "0"))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self._send_warnings()
        self.end_headers()
        self._log(200)
        self.first_table = True
        self.server.watchers += 1
        try:
            self._stream(res, ns, table, sel, rv, send_initial, bookmarks, time.monotonic() + timeout)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.close_connection = True
        finally:
            self.server.watchers -= 1

    def _chunk(self, event):
        data = (json.dumps(event, separators=(",", ":")) + "\n").encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _emit(self, res, etype, obj, table):
        obj = res.convert(obj)  # stored objects go out in the version the watch names
        if table and etype in ("ADDED", "MODIFIED", "DELETED", "BOOKMARK"):
            rows = [obj] if etype != "BOOKMARK" else []
            obj = tables.table(res, rows, {"resourceVersion": obj["metadata"].get("resourceVersion", "")},
                               self.q.get("includeObject", "Metadata"), with_columns=self.first_table)
            self.first_table = False
        self._chunk({"type": etype, "object": obj})

    def _stream(self, res, ns, table, sel, rv, send_initial, bookmarks, deadline):
        api, store = self.server.api, self.server.api.store
        initial = []
        with api.lock:
            epoch = store.epoch
            if send_initial:
                pos = store.rv
                bucket = store.objects.get(res.key, {})
                initial = [bucket[k] for k in sorted(bucket) if api.matches(res, ns, sel, bucket[k])]
            else:
                pos = store.rv if rv in (None, "", "0") else api._int_rv(rv)
                try:
                    if pos > store.rv:
                        api._wait_for_rv(pos)
                    store.changes_after(pos)
                except ApiError as e:
                    return self._end_with(e.status())
                except Expired as e:
                    return self._end_with({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                           "message": str(e), "reason": "Expired", "code": 410})
        for obj in initial:
            self._emit(res, "ADDED", obj, table)
        if self.q.get("sendInitialEvents") == "true" and bookmarks:
            self._emit(res, "BOOKMARK", self._bookmark(res, pos, initial_end=True), table)
        last_bookmark = time.monotonic()
        while True:
            now = time.monotonic()
            next_bookmark = last_bookmark + api.config.bookmark_interval  # the knob applies to open watches too
            wake = min(deadline, next_bookmark, now + 1.0) if bookmarks else deadline
            with api.lock:
                try:
                    changes, current, dropped = store.wait(pos, max(0.0, wake - now), epoch)
                except Expired as e:
                    # this watcher fell behind a compaction: the client must relist
                    return self._end_with({"kind": "Status", "apiVersion": "v1", "metadata": {},
                                           "status": "Failure", "message": str(e), "reason": "Expired", "code": 410})
                events = self._filter(res, ns, sel, changes)
                # a deleted CRD's storage goes away with its watches (the objects' DELETED events first)
                gone = res.crd and api.registry.get(res.group, res.version, res.plural) is None
            if dropped:
                if store.epoch == self.server.abrupt_epoch:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                return self._end()
            for etype, obj in events:
                self._emit(res, etype, obj, table)
            if gone:
                return self._end()
            pos = current
            now = time.monotonic()
            if now >= deadline:
                if bookmarks:
                    self._emit(res, "BOOKMARK", self._bookmark(res, pos), table)
                return self._end()
            if bookmarks and now >= last_bookmark + api.config.bookmark_interval:
                self._emit(res, "BOOKMARK", self._bookmark(res, pos), table)
                last_bookmark = now

    def _filter(self, res, ns, sel, changes):
        api, out = self.server.api, []
        for ch in changes:
            if ch.key != res.key:
                continue
            old_match = api.matches(res, ns, sel, ch.old)
            if ch.type == "DELETED":
                if old_match:
                    out.append(("DELETED", ch.obj))
                continue
            new_match = api.matches(res, ns, sel, ch.obj)
            if new_match:
                out.append(("MODIFIED" if old_match else "ADDED", ch.obj))
            elif old_match:
                out.append(("DELETED", dict(ch.old, metadata=dict(ch.old["metadata"], resourceVersion=str(ch.rv)))))
        return out

    def _bookmark(self, res, rv, initial_end=False):
        meta = {"resourceVersion": str(rv), "creationTimestamp": None}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        return {"kind": res.kind, "apiVersion": res.gv, "metadata": meta}

    def _end_with(self, status):
        self._chunk({"type": "ERROR", "object": status})
        self._end()

    def _end(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    # --- /_test/ hooks -------------------------------------------------------------------------------------
    def _admin(self, path, body):
        api, srv = self.server.api, self.server
        data = json.loads(body) if body.strip() else {}
        if path == "/_test/fail" and self.command == "POST":
            rules = data if isinstance(data, list) else [data]
            for rule in rules:
                try:
                    srv.faults.add(rule)
                except (re.error, TypeError) as e:
                    raise ApiError(400, "BadRequest", "bad fault rule: %s" % e)
            return self._send(200, {"queued": len(srv.faults.rules)})
        if path == "/_test/fail" and self.command == "DELETE":
            with srv.faults.lock:
                srv.faults.rules = []
            return self._send(200, {"queued": 0})
        if path == "/_test/drop-watches" and self.command == "POST":
            with api.lock:
                if data.get("abrupt") or self.q.get("abrupt") in ("1", "true"):
                    srv.abrupt_epoch = api.store.epoch + 1
                api.store.drop_watches()
            return self._send(200, {"dropped": True})
        if path == "/_test/compact" and self.command == "POST":
            with api.lock:
                api.store.compact()
                return self._send(200, {"compactedTo": str(api.store.rv)})
        if path == "/_test/config":
            if self.command == "POST":
                api.config.update(data)
            return self._send(200, api.config.as_dict())
        if path == "/_test/stats":
            with api.lock:
                objects = {"%s/%s" % k if k[0] else k[1]: len(b) for k, b in api.store.objects.items() if b}
                stats = {"resourceVersion": str(api.store.rv), "windowStart": str(api.store.window_start),
                         "history": len(api.store.history), "objects": objects, "writes": api.stats["writes"]}
            with srv.counts_lock:
                stats["requests"] = dict(srv.counts)
            stats["watchers"] = srv.watchers
            stats["faultsInjected"] = srv.faults.injected
            return self._send(200, stats)
        if path == "/_test/save" and self.command == "POST":
            save_state(api, data.get("path") or srv.state_file)
            return self._send(200, {"saved": True})
        raise _unknown_path()


class _Answer(Exception):
    def __init__(self, code, body):
        super().__init__(code)
        self.code, self.body = code, body


def save_state(api, path, final=False):
    """Write the store to path. With final=True the store lock is kept held afterwards, so no write can be
    acknowledged after the dump (the process is about to exit): every acknowledged write survives a restart."""
    if not path:
        raise ApiError(400, "BadRequest", "no state file: start the server with --state-file")
    api.lock.acquire()
    try:
        state = api.store.dump()
    finally:
        if not final:
            api.lock.release()
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(state, f)
    os.replace(tmp, path)
