# The apiserver's semantics, independent of HTTP: create/update/patch/delete rules (status subresource,
# generation, no-op writes, resourceVersion preconditions, finalizers and deletionTimestamp, graceful Pod
# deletion), list snapshots and paging, and a garbage collector / namespace finalizer thread. Objects are
# stored in their kind's storage version; each method answers in the version of the Resource it was given.
import base64
import datetime
import json
import random
import re
import threading
import time
import uuid

import admission as admissionlib
import labelsel
import patch as patchlib
import registry as reglib
from patch import jcopy
from store import Expired, Store

GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
IMMUTABLE_META = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "name",
                  "namespace", "generation")


PATCH_CONFLICT_RETRIES = 5  # the apiserver's maxRetryWhenPatchConflicts


class ApiError(Exception):
    def __init__(self, code, reason, message, details=None, headers=None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details
        self.headers = headers or {}

    def status(self):
        body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": self.message,
                "reason": self.reason, "code": self.code}
        if self.details is not None:
            body["details"] = self.details
        return body


def now_ts(offset=0):
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=offset)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _details(res, name, **extra):
    d = {"name": name, "group": res.group, "kind": res.plural}
    if not res.group:
        del d["group"]
    d.update(extra)
    return d


def not_found(res, name):
    return ApiError(404, "NotFound", '%s "%s" not found' % (res.qualified, name), _details(res, name))


def invalid(res, name, message, causes=None):
    return ApiError(422, "Invalid", '%s "%s" is invalid: %s' % (res.qualified if res.group else res.kind, name,
                                                                 message),
                    _details(res, name, causes=causes or [{"message": message}]))


def conflict(res, name, message=None):
    return ApiError(409, "Conflict", 'Operation cannot be fulfilled on %s "%s": %s' % (
        res.qualified, name,
        message or "the object has been modified; please apply your changes to the latest version and try again"),
        _details(res, name))


def bad_request(message):
    return ApiError(400, "BadRequest", message)


def list_options_invalid(message):
    return ApiError(422, "Invalid", 'ListOptions.meta.k8s.io "" is invalid: %s' % message,
                    {"group": "meta.k8s.io", "kind": "ListOptions",
                     "causes": [{"reason": "FieldValueForbidden", "message": message.split(": ", 1)[-1],
                                 "field": message.split(":", 1)[0]}]})


def too_large(requested, current):
    return ApiError(504, "Timeout", "Too large resource version: %s, current: %s" % (requested, current),
                    {"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
                     "retryAfterSeconds": 1})


def _strip_for_generation(obj, res):
    return {k: v for k, v in obj.items()
            if k not in ("metadata", "apiVersion", "kind") and not (res.has_status and k == "status")}


def _without_rv(obj):
    meta = {k: v for k, v in obj.get("metadata", {}).items() if k not in ("resourceVersion", "managedFields")}
    return dict(obj, metadata=meta)


def _qos(pod):
    containers = pod.get("spec", {}).get("containers") or []
    requests = [c.get("resources", {}).get("requests") or {} for c in containers]
    limits = [c.get("resources", {}).get("limits") or {} for c in containers]
    if not any(requests) and not any(limits):
        return "BestEffort"
    for req, lim in zip(requests, limits):
        for r in ("cpu", "memory"):
            if r not in lim or req.get(r, lim[r]) != lim[r]:
                return "Burstable"
    return "Guaranteed"


def secret_string_data(secret):
    """stringData is write-only, as upstream: merged into data (base64), where it wins, and never stored."""
    extra = secret.pop("stringData", None) or {}
    if extra:
        secret["data"] = dict(secret.get("data") or {})
        for k, v in extra.items():
            secret["data"][k] = base64.b64encode(str(v).encode()).decode()
    return secret


def pod_defaults(pod):
    spec = pod.setdefault("spec", {})
    for key, value in (("restartPolicy", "Always"), ("terminationGracePeriodSeconds", 30),
                       ("dnsPolicy", "ClusterFirst"), ("schedulerName", "default-scheduler"),
                       ("serviceAccountName", "default"), ("securityContext", {}), ("enableServiceLinks", True),
                       ("preemptionPolicy", "PreemptLowerPriority"), ("priority", 0)):
        spec.setdefault(key, value)
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        image = c.get("image", "")
        tag = image.rsplit("/", 1)[-1]
        c.setdefault("imagePullPolicy", "Always" if ":" not in tag or tag.endswith(":latest") else "IfNotPresent")
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        c.setdefault("terminationMessagePolicy", "File")
        c.setdefault("resources", {})
    pod["status"] = {"phase": "Pending", "qosClass": _qos(pod)}


class Manager(str):
    """The field manager of a write: ?fieldManager= when given (explicit), else derived from the User-Agent."""

    def __new__(cls, name, explicit=False):
        self = super().__new__(cls, name or "unknown")
        self.explicit = explicit
        return self


class Config:
    def __init__(self):
        self.bookmark_interval = 60.0
        self.watch_timeout = None  # None: upstream's random [1800, 3600) s
        self.gc = True
        self.pod_finalize_after = None  # seconds after a graceful Pod delete the server finalizes it itself
        self.aggregated_discovery = True
        self.tables = True
        self.openapi = True

    def as_dict(self):
        return dict(self.__dict__)

    def update(self, values):
        for key, value in values.items():
            if key not in self.__dict__:
                raise bad_request("unknown config key %r (known: %s)" % (key, ", ".join(sorted(self.__dict__))))
            setattr(self, key, value)


class Api:
    def __init__(self, registry, history_size=20000):
        self.registry = registry
        self.store = Store(history_size)
        self.lock = self.store.cond
        self.config = Config()
        self.gc_pending = False
        self.stats = {"writes": 0}
        self.admission = admissionlib.Admission(self)
        for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self.create(self.resource("", "namespaces"), None, {"apiVersion": "v1", "kind": "Namespace",
                                                                 "metadata": {"name": ns}}, "kube-apiserver")
        self.gc_thread = threading.Thread(target=self._gc_loop, name="gc", daemon=True)
        self.gc_thread.start()

    def resource(self, group, plural):
        return self.registry.by_key[(group, plural)]

    # --- reads -------------------------------------------------------------------------------------------
    def get(self, res, ns, name):
        with self.lock:
            obj = self.store.get(res.key, ns, name)
        if obj is None:
            raise not_found(res, name)
        return res.convert(obj)

    def selectors(self, res, label_selector, field_selector):
        try:
            return (labelsel.parse_labels(label_selector),
                    labelsel.parse_fields(field_selector, res.supported_fields()))
        except labelsel.SelectorError as e:
            raise bad_request(str(e))

    def matches(self, res, ns, sel, obj):
        if obj is None:
            return False
        meta = obj["metadata"]
        if ns and meta.get("namespace") != ns:
            return False
        return (labelsel.match_labels(sel[0], meta.get("labels")) and
                labelsel.match_fields(sel[1], res.field_values(obj)))

    def list(self, res, ns, q):
        """Returns (items, list rv, continue token, remaining count)."""
        sel = self.selectors(res, q.get("labelSelector"), q.get("fieldSelector"))
        rv, match, cont = q.get("resourceVersion"), q.get("resourceVersionMatch"), q.get("continue")
        if match and not rv:
            raise list_options_invalid("resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden "
                                       "unless resourceVersion is provided")
        if q.get("sendInitialEvents"):
            raise list_options_invalid("sendInitialEvents: Forbidden: sendInitialEvents is forbidden for list")
        after = None
        with self.lock:
            if cont:
                try:
                    token = json.loads(base64.urlsafe_b64decode(cont.encode()))
                    snap_rv, after = int(token["rv"]), tuple(token["start"])
                except (ValueError, KeyError, TypeError):
                    raise bad_request("continue key is not valid: invalid continue token")
                try:
                    state = self.store.snapshot(res.key, snap_rv)
                except Expired:
                    raise ApiError(410, "Expired", "The provided continue parameter is too old to display a "
                                   "consistent list result. You can start a new list without the continue "
                                   "parameter.")
            elif match == "Exact":
                snap_rv = self._int_rv(rv)
                if snap_rv > self.store.rv:
                    raise too_large(snap_rv, self.store.rv)
                try:
                    state = self.store.snapshot(res.key, snap_rv)
                except Expired:
                    raise ApiError(410, "Expired", "The resourceVersion for the provided list is too old.")
            else:
                if rv not in (None, "", "0"):
                    self._wait_for_rv(self._int_rv(rv))
                snap_rv = self.store.rv
                state = dict(self.store.objects.get(res.key, {}))
        items = [res.convert(state[k]) for k in sorted(state) if (after is None or k > after) and
                 self.matches(res, ns, sel, state[k])]
        limit = int(q.get("limit") or 0)
        token, remaining = None, None
        if limit > 0 and len(items) > limit and rv != "0":
            last = items[limit - 1]["metadata"]
            token = base64.urlsafe_b64encode(json.dumps(
                {"rv": snap_rv, "start": [last.get("namespace", ""), last["name"]]}).encode()).decode()
            remaining = len(items) - limit
            items = items[:limit]
        return items, snap_rv, token, remaining

    def _int_rv(self, rv):
        try:
            return int(rv)
        except (TypeError, ValueError):
            raise bad_request('invalid resource version "%s"' % rv)

    def _wait_for_rv(self, want):
        deadline = time.monotonic() + 3
        while self.store.rv < want:
            left = deadline - time.monotonic()
            if left <= 0:
                raise too_large(want, self.store.rv)
            self.lock.wait(left)

    # --- writes ------------------------------------------------------------------------------------------
    def _check_body(self, res, body, url_ns):
        if not isinstance(body, dict):
            raise bad_request("the body of the request was not a JSON object")
        if "kind" not in body or not body.get("kind"):
            raise bad_request("Object 'Kind' is missing in '%s'" % json.dumps(body)[:200])
        if body.get("apiVersion") != res.gv:
            raise bad_request("the API version in the data (%s) does not match the expected API version (%s)"
                              % (body.get("apiVersion"), res.gv))
        if body["kind"] != res.kind:
            raise bad_request("the kind in the data (%s) does not match the expected kind (%s)"
                              % (body["kind"], res.kind))
        meta = body.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        if res.namespaced:
            if meta.get("namespace") and url_ns and meta["namespace"] != url_ns:
                raise bad_request("the namespace of the provided object does not match the namespace sent on "
                                  "the request")
            meta["namespace"] = url_ns or meta.get("namespace", "")
        else:
            meta.pop("namespace", None)
        return meta

    def _validate_meta(self, res, meta):
        name = meta.get("name", "")
        pattern = DNS_LABEL if res.plural == "namespaces" else DNS_SUBDOMAIN
        if res.group == "rbac.authorization.k8s.io":
            ok = name not in (".", "..") and "/" not in name and "%" not in name
        else:
            ok = len(name) <= (63 if res.plural == "namespaces" else 253) and pattern.match(name)
        if not ok:
            raise invalid(res, name, 'metadata.name: Invalid value: "%s": a lowercase RFC 1123 subdomain must '
                          "consist of lower case alphanumeric characters, '-' or '.', and must start and end "
                          "with an alphanumeric character" % name)
        refs = meta.get("ownerReferences") or []
        for i, ref in enumerate(refs):
            for field in ("apiVersion", "kind", "name", "uid"):
                if not ref.get(field):
                    raise invalid(res, name, "metadata.ownerReferences[%d].%s: Invalid value: \"\": %s must not "
                                  "be empty" % (i, field, field))
        if sum(1 for r in refs if r.get("controller")) > 1:
            raise invalid(res, name, "metadata.ownerReferences: Invalid value: only one reference can have "
                          "Controller set to true")
        for key in ("labels", "annotations"):
            values = meta.get(key) or {}
            if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
                raise invalid(res, name, "metadata.%s: Invalid value: values must be strings" % key)

    def _managed(self, meta, manager, operation, res):
        entries = [e for e in meta.get("managedFields") or [] if
                   not (e.get("manager") == manager and e.get("operation") == operation)]
        entries.append({"manager": manager, "operation": operation, "apiVersion": res.gv, "time": now_ts(),
                        "fieldsType": "FieldsV1", "fieldsV1": {}})
        meta["managedFields"] = entries

    def create(self, res, ns, body, manager, dry_run=False, user=None):
        meta = self._check_body(res, body, ns)
        with self.lock:
            hooks = self.admission.webhooks(res, "CREATE", body, None) if user is not None else []
        if hooks:
            # as upstream: mutating webhooks see the object before generateName, validating ones after;
            # both are called without the API lock (a webhook may call back into this server)
            body = self.admission.admit([h for h in hooks if h[0] == "mutating"], res, "CREATE", body, None,
                                        None, user, dry_run)
            meta = self._check_body(res, body, ns)
            with self.lock:
                self._generate_name(res, meta)
            self._validate_meta(res, meta)
            self.admission.admit([h for h in hooks if h[0] == "validating"], res, "CREATE", body, None, None,
                                 user, dry_run)
        with self.lock:
            if res.namespaced:
                nsobj = self.store.get(("", "namespaces"), "", meta["namespace"])
                if nsobj is None:
                    raise ApiError(404, "NotFound", 'namespaces "%s" not found' % meta["namespace"],
                                   {"name": meta["namespace"], "kind": "namespaces"})
                if nsobj["metadata"].get("deletionTimestamp"):
                    raise ApiError(403, "Forbidden", 'unable to create new content in namespace %s because it '
                                   "is being terminated" % meta["namespace"])
            self._generate_name(res, meta)
            self._validate_meta(res, meta)
            if self.store.get(res.key, meta.get("namespace"), meta["name"]) is not None:
                raise ApiError(409, "AlreadyExists", '%s "%s" already exists' % (res.qualified, meta["name"]),
                               _details(res, meta["name"]))
            for key in ("deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion", "selfLink"):
                meta.pop(key, None)
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now_ts()
            if res.generation:
                meta["generation"] = 1
            else:
                meta.pop("generation", None)
            self._prepare_create(res, body)
            if dry_run:
                return body
            meta["resourceVersion"] = str(self.store.next_rv())
            self._managed(meta, manager, "Update", res)
            body["apiVersion"] = res.storage_gv
            self.store.put(res.key, body, None)
            self._after_write(res, body, None)
            self.stats["writes"] += 1
            return res.convert(body)

    def evict(self, pods, ns, name, body, user=None):
        """POST pods/NAME/eviction with a policy/v1 Eviction: as upstream, the webhooks registered for
        pods/eviction CREATE see the Eviction first (a denial answers with the webhook's code, e.g. KubeVirt's
        429), then the Pod is deleted with the Eviction's deleteOptions. No PodDisruptionBudgets are served,
        so nothing else refuses. Returns the Status upstream answers with (HTTP 201)."""
        if not isinstance(body, dict) or body.get("kind") != "Eviction" or \
                body.get("apiVersion") not in ("policy/v1", "policy/v1beta1"):
            raise ApiError(400, "BadRequest", "the body is not a policy/v1 Eviction")
        meta = body.setdefault("metadata", {})
        if not isinstance(meta, dict) or meta.get("name", name) != name:
            raise ApiError(400, "BadRequest", "name in URL does not match name in Eviction object")
        meta.update(name=name, namespace=ns)
        opts = body.get("deleteOptions") or {}
        dry = "All" in (opts.get("dryRun") or [])
        with self.lock:
            hooks = self.admission.webhooks(pods, "CREATE", body, "eviction") if user is not None else []
        self.admission.admit(hooks, pods, "CREATE", body, None, "eviction", user, dry)
        self.get(pods, ns, name)
        self.delete(pods, ns, name, opts, dry)
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}

    def _generate_name(self, res, meta):
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise invalid(res, "", "metadata.name: Required value: name or generateName is required")
            for _ in range(8):
                meta["name"] = meta["generateName"][:58] + "".join(random.choice(GENERATE_ALPHABET)
                                                                   for _ in range(5))
                if self.store.get(res.key, meta.get("namespace"), meta["name"]) is None:
                    break

    def _admit_update(self, res, ns, name, old, new, sub, user, dry_run):
        """The webhooks for an UPDATE, called with the lock held: it is released around the calls, and the
        object must not have changed meanwhile (409). Returns (current old, admitted new)."""
        hooks = self.admission.webhooks(res, "UPDATE", new, sub) if user is not None else []
        if not hooks:
            return old, new
        rv = old["metadata"]["resourceVersion"]
        depth = 0
        while True:  # release the reentrant lock completely
            try:
                self.lock.release()
                depth += 1
            except RuntimeError:
                break
        try:
            new = self.admission.admit(hooks, res, "UPDATE", new, res.convert(old), sub, user, dry_run)
        finally:
            for _ in range(depth):
                self.lock.acquire()
        cur = self.store.get(res.key, ns, name)
        if cur is None:
            raise not_found(res, name)
        if cur["metadata"]["resourceVersion"] != rv:
            raise conflict(res, name)
        return cur, new

    def _prepare_create(self, res, body):
        if res.plural == "pods" and not res.group:
            containers = body.get("spec", {}).get("containers")
            if not containers:
                raise invalid(res, body["metadata"]["name"], "spec.containers: Required value")
            pod_defaults(body)
        elif res.plural == "secrets" and not res.group:
            body.setdefault("type", "Opaque")  # the API server's default
            secret_string_data(body)
        elif res.plural == "namespaces" and not res.group:
            body["spec"] = {"finalizers": ["kubernetes"]}
            body["status"] = {"phase": "Active"}
            body["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = body["metadata"]["name"]
        elif res.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
            try:
                reglib.resource_from_crd(body)
            except reglib.CRDError as e:
                raise invalid(res, body["metadata"]["name"], str(e))
            body["status"] = {"acceptedNames": body.get("spec", {}).get("names", {}),
                              "storedVersions": [v["name"] for v in body["spec"].get("versions", [])
                                                 if v.get("storage")],
                              "conditions": [{"type": t, "status": "True", "reason": r, "message": m,
                                              "lastTransitionTime": now_ts()}
                                             for t, r, m in (("NamesAccepted", "NoConflicts", "no conflicts found"),
                                                             ("Established", "InitialNamesAccepted",
                                                              "the initial names have been accepted"))]}
        elif res.has_status and not res.keep_status_on_create:
            body.pop("status", None)

    def _after_write(self, res, obj, old):
        if res.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
            self.registry.add(reglib.resource_from_crd(obj))

    def update(self, res, ns, name, body, sub, manager, dry_run=False, user=None):
        meta = self._check_body(res, body, ns)
        if meta.get("name") != name:
            raise bad_request("the name of the object (%s) does not match the name on the URL (%s)"
                              % (meta.get("name"), name))
        with self.lock:
            old = self.store.get(res.key, ns, name)
            if old is None:
                raise not_found(res, name)
            rv = meta.get("resourceVersion")
            if not rv and res.crd:
                raise invalid(res, name, "metadata.resourceVersion: Invalid value: 0x0: must be specified for "
                              "an update")
            if rv and rv != old["metadata"]["resourceVersion"]:
                raise conflict(res, name)
            old, body = self._admit_update(res, ns, name, old, body, sub, user, dry_run)
            return res.convert(self.commit(res, old, body, sub, manager, dry_run=dry_run))

    def patch(self, res, ns, name, ctype, raw, sub, manager, dry_run=False, user=None):
        """Returns (http code, object)."""
        kinds = {"application/merge-patch+json": "merge", "application/json-patch+json": "json",
                 "application/apply-patch+yaml": "apply", "application/apply-patch+cbor": None}
        if res.strategic:
            kinds["application/strategic-merge-patch+json"] = "strategic"
        kind = kinds.get(ctype)
        if kind is None:
            raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - "
                           "accepted media types include: " + ", ".join(k for k, v in kinds.items() if v))
        try:
            body = json.loads(raw or b"null")
        except ValueError as e:
            if kind != "apply":
                raise bad_request("error decoding patch: %s" % e)
            import yamlite
            try:
                body = yamlite.load(raw.decode())
            except (ValueError, UnicodeDecodeError) as e2:
                raise bad_request("error decoding YAML: %s" % e2)
        if kind == "apply" and not manager.explicit:
            raise invalid(res, name, "fieldManager: Required value: is required for apply patch")
        with self.lock:
            old = self.store.get(res.key, ns, name)
            if old is None:
                if kind == "apply" and not sub:
                    if not isinstance(body, dict):
                        raise bad_request("apply patch must be an object")
                    body.setdefault("metadata", {}).setdefault("name", name)
                    return 201, self.create(res, ns, body, str(manager), dry_run, user)
                raise not_found(res, name)
            # The object changed while its webhooks ran: the patch is applied again to the new version, as the
            # apiserver's GuaranteedUpdate does (a resourceVersion in the patch, or a failed `test`, still fails).
            for attempt in range(PATCH_CONFLICT_RETRIES):
                try:
                    if kind in ("merge", "apply"):
                        if not isinstance(body, dict):
                            raise bad_request("patch must be a JSON object")
                        new = patchlib.merge_patch(res.convert(old), body)
                    elif kind == "json":
                        new = patchlib.json_patch(res.convert(old), body)
                    else:
                        if not isinstance(body, dict):
                            raise bad_request("patch must be a JSON object")
                        new = patchlib.strategic_merge(res.convert(old), body)
                except patchlib.PatchError as e:
                    if e.code == 400:
                        raise bad_request(str(e))
                    raise ApiError(422, "Invalid", str(e), _details(res, name))
                if not isinstance(new, dict) or not isinstance(new.get("metadata"), dict):
                    raise bad_request("patch produced an object without metadata")
                rv = new["metadata"].get("resourceVersion")
                if rv and rv != old["metadata"]["resourceVersion"]:
                    raise conflict(res, name)
                new["apiVersion"], new["kind"] = res.gv, res.kind
                try:
                    old, new = self._admit_update(res, ns, name, old, new, sub, user, dry_run)
                    break
                except ApiError as e:
                    if e.code != 409 or attempt == PATCH_CONFLICT_RETRIES - 1:
                        raise
                old = self.store.get(res.key, ns, name)
                if old is None:
                    raise not_found(res, name)
            return 200, res.convert(self.commit(res, old, new, sub, manager,
                                                "Apply" if kind == "apply" else "Update", dry_run=dry_run))

    def commit(self, res, old, new, sub, manager, operation="Update", dry_run=False):
        """The update path shared by PUT, PATCH and the GC: returns the resulting (or unchanged) object."""
        old_meta = old["metadata"]
        if sub == "status":
            if res.crd:
                result = {k: v for k, v in old.items() if k != "status"}
                if "status" in new:
                    result["status"] = new["status"]
                new = result
            else:
                new = dict(new, spec=old.get("spec"))
                if "spec" not in old:
                    del new["spec"]
                new["metadata"] = dict(new.get("metadata") or {})
                if res.plural == "pods":
                    new["metadata"].pop("ownerReferences", None)
                    if "ownerReferences" in old_meta:
                        new["metadata"]["ownerReferences"] = old_meta["ownerReferences"]
        elif res.has_status:
            new = {k: v for k, v in new.items() if k != "status"}
            if "status" in old:
                new["status"] = old["status"]
        if res.plural == "secrets" and not res.group:
            new = secret_string_data(dict(new))
        meta = new["metadata"] = dict(new.get("metadata") or {})  # never an alias of the stored object's
        for key in IMMUTABLE_META:
            meta.pop(key, None)
            if key in old_meta:
                meta[key] = old_meta[key]
        meta["resourceVersion"] = old_meta["resourceVersion"]
        meta["managedFields"] = old_meta.get("managedFields", [])
        new["apiVersion"], new["kind"] = res.storage_gv, res.kind
        self._validate_meta(res, meta)
        if old_meta.get("deletionTimestamp"):
            added = [f for f in meta.get("finalizers") or [] if f not in (old_meta.get("finalizers") or [])]
            if added:
                raise invalid(res, meta["name"], "metadata.finalizers: Forbidden: no new finalizers can be added "
                              "if the object is being deleted, found new finalizers %s" % json.dumps(added))
        if res.generation and _strip_for_generation(new, res) != _strip_for_generation(old, res):
            meta["generation"] = old_meta.get("generation", 0) + 1
        if _without_rv(new) == _without_rv(old):
            return old
        if dry_run:
            return new
        if (old_meta.get("deletionTimestamp") and not meta.get("finalizers")
                and not old_meta.get("deletionGracePeriodSeconds")):
            self._remove(res, old)
            return new
        meta["resourceVersion"] = str(self.store.next_rv())
        self._managed(meta, str(manager), operation, res)
        self.store.put(res.key, new, old)
        self._after_write(res, new, old)
        self.stats["writes"] += 1
        return new

    def _remove(self, res, old):
        gone = self.store.remove(res.key, old)
        self.stats["writes"] += 1
        self.gc_pending = True
        if res.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
            gone_res = reglib.resource_from_crd(old)
            self.registry.remove(gone_res.key)
            for obj in list(self.store.objects.get(gone_res.key, {}).values()):
                self.store.remove(gone_res.key, obj)
        return gone

    def delete(self, res, ns, name, opts, dry_run=False):
        """Returns (http code, response body)."""
        code, out = self._delete(res, ns, name, opts, dry_run)
        return code, res.convert(out)

    def _delete(self, res, ns, name, opts, dry_run):
        with self.lock:
            old = self.store.get(res.key, ns, name)
            if old is None:
                raise not_found(res, name)
            meta = old["metadata"]
            pre = opts.get("preconditions") or {}
            what = "%s.%s" % (res.kind, res.group) if res.group else res.kind
            for field, label, tail in (("uid", "UID", "deleted and then recreated"),
                                       ("resourceVersion", "ResourceVersion", "modified")):
                if pre.get(field) and pre[field] != meta.get(field):
                    raise ApiError(409, "Conflict", 'Operation cannot be fulfilled on %s "%s": the %s in the '
                                   "precondition (%s) does not match the %s in record (%s). The object might "
                                   "have been %s" % (what, name, label, pre[field], label, meta.get(field), tail),
                                   _details(res, name))
            if dry_run:
                return 200, old
            grace = self._grace(res, old, opts)
            if meta.get("deletionTimestamp"):
                current = meta.get("deletionGracePeriodSeconds") or 0
                if res.plural == "pods" and grace < current:
                    return self._mark_deleting(res, old, grace, [])
                return 200, old
            policy = opts.get("propagationPolicy")
            if policy is None and opts.get("orphanDependents") is not None:
                policy = "Orphan" if opts["orphanDependents"] else "Background"
            extra = {"Foreground": ["foregroundDeletion"], "Orphan": ["orphan"]}.get(policy, [])
            if res.plural == "namespaces" and not res.group:
                return self._mark_deleting(res, old, 0, [], namespace=True)
            pending = [f for f in extra if f not in (meta.get("finalizers") or [])]
            if meta.get("finalizers") or pending or grace > 0:
                return self._mark_deleting(res, old, grace, pending)
            gone = self._remove(res, old)
            if res.returns_object:
                return 200, gone
            return 200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                         "details": _details(res, name, uid=meta.get("uid"))}

    def _grace(self, res, obj, opts):
        if res.plural != "pods" or res.group:
            return 0
        grace = opts.get("gracePeriodSeconds")
        if grace is None:
            grace = obj.get("spec", {}).get("terminationGracePeriodSeconds", 30)
        if not obj.get("spec", {}).get("nodeName") or obj.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            grace = 0
        return 1 if grace < 0 else int(grace)

    def _mark_deleting(self, res, old, grace, extra_finalizers, namespace=False):
        new = jcopy(old)
        meta = new["metadata"]
        if grace == 0 and not meta.get("finalizers") and not extra_finalizers and not namespace:
            gone = self._remove(res, old)
            return 200, gone if res.returns_object else {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                                         "status": "Success"}
        if not meta.get("deletionTimestamp") or grace < (meta.get("deletionGracePeriodSeconds") or 0):
            meta["deletionTimestamp"] = now_ts(grace)
            meta["deletionGracePeriodSeconds"] = grace
            if res.generation and meta.get("generation", 0) > 0:
                meta["generation"] += 1
        meta["finalizers"] = (meta.get("finalizers") or []) + extra_finalizers
        if not meta["finalizers"]:
            del meta["finalizers"]
        if namespace:
            new["status"] = {"phase": "Terminating"}
        meta["resourceVersion"] = str(self.store.next_rv())
        self.store.put(res.key, new, old)
        self.stats["writes"] += 1
        self.gc_pending = True
        return 200, new

    # --- garbage collector, namespace lifecycle, graceful Pod auto-finalizer --------------------------------
    def _gc_loop(self):
        while True:
            with self.lock:
                while not self.gc_pending:
                    self.lock.wait(0.5)
                    if self._pods_to_finalize():
                        break
                self.gc_pending = False
                try:
                    again = self.collect()
                except Exception as e:  # keep collecting after a bug, but say so
                    print("kube-api: gc error: %r" % e, flush=True)
                    again = True
                if again:
                    self.gc_pending = True
            if again:
                time.sleep(0.1)

    def _pods_to_finalize(self):
        after = self.config.pod_finalize_after
        if after is None:
            return []
        now = datetime.datetime.now(datetime.timezone.utc)
        due = []
        for pod in self.store.objects.get(("", "pods"), {}).values():
            meta = pod["metadata"]
            if meta.get("deletionTimestamp") and meta.get("deletionGracePeriodSeconds"):
                ts = datetime.datetime.strptime(meta["deletionTimestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(
                    tzinfo=datetime.timezone.utc)
                if (now - (ts - datetime.timedelta(seconds=meta["deletionGracePeriodSeconds"]))).total_seconds() \
                        >= after:
                    due.append(pod)
        return due

    def _internal_delete(self, res, obj, opts=None):
        meta = obj["metadata"]
        try:
            self.delete(res, meta.get("namespace"), meta["name"], opts or {"propagationPolicy": "Background"})
        except ApiError:
            pass

    def _drop_finalizer(self, res, obj, finalizer):
        new = jcopy(obj)
        new["metadata"]["finalizers"] = [f for f in obj["metadata"].get("finalizers", []) if f != finalizer]
        self.commit(res, obj, new, None, "kube-controller-manager")

    def collect(self):
        """One pass; returns True when something still waits (foreground dependents, namespaces)."""
        pods = self.resource("", "pods")
        for pod in self._pods_to_finalize():
            self._internal_delete(pods, pod, {"gracePeriodSeconds": 0})
        waiting = False
        resources = {r.key: r for r in self.registry.all()}
        namespaces = [ns for ns in self.store.objects.get(("", "namespaces"), {}).values()
                      if ns["metadata"].get("deletionTimestamp")]
        for ns in namespaces:
            name = ns["metadata"]["name"]
            left = [(key, obj) for key, bucket in list(self.store.objects.items()) if key in resources
                    and resources[key].namespaced for (obj_ns, _), obj in list(bucket.items()) if obj_ns == name]
            for key, obj in left:
                if not obj["metadata"].get("deletionTimestamp"):
                    self._internal_delete(resources[key], obj)
            if not left:
                self._remove(self.resource("", "namespaces"), ns)
            waiting = True
        if not self.config.gc:
            return waiting
        blocking = {}  # owner uid -> dependents that block its foreground deletion
        for key, bucket in list(self.store.objects.items()):
            res = resources.get(key)
            if res is None:
                continue
            for obj in list(bucket.values()):
                refs = obj["metadata"].get("ownerReferences") or []
                if not refs:
                    continue
                owners = [(r, self._owner(r["uid"])) for r in refs]
                if all(o is None for _, o in owners):
                    if not obj["metadata"].get("deletionTimestamp"):
                        self._internal_delete(res, obj)
                    continue
                for ref, owner in owners:
                    if owner is None or not owner["metadata"].get("deletionTimestamp"):
                        continue
                    finalizers = owner["metadata"].get("finalizers") or []
                    if "orphan" in finalizers:
                        new = jcopy(obj)
                        new["metadata"]["ownerReferences"] = [r for r in refs if r["uid"] != ref["uid"]]
                        if not new["metadata"]["ownerReferences"]:
                            del new["metadata"]["ownerReferences"]
                        self.commit(res, obj, new, None, "kube-controller-manager")
                    elif "foregroundDeletion" in finalizers and ref.get("blockOwnerDeletion"):
                        blocking.setdefault(ref["uid"], []).append(obj)
                        if not obj["metadata"].get("deletionTimestamp"):
                            self._internal_delete(res, obj, {"propagationPolicy": "Foreground"})
        for key, bucket in list(self.store.objects.items()):
            res = resources.get(key)
            for obj in list(bucket.values()):
                finalizers = obj["metadata"].get("finalizers") or []
                if not obj["metadata"].get("deletionTimestamp") or res is None:
                    continue
                if "foregroundDeletion" in finalizers:
                    if blocking.get(obj["metadata"]["uid"]):
                        waiting = True
                    else:
                        self._drop_finalizer(res, obj, "foregroundDeletion")
                elif "orphan" in finalizers:
                    self._drop_finalizer(res, obj, "orphan")
        return waiting

    def _owner(self, uid):
        where = self.store.uids.get(uid)
        return self.store.get(where[0], where[1], where[2]) if where else None
