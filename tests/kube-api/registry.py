# The resource registry: built-in kinds (Pods, Namespaces, Nodes, ...) and the kinds CRD objects define.
# KubeVirt's kinds are not hard-coded: they come from the CRD YAMLs in crds/ (or from CRDs created through the
# API), so names, short names, categories, printer columns and the status subresource cannot drift. Every
# served version of a CRD is served, as kube-apiserver does with conversion None (docs/kube-api-test-server.md).
import functools
import os
import re
import threading

import tables
import yamlite

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
POD_FIELDS = {"spec.nodeName": lambda o: o.get("spec", {}).get("nodeName", ""),
              "spec.restartPolicy": lambda o: o.get("spec", {}).get("restartPolicy", ""),
              "spec.schedulerName": lambda o: o.get("spec", {}).get("schedulerName", ""),
              "spec.serviceAccountName": lambda o: o.get("spec", {}).get("serviceAccountName", ""),
              "spec.hostNetwork": lambda o: "true" if o.get("spec", {}).get("hostNetwork") else "false",
              "status.phase": lambda o: o.get("status", {}).get("phase", ""),
              "status.podIP": lambda o: ((o.get("status", {}).get("podIPs") or [{}])[0].get("ip")
                                         or o.get("status", {}).get("podIP", "")),
              "status.nominatedNodeName": lambda o: o.get("status", {}).get("nominatedNodeName", "")}
EVENT_FIELDS = {"involvedObject.%s" % k: (lambda k: lambda o: str(o.get("involvedObject", {}).get(k, "")))(k)
                for k in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")}
EVENT_FIELDS.update({k: (lambda k: lambda o: str(o.get(k, "")))(k) for k in ("reason", "type", "reportingComponent")})
EVENT_FIELDS["source"] = lambda o: o.get("source", {}).get("component", "")
KUBE_VERSION = re.compile(r"^v([0-9]+)(?:(alpha|beta)([0-9]+))?$")


def compare_versions(a, b):
    """apimachinery's CompareKubeAwareVersionStrings: > 0 when version a has the higher priority. GA before beta
    before alpha, then the higher major, then the higher minor (v2, v1, v1beta2, v1beta1, v1alpha1); names that
    are not Kubernetes-like come after all of those, in lexical order."""
    if a == b:
        return 0
    ma, mb = KUBE_VERSION.match(a), KUBE_VERSION.match(b)
    if not ma or not mb:
        return (a < b) - (a > b) if not ma and not mb else (1 if ma else -1)
    rank = {"alpha": 0, "beta": 1, None: 2}
    ka = (rank[ma.group(2)], int(ma.group(1)), int(ma.group(3) or 0))
    kb = (rank[mb.group(2)], int(mb.group(1)), int(mb.group(3) or 0))
    return (ka > kb) - (ka < kb)


def by_priority(versions):
    """versions in the order kube-apiserver lists a group's versions; the first is its preferredVersion."""
    return sorted(versions, key=functools.cmp_to_key(compare_versions), reverse=True)


class Resource:
    def __init__(self, group, version, plural, kind, namespaced=True, singular=None, short=(), categories=(),
                 status=False, columns=None, generation=False, fields=None, returns_object=False,
                 keep_status_on_create=False, crd=False, builtin_patch=True, scale=None, deprecation=None,
                 served=True):
        self.group, self.version, self.plural, self.kind = group, version, plural, kind
        self.namespaced = namespaced
        self.singular = singular or kind.lower()
        self.short_names, self.categories = list(short), list(categories)
        self.has_status = status
        self.columns = columns  # CRD printer columns (with compiled "_steps"), None for built-in printers
        self.generation = generation
        self.extra_fields = fields or {}
        self.returns_object = returns_object  # DELETE answers with the object (Pods, Namespaces), else Status
        self.keep_status_on_create = keep_status_on_create
        self.crd = crd
        self.strategic = builtin_patch and not crd  # strategic merge patch only for compiled-in kinds
        self.scale = scale  # a CRD's subresources.scale (specReplicasPath, ...), None without one
        self.deprecation = deprecation  # the Warning every request to this (deprecated) version answers with
        self.served = served
        # One Resource per version of the kind (a CRD's spec.versions order), all on one store key: objects are
        # stored in storage_version and each version serves them with its own apiVersion.
        self.views = {version: self}
        self.storage_version = version

    @property
    def gv(self):
        return "%s/%s" % (self.group, self.version) if self.group else self.version

    @property
    def storage_gv(self):
        return "%s/%s" % (self.group, self.storage_version) if self.group else self.storage_version

    def at(self, version):
        """The Resource serving this kind in version, None when that version is not served."""
        view = self.views.get(version)
        return view if view is not None and view.served else None

    def convert(self, obj):
        """obj (as stored, or in another version of this kind) as this version serves it. Conversion None, the
        CRD default: versions differ only in apiVersion. Other objects (a Status) pass unchanged; obj is never
        modified."""
        api_version = obj.get("apiVersion") if isinstance(obj, dict) else None
        if api_version == self.gv or not any(api_version == v.gv for v in self.views.values()):
            return obj
        return dict(obj, apiVersion=self.gv)

    @property
    def qualified(self):
        return "%s.%s" % (self.plural, self.group) if self.group else self.plural

    @property
    def key(self):
        return (self.group, self.plural)

    def field_values(self, obj):
        meta = obj.get("metadata", {})
        values = {"metadata.name": meta.get("name", ""), "metadata.namespace": meta.get("namespace", "")}
        for field, get in self.extra_fields.items():
            values[field] = get(obj)
        return values

    def supported_fields(self):
        fields = {"metadata.name", "metadata.namespace"}
        return fields | set(self.extra_fields)


def _builtins():
    r = Resource
    return [
        r("", "v1", "pods", "Pod", short=["po"], categories=["all"], status=True, fields=POD_FIELDS,
          returns_object=True),
        r("", "v1", "namespaces", "Namespace", namespaced=False, short=["ns"], status=True, returns_object=True,
          fields={"status.phase": lambda o: o.get("status", {}).get("phase", "")}),
        r("", "v1", "nodes", "Node", namespaced=False, short=["no"], status=True, keep_status_on_create=True,
          fields={"spec.unschedulable": lambda o: "true" if o.get("spec", {}).get("unschedulable") else "false"}),
        r("", "v1", "events", "Event", short=["ev"], fields=EVENT_FIELDS, keep_status_on_create=True),
        r("", "v1", "secrets", "Secret", fields={"type": lambda o: o.get("type", "")}),
        r("", "v1", "configmaps", "ConfigMap", short=["cm"]),
        r("", "v1", "serviceaccounts", "ServiceAccount", short=["sa"]),
        r("", "v1", "services", "Service", short=["svc"], categories=["all"], status=True),
        r("", "v1", "endpoints", "Endpoints", short=["ep"]),
        r("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", short=["pvc"], status=True),
        r("apps", "v1", "deployments", "Deployment", short=["deploy"], categories=["all"], status=True,
          generation=True),
        r("apps", "v1", "controllerrevisions", "ControllerRevision"),
        r("apps", "v1", "daemonsets", "DaemonSet", short=["ds"], categories=["all"], status=True, generation=True),
        r("coordination.k8s.io", "v1", "leases", "Lease"),
        r("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", namespaced=False),
        r("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", namespaced=False),
        r("rbac.authorization.k8s.io", "v1", "roles", "Role"),
        r("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
        r("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations", "MutatingWebhookConfiguration",
          namespaced=False, generation=True),
        r("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations",
          "ValidatingWebhookConfiguration", namespaced=False, generation=True),
        r("apiregistration.k8s.io", "v1", "apiservices", "APIService", namespaced=False, status=True,
          generation=True),
        r("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", namespaced=False,
          short=["crd", "crds"], status=True, generation=True, builtin_patch=False),
    ]


class CRDError(ValueError):
    pass


def _deprecation(crd_spec, version):
    """The Warning of a deprecated CRD version: its deprecationWarning, else apiextensions' default text."""
    if not version.get("deprecated"):
        return None
    if version.get("deprecationWarning") is not None:
        return version["deprecationWarning"]
    group, kind = crd_spec["group"], crd_spec["names"]["kind"]
    text = "%s/%s %s is deprecated" % (group, version["name"], kind)
    newer = by_priority(v["name"] for v in crd_spec.get("versions") or [] if v.get("served", True) and
                        not v.get("deprecated") and compare_versions(version["name"], v["name"]) < 0)
    return text + ("; use %s/%s %s" % (group, newer[0], kind) if newer else "")


def _version_resource(crd_spec, version):
    names = crd_spec["names"]
    columns = version.get("additionalPrinterColumns")
    if columns is None:
        columns = [{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]
    compiled = []
    for i, col in enumerate(columns):
        try:
            compiled.append(dict(col, _steps=tables.compile_jsonpath(col.get("jsonPath", ""))))
        except tables.JSONPathError as e:
            raise CRDError("spec.versions[].additionalPrinterColumns[%d].jsonPath: %s" % (i, e))
    subresources = version.get("subresources") or {}
    return Resource(crd_spec["group"], version["name"], names["plural"], names["kind"],
                    namespaced=crd_spec.get("scope", "Namespaced") == "Namespaced", singular=names.get("singular"),
                    short=names.get("shortNames") or [], categories=names.get("categories") or [],
                    status="status" in subresources, columns=compiled, generation=True, crd=True,
                    scale=subresources.get("scale"), deprecation=_deprecation(crd_spec, version),
                    served=version.get("served", True))


def resource_from_crd(crd):
    """The Resource of a CustomResourceDefinition object's storage version (apiextensions.k8s.io/v1), with
    .views holding one Resource per version (printer columns and subresources are per version); raises
    CRDError."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group = spec.get("group")
    for field, value in (("spec.group", group), ("spec.names.plural", names.get("plural")),
                         ("spec.names.kind", names.get("kind"))):
        if not value:
            raise CRDError("%s: Required value" % field)
    if crd.get("metadata", {}).get("name") != "%s.%s" % (names["plural"], group):
        raise CRDError('metadata.name: Invalid value: "%s": must be spec.names.plural+"."+spec.group'
                       % crd.get("metadata", {}).get("name"))
    versions = spec.get("versions") or []
    for i, v in enumerate(versions):
        if not v.get("name"):
            raise CRDError("spec.versions[%d].name: Required value" % i)
    if not any(v.get("served", True) for v in versions):
        raise CRDError("spec.versions: Invalid value: no served version")
    if sum(1 for v in versions if v.get("storage")) != 1:
        raise CRDError("spec.versions: Invalid value: must have exactly one version marked as storage version")
    if len({v["name"] for v in versions}) != len(versions):
        raise CRDError("spec.versions: Invalid value: must contain unique version names")
    views = {v["name"]: _version_resource(spec, v) for v in versions}
    storage = next(v["name"] for v in versions if v.get("storage"))
    for view in views.values():
        view.views, view.storage_version = views, storage
    return views[storage]


def load_crd_dir(path):
    """The CRD objects of every *.yaml/*.yml/*.json file in path (other kinds are skipped)."""
    crds = []
    for name in sorted(os.listdir(path)):
        if not name.endswith((".yaml", ".yml", ".json")):
            continue
        with open(os.path.join(path, name)) as f:
            for doc in yamlite.load_all(f.read()):
                if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                    resource_from_crd(doc)  # validate early, with the file's name in the traceback
                    crds.append(doc)
    return crds


class Registry:
    def __init__(self):
        self.lock = threading.Lock()
        self.by_key = {}
        for res in _builtins():
            self.by_key[res.key] = res

    def add(self, res):
        with self.lock:
            self.by_key[res.key] = res

    def remove(self, key):
        with self.lock:
            self.by_key.pop(key, None)

    def all(self):
        with self.lock:
            return list(self.by_key.values())

    def get(self, group, version, plural):
        with self.lock:
            res = self.by_key.get((group, plural))
        return res.at(version) if res is not None else None

    def group_versions(self):
        """{group: [served version]} with the core group under '', each group's versions in kube-apiserver's
        order (the first is the preferred version)."""
        out = {}
        for res in self.all():
            versions = out.setdefault(res.group, [])
            versions += [v for v, view in res.views.items() if view.served and v not in versions]
        return {group: by_priority(versions) for group, versions in out.items()}

    def in_gv(self, group, version):
        """The Resources served in group/version, by plural."""
        found = (r.at(version) for r in self.all() if r.group == group)
        return sorted((r for r in found if r is not None), key=lambda r: r.plural)
