# endpoints.py: the endpoints controller of kube-controller-manager, for tests: every Service with a selector
# gets an Endpoints object of the same name listing the selected Pods that have an IP (Ready ones in
# addresses, the others in notReadyAddresses) with the Service's target ports (named ports resolved
# against each Pod's container ports). Tests then connect to a Service's endpoint as kube-proxy would route.
import sys
import threading
import urllib.parse


def ready(pod):
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def target_port(port, pod):
    """A Service port's targetPort on this Pod: a number, a named container port, or the port itself."""
    target = port.get("targetPort", port["port"])
    if isinstance(target, int) or str(target).isdigit():
        return int(target)
    for c in pod["spec"].get("containers") or []:
        for cp in c.get("ports") or []:
            if cp.get("name") == target:
                return cp["containerPort"]
    return None


def subsets(svc, pods):
    """The Endpoints subsets for svc: one per distinct port list, as the endpoints controller groups them."""
    sel = (svc.get("spec") or {}).get("selector") or {}
    groups = {}
    for pod in pods:
        labels = pod["metadata"].get("labels") or {}
        ip = (pod.get("status") or {}).get("podIP")
        if not ip or pod["metadata"].get("deletionTimestamp") or any(labels.get(k) != v for k, v in sel.items()):
            continue
        ports = []
        for p in svc["spec"].get("ports") or []:
            n = target_port(p, pod)
            if n is not None:
                ports.append({k: v for k, v in (("name", p.get("name")), ("port", n),
                                                ("protocol", p.get("protocol", "TCP"))) if v is not None})
        addr = {"ip": ip, "nodeName": pod["spec"].get("nodeName"),
                "targetRef": {"kind": "Pod", "namespace": pod["metadata"]["namespace"],
                              "name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"]}}
        group = groups.setdefault(repr(ports), {"ports": ports})
        group.setdefault("addresses" if ready(pod) else "notReadyAddresses", []).append(addr)
    return list(groups.values())


class EndpointsController(threading.Thread):
    """Keeps the Endpoints of every Service with a selector (all namespaces) up to date."""

    def __init__(self, client, interval=0.2):
        super().__init__(daemon=True)
        self.c, self.halt, self.interval = client, threading.Event(), interval

    def run(self):
        while not self.halt.wait(self.interval):
            try:
                self.once()
            except Exception as e:  # the server may be stopping
                print("endpoints: %s" % e, file=sys.stderr)

    def once(self):
        pods = self.c.call("GET", "/api/v1/pods")["items"]
        current = {(e["metadata"]["namespace"], e["metadata"]["name"]): e
                   for e in self.c.call("GET", "/api/v1/endpoints")["items"]}
        for svc in self.c.call("GET", "/api/v1/services")["items"]:
            if not (svc.get("spec") or {}).get("selector"):
                continue  # a Service without selector: its Endpoints are the user's
            ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
            want = subsets(svc, [p for p in pods if p["metadata"]["namespace"] == ns])
            old = current.get((ns, name))
            path = "/api/v1/namespaces/%s/endpoints" % ns
            body = {"apiVersion": "v1", "kind": "Endpoints", "subsets": want,
                    "metadata": {"name": name, "namespace": ns, "labels": svc["metadata"].get("labels") or {}}}
            if old is None:
                self.c.call("POST", path, body)
            elif (old.get("subsets") or []) != want:
                body["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
                self.c.call("PUT", "%s/%s" % (path, urllib.parse.quote(name)), body)

    def stop(self):
        self.halt.set()
