# admission: what kube-apiserver does with admissionregistration.k8s.io/v1 webhook configurations and
# apiregistration.k8s.io/v1 APIServices. Webhooks: matching, the AdmissionReview v1 call over HTTPS verified
# with caBundle, matchPolicy Equivalent (a request in another version of the kind is sent converted to a version
# the rule names), mutating JSONPatches then validating answers, failurePolicy, the denial Status. APIService:
# where a group version is served (the proxy itself is in httpapi.py) and the front-proxy identity.
# A Service resolves to an address as described in docs/kube-api-test-server.md ("Webhooks and APIServices").
import base64
import http.client
import ipaddress
import json
import socket
import ssl
import uuid
from urllib.parse import urlsplit

import api as apilib
import patch as patchlib

ENDPOINT_ANNOTATION = "kube-api-test.kvlite.io/endpoint"
MUTATING = ("admissionregistration.k8s.io", "mutatingwebhookconfigurations")
VALIDATING = ("admissionregistration.k8s.io", "validatingwebhookconfigurations")
APISERVICES = ("apiregistration.k8s.io", "apiservices")
# Never sent to webhooks, as upstream: the objects that configure admission itself.
EXEMPT_GROUPS = ("admissionregistration.k8s.io",)


class CallError(Exception):
    pass


def _selector_matches(sel, labels):
    """A metav1.LabelSelector (matchLabels, matchExpressions) against a label map; None/{} matches all."""
    labels = labels or {}
    for k, v in ((sel or {}).get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in (sel or {}).get("matchExpressions") or []:
        key, op, values = e.get("key"), e.get("operator"), e.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _in(values, want):
    return "*" in (values or []) or want in (values or [])


def _rule_matches(rule, res, operation, sub):
    resource = res.plural + ("/" + sub if sub else "")
    resources = rule.get("resources") or []
    res_ok = resource in resources or ("*" in resources and not sub) or "*/*" in resources or \
        (sub and "*/" + sub in resources) or (sub and res.plural + "/*" in resources)
    scope = rule.get("scope", "*")
    scope_ok = scope == "*" or (scope == "Namespaced") == res.namespaced
    return (_in(rule.get("apiGroups"), res.group) and _in(rule.get("apiVersions"), res.version)
            and _in(rule.get("operations"), operation) and res_ok and scope_ok)


def _hook_target(hook, res, operation, sub):
    """The Resource a webhook is called as, or None: res when a rule matches it; else, with matchPolicy
    Equivalent (v1's default), the first version of the same kind a rule matches (rules in order, then the
    kind's versions in CRD order), as kube-apiserver's ShouldCallHook does."""
    rules = hook.get("rules") or []
    if any(_rule_matches(r, res, operation, sub) for r in rules):
        return res
    if hook.get("matchPolicy", "Equivalent") != "Equivalent":
        return None
    for rule in rules:
        for other in res.views.values():
            if other is not res and _rule_matches(rule, other, operation, sub):
                return other
    return None


class Admission:
    def __init__(self, api, client_cert=None):
        self.api = api
        self.client_cert = client_cert  # (crt, key) the aggregator presents to APIService backends

    # --- webhooks ----------------------------------------------------------------------------------------
    def webhooks(self, res, operation, obj, sub):
        """[(kind, webhook, Resource it is called as)] that match, mutating first, each kind's configurations in
        name order. The caller holds the API lock."""
        if res.group in EXEMPT_GROUPS:
            return []
        out = []
        meta = obj.get("metadata") or {}
        ns_labels = {}
        if res.namespaced:
            nsobj = self.api.store.get(("", "namespaces"), "", meta.get("namespace", ""))
            ns_labels = (nsobj or {}).get("metadata", {}).get("labels") or {}
        for kind, key in (("mutating", MUTATING), ("validating", VALIDATING)):
            for name in sorted(self.api.store.bucket(key)):
                cfg = self.api.store.bucket(key)[name]
                for hook in cfg.get("webhooks") or []:
                    target = _hook_target(hook, res, operation, sub)
                    if target is None:
                        continue
                    if res.namespaced and not _selector_matches(hook.get("namespaceSelector"), ns_labels):
                        continue
                    if not _selector_matches(hook.get("objectSelector"), meta.get("labels")):
                        continue
                    out.append((kind, hook, target))
        return out

    def admit(self, hooks, res, operation, obj, old, sub, user, dry_run):
        """Runs the mutating webhooks, then the validating ones; returns the (patched) object or raises the
        ApiError kube-apiserver would answer."""
        for kind, hook, target in hooks:
            if kind == "mutating":
                obj = self._call(hook, res, target, operation, obj, old, sub, user, dry_run, mutate=True)
        for kind, hook, target in hooks:
            if kind == "validating":
                self._call(hook, res, target, operation, obj, old, sub, user, dry_run, mutate=False)
        return obj

    @staticmethod
    def _review(res, target, operation, obj, old, sub, user, dry_run):
        """The AdmissionReview of a request to res, for a webhook called as target (another version of the kind
        under matchPolicy Equivalent): kind/resource name target, requestKind/requestResource res."""
        meta = (obj or old or {}).get("metadata") or {}
        kind = {"group": target.group, "version": target.version, "kind": target.kind}
        request_kind = {"group": res.group, "version": res.version, "kind": res.kind}
        if sub == "eviction":  # the object is the policy/v1 Eviction, the resource pods
            kind = request_kind = {"group": "policy", "version": "v1", "kind": "Eviction"}
        req = {"uid": str(uuid.uuid4()), "kind": kind, "requestKind": request_kind,
               "resource": {"group": target.group, "version": target.version, "resource": target.plural},
               "requestResource": {"group": res.group, "version": res.version, "resource": res.plural},
               "name": meta.get("name", ""), "operation": operation, "userInfo": user, "object": obj,
               "oldObject": old, "dryRun": bool(dry_run),
               "options": {"kind": "CreateOptions" if operation == "CREATE" else "UpdateOptions",
                           "apiVersion": "meta.k8s.io/v1"}}
        if res.namespaced:
            req["namespace"] = meta.get("namespace", "")
        if sub:
            req["subResource"] = req["requestSubResource"] = sub
        return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": req}

    def _call(self, hook, res, target, operation, obj, old, sub, user, dry_run, mutate):
        """One webhook call; obj and old are in res's version, the webhook sees them in target's. Returns obj,
        patched by a mutating webhook (back in res's version)."""
        name = hook.get("name", "")
        sent = target.convert(obj)
        review = self._review(res, target, operation, sent, old and target.convert(old), sub, user, dry_run)
        try:
            resp = self.post_review(hook, review)
        except CallError as e:
            if hook.get("failurePolicy", "Fail") == "Ignore":
                return obj
            raise apilib.ApiError(500, "InternalError", 'Internal error occurred: failed calling webhook "%s": %s'
                           % (name, e), {"causes": [{"message": 'failed calling webhook "%s": %s' % (name, e)}]})
        if not resp.get("allowed"):
            raise self._denial(name, resp.get("status"))
        if mutate and resp.get("patch"):
            if resp.get("patchType") != "JSONPatch":
                raise apilib.ApiError(500, "InternalError", 'Internal error occurred: webhook "%s": unsupported patch '
                               "type %r" % (name, resp.get("patchType")))
            try:
                ops = json.loads(base64.b64decode(resp["patch"]))
                patched = patchlib.json_patch(sent, ops)
            except (ValueError, patchlib.PatchError) as e:
                raise apilib.ApiError(500, "InternalError", 'Internal error occurred: JSONPatch of webhook "%s": %s'
                               % (name, e))
            if patched.get("apiVersion") != sent.get("apiVersion") or patched.get("kind") != sent.get("kind"):
                raise apilib.ApiError(500, "InternalError", 'Internal error occurred: webhook "%s" changed the kind'
                               % name)
            return res.convert(patched)
        return obj

    @staticmethod
    def _denial(name, status):
        """upstream webhookerrors.ToStatusErr: code >= 400, the webhook's reason and details kept."""
        status = dict(status or {})
        denied = 'admission webhook "%s" denied the request' % name
        if status.get("message"):
            message = "%s: %s" % (denied, status["message"])
        elif status.get("reason"):
            message = "%s: %s" % (denied, status["reason"])
        else:
            message = denied + " without explanation"
        code = status.get("code") or 400
        err = apilib.ApiError(code if code >= 400 else 400, status.get("reason", ""), message, status.get("details"))
        return err

    def post_review(self, hook, review):
        cc = hook.get("clientConfig") or {}
        timeout = hook.get("timeoutSeconds") or 10
        host, port, path, server_name = self.endpoint(cc)
        body = json.dumps(review).encode()
        try:
            conn = self._connect(host, port, server_name, cc.get("caBundle"), timeout)
            conn.request("POST", path or "/", body, {"Content-Type": "application/json",
                                                     "Accept": "application/json"})
            r = conn.getresponse()
            data = r.read()
            conn.close()
        except (OSError, ssl.SSLError, http.client.HTTPException) as e:
            raise CallError('failed to call webhook: Post "https://%s:%d%s": %s' % (server_name, port, path, e))
        if r.status != 200:
            raise CallError("expected response code 200, got %d: %s" % (r.status, data[:200].decode(errors="replace")))
        try:
            resp = json.loads(data)["response"]
        except (ValueError, KeyError, TypeError):
            raise CallError("received invalid webhook response: not an AdmissionReview")
        if not isinstance(resp, dict) or resp.get("uid") != review["request"]["uid"]:
            raise CallError("expected response.uid=%r, got %r" % (review["request"]["uid"],
                                                                 (resp or {}).get("uid")))
        return resp

    # --- services and TLS --------------------------------------------------------------------------------
    def endpoint(self, client_config):
        """(host, port, path, TLS server name) for a webhook clientConfig or an APIService spec."""
        if client_config.get("url"):
            u = urlsplit(client_config["url"])
            if u.scheme != "https":
                raise CallError("webhook url %r: only https is allowed" % client_config["url"])
            return u.hostname, u.port or 443, (u.path or "/") + ("?" + u.query if u.query else ""), u.hostname
        svc = client_config.get("service") or {}
        ns, name, port = svc.get("namespace", ""), svc.get("name", ""), svc.get("port") or 443
        host, target = self.resolve_service(ns, name, port)
        return host, target, svc.get("path") or "/", "%s.%s.svc" % (name, ns)

    def resolve_service(self, ns, name, port):
        """A Service port → a local address: the endpoint annotation, else a Ready Pod selected by the
        Service (its status.podIP and the port's targetPort), as kube-proxy would route it."""
        with self.api.lock:
            svc = self.api.store.get(("", "services"), ns, name)
            if svc is None:
                raise CallError('service "%s/%s" not found' % (ns, name))
            ann = (svc.get("metadata", {}).get("annotations") or {}).get(ENDPOINT_ANNOTATION)
            if ann:
                host, _, p = ann.rpartition(":")
                return host.strip("[]"), int(p)
            spec = svc.get("spec") or {}
            sp = next((p for p in spec.get("ports") or [] if p.get("port") == port), None)
            if sp is None:
                raise CallError('service "%s/%s" has no port %d' % (ns, name, port))
            selector = spec.get("selector") or {}
            pods = [p for p in self.api.store.bucket(("", "pods")).values()
                    if p["metadata"].get("namespace") == ns and selector and
                    all((p["metadata"].get("labels") or {}).get(k) == v for k, v in selector.items())
                    and (p.get("status") or {}).get("podIP") and not p["metadata"].get("deletionTimestamp")]
            if not pods:
                raise CallError('no endpoints available for service "%s"' % name)
            pod = sorted(pods, key=lambda p: p["metadata"]["name"])[0]
            target = sp.get("targetPort", port)
            if isinstance(target, str):
                named = [cp.get("containerPort") for c in pod.get("spec", {}).get("containers", [])
                         for cp in c.get("ports") or [] if cp.get("name") == target]
                if not named:
                    raise CallError('service "%s/%s": no container port named %r' % (ns, name, target))
                target = named[0]
            return pod["status"]["podIP"], int(target)

    def tls_context(self, ca_bundle_b64, with_client_cert=False):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if ca_bundle_b64:
            try:
                ctx.load_verify_locations(cadata=base64.b64decode(ca_bundle_b64).decode())
            except (ValueError, ssl.SSLError) as e:
                raise CallError("caBundle: %s" % e)
        else:
            ctx.load_default_certs()
        ctx.set_alpn_protocols(["http/1.1"])
        if with_client_cert and self.client_cert:
            ctx.load_cert_chain(*self.client_cert)
        return ctx

    def _connect(self, host, port, server_name, ca_bundle, timeout):
        ctx = self.tls_context(ca_bundle)
        raw = socket.create_connection((host, port), timeout=timeout)
        try:
            ip = ipaddress.ip_address(server_name)
        except ValueError:
            ip = None
        sock = ctx.wrap_socket(raw, server_hostname=str(ip) if ip else server_name)
        conn = http.client.HTTPSConnection(host, port, timeout=timeout)
        conn.sock = sock
        return conn

    # --- APIService --------------------------------------------------------------------------------------
    def apiservice(self, group, version):
        """The APIService that serves group/version from a Service, or None (local or not registered)."""
        with self.api.lock:
            obj = self.api.store.get(APISERVICES, "", "%s.%s" % (version, group))
        if obj is None or not (obj.get("spec") or {}).get("service"):
            return None
        return obj

    def apiservice_groups(self):
        with self.api.lock:
            objs = list(self.api.store.bucket(APISERVICES).values())
        return sorted({(o["spec"].get("group", ""), o["spec"].get("version", "")) for o in objs
                       if (o.get("spec") or {}).get("service")})

    def connect_apiservice(self, obj, timeout=30):
        """A TLS socket to the APIService's backend, verified with its caBundle (unless
        insecureSkipTLSVerify) and presenting the front-proxy client certificate."""
        spec = obj["spec"]
        svc = spec["service"]
        host, port = self.resolve_service(svc.get("namespace", ""), svc.get("name", ""), svc.get("port") or 443)
        ctx = self.tls_context(spec.get("caBundle"), with_client_cert=True)
        if spec.get("insecureSkipTLSVerify"):
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        raw = socket.create_connection((host, port), timeout=timeout)
        return ctx.wrap_socket(raw, server_hostname="%s.%s.svc" % (svc.get("name"), svc.get("namespace")))


def front_proxy_configmap(client_ca_pem, front_proxy_ca_pem):
    """kube-system/extension-apiserver-authentication as kube-apiserver publishes it: what an aggregated
    server (virt-api) reads to trust the front-proxy client certificate and its X-Remote-* headers."""
    data = {"requestheader-client-ca-file": front_proxy_ca_pem,
            "requestheader-allowed-names": json.dumps(["front-proxy-client"]),
            "requestheader-username-headers": json.dumps(["X-Remote-User"]),
            "requestheader-group-headers": json.dumps(["X-Remote-Group"]),
            "requestheader-extra-headers-prefix": json.dumps(["X-Remote-Extra-"])}
    if client_ca_pem:
        data["client-ca-file"] = client_ca_pem
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "extension-apiserver-authentication", "namespace": "kube-system"}, "data": data}


def make_front_proxy_certs(directory, run_openssl):
    """The front-proxy CA and the client certificate (CN front-proxy-client) the proxy presents."""
    p = lambda n: "%s/%s" % (directory, n)  # noqa: E731
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run_openssl("req", "-x509", *ec, "-keyout", p("front-proxy-ca.key"), "-out", p("front-proxy-ca.crt"),
                "-days", "3650", "-subj", "/CN=front-proxy-ca")
    with open(p("front-proxy-client.ext"), "w") as f:
        f.write("extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n")
    run_openssl("req", *ec, "-keyout", p("front-proxy-client.key"), "-out", p("front-proxy-client.csr"),
                "-subj", "/CN=front-proxy-client")
    run_openssl("x509", "-req", "-in", p("front-proxy-client.csr"), "-CA", p("front-proxy-ca.crt"), "-CAkey",
                p("front-proxy-ca.key"), "-CAcreateserial", "-out", p("front-proxy-client.crt"), "-days", "3650",
                "-extfile", p("front-proxy-client.ext"))
    return p("front-proxy-ca.crt"), p("front-proxy-client.crt"), p("front-proxy-client.key")


