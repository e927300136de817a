"""The cluster side of the launcher tests: the Kubernetes API test server over HTTPS with a service account,
the Pod environment a launcher gets there, the real kubectl, and the status annotation a reporter patches
onto its Pod. Used by launcher_cluster.py and launcher_cluster_snapshots.py."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("KV_SOURCE_ROOT") or os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.join(SRC, "controller", "tests"))
sys.path.insert(0, os.path.join(SRC, "tests", "kube-api"))
from kubetest import POD_PATH, VMI_PATH, Server, wait_for  # noqa: E402,F401
from launcherlib import check  # noqa: E402
from testlib import find_kubectl  # noqa: E402

ANN = "kvlite.io/launcher-status"


def need_kubectl():
    kubectl = find_kubectl()
    if not kubectl:
        print("SKIP: no kubectl")
        sys.exit(77)
    return kubectl


def log_of(launcher):
    with open(launcher.log_path, errors="replace") as f:
        return f.read()


class Cluster:
    """Server + kubectl; stop() on every path."""

    def __init__(self):
        self.kubectl_path = need_kubectl()
        self.srv = Server("--tls-port", "0")
        self.srv.sa_dir = os.path.join(self.srv.dir, "sa")
        self.srv.extra += ["--serviceaccount-dir", self.srv.sa_dir]
        self.home = tempfile.mkdtemp(prefix="kv-lt-cluster-home-")

    def start(self):
        self.srv.start()
        self.host, self.port = self.srv.info["https_url"].rsplit("//", 1)[1].rsplit(":", 1)

    def pod_env(self, pod, **extra):
        env = {"POD_NAME": pod, "POD_NAMESPACE": "default", "KUBERNETES_SERVICE_HOST": self.host,
               "KUBERNETES_SERVICE_PORT": self.port, "KVLITE_SA_DIR": self.srv.sa_dir}
        env.update(extra)
        return env

    def create_pod(self, pod):
        self.srv.api.create(POD_PATH % "default", {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod},
            "spec": {"containers": [{"name": "compute", "image": "x"}]}})

    def kubectl(self, *args):
        r = subprocess.run([self.kubectl_path, "--kubeconfig", self.srv.kubeconfig, *args], capture_output=True,
                           text=True, timeout=30, env=dict(os.environ, HOME=self.home))
        check(r.returncode == 0, f"kubectl {' '.join(args)}: {r.stderr.strip()}")
        return r.stdout

    def annotation(self, pod):
        """The launcher status its reporter patched onto the Pod ({} before the first)."""
        _, obj = self.srv.api.get(POD_PATH % "default" + "/" + pod)
        text = ((obj or {}).get("metadata", {}).get("annotations") or {}).get(ANN)
        return json.loads(text) if text else {}

    def stop(self):
        self.srv.stop()
        shutil.rmtree(self.home, ignore_errors=True)
