# scheduler.py: a scheduler for tests that places Pods the way kube-scheduler does for the cases kvlite needs:
# nodeSelector, required node affinity, NoSchedule/NoExecute taints against tolerations, and resource requests
# (cpu, memory, pods and extended resources such as devices.kubevirt.io/tun) against the Node's allocatable.
# Among the feasible nodes it picks the least requested one (ties by name), binds by setting spec.nodeName,
# and reports an unschedulable Pod with a PodScheduled=False condition, as kube-scheduler does.
# With local_claims (node-local storage, a local-path provisioner's WaitForFirstConsumer class): a claim whose
# volume.kubernetes.io/selected-node is set pins its Pods to that node; an unbound claim without it gets the chosen
# node written there (the provisioner on that node binds it), and the Pod is bound only once its claims are.
import re
import sys
import threading
import urllib.parse

SUFFIX = {"": 1, "m": 0.001, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
          "Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50, "Ei": 2 ** 60}


def quantity(q):
    m = re.match(r"^([0-9.]+(?:[eE][-+]?[0-9]+)?)([a-zA-Z]*)$", str(q).strip())
    if not m or m.group(2) not in SUFFIX:
        raise ValueError("bad quantity %r" % q)
    return float(m.group(1)) * SUFFIX[m.group(2)]


def pod_requests(pod):
    """Effective requests: the sum over containers, at least the largest init container's; requests default
    to limits; every Pod also takes one of the node's "pods"."""
    def of(c):
        res = c.get("resources") or {}
        r = {k: quantity(v) for k, v in (res.get("limits") or {}).items()}
        r.update({k: quantity(v) for k, v in (res.get("requests") or {}).items()})
        return r
    total = {}
    for c in pod["spec"].get("containers") or []:
        for k, v in of(c).items():
            total[k] = total.get(k, 0) + v
    for c in pod["spec"].get("initContainers") or []:
        for k, v in of(c).items():
            total[k] = max(total.get(k, 0), v)
    total["pods"] = 1
    return total


def expression_matches(expr, labels):
    key, op, values = expr["key"], expr["operator"], expr.get("values") or []
    if op == "In":
        return key in labels and labels[key] in values
    if op == "NotIn":
        return key not in labels or labels[key] not in values
    if op == "Exists":
        return key in labels
    if op == "DoesNotExist":
        return key not in labels
    if op in ("Gt", "Lt"):
        try:
            have, want = int(labels[key]), int(values[0])
        except (KeyError, ValueError, IndexError):
            return False
        return have > want if op == "Gt" else have < want
    return False


def node_affinity_matches(pod, node):
    """requiredDuringSchedulingIgnoredDuringExecution: any term matches; a term's expressions and fields all."""
    req = ((((pod["spec"].get("affinity") or {}).get("nodeAffinity") or {})
            .get("requiredDuringSchedulingIgnoredDuringExecution")) or {})
    terms = req.get("nodeSelectorTerms")
    if not terms:
        return True
    labels = node["metadata"].get("labels") or {}
    fields = {"metadata.name": node["metadata"]["name"]}
    for t in terms:
        exprs, fexprs = t.get("matchExpressions") or [], t.get("matchFields") or []
        if not exprs and not fexprs:
            continue  # an empty term matches nothing
        if all(expression_matches(e, labels) for e in exprs) and all(expression_matches(e, fields) for e in fexprs):
            return True
    return False


def tolerates(toleration, taint):
    if toleration.get("effect") and toleration["effect"] != taint["effect"]:
        return False
    if toleration.get("operator", "Equal") == "Exists":
        return not toleration.get("key") or toleration["key"] == taint["key"]
    return toleration.get("key") == taint["key"] and toleration.get("value", "") == taint.get("value", "")


def untolerated_taint(pod, node):
    tolerations = pod["spec"].get("tolerations") or []
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint["effect"] in ("NoSchedule", "NoExecute") and not any(tolerates(t, taint) for t in tolerations):
            return taint
    return None


def ready(node):
    return any(c["type"] == "Ready" and c["status"] == "True" for c in (node.get("status") or {}).get("conditions") or [])


SELECTED_NODE = "volume.kubernetes.io/selected-node"


def pod_claims(pod):
    return [v["persistentVolumeClaim"]["claimName"] for v in pod["spec"].get("volumes") or []
            if "persistentVolumeClaim" in v]


def claim_node(claim):
    return ((claim or {}).get("metadata", {}).get("annotations") or {}).get(SELECTED_NODE)


def fit(pod, node, bound, claims=None):
    """None when the Pod fits the node, else the reason kube-scheduler would count. claims: "ns/name" -> claim,
    given when claims are node-local."""
    if not ready(node) or (node.get("spec") or {}).get("unschedulable"):
        return "node(s) were unschedulable or not ready"
    labels = node["metadata"].get("labels") or {}
    sel = pod["spec"].get("nodeSelector") or {}
    if any(labels.get(k) != v for k, v in sel.items()) or not node_affinity_matches(pod, node):
        return "node(s) didn't match Pod's node affinity/selector"
    if claims is not None:
        for name in pod_claims(pod):
            c = claims.get(pod["metadata"]["namespace"] + "/" + name)
            if c is None:
                return "persistentvolumeclaim \"%s\" not found" % name
            if claim_node(c) not in (None, node["metadata"]["name"]):
                return "node(s) had volume node affinity conflict"
    taint = untolerated_taint(pod, node)
    if taint:
        return "node(s) had untolerated taint {%s: %s}" % (taint["key"], taint.get("value", ""))
    alloc = {k: quantity(v) for k, v in ((node.get("status") or {}).get("allocatable") or {}).items()}
    used = {}
    for other in bound:
        for k, v in pod_requests(other).items():
            used[k] = used.get(k, 0) + v
    for k, v in pod_requests(pod).items():
        if v and used.get(k, 0) + v > alloc.get(k, 0):
            return "Insufficient %s" % k
    return None


def score(pod, node, bound):
    """Least requested: the mean free fraction of cpu and memory after placing the Pod."""
    alloc = (node.get("status") or {}).get("allocatable") or {}
    free = []
    for k in ("cpu", "memory"):
        cap = quantity(alloc.get(k, "0")) or 1
        used = sum(pod_requests(p).get(k, 0) for p in bound + [pod])
        free.append(max(0.0, (cap - used) / cap))
    return sum(free) / len(free)


def choose(pod, nodes, pods, claims=None):
    """(node name, None) or (None, the FailedScheduling message)."""
    live = [p for p in pods if p["spec"].get("nodeName") and (p.get("status") or {}).get("phase")
            not in ("Succeeded", "Failed")]
    reasons, best = {}, []
    for n in nodes:
        name = n["metadata"]["name"]
        bound = [p for p in live if p["spec"]["nodeName"] == name]
        why = fit(pod, n, bound, claims)
        if why:
            reasons[why] = reasons.get(why, 0) + 1
        else:
            best.append((-score(pod, n, bound), name))
    if best:
        return min(best)[1], None
    detail = ", ".join("%d %s" % (c, r) for r, c in sorted(reasons.items()))
    return None, "0/%d nodes are available: %s." % (len(nodes), detail)


class Scheduler(threading.Thread):
    """Binds unscheduled Pods (spec.schedulerName unset or default-scheduler) in every namespace."""

    def __init__(self, client, interval=0.1, local_claims=False):
        super().__init__(daemon=True)
        self.c, self.halt, self.interval, self.local_claims = client, threading.Event(), interval, local_claims
        self.reported = {}

    def run(self):
        while not self.halt.wait(self.interval):
            try:
                self.once()
            except Exception as e:  # the server may be stopping
                print("scheduler: %s" % e, file=sys.stderr)

    def once(self):
        nodes = self.c.call("GET", "/api/v1/nodes")["items"]
        pods = self.c.call("GET", "/api/v1/pods")["items"]
        claims = None
        if self.local_claims:
            claims = {c["metadata"]["namespace"] + "/" + c["metadata"]["name"]: c
                      for c in self.c.call("GET", "/api/v1/persistentvolumeclaims")["items"]}
        for p in pods:
            spec, meta = p["spec"], p["metadata"]
            if spec.get("nodeName") or meta.get("deletionTimestamp") or \
                    spec.get("schedulerName", "default-scheduler") != "default-scheduler":
                continue
            node, why = choose(p, nodes, pods, claims)
            path = "/api/v1/namespaces/%s/pods/%s" % (meta["namespace"], urllib.parse.quote(meta["name"]))
            if node and claims is not None and not self.claims_bound(p, node, claims):
                continue  # the provisioner on that node binds them first (PreBind); the next round binds the Pod
            if node:
                self.c.call("PATCH", path, {"spec": {"nodeName": node}}, "application/merge-patch+json")
                spec["nodeName"] = node  # counts for the next Pods of this round
                self.reported.pop(meta["uid"], None)
            elif self.reported.get(meta["uid"]) != why:
                self.reported[meta["uid"]] = why
                self.c.call("PATCH", path + "/status", {"status": {"conditions": [
                    {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": why}]}},
                    "application/merge-patch+json")

    def claims_bound(self, pod, node, claims):
        """Writes the node on the Pod's claims that have none yet; whether all are Bound."""
        ok = True
        for name in pod_claims(pod):
            c = claims[pod["metadata"]["namespace"] + "/" + name]
            if claim_node(c) is None and (c.get("status") or {}).get("phase") != "Bound":
                self.c.call("PATCH", "/api/v1/namespaces/%s/persistentvolumeclaims/%s" % (
                    c["metadata"]["namespace"], urllib.parse.quote(name)),
                    {"metadata": {"annotations": {SELECTED_NODE: node}}}, "application/merge-patch+json")
            ok = ok and (c.get("status") or {}).get("phase") == "Bound"
        return ok

    def stop(self):
        self.halt.set()
