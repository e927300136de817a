#!/usr/bin/env python3
# kubelet.py: a kubelet stand-in for tests. It registers a Node, watches the Pods bound to it and runs each
# container's command as a local process in a private mount namespace (unshare --mount) with the Pod's volumes
# bind-mounted, writes Pod status back, and handles deletion (SIGTERM, grace period, SIGKILL, final delete).
# With --pod-cidr each Pod also gets its own network namespace on a node bridge, as a CNI plugin would do.
import argparse
import base64
import ctypes
import datetime
import ipaddress
import json
import os
import re
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

EXIT_USAGE, EXIT_API, EXIT_NETWORK = 2, 3, 4
PASS_ENV = ["PATH", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "LD_LIBRARY_PATH"]
SELECTED_NODE = "volume.kubernetes.io/selected-node"  # a WaitForFirstConsumer claim's node, as kube-scheduler writes it


def now_ts():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def log(msg, **fields):
    print(json.dumps(dict({"level": "info", "component": "kubelet", "msg": msg, "ts": now_ts()}, **fields)),
          file=sys.stderr, flush=True)


class ApiFailure(Exception):
    def __init__(self, code, body):
        super().__init__("HTTP %s: %s" % (code, body[:300]))
        self.code = code


class Client:
    def __init__(self, server, token=None, ca_file=None, insecure=False):
        self.server = server.rstrip("/")
        self.token = token
        self.ctx = None
        if server.startswith("https://"):
            self.ctx = ssl.create_default_context(cafile=ca_file)
            if insecure:
                self.ctx.check_hostname = False
                self.ctx.verify_mode = ssl.CERT_NONE

    def open(self, method, path, body=None, ctype="application/json", timeout=30):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Accept", "application/json")
        req.add_header("User-Agent", "kubelet/v1.32.0-kvlite")
        if data is not None:
            req.add_header("Content-Type", ctype)
        if self.token:
            req.add_header("Authorization", "Bearer " + self.token)
        try:
            return urllib.request.urlopen(req, timeout=timeout, context=self.ctx)
        except urllib.error.HTTPError as e:
            raise ApiFailure(e.code, e.read().decode(errors="replace"))

    def call(self, method, path, body=None, ctype="application/json"):
        with self.open(method, path, body, ctype) as resp:
            return json.loads(resp.read() or b"null")


# --- the process side: runs inside `unshare --mount`, mounts, then execs the container command ---------------
def exec_helper(spec_path):
    with open(spec_path) as f:
        spec = json.load(f)
    try:
        if spec.get("devices") is not None:
            private_dev(spec["devices"])
        for src, dst, readonly in spec["mounts"]:
            if os.path.isdir(src):
                os.makedirs(dst, exist_ok=True)
            elif not os.path.exists(dst):
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                open(dst, "a").close()
            subprocess.run(["mount", "--bind", src, dst], check=True)
            if readonly:
                subprocess.run(["mount", "-o", "remount,bind,ro", dst], check=True)
        if spec.get("cwd"):
            os.chdir(spec["cwd"])
        os.execvpe(spec["argv"][0], spec["argv"], spec["env"])
    except (OSError, subprocess.CalledProcessError) as e:
        print("kubelet stand-in: cannot start container: %s" % e, file=sys.stderr, flush=True)
        os._exit(128)


# What a container runtime puts in every container's /dev; device nodes beyond these come only from device
# plugins (AllocateResponse DeviceSpec).
STANDARD_DEV = ["null", "zero", "full", "random", "urandom", "tty"]


def private_dev(devices):
    """Replaces /dev in this (private) mount namespace with a tmpfs holding the standard nodes and exactly the
    allocated devices: [[host path, container path, permissions]]."""
    host_dev = "/run/kvlite-host-dev"  # the node's /dev, still reachable under the tmpfs through this bind
    os.makedirs(host_dev, exist_ok=True)
    subprocess.run(["mount", "--bind", "/dev", host_dev], check=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "nosuid,mode=755,size=64k", "tmpfs", "/dev"], check=True)
    nodes = [[host_dev + "/" + n, "/dev/" + n] for n in STANDARD_DEV] + \
        [[host_dev + "/" + h[len("/dev/"):], c] for h, c, _ in devices]
    for host, dst in nodes:
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        open(dst, "a").close()
        subprocess.run(["mount", "--bind", host, dst], check=True)
    for d in ("/dev/shm", "/dev/pts"):
        os.makedirs(d, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "nosuid,nodev,size=64m", "shm", "/dev/shm"], check=True)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                         ("stderr", "/proc/self/fd/2")):
        os.symlink(target, "/dev/" + name)
    subprocess.run(["umount", "-l", host_dev], check=True)


def extended_requests(container):
    """{resource: count} of a container's extended resources (domain-prefixed names outside kubernetes.io);
    requests default to limits, as the API server defaults them."""
    res = container.get("resources") or {}
    wants = dict(res.get("limits") or {})
    wants.update(res.get("requests") or {})
    return {k: int(v) for k, v in wants.items() if "/" in k and not k.split("/")[0].endswith("kubernetes.io")
            and not k.startswith("hugepages-") and int(v) > 0}


def expand(text, env):
    """Kubernetes $(VAR) expansion in command and args; $$ escapes."""
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                  lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), text)


class PodError(Exception):
    pass


class VolumeNotReady(PodError):
    """A claim not bound yet: the real kubelet keeps the Pod waiting (ContainerCreating), so does this one."""


VOLUME_WAIT_S = 60


# --- Pod networking, as a CNI bridge plugin would do it -------------------------------------------------------
# Each Pod gets a network namespace kvl-<uid> whose eth0 is one end of a veth pair; the other end is a port of
# the node bridge, which lives in a node network namespace (the caller's --node-netns, or one made here). Both
# ends are created inside those namespaces, so the machine's own namespace never sees a link, address or
# route, and Pod traffic cannot leave them: the node namespace has no uplink and does not forward.
CLONE_NEWNET = 0x40000000
NODE_BRIDGE = "kvlbr0"


def ip_cmd(*args, check=True):
    p = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and p.returncode != 0:
        raise PodError("ip %s: %s" % (" ".join(args), p.stderr.strip() or "exit %d" % p.returncode))
    return p.stdout


def netns_kill_all(name):
    """SIGKILLs every process left in a network namespace (QEMU included) and waits until they are gone."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        pids = [int(p) for p in ip_cmd("netns", "pids", name, check=False).split()]
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)
    log("processes survive in a Pod network namespace", netns=name)


def netns_remove(record):
    """Undoes one Pod sandbox from its record (also used by tests' cleanup after a kubelet crash)."""
    netns_kill_all(record["netns"])
    if record.get("node_netns") and record.get("host_if"):
        ip_cmd("-n", record["node_netns"], "link", "del", record["host_if"], check=False)
    ip_cmd("netns", "del", record["netns"], check=False)


def cleanup_state(state_dir):
    """Removes every Pod network namespace recorded under a kubelet state dir; returns their names."""
    rec_dir = os.path.join(state_dir, "netns")
    removed = []
    for name in sorted(os.listdir(rec_dir)) if os.path.isdir(rec_dir) else []:
        path = os.path.join(rec_dir, name)
        try:
            with open(path) as f:
                record = json.load(f)
        except (OSError, ValueError):
            record = {"netns": name}
        netns_remove(record)
        os.unlink(path)
        removed.append(name)
    return removed


def listen_in_netns(netns_path, addr):
    """A listening TCP socket inside another network namespace. setns(CLONE_NEWNET) only moves the calling
    thread, so a short-lived thread does it and the socket stays in that namespace after the thread ends."""
    out = {}

    def inner():
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, "setns %s: %s" % (netns_path, os.strerror(err)))
            finally:
                os.close(fd)
            out["sock"] = socket.create_server(addr)
        except OSError as e:
            out["error"] = e

    t = threading.Thread(target=inner, name="setns")
    t.start()
    t.join()
    if "error" in out:
        raise PodError("listen on %s:%d in %s: %s" % (addr[0], addr[1], netns_path, out["error"]))
    return out["sock"]


class ApiForwarder:
    """KUBERNETES_SERVICE_HOST:PORT inside a Pod's namespace (what kube-proxy does for the kubernetes Service):
    a listener on the Pod's loopback whose connections the kubelet relays to the API server from its own
    namespace. The address stays the one in the server certificate."""

    def __init__(self, netns_path, addr):
        self.addr = addr
        self.sock = listen_in_netns(netns_path, addr)
        self.sock.settimeout(0.5)
        self.closed = threading.Event()
        threading.Thread(target=self.accept_loop, name="apifwd", daemon=True).start()

    def accept_loop(self):
        while not self.closed.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self.relay, args=(conn,), daemon=True).start()

    def relay(self, conn):
        try:
            upstream = socket.create_connection(self.addr, timeout=10)
        except OSError:
            conn.close()
            return
        with conn, upstream:
            pairs = {conn: upstream, upstream: conn}
            for s in pairs:
                s.settimeout(None)
            open_ = set(pairs)
            while open_ and not self.closed.is_set():
                ready, _, _ = select.select(list(open_), [], [], 0.5)
                for s in ready:
                    try:
                        data = s.recv(65536)
                        if data:
                            pairs[s].sendall(data)
                            continue
                        pairs[s].shutdown(socket.SHUT_WR)  # pass the half-close on
                    except OSError:
                        return
                    open_.discard(s)

    def close(self):
        self.closed.set()
        self.sock.close()


class NodeNetwork:
    """The node side: a bridge with the pod CIDR's first address in the node netns, and the CIDR's addresses
    handed out to Pods."""

    def __init__(self, cidr, node_netns=None, dns=None, cidr6=None):
        self.net = ipaddress.IPv4Network(cidr)  # parse_args checked it
        self.gateway = str(self.net.network_address + 1)
        # dual stack: each Pod's IPv6 address has its IPv4 address' offset in this CIDR
        self.net6 = ipaddress.IPv6Network(cidr6) if cidr6 else None
        self.gateway6 = str(self.net6.network_address + 1) if cidr6 else None
        self.dns = dns or self.gateway
        self.owned = node_netns is None  # made here, so removed here
        self.netns = node_netns or "kvl-node-%d" % os.getpid()
        self.used, self.last = set(), None
        self.lock = threading.Lock()

    def setup(self):
        if self.owned:
            ip_cmd("netns", "add", self.netns)
        elif not os.path.exists(os.path.join("/run/netns", self.netns)):
            raise PodError("--node-netns %s: no such network namespace (ip netns add it first)" % self.netns)
        n = ["-n", self.netns]
        ip_cmd(*n, "link", "set", "lo", "up")
        if ip_cmd(*n, "link", "show", NODE_BRIDGE, check=False) == "":
            # kubelets of several nodes sharing one node netns may start together: the bridge another one made
            # meanwhile is the one wanted ("File exists"); only a bridge that is still missing is an error
            ip_cmd(*n, "link", "add", NODE_BRIDGE, "type", "bridge", check=False)
            ip_cmd(*n, "link", "show", NODE_BRIDGE)
        ip_cmd(*n, "addr", "replace", "%s/%d" % (self.gateway, self.net.prefixlen), "dev", NODE_BRIDGE)
        if self.net6:
            ip_cmd(*n, "addr", "replace", "%s/%d" % (self.gateway6, self.net6.prefixlen), "dev", NODE_BRIDGE, "nodad")
        ip_cmd(*n, "link", "set", NODE_BRIDGE, "up")

    def teardown(self):
        if self.owned:
            netns_kill_all(self.netns)
            ip_cmd("netns", "del", self.netns, check=False)
        else:
            ip_cmd("-n", self.netns, "link", "del", NODE_BRIDGE, check=False)

    def allocate(self):
        """The next free address after the last one handed out, as the host-local IPAM does: an address just
        released is not given again at once (other Pods' neighbour caches may still hold its old MAC)."""
        with self.lock:
            hosts = [str(h) for h in self.net.hosts() if str(h) != self.gateway]
            start = hosts.index(self.last) + 1 if self.last in hosts else 0
            for ip in hosts[start:] + hosts[:start]:
                if ip not in self.used:
                    self.used.add(ip)
                    self.last = ip
                    return ip
        raise PodError("--pod-cidr %s: no address left" % self.net)

    def release(self, ip):
        with self.lock:
            self.used.discard(ip)

    def ip6_of(self, ip):
        """The IPv6 address that goes with a Pod's IPv4 address (dual stack), or None."""
        if not self.net6:
            return None
        return str(self.net6.network_address + (int(ipaddress.IPv4Address(ip)) - int(self.net.network_address)))


# --- Multus: secondary networks from NetworkAttachmentDefinitions, through the real CNI plugins ------------------
# The Pod's k8s.v1.cni.cncf.io/networks annotation names NADs (k8s.cni.cncf.io/v1); for each, the plugin of the
# NAD's config (Debian's containernetworking-plugins in CNI_PATH: bridge, macvlan, ipvlan, host-local, ...) runs
# with CNI_COMMAND=ADD/DEL, CNI_NETNS=<the Pod's netns>, CNI_IFNAME and the config on stdin, as Multus does. The
# plugin process runs in the node namespace, so a macvlan "master" or a bridge lives there, never on the machine.
# The results become the k8s.v1.cni.cncf.io/network-status annotation.
NETWORKS_ANNOTATION = "k8s.v1.cni.cncf.io/networks"
NETWORK_STATUS_ANNOTATION = "k8s.v1.cni.cncf.io/network-status"
CNI_PATH = os.environ.get("KVLITE_CNI_PATH", "/usr/lib/cni")


def parse_networks_annotation(value, namespace):
    """The annotation's two forms: a JSON list of selection elements, or "[ns/]name[@ifname], ..."."""
    value = (value or "").strip()
    if not value:
        return []
    if value.startswith("["):
        elems = json.loads(value)
    else:
        elems = []
        for part in value.split(","):
            name, _, ifname = part.strip().partition("@")
            ns, _, nm = name.rpartition("/")
            elems.append({"name": nm, "namespace": ns or namespace, **({"interface": ifname} if ifname else {})})
    out = []
    for i, e in enumerate(elems):
        if not isinstance(e, dict) or not e.get("name"):
            raise PodError("annotation %s[%d]: needs a name" % (NETWORKS_ANNOTATION, i))
        out.append(dict(e, namespace=e.get("namespace") or namespace, interface=e.get("interface") or "net%d" % (i + 1)))
    return out


def cni_run(command, conf, netns_path, ifname, container_id, node_netns):
    """One CNI plugin call; returns its parsed result (ADD) or None."""
    plugin = os.path.join(CNI_PATH, conf.get("type", ""))
    if not conf.get("type") or not os.access(plugin, os.X_OK):
        raise PodError("CNI plugin %r: not in %s (apt-get install containernetworking-plugins)" % (conf.get("type"), CNI_PATH))
    env = {"CNI_COMMAND": command, "CNI_CONTAINERID": container_id, "CNI_NETNS": netns_path, "CNI_IFNAME": ifname,
           "CNI_PATH": CNI_PATH, "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}
    p = subprocess.run(["ip", "netns", "exec", node_netns, plugin], input=json.dumps(conf), env=env,
                       capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        try:
            msg = json.loads(p.stdout).get("msg")
        except ValueError:
            msg = None
        raise PodError("CNI %s %s (%s): %s" % (command, conf.get("name"), conf["type"],
                                                msg or p.stderr.strip() or "exit %d" % p.returncode))
    return json.loads(p.stdout) if command == "ADD" and p.stdout.strip() else None


class Attachments:
    """The Multus part of one Pod: ADD for each selected NAD after the sandbox exists, DEL before it goes."""

    def __init__(self, kubelet, pod, sandbox):
        self.k, self.sandbox = kubelet, sandbox
        meta = pod["metadata"]
        self.ns, self.name, self.uid = meta["namespace"], meta["name"], meta["uid"]
        self.selected = parse_networks_annotation((meta.get("annotations") or {}).get(NETWORKS_ANNOTATION), self.ns)
        self.added = []  # (conf, ifname), undone in reverse order

    def nad_config(self, e):
        try:
            nad = self.k.api.call("GET", "/apis/k8s.cni.cncf.io/v1/namespaces/%s/network-attachment-definitions/%s"
                                  % (e["namespace"], e["name"]))
        except ApiFailure as err:
            raise PodError("NetworkAttachmentDefinition %s/%s: %s" % (e["namespace"], e["name"],
                                                                        "not found" if err.code == 404 else err))
        conf = json.loads(nad.get("spec", {}).get("config") or "{}")
        if "plugins" in conf:  # a conflist: the first plugin is the one that creates the interface
            conf = dict(conf["plugins"][0], cniVersion=conf.get("cniVersion"), name=conf.get("name"))
        conf.setdefault("name", e["name"])
        conf.setdefault("cniVersion", "0.3.1")
        if e.get("mac"):
            conf["runtimeConfig"] = dict(conf.get("runtimeConfig") or {}, mac=e["mac"])
            conf.setdefault("capabilities", {})["mac"] = True
        return conf

    def add(self):
        status = [{"name": "kvlite-pod-network", "interface": "eth0", "ips": [self.sandbox.ip], "default": True,
                   "dns": {}}]
        for e in self.selected:
            conf = self.nad_config(e)
            res = cni_run("ADD", conf, self.sandbox.path, e["interface"], self.uid, self.sandbox.node.netns)
            self.added.append((conf, e["interface"]))
            ifs = res.get("interfaces") or []
            entry = {"name": "%s/%s" % (e["namespace"], e["name"]), "interface": e["interface"],
                     "ips": [ip["address"].split("/")[0] for ip in res.get("ips") or []], "dns": res.get("dns") or {}}
            mac = next((i.get("mac") for i in ifs if i.get("sandbox") and i.get("name") == e["interface"]), None)
            if mac:
                entry["mac"] = mac
            status.append(entry)
            log("network attached", pod=self.ns + "/" + self.name, network=entry["name"], interface=e["interface"],
                ips=entry["ips"])
        return status

    def delete(self):
        for conf, ifname in reversed(self.added):
            try:
                cni_run("DEL", conf, self.sandbox.path, ifname, self.uid, self.sandbox.node.netns)
            except (PodError, OSError, subprocess.SubprocessError) as e:
                log("CNI DEL failed", pod=self.ns + "/" + self.name, interface=ifname, error=str(e))
        self.added = []


class PodSandbox:
    """One Pod's network namespace: eth0 (veth to the node bridge) with an address from the pod CIDR, a default
    route through the bridge, a resolv.conf naming the cluster DNS, and the API server forwarder. The record in
    <state>/netns/ is written before anything is created, so a crashed kubelet's leftovers can be found."""

    def __init__(self, kubelet, uid, pod_dir, namespace):
        self.k, self.node = kubelet, kubelet.network
        h = uid.replace("-", "")
        self.netns, self.host_if = "kvl-" + h[:12], "kvlv" + h[:11]  # IFNAMSIZ: 15 characters
        self.path = os.path.join("/run/netns", self.netns)
        self.record = os.path.join(kubelet.state_dir, "netns", self.netns)
        self.resolv = os.path.join(pod_dir, "resolv.conf")
        self.namespace = namespace
        self.ip, self.ip6, self.forwarder = None, None, None
        self.lock = threading.Lock()

    def create(self):
        with self.lock:
            self.ip = self.node.allocate()
            self.ip6 = self.node.ip6_of(self.ip)
            os.makedirs(os.path.dirname(self.record), exist_ok=True)
            with open(self.record, "w") as f:
                json.dump({"netns": self.netns, "node_netns": self.node.netns, "host_if": self.host_if,
                           "ip": self.ip}, f)
            p, n = ["-n", self.netns], ["-n", self.node.netns]
            ip_cmd("netns", "add", self.netns)
            ip_cmd(*p, "link", "set", "lo", "up")
            ip_cmd(*p, "link", "add", "eth0", "type", "veth", "peer", "name", self.host_if, "netns", self.node.netns)
            ip_cmd(*n, "link", "set", self.host_if, "master", NODE_BRIDGE, "up")
            ip_cmd(*p, "addr", "add", "%s/%d" % (self.ip, self.node.net.prefixlen), "dev", "eth0")
            ip_cmd(*p, "link", "set", "eth0", "up")
            ip_cmd(*p, "route", "add", "default", "via", self.node.gateway)
            if self.ip6:
                ip_cmd(*p, "addr", "add", "%s/%d" % (self.ip6, self.node.net6.prefixlen), "dev", "eth0", "nodad")
                ip_cmd(*p, "-6", "route", "add", "default", "via", self.node.gateway6)
            with open(self.resolv, "w") as f:
                f.write("search %s.svc.cluster.local svc.cluster.local cluster.local\nnameserver %s\n"
                        "options ndots:5\n" % (self.namespace, self.node.dns))
            if self.k.in_cluster:
                host, port = self.k.in_cluster
                self.forwarder = ApiForwarder(self.path, (host, int(port)))

    def destroy(self):
        with self.lock:
            if self.forwarder:
                self.forwarder.close()
                self.forwarder = None
            if self.ip is None:
                return
            netns_remove({"netns": self.netns, "node_netns": self.node.netns, "host_if": self.host_if})
            try:
                os.unlink(self.record)
            except FileNotFoundError:
                pass
            self.node.release(self.ip)
            self.ip = None
            log("pod network removed", netns=self.netns)


VOLUME_SYNC_S = 2


def atomic_write(path, data):
    """A Secret/ConfigMap volume's keys as the kubelet's AtomicWriter lays them out: the files in a timestamped
    directory "..<time>", "..data" a symlink to it replaced by a rename, each top-level key a symlink through
    "..data". A reader never sees half an update. Nothing is written when the content is the same."""
    current = os.path.join(path, "..data")
    old = os.readlink(current) if os.path.islink(current) else None
    if old is not None and _read_tree(os.path.join(path, old)) == data:
        return False
    stamp = "..%s.%06d" % (time.strftime("%Y_%m_%d_%H_%M_%S"), time.monotonic_ns() // 1000 % 1000000)
    for key, value in data.items():
        target = os.path.join(path, stamp, key)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as f:
            f.write(value)
    os.makedirs(os.path.join(path, stamp), exist_ok=True)
    os.symlink(stamp, os.path.join(path, "..data_tmp"))
    os.rename(os.path.join(path, "..data_tmp"), current)
    tops = {key.split("/", 1)[0] for key in data}
    for top in tops:
        if not os.path.lexists(os.path.join(path, top)):
            os.symlink(os.path.join("..data", top), os.path.join(path, top))
    for entry in os.listdir(path):
        if not entry.startswith("..") and entry not in tops:
            os.unlink(os.path.join(path, entry))
    if old is not None:
        shutil.rmtree(os.path.join(path, old), ignore_errors=True)
    return True


def _read_tree(root):
    out = {}
    for d, _, files in os.walk(root):
        for name in files:
            with open(os.path.join(d, name), "rb") as f:
                out[os.path.relpath(os.path.join(d, name), root)] = f.read()
    return out


class PodRunner:
    def __init__(self, kubelet, pod):
        self.k, self.pod = kubelet, pod
        meta = pod["metadata"]
        self.ns, self.name, self.uid = meta["namespace"], meta["name"], meta["uid"]
        self.dir = os.path.join(kubelet.state_dir, "pods", self.uid)
        self.stop = threading.Event()
        self.grace = None
        self.procs = {}
        self.sandbox, self.pod_ip = None, kubelet.host_ip  # host network until a sandbox gives it its own
        self.attachments = None
        self.devices = None  # with a device manager: {container: [[host, container path, permissions]]}
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.run, name="pod-" + self.name, daemon=True)

    # --- status ---
    def patch_status(self, status):
        try:
            self.k.api.call("PATCH", "/api/v1/namespaces/%s/pods/%s/status" % (self.ns, self.name),
                            {"status": status}, "application/merge-patch+json")
        except (ApiFailure, OSError) as e:
            log("status update failed", pod=self.ns + "/" + self.name, error=str(e))

    def patch_annotations(self, annotations):
        self.k.api.call("PATCH", "/api/v1/namespaces/%s/pods/%s" % (self.ns, self.name),
                        {"metadata": {"annotations": annotations}}, "application/merge-patch+json")

    def conditions(self, ready, initialized=True):
        t = now_ts()
        return [{"type": c, "status": "True" if ok else "False", "lastProbeTime": None, "lastTransitionTime": t}
                for c, ok in (("PodReadyToStartContainers", True), ("Initialized", initialized),
                              ("Ready", ready), ("ContainersReady", ready), ("PodScheduled", True))]

    # --- volumes ---
    def volume_sources(self):
        sources = {}
        for vol in self.pod["spec"].get("volumes") or []:
            name = vol["name"]
            if "emptyDir" in vol:
                path = os.path.join(self.dir, "volumes", name)
                os.makedirs(path, exist_ok=True)
            elif "hostPath" in vol:
                path = vol["hostPath"]["path"]
                if vol["hostPath"].get("type") == "DirectoryOrCreate":
                    os.makedirs(path, exist_ok=True)
            elif "image" in vol:
                path = vol["image"].get("reference", "")
                if not (os.path.isabs(path) and os.path.isdir(path)):
                    raise PodError("volume %s: image reference %r is not an absolute directory; the kubelet stand-in "
                                   "does not pull images" % (name, path))
            elif "persistentVolumeClaim" in vol and self.k.provision_claims:
                claim = vol["persistentVolumeClaim"]["claimName"]
                path = self.k.claim_dir(self.ns, claim)
                node = self.k.claim_nodes.get(self.ns + "/" + claim)
                if self.k.local_claims and node != self.k.node:
                    raise PodError("volume %s: persistentVolumeClaim %s is local to node %s, not this node %s"
                                   % (name, claim, node or "(none yet)", self.k.node))
                if not os.path.isdir(path):
                    raise VolumeNotReady("volume %s: persistentVolumeClaim %s is not bound" % (name, claim))
            elif "persistentVolumeClaim" in vol:
                claim = vol["persistentVolumeClaim"]["claimName"]
                path = os.path.join(self.k.pvc_dir or "/nonexistent", claim)
                if not os.path.isdir(path):
                    raise PodError("volume %s: persistentVolumeClaim %s: no directory %s (kubelet --pvc-dir)"
                                   % (name, claim, path))
            elif "secret" in vol or "configMap" in vol or "projected" in vol or "downwardAPI" in vol:
                path = self.materialize(name, vol)
            else:
                raise PodError("volume %s: unsupported volume source %s" % (name, sorted(set(vol) - {"name"})))
            if "persistentVolumeClaim" in vol:  # on the node under the Pod's directory, as the kubelet's mounts
                link = os.path.join(self.dir, "volumes", name)
                os.makedirs(os.path.dirname(link), exist_ok=True)
                if not os.path.islink(link):
                    os.symlink(path, link)
            sources[name] = path
        return sources

    def wait_volumes(self):
        """volume_sources, waiting up to VOLUME_WAIT_S for claims to be bound (a provisioner binds them)."""
        deadline = time.monotonic() + VOLUME_WAIT_S
        while True:
            try:
                return self.volume_sources()
            except VolumeNotReady:
                if time.monotonic() >= deadline or self.stop.is_set():
                    raise
                time.sleep(0.2)

    def source_data(self, kind, name, optional=False):
        try:
            return self.fetch_source(kind, name)
        except ApiFailure as e:
            if optional and e.code == 404:
                return {}
            raise

    def fetch_source(self, kind, name):
        if kind == "secret":
            obj = self.k.api.call("GET", "/api/v1/namespaces/%s/secrets/%s" % (self.ns, name))
            data = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
            data.update({k: v.encode() for k, v in (obj.get("stringData") or {}).items()})
            return data
        obj = self.k.api.call("GET", "/api/v1/namespaces/%s/configmaps/%s" % (self.ns, name))
        return {k: v.encode() for k, v in (obj.get("data") or {}).items()}

    def downward_data(self, items):
        """downwardAPI items: fieldRef values as the kubelet writes them (labels/annotations as key="value" lines);
        resourceFieldRef from the first container's limits/requests."""
        data = {}
        for item in items or []:
            if "fieldRef" in item:
                path = item["fieldRef"]["fieldPath"]
                if path in ("metadata.labels", "metadata.annotations"):
                    kv = self.pod["metadata"].get(path.split(".")[1]) or {}
                    value = "".join('%s="%s"\n' % (k, kv[k]) for k in sorted(kv))
                else:
                    value = self.field_value(path)
            else:
                res = item.get("resourceFieldRef") or {}
                kind, _, what = res.get("resource", "").partition(".")
                ctrs = self.pod["spec"].get("containers") or [{}]
                value = str(((ctrs[0].get("resources") or {}).get(kind) or {}).get(what, ""))
            data[item["path"]] = value.encode()
        return data

    def materialize(self, name, vol):
        path = os.path.join(self.dir, "volumes", name)
        os.makedirs(path, exist_ok=True)
        if "secret" in vol:
            data = self.source_data("secret", vol["secret"]["secretName"], vol["secret"].get("optional"))
        elif "configMap" in vol:
            data = self.source_data("configMap", vol["configMap"]["name"], vol["configMap"].get("optional"))
        elif "downwardAPI" in vol:
            data = self.downward_data(vol["downwardAPI"].get("items"))
        else:  # projected: the sources' keys merged into one directory, later sources win
            data = {}
            for src in vol["projected"].get("sources") or []:
                if "serviceAccountToken" in src:
                    tok = os.path.join(self.k.sa_dir or "/nonexistent", "token")
                    data[src["serviceAccountToken"]["path"]] = open(tok, "rb").read() if os.path.exists(tok) else b""
                    continue
                if "downwardAPI" in src:
                    data.update(self.downward_data(src["downwardAPI"].get("items")))
                    continue
                kind = "secret" if "secret" in src else "configMap"
                if kind not in src:
                    continue
                got = self.source_data(kind, src[kind]["name"], src[kind].get("optional") or
                                       (kind == "configMap" and src[kind]["name"] == "kube-root-ca.crt"))
                items = src[kind].get("items")
                data.update({i["path"]: got[i["key"]] for i in items if i["key"] in got} if items else got)
        atomic_write(path, data)
        return path

    def refresh_volumes(self):
        """As the kubelet's periodic sync: the Secret, ConfigMap, projected and downwardAPI volumes of a running
        Pod follow their sources (the real kubelet within about a minute, this one every VOLUME_SYNC_S)."""
        for vol in self.pod["spec"].get("volumes") or []:
            if any(k in vol for k in ("secret", "configMap", "projected", "downwardAPI")):
                try:
                    self.materialize(vol["name"], vol)
                except (ApiFailure, OSError, KeyError) as e:
                    log("volume not refreshed", pod=self.ns + "/" + self.name, volume=vol["name"], error=str(e))

    def serviceaccount_mount(self):
        if not self.k.sa_dir or self.pod["spec"].get("automountServiceAccountToken") is False:
            return None
        path = os.path.join(self.dir, "serviceaccount")
        os.makedirs(path, exist_ok=True)
        for name in ("token", "ca.crt"):
            shutil.copy(os.path.join(self.k.sa_dir, name), os.path.join(path, name))
        with open(os.path.join(path, "namespace"), "w") as f:
            f.write(self.ns)
        return path

    # --- containers ---
    def field_value(self, path):
        fields = {"metadata.name": self.name, "metadata.namespace": self.ns, "metadata.uid": self.uid,
                  "spec.nodeName": self.k.node, "spec.serviceAccountName": self.pod["spec"].get("serviceAccountName", ""),
                  "status.podIP": self.pod_ip, "status.hostIP": self.k.host_ip}
        return fields.get(path, "")

    def env_for(self, container):
        env = {k: os.environ[k] for k in self.k.pass_env if k in os.environ}
        env["HOSTNAME"] = self.name
        if self.k.in_cluster:
            env["KUBERNETES_SERVICE_HOST"], env["KUBERNETES_SERVICE_PORT"] = self.k.in_cluster
        for item in container.get("env") or []:
            if "value" in item:
                env[item["name"]] = expand(item["value"], env)
                continue
            ref = item.get("valueFrom") or {}
            if "fieldRef" in ref:
                path = ref["fieldRef"]["fieldPath"]
                m = re.match(r"^metadata\.(labels|annotations)\['(.*)'\]$", path)
                env[item["name"]] = self.pod["metadata"].get(m.group(1), {}).get(m.group(2), "") if m else \
                    self.field_value(path)
            elif "secretKeyRef" in ref or "configMapKeyRef" in ref:
                kind, sel = ("secrets", ref["secretKeyRef"]) if "secretKeyRef" in ref else ("configmaps",
                                                                                          ref["configMapKeyRef"])
                obj = self.k.api.call("GET", "/api/v1/namespaces/%s/%s/%s" % (self.ns, kind, sel["name"]))
                value = (obj.get("data") or {}).get(sel["key"], "")
                env[item["name"]] = base64.b64decode(value).decode() if kind == "secrets" else value
        return env

    def start(self, container, sources, sa_path):
        name = container["name"]
        argv = list(container.get("command") or []) + list(container.get("args") or [])
        if not container.get("command"):
            raise PodError("container %s: the kubelet stand-in runs spec.containers[].command; it does not pull "
                           "images or know their entrypoints" % name)
        env = self.env_for(container)
        argv = [expand(a, env) for a in argv]
        if self.sandbox is None:
            # Host network: the containers share the kubelet's namespace, which a virt-launcher --pod-network
            # would rewire (bridge, NAT). Drop it: the launcher's local network mode.
            argv = [a for a in argv if a != "--pod-network"]
        mounts = []
        for m in container.get("volumeMounts") or []:
            if m["name"] not in sources:
                raise PodError("container %s: volumeMount %s: no volume of that name" % (name, m["name"]))
            src = sources[m["name"]]
            if m.get("subPath"):
                src = os.path.join(src, m["subPath"])
            mounts.append([src, m["mountPath"], bool(m.get("readOnly"))])
        if sa_path:
            mounts.append([sa_path, "/var/run/secrets/kubernetes.io/serviceaccount", True])
        if self.sandbox:
            mounts.append([self.sandbox.resolv, "/etc/resolv.conf", True])
        term = os.path.join(self.dir, "termination-" + name)
        open(term, "w").close()
        tpath = container.get("terminationMessagePath", "/dev/termination-log")
        if os.path.isdir(os.path.dirname(tpath)):
            mounts.append([term, tpath, False])
        spec_path = os.path.join(self.dir, "exec-%s.json" % name)
        with open(spec_path, "w") as f:
            json.dump({"mounts": mounts, "argv": argv, "env": env, "cwd": container.get("workingDir"),
                       "devices": self.devices.get(name, []) if self.devices is not None else None}, f)
        logf = open(self.k.log_path(self.ns, self.name, name), "ab")
        cmd = [sys.executable, os.path.abspath(__file__), "--exec-helper", spec_path]
        if not self.k.no_unshare:
            cmd = ["unshare", "--mount", "--propagation", "private", "--"] + cmd
        if self.sandbox:
            cmd = ["nsenter", "--net=" + self.sandbox.path, "--"] + cmd
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                start_new_session=True)
        logf.close()
        return {"proc": proc, "started": now_ts(), "term": term, "container": container, "restarts": 0,
                "last": None, "result": None}

    def container_status(self, name, st):
        c = st["container"]
        out = {"name": name, "image": c.get("image", ""), "imageID": "", "containerID": "kvlite://%s-%s" % (self.uid, name),
               "restartCount": st["restarts"], "ready": st["result"] is None, "started": st["result"] is None}
        if st["result"] is None:
            out["state"] = {"running": {"startedAt": st["started"]}}
        else:
            out["state"] = {"terminated": st["result"]}
        if st["last"]:
            out["lastState"] = {"terminated": st["last"]}
        return out

    def terminated(self, st, code):
        c = st["container"]
        with open(st["term"], errors="replace") as f:
            message = f.read()[-4096:]
        if not message and code != 0 and c.get("terminationMessagePolicy") == "FallbackToLogsOnError":
            with open(self.k.log_path(self.ns, self.name, c["name"]), errors="replace") as f:
                message = "".join(f.readlines()[-80:])[-2048:]
        result = {"exitCode": code if code >= 0 else 128 - code, "reason": "Completed" if code == 0 else "Error",
                  "startedAt": st["started"], "finishedAt": now_ts(),
                  "containerID": "kvlite://%s-%s" % (self.uid, c["name"])}
        if code < 0:
            result["signal"] = -code
        if message:
            result["message"] = message
        return result

    def run(self):
        try:
            self.run_pod()
        except Exception as e:  # a bug here must still leave the Pod Failed, never stuck Pending
            log("pod runner crashed", pod=self.ns + "/" + self.name, error=repr(e))
            self.patch_status({"phase": "Failed", "reason": "KubeletError", "message": repr(e)})

    def run_pod(self):
        os.makedirs(self.dir, exist_ok=True)
        spec = self.pod["spec"]
        started = now_ts()
        if self.k.devices and not self.admit_devices(started):
            return self.finish()
        try:
            sources = self.wait_volumes()
            sa_path = self.serviceaccount_mount()
            if self.k.network and not spec.get("hostNetwork"):
                self.sandbox = PodSandbox(self.k, self.uid, self.dir, self.ns)
                self.sandbox.create()
                self.pod_ip = self.sandbox.ip
                self.attachments = Attachments(self.k, self.pod, self.sandbox)
                if self.attachments.selected:
                    self.patch_annotations({NETWORK_STATUS_ANNOTATION: json.dumps(self.attachments.add())})
            if not self.run_init_containers(spec, sources, sa_path, started):
                return self.finish()
            with self.lock:
                if self.stop.is_set():
                    return self.finish()
                for c in spec["containers"]:
                    self.procs[c["name"]] = self.start(c, sources, sa_path)
        except (PodError, ApiFailure, OSError) as e:
            self.kill_all()
            log("pod failed to start", pod=self.ns + "/" + self.name, error=str(e))
            self.patch_status({"phase": "Failed", "reason": "CreateContainerError", "message": str(e),
                               "startTime": started, "hostIP": self.k.host_ip,
                               "conditions": self.conditions(False)})
            return self.finish()
        log("pod started", pod=self.ns + "/" + self.name, pids=[s["proc"].pid for s in self.procs.values()])
        pod_ips = [{"ip": ip} for ip in (self.pod_ip, self.sandbox and self.sandbox.ip6) if ip]
        self.patch_status({"phase": "Running", "podIP": self.pod_ip, "podIPs": pod_ips,
                           "hostIP": self.k.host_ip, "hostIPs": [{"ip": self.k.host_ip}], "startTime": started,
                           "conditions": self.conditions(True),
                           "containerStatuses": [self.container_status(n, s) for n, s in self.procs.items()]})
        self.supervise(spec.get("restartPolicy", "Always"))
        self.finish()

    def admit_devices(self, started):
        """Allocates the Pod's extended resources from the device plugins, as the kubelet's admission does;
        a Pod they cannot serve fails with UnexpectedAdmissionError."""
        from deviceplugin import AllocationError
        wants = [(c["name"], extended_requests(c)) for c in self.pod["spec"]["containers"]]
        try:
            specs = self.k.devices.allocate(self.uid, wants)
        except AllocationError as e:
            log("pod admission failed", pod=self.ns + "/" + self.name, error=str(e))
            self.patch_status({"phase": "Failed", "reason": "UnexpectedAdmissionError",
                               "message": "Allocate failed due to %s, which is unexpected" % e,
                               "startTime": started, "hostIP": self.k.host_ip})
            return False
        self.devices = {c: [[d.host_path, d.container_path, d.permissions] for d in ds] for c, ds in specs.items()}
        log("devices allocated", pod=self.ns + "/" + self.name, devices=self.devices)
        return True

    def run_init_containers(self, spec, sources, sa_path, started):
        """spec.initContainers one after the other, each to completion, as the kubelet runs them; a failed one is
        retried with backoff unless restartPolicy is Never, which fails the Pod (Init:Error). False: stop here."""
        done = []
        for c in spec.get("initContainers") or []:
            restarts, last = 0, None
            while True:
                with self.lock:
                    if self.stop.is_set():
                        return False
                    st = self.start(c, sources, sa_path)
                    self.procs[c["name"]] = st
                st.update(restarts=restarts, last=last)
                while st["proc"].poll() is None:  # a Pod deleted meanwhile stops its init container too
                    if self.stop.is_set():
                        self.signal(st["proc"], signal.SIGKILL)
                    time.sleep(0.1)
                code = st["proc"].returncode
                with self.lock:
                    del self.procs[c["name"]]
                st["result"] = self.terminated(st, code)
                log("init container exited", pod=self.ns + "/" + self.name, container=c["name"], code=code)
                if code == 0 or spec.get("restartPolicy", "Always") == "Never" or self.stop.is_set():
                    break
                self.patch_status({"initContainerStatuses": [self.container_status(d["container"]["name"], d)
                                                             for d in done + [st]]})
                time.sleep(min(10, 0.5 * 2 ** restarts))
                restarts, last = restarts + 1, st["result"]
            done.append(st)
            status = {"initContainerStatuses": [self.container_status(d["container"]["name"], d) for d in done]}
            if code != 0:
                status.update(phase="Failed", reason="Init:Error", startTime=started, hostIP=self.k.host_ip,
                              conditions=self.conditions(False, initialized=False))
                self.patch_status(status)
                return False
            self.patch_status(status)
        return True

    def supervise(self, policy):
        kill_at, sync_at = None, time.monotonic() + VOLUME_SYNC_S
        while True:
            if time.monotonic() >= sync_at and not self.stop.is_set():
                self.refresh_volumes()
                sync_at = time.monotonic() + VOLUME_SYNC_S
            changed = False
            for name, st in self.procs.items():
                if st["result"] is not None:
                    continue
                code = st["proc"].poll()
                if code is None:
                    continue
                st["result"] = self.terminated(st, code)
                changed = True
                log("container exited", pod=self.ns + "/" + self.name, container=name, code=code)
                if not self.stop.is_set() and (policy == "Always" or (policy == "OnFailure" and code != 0)):
                    time.sleep(min(10, 0.5 * 2 ** st["restarts"]))
                    sources = None
                    try:
                        sources = self.volume_sources() if not self.stop.is_set() else None
                    except PodError as e:  # a claim deleted with the Pod's owner: not restarted, the Pod ends
                        log("container not restarted", pod=self.ns + "/" + self.name, container=name, error=str(e))
                    if sources is None:
                        continue
                    restarted = self.start(st["container"], sources, self.serviceaccount_mount())
                    restarted.update(restarts=st["restarts"] + 1, last=st["result"])
                    self.procs[name] = restarted
            running = [s for s in self.procs.values() if s["result"] is None]
            if changed:
                self.publish(running)
            if not running:
                return
            if self.stop.is_set():
                if kill_at is None:
                    for s in running:
                        self.signal(s["proc"], signal.SIGTERM)
                    kill_at = time.monotonic() + (self.grace or 0)
                elif time.monotonic() >= kill_at:
                    for s in running:
                        self.signal(s["proc"], signal.SIGKILL)
            time.sleep(0.1)

    def publish(self, running):
        statuses = [self.container_status(n, s) for n, s in self.procs.items()]
        status = {"containerStatuses": statuses, "conditions": self.conditions(bool(running) and
                                                                               len(running) == len(self.procs))}
        if not running:
            failed = any(s["result"]["exitCode"] != 0 for s in self.procs.values())
            status["phase"] = "Failed" if failed else "Succeeded"
        self.patch_status(status)

    @staticmethod
    def signal(proc, sig):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass

    def kill_all(self):
        for st in self.procs.values():
            if st["proc"].poll() is None:
                self.signal(st["proc"], signal.SIGKILL)
                st["proc"].wait()

    def release_network(self):
        """Kills what is left in the Pod's network namespace (QEMU too) and removes the namespace."""
        if self.attachments:
            netns_kill_all(self.sandbox.netns)  # nothing may use an interface while its plugin removes it
            self.attachments.delete()
        if self.sandbox:
            self.sandbox.destroy()

    def finish(self):
        """After the containers are gone: a deleting Pod is removed for good, as the kubelet does; its network
        namespace goes first, so that a Pod seen gone has left nothing behind."""
        self.release_network()
        if self.k.devices:
            self.k.devices.release(self.uid)
        if self.stop.is_set():
            try:
                self.k.api.call("DELETE", "/api/v1/namespaces/%s/pods/%s" % (self.ns, self.name),
                                {"gracePeriodSeconds": 0, "preconditions": {"uid": self.uid}})
            except (ApiFailure, OSError) as e:
                if getattr(e, "code", None) not in (404, 409):
                    log("final delete failed", pod=self.ns + "/" + self.name, error=str(e))
            log("pod removed", pod=self.ns + "/" + self.name)
        self.k.forget(self.uid)

    def terminate(self, grace):
        self.grace = grace if self.grace is None else min(self.grace, grace)
        self.stop.set()


class Kubelet:
    def __init__(self, args):
        token = args.token
        if args.token_file:
            with open(args.token_file) as f:
                token = f.read().strip()
        self.api = Client(args.server, token, args.ca_file, args.insecure)
        self.node = args.node_name
        self.state_dir = args.state_dir or tempfile.mkdtemp(prefix="kubelet.")
        self.network = None if args.host_network else NodeNetwork(args.pod_cidr, args.node_netns, args.cluster_dns,
                                                                       args.pod_cidr6)
        self.host_ip = self.network.gateway if self.network else args.pod_ip
        self.log_dir = args.log_dir or os.path.join(self.state_dir, "logs")
        os.makedirs(self.log_dir, exist_ok=True)
        self.pvc_dir, self.sa_dir, self.no_unshare = args.pvc_dir, args.serviceaccount_dir, args.no_unshare
        self.pass_env = PASS_ENV + args.pass_env
        self.in_cluster = None
        if args.in_cluster_server:
            u = urllib.parse.urlsplit(args.in_cluster_server)
            self.in_cluster = (u.hostname, str(u.port or 443))
        self.runners = {}
        self.lock = threading.RLock()  # PodRunner.finish() calls forget() from inside handle()
        self.register = not args.no_register_node
        self.provision_claims = args.provision_claims
        self.local_claims = args.local_claims
        self.claim_nodes = {}  # --local-claims: "ns/name" -> the node the claim's data lives on
        self.taints = [parse_taint(t) for t in args.register_with_taint]
        self.labels = dict(kv.split("=", 1) for kv in args.node_label)
        self.devices = None
        self.status_lock = threading.Lock()
        if args.device_plugin_dir:
            from deviceplugin import DeviceManager
            self.devices = DeviceManager(args.device_plugin_dir, self.publish_devices, log)

    def log_path(self, ns, pod, container):
        return os.path.join(self.log_dir, "%s_%s_%s.log" % (ns, pod, container))

    def forget(self, uid):
        with self.lock:
            self.runners.pop(uid, None)

    def node_resources(self):
        cpu, mem = str(os.cpu_count() or 1), "%dKi" % self.mem_kib()
        capacity = {"cpu": cpu, "memory": mem, "pods": "110"}
        allocatable = dict(capacity)
        for name, (cap, alloc) in (self.devices.capacity() if self.devices else {}).items():
            capacity[name], allocatable[name] = str(cap), str(alloc)
        return capacity, allocatable

    def publish_devices(self):
        """Node status capacity/allocatable follow the plugins' device lists (one update at a time, so a stale
        one never lands last)."""
        with self.status_lock:
            self.patch_node_resources()

    def patch_node_resources(self):
        capacity, allocatable = self.node_resources()
        try:
            self.api.call("PATCH", "/api/v1/nodes/%s/status" % self.node,
                          {"status": {"capacity": capacity, "allocatable": allocatable}},
                          "application/merge-patch+json")
        except (ApiFailure, OSError) as e:
            log("node status update failed", error=str(e))

    def register_node(self):
        with self.status_lock:  # device updates wait for the Node to exist
            self.create_node()

    def create_node(self):
        t = now_ts()
        capacity, allocatable = self.node_resources()
        status = {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                  "message": "kubelet stand-in is posting ready status", "lastHeartbeatTime": t,
                                  "lastTransitionTime": t}],
                  "addresses": [{"type": "InternalIP", "address": self.host_ip}, {"type": "Hostname", "address": self.node}],
                  "capacity": capacity, "allocatable": allocatable,
                  "nodeInfo": {"kubeletVersion": "v1.32.0-kvlite", "osImage": "kvlite kubelet stand-in",
                               "kernelVersion": os.uname().release, "containerRuntimeVersion": "kvlite://local",
                               "operatingSystem": "linux", "architecture": "amd64"}}
        node = {"apiVersion": "v1", "kind": "Node", "status": status,
                "metadata": {"name": self.node, "labels": dict({"kubernetes.io/hostname": self.node,
                                                                "kubernetes.io/os": "linux",
                                                                "kubernetes.io/arch": "amd64"}, **self.labels)}}
        if self.taints:
            node["spec"] = {"taints": self.taints}
        try:
            self.api.call("POST", "/api/v1/nodes", node)
        except ApiFailure as e:
            if e.code == 404:
                log("the API server serves no Nodes; not registering")
                return
            if e.code != 409:
                raise
            self.api.call("PATCH", "/api/v1/nodes/%s/status" % self.node, {"status": status},
                          "application/merge-patch+json")
        log("node registered", node=self.node)

    @staticmethod
    def mem_kib():
        with open("/proc/meminfo") as f:
            return int(f.readline().split()[1])

    def handle(self, pod, deleted=False):
        meta = pod["metadata"]
        uid = meta["uid"]
        with self.lock:
            runner = self.runners.get(uid)
            if deleted:
                if runner:
                    runner.terminate(0)
                return
            if runner is None:
                phase = pod.get("status", {}).get("phase")
                if meta.get("deletionTimestamp"):
                    runner = PodRunner(self, pod)
                    runner.stop.set()
                    runner.finish()
                    return
                if phase in ("Succeeded", "Failed"):
                    return
                if phase == "Running":
                    PodRunner(self, pod).patch_status({"phase": "Failed", "reason": "KubeletRestarted",
                                                       "message": "the kubelet stand-in restarted; the process is gone"})
                    return
                runner = self.runners[uid] = PodRunner(self, pod)
                runner.thread.start()
            elif meta.get("deletionTimestamp"):
                runner.terminate(meta.get("deletionGracePeriodSeconds") or 0)

    def loop(self, stop):
        self.watch("/api/v1/pods?fieldSelector=" + urllib.parse.quote("spec.nodeName=" + self.node), self.handle, stop)

    def watch(self, base, handle, stop):
        sep = "&" if "?" in base else "?"
        while not stop.is_set():
            try:
                listing = self.api.call("GET", base)
                for obj in listing["items"]:
                    handle(obj)
                rv = listing["metadata"]["resourceVersion"]
                with self.api.open("GET", base + sep + "watch=true&allowWatchBookmarks=true&timeoutSeconds=300"
                                   "&resourceVersion=" + rv, timeout=330) as resp:
                    for line in resp:
                        if stop.is_set():
                            return
                        event = json.loads(line)
                        if event["type"] == "ERROR":
                            break  # 410 Expired or a timeout: relist
                        if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                            handle(event["object"], event["type"] == "DELETED")
            except (ApiFailure, OSError, ValueError) as e:
                log("list/watch failed; retrying", path=base, error=str(e))
                stop.wait(1)

    # --- claims, as a local-path provisioner would bind them ---------------------------------------------------
    def claim_dir(self, ns, name):
        return os.path.join(self.state_dir, "claims", ns, name)

    def handle_claim(self, pvc, deleted=False):
        """--provision-claims: every claim gets a directory <state>/claims/<ns>/<name> and is Bound at once;
        a deleted claim's directory goes with it (reclaimPolicy Delete). With --local-claims only the claims
        whose volume.kubernetes.io/selected-node names this node (a local-path provisioner's
        WaitForFirstConsumer binding, the annotation the scheduler writes) are this kubelet's."""
        meta = pvc["metadata"]
        path = self.claim_dir(meta["namespace"], meta["name"])
        key = meta["namespace"] + "/" + meta["name"]
        node = (meta.get("annotations") or {}).get(SELECTED_NODE)
        if deleted:
            self.claim_nodes.pop(key, None)
        elif node:
            self.claim_nodes[key] = node
        if self.local_claims and node != self.node:
            return
        if deleted:
            shutil.rmtree(path, ignore_errors=True)
            log("claim released", claim=meta["namespace"] + "/" + meta["name"])
            return
        if (pvc.get("status") or {}).get("phase") == "Bound":
            return
        os.makedirs(path, exist_ok=True)
        spec = pvc.get("spec") or {}
        storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "0")
        try:
            self.api.call("PATCH", "/api/v1/namespaces/%s/persistentvolumeclaims/%s/status" % (meta["namespace"],
                                                                                           meta["name"]),
                          {"status": {"phase": "Bound", "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
                                      "capacity": {"storage": storage}}}, "application/merge-patch+json")
            log("claim bound", claim=meta["namespace"] + "/" + meta["name"], path=path)
        except (ApiFailure, OSError) as e:
            log("claim bind failed", claim=meta["namespace"] + "/" + meta["name"], error=str(e))

    def setup_network(self):
        cleanup_state(self.state_dir)  # a previous kubelet on this state dir may have died without cleaning up
        if self.network:
            self.network.setup()
            log("pod network ready", node_netns=self.network.netns, bridge=NODE_BRIDGE, cidr=str(self.network.net))

    def shutdown(self):
        with self.lock:
            runners = list(self.runners.values())
        for r in runners:
            r.kill_all()
            r.release_network()
        cleanup_state(self.state_dir)  # sandboxes a runner thread was still creating
        if self.network:
            self.network.teardown()
        if self.devices:
            self.devices.stop()


def parse_taint(text):
    """KEY[=VALUE]:EFFECT, kubelet --register-with-taints syntax."""
    m = re.match(r"^([^=:]+)(?:=([^:]*))?:(NoSchedule|PreferNoSchedule|NoExecute)$", text)
    if not m:
        raise argparse.ArgumentTypeError("--register-with-taint %s: expected KEY[=VALUE]:EFFECT" % text)
    t = {"key": m.group(1), "effect": m.group(3)}
    if m.group(2) is not None:
        t["value"] = m.group(2)
    return t


def parse_args(argv):
    ap = argparse.ArgumentParser(description="kubelet stand-in: runs the Pods bound to one node as local processes "
                                 "in private mount namespaces and writes their status to the API server.")
    ap.add_argument("--server", help="API server URL (http:// or https://)")
    ap.add_argument("--token", help="bearer token")
    ap.add_argument("--token-file", help="file holding the bearer token")
    ap.add_argument("--ca-file", help="CA certificate for an https server")
    ap.add_argument("--insecure", action="store_true", help="do not verify the server certificate")
    ap.add_argument("--node-name", default="kvlite-node", help="this node's name (default kvlite-node)")
    ap.add_argument("--pod-ip", default="127.0.0.1", help="with --host-network: the podIP/hostIP reported and the "
                    "Node's InternalIP (default 127.0.0.1)")
    ap.add_argument("--pod-cidr", help="give each Pod its own network namespace with an address from this IPv4 "
                    "CIDR, its eth0 a port of a bridge in the node network namespace (needs root)")
    ap.add_argument("--pod-cidr6", help="with --pod-cidr: dual stack, each Pod's eth0 also gets the address of this "
                    "IPv6 CIDR at its IPv4 address' offset (and an IPv6 default route via the CIDR's first address)")
    ap.add_argument("--node-netns", help="with --pod-cidr: the node's network namespace (ip netns name) for the "
                    "bridge; default one made and removed by the kubelet")
    ap.add_argument("--cluster-dns", help="with --pod-cidr: the nameserver in Pods' resolv.conf (default the "
                    "bridge address, where nothing answers)")
    ap.add_argument("--host-network", action="store_true", help="Pods share the kubelet's network namespace and "
                    "virt-launcher's --pod-network is dropped (the default without --pod-cidr; needs no netns)")
    ap.add_argument("--state-dir", help="per-Pod directories (emptyDir volumes); default a temp dir")
    ap.add_argument("--log-dir", help="container logs as <ns>_<pod>_<container>.log (kube_api_server --pod-log-dir)")
    ap.add_argument("--pvc-dir", help="persistentVolumeClaim volumes are <dir>/<claimName> (without "
                    "--provision-claims)")
    ap.add_argument("--provision-claims", action="store_true", help="bind every PersistentVolumeClaim to a new "
                    "directory <state-dir>/claims/<ns>/<name> (removed with the claim); Pod claim volumes mount it")
    ap.add_argument("--local-claims", action="store_true", help="with --provision-claims: claims are node-local, "
                    "bound by the kubelet of the node their volume.kubernetes.io/selected-node annotation names; "
                    "a Pod on another node cannot mount them")
    ap.add_argument("--serviceaccount-dir", help="token and ca.crt mounted at "
                    "/var/run/secrets/kubernetes.io/serviceaccount in every Pod")
    ap.add_argument("--in-cluster-server", help="https URL whose host/port go to KUBERNETES_SERVICE_HOST/PORT")
    ap.add_argument("--pass-env", action="append", default=[], help="also pass this kubelet env variable to "
                    "containers (PATH and sanitizer options always are)")
    ap.add_argument("--no-register-node", action="store_true", help="do not create the Node object")
    ap.add_argument("--no-unshare", action="store_true", help="no private mount namespace (volume mounts are "
                    "then impossible; for unprivileged debugging only)")
    ap.add_argument("--device-plugin-dir", help="serve the device-plugin Registration service on DIR/kubelet.sock, "
                    "advertise the plugins' devices in the Node's capacity, allocate them to Pods and give each "
                    "container a private /dev with only its allocated device nodes (needs python3-grpcio)")
    ap.add_argument("--register-with-taint", action="append", default=[], help="KEY[=VALUE]:EFFECT taint on the "
                    "registered Node (repeatable)")
    ap.add_argument("--node-label", action="append", default=[], help="KEY=VALUE label on the registered Node "
                    "(repeatable)")
    ap.add_argument("--exec-helper", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if not args.exec_helper and not args.server:
        ap.error("--server is required")
    for t in args.register_with_taint:
        try:
            parse_taint(t)
        except argparse.ArgumentTypeError as e:
            ap.error(str(e))
    for kv in args.node_label:
        if "=" not in kv:
            ap.error("--node-label %s: expected KEY=VALUE" % kv)
    if args.host_network and args.pod_cidr:
        ap.error("--host-network and --pod-cidr exclude each other")
    if not args.pod_cidr:
        if args.node_netns or args.cluster_dns or args.pod_cidr6:
            ap.error("--node-netns, --cluster-dns and --pod-cidr6 need --pod-cidr")
        args.host_network = True
    else:
        try:
            if ipaddress.IPv4Network(args.pod_cidr).num_addresses < 4:
                raise ValueError("no room for a gateway and two Pods")
        except ValueError as e:
            ap.error("--pod-cidr %s: %s" % (args.pod_cidr, e))
        try:
            ipaddress.IPv4Address(args.cluster_dns or "0.0.0.0")
        except ValueError as e:
            ap.error("--cluster-dns: %s" % e)
        try:
            net6 = ipaddress.IPv6Network(args.pod_cidr6 or "::/0")
            if args.pod_cidr6 and net6.num_addresses < ipaddress.IPv4Network(args.pod_cidr).num_addresses:
                raise ValueError("smaller than --pod-cidr")
        except ValueError as e:
            ap.error("--pod-cidr6 %s: %s" % (args.pod_cidr6, e))
    return args


def main(argv):
    args = parse_args(argv)
    if args.exec_helper:
        return exec_helper(args.exec_helper)
    kubelet = Kubelet(args)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    try:
        kubelet.setup_network()
    except (PodError, OSError) as e:
        print("kubelet: pod network: %s" % e, file=sys.stderr)
        kubelet.shutdown()
        return EXIT_NETWORK
    try:
        if kubelet.devices:
            kubelet.devices.start()
        if kubelet.register:
            kubelet.register_node()
    except (ApiFailure, OSError) as e:
        print("kubelet: cannot register node %s: %s" % (args.node_name, e), file=sys.stderr)
        kubelet.shutdown()
        return EXIT_API
    threading.Thread(target=kubelet.loop, args=(stop,), daemon=True).start()
    if args.provision_claims:
        threading.Thread(target=kubelet.watch, args=("/api/v1/persistentvolumeclaims", kubelet.handle_claim, stop),
                         daemon=True).start()
    print(json.dumps({"node": kubelet.node, "state_dir": kubelet.state_dir, "log_dir": kubelet.log_dir,
                      "device_plugin_dir": args.device_plugin_dir,
                      "node_netns": kubelet.network and kubelet.network.netns}), flush=True)
    stop.wait()
    kubelet.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
