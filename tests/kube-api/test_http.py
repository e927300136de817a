#!/usr/bin/env python3
# The test apiserver over plain HTTP: watch (initial events, bookmarks, 410 Expired, selectors), list
# resourceVersion rules and paging, write semantics (409/422, generation, status subresource, no-op writes),
# deletion (finalizers, graceful Pods, garbage collection), the /_test/ fault knobs, a restart with state, and a
# CRD's served versions over the wire (watch events in the watched version, Warning headers).
import http.client
import json
import os
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from testlib import ApiServer, check, run, wait_for  # noqa: E402

B = "/apis/kubevirt.io/v1/namespaces/default/virtualmachineinstances"
PODS = "/api/v1/namespaces/default/pods"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


def vmi(name, labels=None, **meta):
    return {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
            "metadata": dict({"name": name, "labels": labels or {}}, **meta),
            "spec": {"domain": {"devices": {}}}}


def pod(name, node=None, owner=None):
    p = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
         "spec": {"containers": [{"name": "c", "image": "x", "command": ["true"]}]}}
    if node:
        p["spec"]["nodeName"] = node
    if owner:
        p["metadata"]["ownerReferences"] = [{"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
                                             "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
                                             "controller": True, "blockOwnerDeletion": True}]
    return p


class Watch:
    def __init__(self, srv, path, accept="application/json"):
        u = urllib.parse.urlsplit(srv.url)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
        self.conn.request("GET", path, headers={"Accept": accept})
        self.resp = self.conn.getresponse()
        self.status = self.resp.status

    def next(self, timeout=5):
        self.conn.sock.settimeout(timeout)
        line = self.resp.readline()
        return json.loads(line) if line.strip() else None

    def events(self, n, timeout=5):
        return [self.next(timeout) for _ in range(n)]

    def close(self):
        self.conn.close()


def test_watch(srv):
    r = srv.request
    a = r("POST", B, vmi("w1", {"app": "a"}))[1]
    r("POST", B, vmi("w2", {"app": "b"}))
    code, lst = r("GET", B)
    list_rv = lst["metadata"]["resourceVersion"]
    check(code == 200 and len(lst["items"]) == 2 and lst["items"][0]["kind"] == "VirtualMachineInstance",
          "list of CRs carries item kinds", lst)

    w0 = Watch(srv, B + "?watch=1&resourceVersion=0")
    evs = w0.events(2)
    check([e["type"] for e in evs] == ["ADDED", "ADDED"], "rv=0 watch starts with synthetic ADDED", evs)
    w0.close()

    w = Watch(srv, B + "?watch=true&resourceVersion=%s&allowWatchBookmarks=true" % list_rv)
    wl = Watch(srv, B + "?watch=true&resourceVersion=%s&labelSelector=app%%3Da" % list_rv)
    a2 = r("PATCH", B + "/w1", {"metadata": {"labels": {"app": "c"}}}, "application/merge-patch+json")[1]
    r("PATCH", B + "/w1", {"metadata": {"labels": {"app": "a"}}}, "application/merge-patch+json")
    d = r("DELETE", B + "/w2")[1]
    check(d["kind"] == "Status" and d["status"] == "Success" and d["details"]["kind"] == "virtualmachineinstances",
          "deleting a CR answers a Status", d)
    evs = w.events(3)
    check([e["type"] for e in evs] == ["MODIFIED", "MODIFIED", "DELETED"], "watch from list rv sees changes", evs)
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in evs]
    check(rvs == sorted(rvs) and rvs[0] == int(a2["metadata"]["resourceVersion"]), "events in rv order", rvs)
    evs = wl.events(2)
    check([e["type"] for e in evs] == ["DELETED", "ADDED"], "relabel away is DELETED, back is ADDED", evs)
    wl.close()
    srv.request("POST", "/_test/config", {"bookmark_interval": 0.3})
    bm = wait_for("a bookmark", lambda: (lambda e: e if e and e["type"] == "BOOKMARK" else None)(w.next()))
    check(set(bm["object"]["metadata"]) <= {"resourceVersion", "creationTimestamp"} and
          int(bm["object"]["metadata"]["resourceVersion"]) >= rvs[-1], "bookmark carries only the rv", bm)
    w.close()
    # resume from the bookmark rv loses nothing
    r("PATCH", B + "/w1", {"metadata": {"labels": {"n": "1"}}}, "application/merge-patch+json")
    wr = Watch(srv, B + "?watch=true&resourceVersion=" + bm["object"]["metadata"]["resourceVersion"])
    e = wr.next()
    check(e["type"] == "MODIFIED" and e["object"]["metadata"]["labels"].get("n") == "1", "resume from a bookmark", e)
    wr.close()

    wi = Watch(srv, B + "?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true")
    evs = wi.events(2)
    check(evs[0]["type"] == "ADDED" and evs[1]["type"] == "BOOKMARK" and
          evs[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"},
          "sendInitialEvents ends with the initial-events-end bookmark", evs)
    wi.close()
    code, body = r("GET", B + "?watch=1&sendInitialEvents=true")
    check(code == 422 and body["details"]["kind"] == "ListOptions", "sendInitialEvents alone is 422", body)

    wt = Watch(srv, B + "?watch=1&resourceVersion=0", TABLE)
    first = wt.next()
    r("PATCH", B + "/w1", {"metadata": {"labels": {"n": "2"}}}, "application/merge-patch+json")
    second = wt.next()
    check(first["object"]["kind"] == "Table" and first["object"]["columnDefinitions"] and
          second["object"]["columnDefinitions"] is None, "Table watch: columns on the first event only")
    wt.close()

    t0 = time.monotonic()
    wto = Watch(srv, B + "?watch=1&timeoutSeconds=1&resourceVersion=" + lst["metadata"]["resourceVersion"])
    while wto.next() is not None:
        pass
    check(0.8 < time.monotonic() - t0 < 3, "timeoutSeconds ends the stream cleanly")

    r("POST", "/_test/compact")
    we = Watch(srv, B + "?watch=1&resourceVersion=" + list_rv)
    e = we.next()
    check(we.status == 200 and e["type"] == "ERROR" and e["object"]["code"] == 410 and
          e["object"]["reason"] == "Expired" and we.next() is None, "compacted history: ERROR 410 Expired, end", e)
    return a


def test_lists(srv):
    r = srv.request
    for i in range(5):
        r("POST", B, vmi("page%d" % i))
    names, cont, pages = [], "", 0
    while True:
        code, body = r("GET", B + "?limit=2" + ("&continue=" + cont if cont else ""))
        names += [i["metadata"]["name"] for i in body["items"]]
        pages += 1
        cont = body["metadata"].get("continue")
        if not cont:
            break
    check(pages >= 3 and len(names) == len(set(names)) and all("page%d" % i in names for i in range(5)),
          "paging with continue returns everything once", names)
    code, body = r("GET", B + "?resourceVersion=999999999")
    check(code == 504 and body["details"]["causes"][0]["reason"] == "ResourceVersionTooLarge", "rv too large", body)
    code, body = r("GET", B + "?resourceVersionMatch=Exact")
    check(code == 422, "resourceVersionMatch without rv is 422", body)
    code, body = r("GET", PODS)
    check(code == 200 and body["items"] == [] and body["kind"] == "PodList", "empty pod list has items []", body)
    code, body = r("GET", B, headers={"Accept": TABLE})
    check(body["kind"] == "Table" and body["metadata"]["resourceVersion"] and
          body["rows"][0]["object"]["kind"] == "PartialObjectMetadata" and
          body["columnDefinitions"][0]["name"] == "Name", "Table list", body)
    code, body = r("GET", B + "?fieldSelector=spec.foo%3Dx")
    check(code == 400 and body["message"] == "field label not supported: spec.foo", "CR field selector 400", body)
    code, body = r("GET", B + "?labelSelector=a%20in%20(")
    check(code == 400, "bad label selector is 400", body)
    code, body = r("GET", "/apis", headers={"Accept": "application/json;g=apidiscovery.k8s.io;v=v2;"
                                                      "as=APIGroupDiscoveryList,application/json"})
    check(body["kind"] == "APIGroupDiscoveryList", "aggregated discovery on request", body)
    code, body = r("GET", "/nonsense")
    check(code == 404 and body["message"] == "the server could not find the requested resource", "unknown path")


def test_writes(srv):
    r = srv.request
    code, body = r("POST", B, vmi("", generateName="gen-"))
    check(code == 201 and body["metadata"]["name"].startswith("gen-") and len(body["metadata"]["name"]) == 9,
          "generateName", body)
    code, body = r("POST", B, vmi(""))
    check(code == 422 and "name or generateName is required" in body["message"], "no name is 422", body)
    code, body = r("POST", "/apis/kubevirt.io/v1/namespaces/nope/virtualmachineinstances", vmi("x"))
    check(code == 404 and body["message"] == 'namespaces "nope" not found', "missing namespace", body)
    code, body = r("POST", B, dict(vmi("x"), apiVersion="kubevirt.io/v2"))
    check(code == 400 and "does not match the expected API version" in body["message"], "apiVersion mismatch")

    code, obj = r("POST", B, vmi("wr"))
    stale = json.loads(json.dumps(obj))
    code, obj2 = r("PUT", B + "/wr", dict(obj, metadata=dict(obj["metadata"], labels={"x": "1"})))
    check(code == 200 and obj2["metadata"]["generation"] == 1, "metadata change keeps generation", obj2)
    code, body = r("PUT", B + "/wr", dict(stale, metadata=dict(stale["metadata"], labels={"x": "2"})))
    check(code == 409 and body["reason"] == "Conflict" and "the object has been modified" in body["message"],
          "stale PUT is 409", body)
    nr = json.loads(json.dumps(obj2))
    del nr["metadata"]["resourceVersion"]
    code, body = r("PUT", B + "/wr", nr)
    check(code == 422 and "must be specified for an update" in body["message"], "CR PUT without rv is 422", body)
    code, same = r("PUT", B + "/wr", obj2)
    check(same["metadata"]["resourceVersion"] == obj2["metadata"]["resourceVersion"], "no-op PUT keeps the rv")
    code, obj3 = r("PATCH", B + "/wr", {"status": {"phase": "Running"}}, "application/merge-patch+json")
    check(obj3["metadata"]["generation"] == 2, "VMI status via main resource bumps generation (no subresource)")
    code, body = r("GET", B + "/wr/status")
    check(code == 404, "VMI has no /status")
    code, body = r("PATCH", B + "/wr", {"metadata": {"resourceVersion": "1"}, "spec": {"x": 1}},
                   "application/merge-patch+json")
    check(code == 409, "patch with a stale rv is 409", body)
    code, body = r("PATCH", B + "/wr", [{"op": "test", "path": "/spec/domain", "value": 5}],
                   "application/json-patch+json")
    check(code == 422, "failed json-patch test op is 422", body)
    code, body = r("PATCH", B + "/wr", [{"op": "test", "path": "/spec/nothing", "value": None},
                                        {"op": "add", "path": "/spec/nothing", "value": []},
                                        {"op": "add", "path": "/spec/nothing/-", "value": 1}],
                   "application/json-patch+json")
    check(code == 200 and body["spec"]["nothing"] == [1], "a null test op matches an absent member", body)
    code, body = r("PATCH", B + "/wr", [{"op": "test", "path": "/spec/nothing", "value": None}],
                   "application/json-patch+json")
    check(code == 422, "a null test op fails on a present member", body)
    code, body = r("PATCH", B + "/wr", [{"op": "test", "path": "/spec/no/where", "value": None}],
                   "application/json-patch+json")
    check(code == 422, "a null test op fails when the member's object is missing", body)

    vms = "/apis/kubevirt.io/v1/namespaces/default/virtualmachines"
    code, vm = r("POST", vms, {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": {"name": "v"},
                               "spec": {"running": False, "template": {"spec": {}}}, "status": {"ready": True}})
    check("status" not in vm, "create drops status when the subresource exists", vm)
    code, vm2 = r("PUT", vms + "/v/status", dict(vm, spec={"running": True}, status={"printableStatus": "Stopped"}))
    check(vm2["spec"]["running"] is False and vm2["status"]["printableStatus"] == "Stopped" and
          vm2["metadata"]["generation"] == 1, "status PUT changes only status", vm2)
    code, vm3 = r("PUT", vms + "/v", dict(vm2, spec={"running": True}, status={"printableStatus": "X"}))
    check(vm3["status"]["printableStatus"] == "Stopped" and vm3["metadata"]["generation"] == 2,
          "main PUT keeps status and bumps generation on spec change", vm3)

    code, body = r("PATCH", B + "/wr", {"a": 1}, "application/strategic-merge-patch+json")
    check(code == 415, "strategic patch on a CR is 415", body)
    code, body = r("DELETE", B + "/wr", {"preconditions": {"uid": "other"}})
    check(code == 409 and "the UID in the precondition (other) does not match" in body["message"], "uid precondition")


def test_deletion(srv):
    r = srv.request
    owner = r("POST", B, vmi("owner"))[1]
    other = r("POST", B, vmi("other"))[1]
    r("POST", PODS, pod("dep", owner=owner))
    r("POST", PODS, pod("keep", owner=other))
    code, gone = r("DELETE", B + "/owner", {"propagationPolicy": "Background"})
    wait_for("garbage collection", lambda: r("GET", PODS + "/dep")[0] == 404)
    check(r("GET", PODS + "/keep")[0] == 200, "GC removes only dependents of the deleted uid")

    code, p = r("POST", PODS, pod("graceful", node="n1"))
    check(p["status"]["phase"] == "Pending" and p["spec"]["terminationGracePeriodSeconds"] == 30 and
          p["spec"]["containers"][0]["imagePullPolicy"] == "Always", "pod defaults", p)
    code, p = r("DELETE", PODS + "/graceful")
    check(code == 200 and p["kind"] == "Pod" and p["metadata"]["deletionGracePeriodSeconds"] == 30,
          "bound pod deletion is graceful", p)
    code, t = r("GET", PODS, headers={"Accept": TABLE})
    cells = next(row["cells"] for row in t["rows"] if row["cells"][0] == "graceful")
    check(cells[2] == "Terminating", "Terminating status column", cells)
    code, p = r("DELETE", PODS + "/graceful", {"gracePeriodSeconds": 0})
    check(code == 200 and r("GET", PODS + "/graceful")[0] == 404, "grace 0 removes the pod")

    fg = r("POST", B, vmi("fg"))[1]
    r("POST", PODS, pod("fgdep", node="n1", owner=fg))
    code, body = r("DELETE", B + "/fg", {"propagationPolicy": "Foreground"})
    check("foregroundDeletion" in body["metadata"]["finalizers"], "Foreground adds its finalizer", body)
    wait_for("dependent terminating", lambda: r("GET", PODS + "/fgdep")[1]["metadata"].get("deletionTimestamp"))
    check(r("GET", B + "/fg")[0] == 200, "owner waits for its blocking dependent")
    r("DELETE", PODS + "/fgdep", {"gracePeriodSeconds": 0})
    wait_for("foreground owner gone", lambda: r("GET", B + "/fg")[0] == 404)
    check(True, "foreground deletion completes after the dependent")


def test_faults(srv):
    r = srv.request
    r("POST", "/_test/fail", {"count": 2, "code": 500, "method": "GET", "path": "virtualmachineinstances"})
    codes = [r("GET", B)[0] for _ in range(3)]
    check(codes == [500, 500, 200], "fail the next 2 requests with 500", codes)
    r("POST", "/_test/fail", {"count": 1, "code": 429})
    code, body = r("GET", B)
    check(code == 429 and body["reason"] == "TooManyRequests", "429 injection", body)
    r("POST", "/_test/fail", {"count": 1, "code": 409, "method": "PATCH"})
    code, body = r("PATCH", B + "/w1", {"metadata": {"labels": {"z": "1"}}}, "application/merge-patch+json")
    check(code == 409 and body["reason"] == "Conflict", "409 injection", body)
    w = Watch(srv, B + "?watch=1&resourceVersion=0")
    w.next()
    time.sleep(0.2)
    r("POST", "/_test/drop-watches")
    got = []
    while True:
        e = w.next()
        if e is None:
            break
        got.append(e)
    check(True, "drop-watches ends open watches")
    stats = r("GET", "/_test/stats")[1]
    check(stats["faultsInjected"] == 4 and stats["requests"].get("LIST virtualmachineinstances", 0) >= 3,
          "stats count requests and faults", stats)


def test_versions(srv):
    """One stored object served in each version; Warning headers of deprecated versions, as kube-apiserver
    writes them."""
    r = srv.request
    alpha, beta = ("/apis/snapshot.kubevirt.io/%s/namespaces/default/virtualmachinesnapshots" % v
                   for v in ("v1alpha1", "v1beta1"))
    snap = {"apiVersion": "snapshot.kubevirt.io/v1alpha1", "kind": "VirtualMachineSnapshot",
            "metadata": {"name": "s1"}, "spec": {"source": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine",
                                                             "name": "vm"}}}
    code, out = r("POST", alpha + "?dryRun=All", snap)
    check(code == 201 and out["apiVersion"] == "snapshot.kubevirt.io/v1alpha1" and r("GET", beta + "/s1")[0] == 404,
          "a dry-run create through v1alpha1 answers in v1alpha1 and stores nothing", code, out)
    code, created = r("POST", alpha, snap)
    check(code == 201 and created["apiVersion"] == "snapshot.kubevirt.io/v1alpha1" and
          created["metadata"]["managedFields"][0]["apiVersion"] == "snapshot.kubevirt.io/v1alpha1",
          "create through v1alpha1: the answer and its managedFields entry in v1alpha1", created)
    rv = created["metadata"]["resourceVersion"]
    wa, wb = (Watch(srv, path + "?watch=1&resourceVersion=" + rv) for path in (alpha, beta))
    wt = Watch(srv, alpha + "?watch=1&resourceVersion=0", TABLE)
    r("PATCH", beta + "/s1", {"metadata": {"labels": {"a": "b"}}}, "application/merge-patch+json")
    r("DELETE", alpha + "/s1")
    for w, version in ((wa, "v1alpha1"), (wb, "v1beta1")):
        evs = w.events(2)
        check([(e["type"], e["object"]["apiVersion"]) for e in evs] ==
              [("MODIFIED", "snapshot.kubevirt.io/" + version), ("DELETED", "snapshot.kubevirt.io/" + version)] and
              evs[0]["object"]["metadata"]["labels"] == {"a": "b"},
              "a watch through %s: events in %s, whichever version wrote" % (version, version), evs)
        w.close()
    first = wt.next()
    check(first["object"]["kind"] == "Table" and
          [c["name"] for c in first["object"]["columnDefinitions"]][:3] == ["Name", "SourceKind", "SourceName"],
          "a Table watch through v1alpha1 has v1alpha1's columns", first)
    wt.close()

    u = urllib.parse.urlsplit(srv.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    path = "/apis/instancetype.kubevirt.io/v1alpha2/namespaces/default/virtualmachinepreferences"
    for method, p, want in (("GET", path + "/none", 404), ("GET", path, 200),
                            ("GET", path + "?watch=1&timeoutSeconds=1", 200)):
        conn.request(method, p)
        resp = conn.getresponse()
        resp.read()
        check(resp.status == want and resp.getheader("Warning") == '299 - "instancetype.kubevirt.io/v1alpha2 '
              'VirtualMachinePreferences is now deprecated and will be removed in v1."',
              "%s %s (%d) carries the deprecation Warning" % (method, p, want), resp.getheaders())
    conn.request("GET", path.replace("v1alpha2", "v1beta1"))
    resp = conn.getresponse()
    resp.read()
    check(resp.getheader("Warning") is None, "v1beta1 answers without a Warning")
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "things.example.kvlite.io"},
           "spec": {"group": "example.kvlite.io", "scope": "Cluster",
                    "names": {"kind": "Thing", "plural": "things"},
                    "versions": [{"name": "v1", "served": True, "storage": True},
                                 {"name": "v1beta1", "served": True, "storage": False, "deprecated": True,
                                  "deprecationWarning": 'say "hi" \\ then go'}]}}
    check(r("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)[0] == 201, "a CRD with a "
          "quoted deprecationWarning")
    conn.request("GET", "/apis/example.kvlite.io/v1beta1/things")
    resp = conn.getresponse()
    resp.read()
    check(resp.getheader("Warning") == '299 - "say \\"hi\\" \\\\ then go"', "quotes and backslashes escaped "
          "as net.NewWarningHeader does", resp.getheader("Warning"))
    conn.close()
    crd["spec"]["versions"][0]["storage"] = False
    crd["spec"]["names"] = {"kind": "Widget", "plural": "widgets"}
    code, st = r("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                 dict(crd, metadata={"name": "widgets.example.kvlite.io"}))
    check(code == 422 and "exactly one version marked as storage version" in st["message"],
          "a CRD without a storage version is invalid", code, st)


def test_restart(tmp):
    state = os.path.join(tmp, "state.json")
    srv = ApiServer("--state-file", state)
    obj = srv.request("POST", B, vmi("persist"))[1]
    srv.stop()
    srv2 = ApiServer("--state-file", state)
    code, again = srv2.request("GET", B + "/persist")
    check(code == 200 and again["metadata"]["uid"] == obj["metadata"]["uid"], "state survives a restart")
    code, lst = srv2.request("GET", B)
    check(int(lst["metadata"]["resourceVersion"]) >= int(obj["metadata"]["resourceVersion"]), "rv counter kept")
    w = Watch(srv2, B + "?watch=1&resourceVersion=1")
    e = w.next()
    check(e["type"] == "ERROR" and e["object"]["code"] == 410, "old rv after restart is 410", e)
    srv2.stop()


def main():
    srv = ApiServer()
    test_watch(srv)
    test_lists(srv)
    test_writes(srv)
    test_deletion(srv)
    test_faults(srv)
    test_versions(srv)
    srv.stop()
    test_restart(srv.dir)


if __name__ == "__main__":
    run(main)
