#!/usr/bin/env python3
"""The launcher Pod in a real container runtime (docs/images.md):
1. crds/build-images.sh builds every image of crds/ with buildah from this build's binaries and a debootstrap
   base (nothing pulled from any registry) and pushes them to a local docker-registry;
2. virt-controller, pointed at that registry's launcher image, renders the launcher Pod of a VMI on the
   project's API test server (no kubelet: the Pod stays unscheduled, exactly as rendered);
3. the node agent (virt-handler) serves its device plugins to the kubelet stand-in's device-plugin side, which
   allocates the Pod's devices.kubevirt.io/* requests through Allocate (/dev/kvm only where kvmcheck says
   usable: elsewhere the controller runs with --use-emulation, as a cluster without KVM is configured);
4. what a node provides is filled in and nothing else: the allocated device nodes as CharDevice hostPaths,
   secret volumes as their files, the service account's credentials and the API server's address (the host's
   address on podman's Pod network, where the API server and the registry listen);
5. `podman kube play` (runc) runs it, not privileged, with the Pod's capabilities; the images are pulled from
   the registry; the init container (the importer image) pulls the containerDisk, the test guest pushed as an
   image, from the registry into the Pod's emptyDir; from inside the container the guest's console shows it
   booted, the launcher's control socket says Running, the guest leased the Pod's address over the Pod
   network, the capabilities are the Pod's and /dev holds the allocated devices and no others; the reporter,
   with the Pod's service account, patched the launcher's Running status onto the Pod in the API server: the
   guest took the Pod's address (bridge binding, KubeVirt's default), so it did so through virt-handler's
   API-server relay, as on a real node.
Every container, pod, image and storage directory the test made is removed, also on failure."""
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("KV_SOURCE_ROOT") or os.path.abspath(os.path.join(HERE, "..", ".."))
BUILD = os.environ.get("KV_BUILD_ROOT") or os.path.join(SRC, "build")
GUEST = os.environ.get("KV_GUEST_DIR") or os.path.join(SRC, ".cache", "guest")
sys.path[:0] = [os.path.join(SRC, "tests"), os.path.join(SRC, "tests", "kube-api"),
                os.path.join(SRC, "controller", "tests"), os.path.join(SRC, "importer", "tests")]
import hostcaps  # noqa: E402
from proclib import stop_process  # noqa: E402
from kubetest import POD_PATH, VMI_PATH, Controller, Server, cleanup, vmi_manifest, wait_for  # noqa: E402

SKIP = 77
BUILD_IMAGES = os.path.join(SRC, "crds", "build-images.sh")
NODE = "images-node"
VMI = "podman-vmi"
TAG = "0.1.0"
RUN_DIR = "/var/run/kvlite"
# The test guest's disk, pushed as a containerDisk image (FROM scratch, /disk/disk.qcow2) that the launcher Pod's
# init container pulls
GUEST_QCOW2 = os.path.join(GUEST, "containerdisk", "disk", "disk.qcow2")
SA_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
LAUNCHER_STATUS = "kvlite.io/launcher-status"  # the reporter's patch on its Pod
# What the note on these machines says podman needs with runc (docs/images.md): rlimits it may set, runc
# (crun refuses hybrid cgroups), and no systemd or journald behind it.
CONTAINERS_CONF = """[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""
# CAP_NET_ADMIN (12) and CAP_NET_BIND_SERVICE (10): what the controller's Pod adds after dropping ALL
POD_CAPS = (1 << 12) | (1 << 10)


def missing_host():
    for exe in ("podman", "buildah", "runc", "catatonit", "docker-registry", "debootstrap"):
        if not shutil.which(exe) and not os.path.exists("/usr/libexec/podman/" + exe):
            return "no %s (ci/deps.sh installs it)" % exe
    if not os.path.exists(GUEST_QCOW2):
        return "no test guest in %s (tests/guest/build.sh)" % GUEST
    return hostcaps.missing("root", "tun") or missing_base()


class Runtime:
    """podman and buildah on a storage of the test's own, with the containers.conf above."""

    def __init__(self, tmp):
        self.tmp = tmp
        conf = os.path.join(tmp, "containers.conf")
        with open(conf, "w") as f:
            f.write(CONTAINERS_CONF)
        self.env = dict(os.environ, CONTAINERS_CONF=conf, TMPDIR=os.path.join(tmp, "t"))
        os.makedirs(self.env["TMPDIR"])
        self.store = ["--root", os.path.join(tmp, "storage"), "--runroot", os.path.join(tmp, "runroot"),
                      "--storage-driver", "overlay"]

    def run(self, *argv, check=True, timeout=300):
        r = subprocess.run(list(argv), capture_output=True, text=True, env=self.env, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError("%s: exit %d\n%s%s" % (" ".join(a for a in argv if a not in self.store),
                                                        r.returncode, r.stdout[-3000:], r.stderr[-3000:]))
        return r

    def podman(self, *args, **kw):
        return self.run("podman", *self.store, "--tmpdir", os.path.join(self.tmp, "libpod"), *args, **kw)

    def container_logs(self):
        """Every container's name, state and last log lines (an init container that failed, say)."""
        out = []
        for c in json.loads(self.podman("ps", "-a", "--format", "json", check=False).stdout or "[]"):
            logs = self.podman("logs", "--tail", "15", c["Id"], check=False)
            out.append("--- %s (%s, exit %s):\n%s%s" % (c["Names"][0], c["State"], c.get("ExitCode"),
                                                      logs.stdout[-1500:], logs.stderr[-1500:]))
        return "\n".join(out)

    def remove_all(self):
        """Every pod, container, volume and image of this storage, then the storage itself."""
        self.run("buildah", *self.store, "rm", "--all", check=False)  # working containers of a failed build
        for args in (("pod", "rm", "--all", "--force", "--time", "2"), ("rm", "--all", "--force"),
                     ("volume", "rm", "--all", "--force"), ("system", "reset", "--force")):
            r = self.podman(*args, check=False, timeout=120)
            if r.returncode:
                print("cleanup: podman %s: %s" % (" ".join(args), r.stderr.strip()[-300:]), file=sys.stderr)


def missing_base():
    """None when the images' Debian base is cached (ci/test.sh makes it) or can be made now (debootstrap from
    Debian's mirror), else why not."""
    r = subprocess.run([BUILD_IMAGES, "--base-only"], capture_output=True, text=True, timeout=1200)
    return None if r.returncode == 0 else "no base for the images: %s" % (r.stderr.strip().splitlines() or ["?"])[-1]


def build_images(rt, registry):
    t0 = time.monotonic()
    rt.run(BUILD_IMAGES, "--build", BUILD, "--root", rt.store[1], "--runroot", rt.store[3],
           "--push", registry.addr, "--tag", TAG, timeout=600)
    took = time.monotonic() - t0
    for name in ("virt-launcher", "virt-controller", "virt-api", "importer", "virt-handler"):
        out = rt.run("skopeo", "inspect", "--tls-verify=false",
                     "docker://%s/kvlite/%s:%s" % (registry.addr, name, TAG)).stdout
        assert json.loads(out)["Os"] == "linux", out
    print("images: 5 built and pushed to %s in %.0f s" % (registry.addr, took))


def kvm_usable():
    out = subprocess.run([os.path.join(BUILD, "kvmcheck", "kvmcheck"), "--json"], capture_output=True, text=True)
    return json.loads(out.stdout)["verdict"] == "usable"


def pod_network(rt):
    """(bridge, gateway address, what was made here) of podman's default Pod network. The gateway is the host's
    address on the Pod network: the Pod reaches the API server and the registry there, as a Pod on a node reaches
    them through Services. They listen on it before the Pod starts, so the bridge is made here when podman has
    not made it yet (CNI would make it, the same, at the first container)."""
    net = json.loads(rt.podman("network", "inspect", "podman").stdout)[0]
    sub, br = net["subnets"][0], net["network_interface"]
    gw, prefix = sub["gateway"], sub["subnet"].split("/")[1]
    made = []  # how to undo what was made here, in order
    if subprocess.run(["ip", "link", "show", br], capture_output=True).returncode:
        rt.run("ip", "link", "add", br, "type", "bridge")
        made.append(("ip", "link", "del", br))
    (link,) = json.loads(rt.run("ip", "-j", "addr", "show", "dev", br).stdout)
    if gw not in [a["local"] for a in link.get("addr_info", [])]:
        rt.run("ip", "addr", "add", "%s/%s" % (gw, prefix), "dev", br)
        made.insert(0, ("ip", "addr", "del", "%s/%s" % (gw, prefix), "dev", br))
    rt.run("ip", "link", "set", br, "up")
    return gw, made


def registry_secret(srv, registry):
    """kvlite/kvlite-registries (the controller's --registry-config): the test registry over plain HTTP."""
    cfg = "registries:\n- prefix: %s\n  mirrors:\n  - location: %s\n    plainHTTP: true\n" % (
        registry.addr, registry.addr)
    srv.api.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kvlite"}})
    srv.api.create("/api/v1/namespaces/kvlite/secrets", {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "kvlite-registries"},
        "stringData": {"registries.yaml": cfg}})


def rendered_pod(srv, registry, emulation, relay_dir):
    """The launcher Pod virt-controller renders for the test VMI, as the API server holds it: its containerDisk
    is a registry image, pulled by an init container running the importer image."""
    extra = ["--launcher-image", "%s/kvlite/virt-launcher:%s" % (registry.addr, TAG),
             "--importer-image", "%s/kvlite/importer:%s" % (registry.addr, TAG), "--api-relay-dir", relay_dir]
    if emulation:
        extra.append("--use-emulation")
    ctl = Controller(srv, *extra).start()
    try:
        vmi = vmi_manifest(VMI, memory="128Mi", image="%s/kvlite/guest-disk:%s" % (registry.addr, TAG))
        vmi["spec"]["terminationGracePeriodSeconds"] = 5
        srv.api.create(VMI_PATH % "default", vmi)
        return wait_for("the launcher Pod of " + VMI, lambda: (srv.api.items(POD_PATH % "default") or [None])[0],
                        timeout=30)
    finally:
        ctl.stop()


class DevicePlugins:
    """virt-handler: its device plugins, registered with the kubelet's side of the API (tests/kube-api), and its
    API-server relay in the node directory the launcher Pod mounts."""

    def __init__(self, srv, tmp, relay_dir):
        import deviceplugin
        self.dir = os.path.join(tmp, "device-plugins")
        self.mgr = deviceplugin.DeviceManager(self.dir, lambda: None, lambda msg, **kw: None)
        self.mgr.start()
        srv.api.create("/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE}})
        self.log = open(os.path.join(tmp, "virt-handler.log"), "w")
        self.agent = subprocess.Popen([os.path.join(BUILD, "handler", "virt-handler"), "--node-name", NODE,
                                       "--kubeconfig", srv.https_kubeconfig, "--device-plugin-dir", self.dir,
                                       "--api-relay-dir", relay_dir],
                                      stdout=subprocess.DEVNULL, stderr=self.log)

    def allocate(self, pod):
        """{container: [(host path, container path)]} from Allocate for the Pod's extended resources."""
        from kubelet import extended_requests
        wants = [(c["name"], extended_requests(c)) for c in pod["spec"]["containers"]]
        for _, w in wants:
            for res, n in w.items():
                wait_for("%s advertised" % res, lambda: self.mgr.capacity().get(res, (0, 0))[1] >= n, timeout=30)
        specs = self.mgr.allocate(pod["metadata"]["uid"], wants)
        return {c: [(d.host_path, d.container_path) for d in ds] for c, ds in specs.items()}

    def stop(self):
        stop_process(self.agent, grace=20)
        self.mgr.stop()


def secret_dir(srv, tmp, ns, name):
    """A Secret's keys as files, as the kubelet mounts a secret volume."""
    _, sec = srv.api.get("/api/v1/namespaces/%s/secrets/%s" % (ns, name))
    d = os.path.join(tmp, "secret-" + name)
    os.makedirs(d)
    files = {k: base64.b64decode(v) for k, v in (sec.get("data") or {}).items()}
    files.update({k: v.encode() for k, v in (sec.get("stringData") or {}).items()})
    for k, v in files.items():
        with open(os.path.join(d, k), "wb") as f:
            f.write(v)
    return d


def node_view(srv, tmp, pod, devices):
    """The Pod as podman runs it: what a node adds (secret volumes' files, emptyDirs as the kubelet makes them, the
    service account's credentials and the API server's address as the kubelet injects them, the allocated
    devices) and nothing else changed.
    Returns the manifest and the expected container name."""
    pod = dict(json.loads(json.dumps(pod)), apiVersion="v1", kind="Pod")  # a list's items carry no kind
    pod.pop("status", None)
    spec = pod["spec"]
    (c,) = spec["containers"]
    ns = pod["metadata"]["namespace"]
    for vol in spec["volumes"]:
        assert "image" not in vol, "a registry containerDisk is pulled by an init container: %s" % vol
        if "secret" in vol:  # podman 4.3 mounts podman secrets only: the kubelet's files, as a hostPath
            vol["hostPath"] = {"path": secret_dir(srv, tmp, ns, vol.pop("secret")["secretName"]), "type": "Directory"}
        if "emptyDir" in vol and vol["emptyDir"].get("medium") != "Memory":
            # the kubelet makes an emptyDir mode 0777, podman's volume is root's 0755: the importer's init
            # container runs as its image's user (107, as CDI's), and writes the containerDisk there
            d = os.path.join(tmp, "emptydir-" + vol["name"])
            os.makedirs(d)
            os.chmod(d, 0o777)
            del vol["emptyDir"]
            vol["hostPath"] = {"path": d, "type": "Directory"}
    spec["volumes"].append({"name": "kube-api-access", "hostPath": {"path": srv.sa_dir, "type": "Directory"}})
    host, port = srv.info["https_url"].rsplit("//", 1)[1].rsplit(":", 1)
    for ctr in spec.get("initContainers", []) + [c]:
        ctr.setdefault("volumeMounts", []).append({"name": "kube-api-access", "mountPath": SA_PATH, "readOnly": True})
        ctr.setdefault("env", []).extend([{"name": "KUBERNETES_SERVICE_HOST", "value": host},
                                          {"name": "KUBERNETES_SERVICE_PORT", "value": port}])
    for env in c.get("env", []):  # the kubelet resolves the downward API (podman 4.3 knows only metadata.name)
        ref = env.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath", "")
        if ref.startswith("metadata.") and isinstance(pod["metadata"].get(ref[9:]), str):
            env["value"] = pod["metadata"][ref[9:]]
            del env["valueFrom"]
    for i, (host, path) in enumerate(devices.get(c["name"], [])):
        spec["volumes"].append({"name": "dev-%d" % i, "hostPath": {"path": host, "type": "CharDevice"}})
        c["volumeMounts"].append({"name": "dev-%d" % i, "mountPath": path})
    return pod, "%s-%s" % (pod["metadata"]["name"], c["name"])


def check_pod(rt, pod, ctr, devices):
    sc = pod["spec"]["containers"][0]["securityContext"]
    assert not sc.get("privileged") and sc["capabilities"]["drop"] == ["ALL"], sc
    info = json.loads(rt.podman("inspect", ctr).stdout)[0]
    assert info["HostConfig"]["Privileged"] is False, info["HostConfig"]["Privileged"]
    assert info["ImageName"] == pod["spec"]["containers"][0]["image"], info["ImageName"]  # from the registry

    def serial():
        r = rt.podman("exec", ctr, "cat", RUN_DIR + "/serial.log", check=False)
        if rt.podman("inspect", "--format", "{{.State.Running}}", ctr, check=False).stdout.strip() != "true":
            raise AssertionError("the launcher container stopped:\n%s" % rt.podman("logs", ctr, check=False).stderr)
        return "KVGUEST READY" in r.stdout and r.stdout
    inits = [i["name"] for i in pod["spec"].get("initContainers", [])]
    assert inits == ["container-disk-root"], inits
    out = wait_for("KVGUEST READY on the guest's console inside the container", serial, timeout=120, interval=1)
    pulled = rt.podman("exec", ctr, "ls", "-R", RUN_DIR + "/images/root").stdout.split()
    assert any(f.endswith(".qcow2") or f.endswith(".img") for f in pulled), pulled
    print("containerDisk pulled by the init container %s: %s" % (inits[0], pulled))
    print("guest console (inside the container): %s" % [l for l in out.splitlines() if "KVGUEST READY" in l][0])
    status = json.loads(rt.podman("exec", ctr, "virt-launcher", "ctl", "--run-dir", RUN_DIR, "status").stdout)
    st = status["status"]
    print("launcher status: phase %s, accel %s, qemu %s" % (st["phase"], st["accel"], st["qemuStatus"]))
    assert st["phase"] == "Running" and st["qemuStatus"] == "running", status
    assert st["accel"] == ("kvm" if "/dev/kvm" in dict(devices.get("compute", [])).values() else "tcg"), status
    # the Pod network with the Pod's capabilities and /dev/net/tun: the guest leases the Pod's own address
    infra = rt.podman("pod", "inspect", "--format", "{{.InfraContainerID}}", pod["metadata"]["name"]).stdout.strip()
    pod_ip = rt.podman("inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                       infra).stdout.strip()
    wait_for("the guest's DHCP lease of the Pod's address %s" % pod_ip, lambda: pod_ip and (
        "the guest took its lease %s\"" % pod_ip) in rt.podman("logs", ctr).stderr, timeout=30, interval=0.5)
    caps = dict(l.split(":\t") for l in rt.podman("exec", ctr, "cat", "/proc/1/status").stdout.splitlines()
                if l.startswith("Cap"))
    assert int(caps["CapBnd"], 16) == POD_CAPS, caps
    listing = set(rt.podman("exec", ctr, "ls", "-A", "/dev", "/dev/net").stdout.split())
    want = {os.path.basename(p) for _, p in devices.get("compute", [])}
    for dev in ("kvm", "tun", "vhost-net", "vhost-vsock"):
        assert (dev in listing) == (dev in want), (dev, sorted(listing), want)
    print("container: not privileged, capability bound %s, devices %s, guest on the Pod's address %s" % (
        caps["CapBnd"], sorted(want), pod_ip))


def check_reporter(rt, srv, pod, ctr):
    """The reporter, from inside the container, with the Pod's service account, through virt-handler's relay (the
    Pod's own address is the guest's): the launcher's status patched onto the Pod in the API server."""
    name = pod["metadata"]["name"]

    def running():
        _, obj = srv.api.get(POD_PATH % "default" + "/" + name)
        st = json.loads(((obj or {}).get("metadata", {}).get("annotations") or {}).get(LAUNCHER_STATUS) or "{}")
        return st.get("phase") == "Running" and st
    try:
        st = wait_for("the reporter's Running status on Pod " + name, running, timeout=30, interval=0.5)
    except AssertionError as e:
        logs = rt.podman("logs", ctr, check=False).stderr.splitlines()
        raise AssertionError("%s; the launcher's log on its reporter:\n%s" % (
            e, "\n".join(l for l in logs if "reporter" in l)[-3000:])) from None
    print("reporter: Pod %s annotated %s phase %s, qemu %s" % (name, LAUNCHER_STATUS, st["phase"],
                                                               st.get("qemuStatus")))


def main():
    why = missing_host()
    if why:
        print("SKIP: " + why)
        return SKIP
    # meson's timeout sends SIGTERM: unwind through the cleanup below (mounts of the container storage)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))
    tmp = tempfile.mkdtemp(prefix="kvlite-images-")
    rt = Runtime(tmp)
    from regfixtures import Registry, build_with_buildah
    srv = registry = plugins = None
    made = []
    ok = False
    try:
        gw, made = pod_network(rt)
        registry = Registry(tmp, "registry", host=gw)
        build_images(rt, registry)
        build_with_buildah(tmp, GUEST_QCOW2, [registry], repo="kvlite/guest-disk:" + TAG)
        srv = Server("--tls-port", "0", "--address", gw)
        srv.sa_dir = os.path.join(srv.dir, "sa")
        srv.https_kubeconfig = os.path.join(srv.dir, "kubeconfig-https.json")  # virt-handler's, as in-cluster
        srv.extra += ["--serviceaccount-dir", srv.sa_dir, "--kubeconfig-out", srv.https_kubeconfig]
        srv.start()
        registry_secret(srv, registry)
        emulation = not kvm_usable()
        relay_dir = os.path.join(tmp, "kvlite-node")  # the node's /var/run/kvlite-node
        pod = rendered_pod(srv, registry, emulation, relay_dir)
        plugins = DevicePlugins(srv, tmp, relay_dir)
        devices = plugins.allocate(pod)
        print("Allocate (%s): %s" % ("TCG, --use-emulation" if emulation else "KVM", devices))
        manifest, ctr = node_view(srv, tmp, pod, devices)
        path = os.path.join(tmp, "pod.json")
        with open(path, "w") as f:
            json.dump(manifest, f)
        t0 = time.monotonic()
        play = rt.podman("kube", "play", "--network", "podman", "--tls-verify=false", path, check=False)
        if play.returncode:
            raise AssertionError("podman kube play: exit %d\n%s\n%s" % (play.returncode, play.stderr[-2000:],
                                                                        rt.container_logs()))
        check_pod(rt, manifest, ctr, devices)
        check_reporter(rt, srv, manifest, ctr)
        print("podman kube play to guest READY: %.1f s" % (time.monotonic() - t0))
        ok = True
    finally:
        if not ok and srv:
            print("API server and controller logs kept in %s" % srv.dir)
        cleanup(*[x for x in (plugins, registry, srv) if x])
        rt.remove_all()
        for undo in made:
            subprocess.run(undo, capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
        if ok and srv:
            srv.remove()
    return 0


if __name__ == "__main__":
    sys.exit(main())
