"""Secondary (Multus) networks made by the real CNI plugins (containernetworking-plugins) between network
namespaces a test creates: a node namespace holding the macvlan master or the linux bridge, and Pod namespaces
attached to it exactly as the kubelet stand-in's Multus part attaches them (kubelet.cni_run: the plugin runs in
the node namespace, so nothing lands on the machine itself).

    node = Node("kvx1-node", macvlan_master=True)
    addr = node.attach("kvx1-pod", macvlan_conf("l2", "10.77.1.0/24", ipam_dir))   # Pod interface pod<hash>
    ...
    node.close()   # CNI DEL of every attachment, newest first, then the node namespace goes

Used by launcher/supervisor/tests/launcher_multus.py and launcher/net/kvnet_fixture.py (bench/net-throughput)."""
import hashlib
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "kube-api"))
from kubelet import CNI_PATH, cni_run  # noqa: E402

MACVLAN_MASTER = "l2master"  # in the node namespace: one end of a veth (no dummy module needed)


def pod_ifname(network_name):
    """The Pod interface KubeVirt 1.x names for a network: "pod" + 11 hex digits of sha256(name)."""
    return "pod" + hashlib.sha256(network_name.encode()).hexdigest()[:11]


def missing_plugins(*plugins):
    """Why these CNI plugins cannot run here (one line), or None."""
    for plugin in plugins:
        if not os.access(os.path.join(CNI_PATH, plugin), os.X_OK):
            return f"no CNI plugin {plugin} in {CNI_PATH} (containernetworking-plugins)"
    return None


def _ipam(subnet, data_dir):
    return {"type": "host-local", "subnet": subnet, "dataDir": data_dir}


def macvlan_conf(name, subnet, data_dir):
    """A macvlan NAD config (bridge mode, on the node's MACVLAN_MASTER) with host-local IPAM."""
    return {"cniVersion": "0.3.1", "name": name, "type": "macvlan", "master": MACVLAN_MASTER, "mode": "bridge",
            "ipam": _ipam(subnet, data_dir)}


def bridge_conf(name, bridge, subnet, data_dir):
    """A linux-bridge NAD config: the bridge in the node namespace is the network's gateway; host-local IPAM."""
    return {"cniVersion": "0.3.1", "name": name, "type": "bridge", "bridge": bridge, "isGateway": True,
            "ipam": _ipam(subnet, data_dir)}


def _ip(*args, check=True):
    p = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and p.returncode:
        raise RuntimeError("ip %s: %s" % (" ".join(args), p.stderr.strip()))
    return p.stdout


class Node:
    """A node network namespace and the CNI attachments of Pod namespaces to its networks."""

    def __init__(self, name, macvlan_master=False):
        self.ns = name
        self.attached = []  # (conf, Pod netns, ifname), detached in reverse
        _ip("netns", "add", name)
        try:
            if macvlan_master:
                _ip("-n", name, "link", "add", MACVLAN_MASTER, "type", "veth", "peer", "name", "l2peer")
                for dev in ("l2peer", MACVLAN_MASTER):
                    _ip("-n", name, "link", "set", dev, "up")
        except BaseException:
            self.close()
            raise

    def attach(self, netns, conf, ifname=None):
        """CNI ADD of conf for the existing namespace netns (interface ifname, by default KubeVirt's Pod
        interface name for the network); returns the first address IPAM gave."""
        ifname = ifname or pod_ifname(conf["name"])
        res = cni_run("ADD", conf, "/run/netns/" + netns, ifname, netns, self.ns)
        self.attached.append((conf, netns, ifname))
        return res["ips"][0]["address"].split("/")[0]

    def close(self):
        """CNI DEL of every attachment (before their namespaces go), then the node namespace."""
        while self.attached:
            conf, netns, ifname = self.attached.pop()
            try:
                cni_run("DEL", conf, "/run/netns/" + netns, ifname, netns, self.ns)
            except Exception as e:  # noqa: BLE001 - cleanup goes on
                print(f"warning: CNI DEL {conf['name']} in {netns}: {e}")
        _ip("netns", "del", self.ns, check=False)
