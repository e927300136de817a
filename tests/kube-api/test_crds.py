#!/usr/bin/env python3
# Every YAML in crds/ parses with the server's loader; the CRDs carry KubeVirt's names, short names,
# categories, status subresources, printer columns (notes §2c) and served versions (with KubeVirt's
# deprecation warnings); kubectl validates the whole folder.
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import registry  # noqa: E402
import yamlite  # noqa: E402
from testlib import ApiServer, Kubectl, check, find_kubectl, run  # noqa: E402

ROOT = os.environ.get("KV_SOURCE_ROOT", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
CRDS = os.path.join(ROOT, "crds")
AGE = [("Age", "date", ".metadata.creationTimestamp", 0)]
EXPECTED = {
    "virtualmachineinstances": (["vmi", "vmis"], False, [
        ("Age", "date", ".metadata.creationTimestamp", 0), ("Phase", "string", ".status.phase", 0),
        ("IP", "string", ".status.interfaces[0].ipAddress", 0), ("NodeName", "string", ".status.nodeName", 0),
        ("Ready", "string", ".status.conditions[?(@.type=='Ready')].status", 0),
        ("Live-Migratable", "string", ".status.conditions[?(@.type=='LiveMigratable')].status", 1),
        ("Paused", "string", ".status.conditions[?(@.type=='Paused')].status", 1)]),
    "virtualmachines": (["vm", "vms"], True, [
        ("Age", "date", ".metadata.creationTimestamp", 0), ("Status", "string", ".status.printableStatus", 0),
        ("Ready", "string", ".status.conditions[?(@.type=='Ready')].status", 0)]),
    "virtualmachineinstancemigrations": (["vmim", "vmims"], True, [
        ("Phase", "string", ".status.phase", 0), ("VMI", "string", ".spec.vmiName", 0)]),
    "virtualmachineinstancereplicasets": (["vmirs", "vmirss"], True, [
        ("Desired", "integer", ".spec.replicas", 0), ("Current", "integer", ".status.replicas", 0),
        ("Ready", "integer", ".status.readyReplicas", 0), ("Age", "date", ".metadata.creationTimestamp", 0)]),
    "virtualmachinepools": (["vmpool", "vmpools"], True, [
        ("Desired", "integer", ".spec.replicas", 0), ("Current", "integer", ".status.replicas", 0),
        ("Ready", "integer", ".status.readyReplicas", 0), ("Age", "date", ".metadata.creationTimestamp", 0)]),
    # KubeVirt's has no short names and kubectl's default columns (NAME, AGE)
    "migrationpolicies": ([], True, [("Age", "date", ".metadata.creationTimestamp", 0)]),
    "virtualmachinesnapshots": (["vmsnapshot", "vmsnapshots"], True, [
        ("SourceKind", "string", ".spec.source.kind", 0), ("SourceName", "string", ".spec.source.name", 0),
        ("Phase", "string", ".status.phase", 0), ("ReadyToUse", "boolean", ".status.readyToUse", 0),
        ("CreationTime", "date", ".status.creationTime", 0), ("Error", "string", ".status.error.message", 0)]),
    "virtualmachinesnapshotcontents": (["vmsnapshotcontent", "vmsnapshotcontents"], True, [
        ("ReadyToUse", "boolean", ".status.readyToUse", 0), ("CreationTime", "date", ".status.creationTime", 0),
        ("Error", "string", ".status.error.message", 0)]),
    "virtualmachinerestores": (["vmrestore", "vmrestores"], True, [
        ("TargetKind", "string", ".spec.target.kind", 0), ("TargetName", "string", ".spec.target.name", 0),
        ("Complete", "boolean", ".status.complete", 0), ("RestoreTime", "date", ".status.restoreTime", 0),
        ("Error", "string", ".status.error.message", 0)]),
    # CDI's DataVolume
    "datavolumes": (["dv", "dvs"], True, [
        ("Phase", "string", ".status.phase", 0), ("Progress", "string", ".status.progress", 0),
        ("Restarts", "integer", ".status.restartCount", 0), ("Age", "date", ".metadata.creationTimestamp", 0)]),
    # CDI's DataSource (no printer columns of its own: kubectl's NAME, AGE)
    "datasources": (["das"], True, AGE),
    # instancetype.kubevirt.io: KubeVirt gives them no categories (not in `kubectl get all`)
    "virtualmachineinstancetypes": (["vminstancetype", "vminstancetypes", "vmf", "vmfs"], False, AGE),
    "virtualmachineclusterinstancetypes": (["vmclusterinstancetype", "vmclusterinstancetypes", "vmcf", "vmcfs"],
                                           False, AGE),
    "virtualmachinepreferences": (["vmpref", "vmprefs", "vmp", "vmps"], False, AGE),
    "virtualmachineclusterpreferences": (["vmcp", "vmcps"], False, AGE),
}
NO_CATEGORIES = {p for p in EXPECTED if p.startswith(("virtualmachineinstancetypes", "virtualmachinecluster",
                                                      "virtualmachinepreferences"))}
SNAPSHOT = ("snapshot.kubevirt.io", "v1beta1")
GROUP_VERSION = {"migrationpolicies": ("migrations.kubevirt.io", "v1alpha1"), "virtualmachinesnapshots": SNAPSHOT,
                 "virtualmachinesnapshotcontents": SNAPSHOT, "virtualmachinerestores": SNAPSHOT,
                 "datavolumes": ("cdi.kubevirt.io", "v1beta1"), "datasources": ("cdi.kubevirt.io", "v1beta1"),
                 "virtualmachinepools": ("pool.kubevirt.io", "v1beta1")}
GROUP_VERSION.update({p: ("instancetype.kubevirt.io", "v1beta1") for p in NO_CATEGORIES})
# The versions KubeVirt's CRDs declare besides the storage one (virt-operator's crds.go): served, not stored,
# and the deprecation warning KubeVirt gives (None: not deprecated).
INSTANCETYPE_WARNING = "instancetype.kubevirt.io/%s %s is now deprecated and will be removed in v1."
OLDER_VERSIONS = {p: [("v1alpha1", None)] for p in ("virtualmachinesnapshots", "virtualmachinesnapshotcontents",
                                                     "virtualmachinerestores", "virtualmachinepools")}
for plural, text in (("virtualmachineinstancetypes", "VirtualMachineInstancetypes"),
                     ("virtualmachineclusterinstancetypes", "VirtualMachineClusterInstanceTypes"),
                     ("virtualmachinepreferences", "VirtualMachinePreferences"),
                     ("virtualmachineclusterpreferences", "VirtualMachineClusterPreferences")):
    OLDER_VERSIONS[plural] = [(v, INSTANCETYPE_WARNING % (v, text)) for v in ("v1alpha1", "v1alpha2")]


def structural(schema, path):
    """Every node has a type, or preserves unknown fields, or is int-or-string (apiextensions' rule)."""
    if not (schema.get("type") or schema.get("x-kubernetes-int-or-string") or
            schema.get("x-kubernetes-preserve-unknown-fields")):
        return path
    for name, sub in (schema.get("properties") or {}).items():
        bad = structural(sub, path + "." + name)
        if bad:
            return bad
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            bad = structural(schema[key], path + "[]")
            if bad:
                return bad
    return None


def main():
    docs = []
    for name in sorted(os.listdir(CRDS)):
        if name.endswith((".yaml", ".yml")):
            with open(os.path.join(CRDS, name)) as f:
                found = yamlite.load_all(f.read())
            check(found and all(d.get("apiVersion") and d.get("kind") and d.get("metadata", {}).get("name")
                                for d in found), "%s parses into %d objects" % (name, len(found)))
            docs += found
    crds = {d["spec"]["names"]["plural"]: d for d in docs if d["kind"] == "CustomResourceDefinition"}
    # Multus' NetworkAttachmentDefinition, as Multus ships it (no categories, no status, no columns)
    nad = crds.pop("network-attachment-definitions", None)
    check(nad and nad["spec"]["group"] == "k8s.cni.cncf.io" and nad["spec"]["names"]["shortNames"] == ["net-attach-def"]
          and nad["spec"]["versions"][0]["name"] == "v1", "Multus' NetworkAttachmentDefinition CRD (k8s.cni.cncf.io/v1)")
    check(set(crds) == set(EXPECTED), "the KubeVirt CRDs", sorted(crds))
    for plural, (short, status, columns) in EXPECTED.items():
        crd = crds[plural]
        res = registry.resource_from_crd(crd)
        group, version = GROUP_VERSION.get(plural, ("kubevirt.io", "v1"))
        check(res.group == group and res.version == version and res.short_names == short and
              res.categories == ([] if plural in NO_CATEGORIES else ["all"]), plural + ": group, version, short names, categories")
        check(res.has_status == status, plural + ": status subresource %s" % status)
        got = [(c["name"], c["type"], c["jsonPath"], c.get("priority", 0)) for c in res.columns]
        check(got == columns, plural + ": printer columns as KubeVirt's", got)
        got = [(v["name"], v.get("served"), v.get("storage"), v.get("deprecated", False) and v["deprecationWarning"])
               for v in crd["spec"]["versions"]]
        want = [(v, True, False, text or False) for v, text in OLDER_VERSIONS.get(plural, [])]
        check(got == want + [(version, True, True, False)], plural + ": KubeVirt's versions and deprecations", got)
        stored = next(v for v in crd["spec"]["versions"] if v["storage"])
        for v in crd["spec"]["versions"]:
            same = all(v.get(key) == stored.get(key) for key in ("schema", "subresources", "additionalPrinterColumns"))
            check(same, "%s %s: the storage version's schema, subresources and columns (KubeVirt's are one for "
                  "all versions)" % (plural, v["name"]))
            bad = structural(v["schema"]["openAPIV3Schema"], plural)
            check(bad is None, "%s %s: structural schema" % (plural, v["name"]), bad)
    kinds = sorted(d["kind"] for d in docs)
    for kind in ("ClusterRole", "ClusterRoleBinding", "Deployment", "Namespace", "Role", "RoleBinding",
                 "ServiceAccount"):
        check(kind in kinds, "crds/ has a " + kind)
    role = next(d for d in docs if d["kind"] == "Role")
    check(role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "patch"]},
                            {"apiGroups": ["kubevirt.io"], "resources": ["virtualmachineinstances"],
                             "verbs": ["get", "list", "watch"]}],
          "the launcher may only get and patch pods, and read and watch VMIs", role["rules"])
    if not find_kubectl():
        print("ok - no kubectl: dry-run skipped")
        return
    srv = ApiServer("--no-crds")
    k = Kubectl(srv)
    out = k("apply", "--dry-run=client", "-f", CRDS).stdout
    check(out.count("(dry run)") == len(docs), "kubectl apply --dry-run=client -f crds/", out)
    # (a server-side dry run cannot pass before the kvlite namespace exists, as upstream; test_kubectl applies it)
    srv.stop()


if __name__ == "__main__":
    run(main)
