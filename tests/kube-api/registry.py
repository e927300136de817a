# The resource registry: built-in kinds (Pods, Namespaces, Nodes, ...) and the kinds CRD objects define.
# KubeVirt's kinds are not hard-coded: they come from the CRD YAMLs in crds/ (or from CRDs created through the
# API), so names, short names, categories, printer columns and the status subresource cannot drift.
import os
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


class Resource:
    def __init__(self, group, version, plural, kind, namespaced=True, singular=None, short=(), categories=(),
                 status=False, columns=None, generation=False, fields=None, returns_object=False,
                 keep_status_on_create=False, crd=False, builtin_patch=True, scale=None):
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

    @property
    def gv(self):
        return "%s/%s" % (self.group, self.version) if self.group else self.version

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


def resource_from_crd(crd):
    """A Resource from a CustomResourceDefinition object (apiextensions.k8s.io/v1); raises CRDError."""
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
    versions = [v for v in spec.get("versions") or [] if v.get("served", True)]
    if not versions:
        raise CRDError("spec.versions: Invalid value: no served version")
    version = next((v for v in versions if v.get("storage")), versions[0])
    columns = version.get("additionalPrinterColumns")
    if columns is None:
        columns = [{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]
    compiled = []
    for i, col in enumerate(columns):
        try:
            compiled.append(dict(col, _steps=tables.compile_jsonpath(col.get("jsonPath", ""))))
        except tables.JSONPathError as e:
            raise CRDError("spec.versions[].additionalPrinterColumns[%d].jsonPath: %s" % (i, e))
    return Resource(group, version["name"], names["plural"], names["kind"],
                    namespaced=spec.get("scope", "Namespaced") == "Namespaced", singular=names.get("singular"),
                    short=names.get("shortNames") or [], categories=names.get("categories") or [],
                    status="status" in (version.get("subresources") or {}), columns=compiled, generation=True,
                    crd=True, scale=(version.get("subresources") or {}).get("scale"))


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
        return res if res is not None and res.version == version else None

    def group_versions(self):
        """{group: [version]} with the core group under ''."""
        out = {}
        for res in self.all():
            versions = out.setdefault(res.group, [])
            if res.version not in versions:
                versions.append(res.version)
        return out

    def in_gv(self, group, version):
        return sorted((r for r in self.all() if r.group == group and r.version == version), key=lambda r: r.plural)
