#!/usr/bin/env python3
# The kubelet stand-in against the test apiserver: Node registration, a Pod whose command runs in a private mount
# namespace with emptyDir/hostPath/image volumes, status (phase, podIP, exit code, termination message), logs,
# a failing container, and graceful deletion (SIGTERM, then the Pod object is removed).
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from testlib import SKIP, ApiServer, check, run, wait_for  # noqa: E402

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
    if os.geteuid() != 0 or subprocess.run(["unshare", "--mount", "true"], capture_output=True).returncode != 0:
        print("SKIP: needs root and unshare --mount")
        sys.exit(SKIP)
    tmp = tempfile.mkdtemp(prefix="kubelet-test.")
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
        script = ("echo hi $POD_NAME; cat /var/run/kvtest/img/marker; echo done > /var/run/kvtest/host/out; "
                  "echo scratch > /var/run/kvtest/run/x; echo bye > /dev/termination-log; sleep 1")
        srv.request("POST", PODS, pod("hello", script,
                                      volumes=[{"name": "run", "emptyDir": {}},
                                               {"name": "img", "image": {"reference": image}},
                                               {"name": "host", "hostPath": {"path": host}}],
                                      mounts=[{"name": "run", "mountPath": "/var/run/kvtest/run"},
                                              {"name": "img", "mountPath": "/var/run/kvtest/img", "readOnly": True},
                                              {"name": "host", "mountPath": "/var/run/kvtest/host"}]))
        wait_for("hello Running", lambda: phase(srv, "hello") in ("Running", "Succeeded"))
        p = srv.request("GET", PODS + "/hello")[1]
        check(p["status"]["podIP"] == "127.0.0.1", "podIP reported", p["status"])
        wait_for("hello Succeeded", lambda: phase(srv, "hello") == "Succeeded")
        p = srv.request("GET", PODS + "/hello")[1]
        term = p["status"]["containerStatuses"][0]["state"]["terminated"]
        check(term["exitCode"] == 0 and term["reason"] == "Completed" and term["message"] == "bye\n",
              "exit code and termination message", term)
        code, log = srv.request("GET", PODS + "/hello/log", raw=True)
        check(code == 200 and log == b"hi hello\nfrom-image\n", "container log through pods/log", log)
        check(open(os.path.join(host, "out")).read() == "done\n", "hostPath volume is bind-mounted")
        check(not os.path.exists("/var/run/kvtest/run/x"), "mounts stay in the Pod's mount namespace")

        srv.request("POST", PODS, pod("fails", "echo oops >&2; exit 3"))
        wait_for("fails Failed", lambda: phase(srv, "fails") == "Failed")
        st = srv.request("GET", PODS + "/fails")[1]["status"]["containerStatuses"][0]["state"]["terminated"]
        check(st["exitCode"] == 3 and st["reason"] == "Error", "a failing container fails the Pod", st)

        srv.request("POST", PODS, pod("sleeper", "trap 'echo term; exit 0' TERM; sleep 60 & wait", grace=5))
        wait_for("sleeper Running", lambda: phase(srv, "sleeper") == "Running")
        time.sleep(0.3)
        t0 = time.monotonic()
        code, p = srv.request("DELETE", PODS + "/sleeper")
        check(p["metadata"]["deletionGracePeriodSeconds"] == 5, "deletion is graceful", p["metadata"])
        wait_for("sleeper removed", lambda: srv.request("GET", PODS + "/sleeper")[0] == 404, timeout=15)
        check(time.monotonic() - t0 < 4, "SIGTERM ends the container and the kubelet removes the Pod")
        check(open(os.path.join(logs, "default_sleeper_c.log")).read().strip() == "term", "container saw SIGTERM")

        srv.request("POST", PODS, pod("stubborn", "trap '' TERM; sleep 60", grace=1))
        wait_for("stubborn Running", lambda: phase(srv, "stubborn") == "Running")
        srv.request("DELETE", PODS + "/stubborn")
        wait_for("stubborn removed", lambda: srv.request("GET", PODS + "/stubborn")[0] == 404, timeout=15)
        check(True, "SIGKILL after the grace period")

        srv.request("POST", PODS, pod("noimage", "true", volumes=[{"name": "i", "image": {"reference": "quay.io/x"}}]))
        wait_for("noimage Failed", lambda: phase(srv, "noimage") == "Failed")
        msg = srv.request("GET", PODS + "/noimage")[1]["status"]["message"]
        check("does not pull images" in msg, "an unpullable image volume fails with a reason", msg)
    finally:
        kubelet.terminate()
        try:
            kubelet.wait(10)
        except subprocess.TimeoutExpired:
            kubelet.kill()
            kubelet.wait()
        srv.stop()


if __name__ == "__main__":
    run(main)
