#!/usr/bin/env python3
# The kubelet stand-in against the test apiserver: Node registration, a Pod whose command runs in a private mount
# namespace with emptyDir/hostPath/image/downwardAPI volumes, status (phase, podIP, exit code, termination message), logs,
# a failing container, and graceful deletion (SIGTERM, then the Pod object is removed). Then pod networking
# (--pod-cidr): the Pod's own netns, its address, resolv.conf and API server forwarder, reached from the node
# netns, and everything removed on Pod deletion and kubelet exit.
import ipaddress
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import hostcaps  # noqa: E402
from proclib import stop_process as stop  # noqa: E402
import testlib  # noqa: E402
from testlib import SKIP, ApiServer, check, run, wait_for  # noqa: E402
from kubelet import cleanup_state, netns_kill_all  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PODS = "/api/v1/namespaces/default/pods"


def pod(name, script, grace=30, volumes=(), mounts=(), policy="Never"):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": "n1", "restartPolicy": policy, "terminationGracePeriodSeconds": grace,
                     "volumes": list(volumes),
                     "containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", script],
                                     "volumeMounts": list(mounts),
                                     "env": [{"name": "POD_NAME",
                                              "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}]}}


def phase(srv, name):
    code, p = srv.request("GET", PODS + "/" + name)
    return p["status"].get("phase") if code == 200 else None


def main():
    why = hostcaps.missing("root", "ip", "mountns", "netns", "veth", "bridge")
    if why:
        print("SKIP: %s" % why)
        sys.exit(SKIP)
    tmp = tempfile.mkdtemp(prefix="kubelet-test.")
    testlib._dirs.append(tmp)  # removed when the test passes
    logs = os.path.join(tmp, "logs")
    srv = ApiServer("--pod-log-dir", logs)
    kubelet = subprocess.Popen([sys.executable, os.path.join(HERE, "kubelet.py"), "--server", srv.url,
                                "--node-name", "n1", "--state-dir", os.path.join(tmp, "state"), "--log-dir", logs],
                               stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "kubelet.log"), "w"))
    try:
        wait_for("node n1", lambda: srv.request("GET", "/api/v1/nodes/n1")[0] == 200)
        code, node = srv.request("GET", "/api/v1/nodes/n1")
        check(node["status"]["conditions"][0]["type"] == "Ready", "the kubelet registers a Ready node")

        image = os.path.join(tmp, "image")
        host = os.path.join(tmp, "host")
        os.makedirs(image)
        os.makedirs(host)
        with open(os.path.join(image, "marker"), "w") as f:
            f.write("from-image\n")
        script = ("echo hi $POD_NAME; cat /var/run/kvtest/img/marker; echo; cat /var/run/kvtest/info/podname; echo; "
                  "echo done > /var/run/kvtest/host/out; "
                  "echo scratch > /var/run/kvtest/run/x; echo bye > /dev/termination-log; sleep 1")
        srv.request("POST", PODS, pod("hello", script,
                                      volumes=[{"name": "run", "emptyDir": {}},
                                               {"name": "img", "image": {"reference": image}},
                                               {"name": "host", "hostPath": {"path": host}},
                                               {"name": "info", "downwardAPI": {"items": [
                                                   {"path": "podname",
                                                    "fieldRef": {"fieldPath": "metadata.name"}}]}}],
                                      mounts=[{"name": "run", "mountPath": "/var/run/kvtest/run"},
                                              {"name": "img", "mountPath": "/var/run/kvtest/img", "readOnly": True},
                                              {"name": "host", "mountPath": "/var/run/kvtest/host"},
                                              {"name": "info", "mountPath": "/var/run/kvtest/info", "readOnly": True}]))
        wait_for("hello Running", lambda: phase(srv, "hello") in ("Running", "Succeeded"))
        p = srv.request("GET", PODS + "/hello")[1]
        check(p["status"]["podIP"] == "127.0.0.1", "podIP reported", p["status"])
        wait_for("hello Succeeded", lambda: phase(srv, "hello") == "Succeeded")
        p = srv.request("GET", PODS + "/hello")[1]
        term = p["status"]["containerStatuses"][0]["state"]["terminated"]
        check(term["exitCode"] == 0 and term["reason"] == "Completed" and term["message"] == "bye\n",
              "exit code and termination message", term)
        code, log = srv.request("GET", PODS + "/hello/log", raw=True)
        check(code == 200 and log == b"hi hello\nfrom-image\n\nhello\n",
              "container log through pods/log (a downwardAPI volume's file read)", log)
        check(open(os.path.join(host, "out")).read() == "done\n", "hostPath volume is bind-mounted")
        check(not os.path.exists("/var/run/kvtest/run/x"), "mounts stay in the Pod's mount namespace")

        srv.request("POST", PODS, pod("fails", "echo oops >&2; exit 3"))
        wait_for("fails Failed", lambda: phase(srv, "fails") == "Failed")
        st = srv.request("GET", PODS + "/fails")[1]["status"]["containerStatuses"][0]["state"]["terminated"]
        check(st["exitCode"] == 3 and st["reason"] == "Error", "a failing container fails the Pod", st)

        srv.request("POST", PODS, pod("sleeper", "trap 'echo term; exit 0' TERM; echo ready; sleep 60 & wait",
                                      grace=5))
        wait_for("sleeper Running", lambda: phase(srv, "sleeper") == "Running")
        sleeper_log = os.path.join(logs, "default_sleeper_c.log")
        # Running means spawned; only the container's own line says its shell has set the trap (on a loaded
        # machine that can take longer than any fixed pause)
        wait_for("sleeper's trap set", lambda: os.path.exists(sleeper_log) and "ready" in open(sleeper_log).read())
        t0 = time.monotonic()
        code, p = srv.request("DELETE", PODS + "/sleeper")
        check(p["metadata"]["deletionGracePeriodSeconds"] == 5, "deletion is graceful", p["metadata"])
        wait_for("sleeper removed", lambda: srv.request("GET", PODS + "/sleeper")[0] == 404, timeout=15)
        check(time.monotonic() - t0 < 4, "SIGTERM ends the container and the kubelet removes the Pod")
        check(open(sleeper_log).read().split() == ["ready", "term"], "container saw SIGTERM")

        srv.request("POST", PODS, pod("stubborn", "trap '' TERM; sleep 60", grace=1))
        wait_for("stubborn Running", lambda: phase(srv, "stubborn") == "Running")
        srv.request("DELETE", PODS + "/stubborn")
        wait_for("stubborn removed", lambda: srv.request("GET", PODS + "/stubborn")[0] == 404, timeout=15)
        check(True, "SIGKILL after the grace period")

        srv.request("POST", PODS, pod("noimage", "true", volumes=[{"name": "i", "image": {"reference": "quay.io/x"}}]))
        wait_for("noimage Failed", lambda: phase(srv, "noimage") == "Failed")
        msg = srv.request("GET", PODS + "/noimage")[1]["status"]["message"]
        check("does not pull images" in msg, "an unpullable image volume fails with a reason", msg)
        pod_network(srv, tmp)
    finally:
        stop(kubelet)
        srv.stop()


def netns_names():
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()


def in_node(node_ns, *cmd):
    return subprocess.run(["ip", "netns", "exec", node_ns, *cmd], capture_output=True, text=True, timeout=20)


def pod_network(srv, tmp):
    """A second kubelet with --pod-cidr in a node netns made here: the root namespace is never touched."""
    node_ns, state = "kvlt-node-%d" % os.getpid(), os.path.join(tmp, "state-n2")
    links_before = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True).stdout
    subprocess.run(["ip", "netns", "add", node_ns], check=True)
    kubelet = None
    try:
        kubelet = subprocess.Popen([sys.executable, os.path.join(HERE, "kubelet.py"), "--server", srv.url,
                                    "--node-name", "n2", "--state-dir", state, "--log-dir", os.path.join(tmp, "logs"),
                                    "--pod-cidr", "10.244.7.0/24", "--node-netns", node_ns,
                                    "--in-cluster-server", srv.url],
                                   stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "kubelet-n2.log"), "w"))
        wait_for("node n2", lambda: srv.request("GET", "/api/v1/nodes/n2")[0] == 200)
        healthz = ("import os, urllib.request; e = os.environ; print('healthz', urllib.request.urlopen("
                   "'http://%s:%s/healthz' % (e['KUBERNETES_SERVICE_HOST'], e['KUBERNETES_SERVICE_PORT'])).read().decode())")
        script = ("ip -4 -o addr show eth0; ip route show default; cat /etc/resolv.conf; python3 -c \"%s\"; "
                  "exec python3 -m http.server 8080 --bind $POD_IP --directory /etc" % healthz)
        spec = pod("web", script, grace=2)
        spec["spec"]["nodeName"] = "n2"
        spec["spec"]["containers"][0]["env"].append({"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath":
                                                                                                  "status.podIP"}}})
        srv.request("POST", PODS, spec)
        wait_for("web Running", lambda: phase(srv, "web") == "Running")
        st = srv.request("GET", PODS + "/web")[1]["status"]
        ip = st["podIP"]
        check(ipaddress.ip_address(ip) in ipaddress.ip_network("10.244.7.0/24") and ip != "10.244.7.1" and
              st["podIPs"] == [{"ip": ip}] and st["hostIP"] == "10.244.7.1", "podIP from --pod-cidr", st)
        netns = [n for n in netns_names() if n.startswith("kvl-" + srv.request("GET", PODS + "/web")[1]
                                                               ["metadata"]["uid"].replace("-", "")[:12])]
        check(len(netns) == 1, "the Pod has its own network namespace", netns_names())
        page = wait_for("web page from the node netns", lambda: (lambda r: r.returncode == 0 and r.stdout)(
            in_node(node_ns, "curl", "-s", "--max-time", "2", "http://%s:8080/resolv.conf" % ip)), timeout=15)
        out = open(os.path.join(tmp, "logs", "default_web_c.log")).read()
        check("inet %s/24" % ip in out and "default via 10.244.7.1 dev eth0" in out, "eth0 and route in the Pod", out)
        check("nameserver 10.244.7.1" in out and "search default.svc.cluster.local" in out,
              "the Pod's resolv.conf", out)
        check("healthz ok" in out, "the API server through KUBERNETES_SERVICE_HOST in the Pod's netns", out)
        check("nameserver 10.244.7.1" in page, "HTTP from the node netns to the Pod IP (serving its /etc)", page)
        check(subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True).stdout == links_before,
              "the root namespace's links and addresses are unchanged")
        srv.request("DELETE", PODS + "/web")
        wait_for("web removed", lambda: srv.request("GET", PODS + "/web")[0] == 404, timeout=15)
        check(netns[0] not in netns_names(), "Pod deletion removes its network namespace", netns_names())
        check(in_node(node_ns, "ip", "-o", "link", "show", "type", "veth").stdout == "", "and its veth")
        stop(kubelet)
        check(in_node(node_ns, "ip", "link", "show", "kvlbr0").returncode != 0, "kubelet exit removes the bridge")
    finally:
        if kubelet:
            stop(kubelet)
        cleanup_state(state)
        netns_kill_all(node_ns)
        subprocess.run(["ip", "netns", "del", node_ns])


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))  # a meson timeout still runs the finally blocks
    run(main)
