#!/usr/bin/env python3
"""The launcher Pod in a real container runtime (docs/images.md):
1. crds/build-images.sh builds every image of crds/ with buildah from this build's binaries and a debootstrap
   base (nothing pulled from any registry) and pushes them to a local docker-registry;
2. virt-controller, pointed at that registry's launcher image, renders the launcher Pod of a VMI on the
   project's API test server (no kubelet: the Pod stays unscheduled, exactly as rendered);
3. the node agent (virt-handler) serves its device plugins to the kubelet stand-in's device-plugin side, which
   allocates the Pod's devices.kubevirt.io/* requests through Allocate (/dev/kvm only where kvmcheck says
   usable: elsewhere the controller runs with --use-emulation, as a cluster without KVM is configured);
4. what a node provides is filled in and nothing else: the guest disk as a hostPath where the kubelet would
   mount the containerDisk's image volume, the allocated device nodes as CharDevice hostPaths;
5. `podman kube play` (runc) runs it, not privileged, with the Pod's capabilities; the image is pulled from
   the registry; from inside the container the guest's console shows it booted, the launcher's control
   socket says Running, the guest leased the Pod's address over the Pod network, the capabilities are the
   Pod's and /dev holds the allocated devices and no others.
Every container, pod, image and storage directory the test made is removed, also on failure."""
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
# The VMI's containerDisk: the test guest's image content (disk/disk.qcow2), a local directory, which the
# controller renders as an image volume (a registry reference would be pulled by an init container instead)
GUEST_DISK = os.path.join(GUEST, "containerdisk")
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
    if not os.path.exists(os.path.join(GUEST_DISK, "disk", "disk.qcow2")):
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


def rendered_pod(srv, registry, emulation):
    """The launcher Pod virt-controller renders for the test VMI, as the API server holds it."""
    extra = ["--launcher-image", "%s/kvlite/virt-launcher:%s" % (registry.addr, TAG)]
    if emulation:
        extra.append("--use-emulation")
    ctl = Controller(srv, *extra).start()
    try:
        vmi = vmi_manifest(VMI, memory="128Mi", image=GUEST_DISK)
        vmi["spec"]["terminationGracePeriodSeconds"] = 5
        srv.api.create(VMI_PATH % "default", vmi)
        return wait_for("the launcher Pod of " + VMI, lambda: (srv.api.items(POD_PATH % "default") or [None])[0],
                        timeout=30)
    finally:
        ctl.stop()


class DevicePlugins:
    """virt-handler's device plugins, registered with the kubelet's side of the API (tests/kube-api)."""

    def __init__(self, srv, tmp):
        import deviceplugin
        self.dir = os.path.join(tmp, "device-plugins")
        self.mgr = deviceplugin.DeviceManager(self.dir, lambda: None, lambda msg, **kw: None)
        self.mgr.start()
        srv.api.create("/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE}})
        self.log = open(os.path.join(tmp, "virt-handler.log"), "w")
        self.agent = subprocess.Popen([os.path.join(BUILD, "handler", "virt-handler"), "--node-name", NODE,
                                       "--kubeconfig", srv.kubeconfig, "--device-plugin-dir", self.dir],
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


def node_view(pod, devices):
    """The Pod as podman runs it: what a node adds (the image volume's content, the allocated devices) and
    nothing else changed. Returns the manifest and the expected container name."""
    pod = dict(json.loads(json.dumps(pod)), apiVersion="v1", kind="Pod")  # a list's items carry no kind
    pod.pop("status", None)
    spec = pod["spec"]
    (c,) = spec["containers"]
    for vol in spec["volumes"]:
        if "image" in vol:  # the kubelet mounts the containerDisk image's content read-only
            assert vol["image"]["reference"] == GUEST_DISK, vol
            del vol["image"]
            vol["hostPath"] = {"path": GUEST_DISK, "type": "Directory"}
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
    assert info["ImageName"].startswith("127.0.0.1:"), info["ImageName"]

    def serial():
        r = rt.podman("exec", ctr, "cat", RUN_DIR + "/serial.log", check=False)
        if rt.podman("inspect", "--format", "{{.State.Running}}", ctr, check=False).stdout.strip() != "true":
            raise AssertionError("the launcher container stopped:\n%s" % rt.podman("logs", ctr, check=False).stderr)
        return "KVGUEST READY" in r.stdout and r.stdout
    out = wait_for("KVGUEST READY on the guest's console inside the container", serial, timeout=120, interval=1)
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


def main():
    why = missing_host()
    if why:
        print("SKIP: " + why)
        return SKIP
    # meson's timeout sends SIGTERM: unwind through the cleanup below (mounts of the container storage)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))
    tmp = tempfile.mkdtemp(prefix="kvlite-images-")
    rt = Runtime(tmp)
    from regfixtures import Registry
    srv = registry = plugins = None
    ok = False
    try:
        registry = Registry(tmp, "registry")
        build_images(rt, registry)
        srv = Server().start()
        emulation = not kvm_usable()
        pod = rendered_pod(srv, registry, emulation)
        plugins = DevicePlugins(srv, tmp)
        devices = plugins.allocate(pod)
        print("Allocate (%s): %s" % ("TCG, --use-emulation" if emulation else "KVM", devices))
        manifest, ctr = node_view(pod, devices)
        path = os.path.join(tmp, "pod.json")
        with open(path, "w") as f:
            json.dump(manifest, f)
        t0 = time.monotonic()
        rt.podman("kube", "play", "--tls-verify=false", path)
        check_pod(rt, manifest, ctr, devices)
        print("podman kube play to guest READY: %.1f s" % (time.monotonic() - t0))
        ok = True
    finally:
        if not ok and srv:
            print("API server and controller logs kept in %s" % srv.dir)
        cleanup(*[x for x in (plugins, registry, srv) if x])
        rt.remove_all()
        shutil.rmtree(tmp, ignore_errors=True)
        if ok and srv:
            srv.remove()
    return 0


if __name__ == "__main__":
    sys.exit(main())
