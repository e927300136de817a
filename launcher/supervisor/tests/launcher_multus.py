"""Multus secondary networks, layer 2 (issue 19): two VMs and one plain container "Pod" on one macvlan network
exchange traffic in both directions. The test makes its own network namespaces: a node namespace holding a veth
(the macvlan master) and one namespace per Pod; the real CNI plugins (containernetworking-plugins: macvlan in
bridge mode, host-local IPAM) attach each Pod exactly as the kubelet stand-in's Multus part does (its cni_run). The
VMs use the macvtap binding: the guest gets the address IPAM gave the Pod interface (DHCP from the launcher) and the
macvtap's own MAC. VM a also sits on a second network, a linux bridge (the CNI bridge plugin, its bridge in the node
namespace as the gateway) with the bridge binding: its guest gets the address the NAD's host-local IPAM gave the Pod
interface by the launcher's DHCP, and the node reaches it there. The node namespace and the attachments are
tests/cninet.py's. Everything is removed in `finally`."""
import json
import os
import subprocess
import sys
import tempfile
import time

from launcherlib import Launcher, check, cleanup, need_guest, vmi

ROOT = os.environ.get("KV_SOURCE_ROOT", ".")
sys.path.insert(0, os.path.join(ROOT, "tests"))
from cninet import Node, bridge_conf, macvlan_conf, missing_plugins, pod_ifname  # noqa: E402

HTTP_PORT = 8080
NAD = "l2"
LAN = "lan"  # the linux-bridge network

need_guest()
if os.geteuid() != 0:
    print("SKIP: needs root (network namespaces)")
    sys.exit(77)
why = missing_plugins("macvlan", "bridge", "host-local")
if why:
    print(f"SKIP: {why}")
    sys.exit(77)

tag = "kvm%d" % os.getpid()
node = tag + "-node"
ipam_dir = tempfile.mkdtemp(prefix="kvlite-multus-ipam-")
conf = macvlan_conf(NAD, "10.77.%d.0/24" % (os.getpid() % 200), ipam_dir)
lan_conf = bridge_conf(LAN, "kvlan%d" % (os.getpid() % 10000), "10.78.%d.0/24" % (os.getpid() % 200), ipam_dir)
pods = []  # Pod netns names
net = None  # the node namespace (cninet.Node)


def ip(*args, check_rc=True):
    p = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check_rc and p.returncode:
        raise RuntimeError("ip %s: %s" % (" ".join(args), p.stderr))
    return p.stdout


def attach(name, confs=(conf,)):
    """A Pod netns with one attachment per NAD config, as Multus makes them; returns it and the IPAM addresses."""
    ns = "%s-%s" % (tag, name)
    ip("netns", "add", ns)
    pods.append(ns)
    ip("-n", ns, "link", "set", "lo", "up")
    return (ns, *(net.attach(ns, c) for c in confs))


def in_ns(ns, *cmd, timeout=20):
    return subprocess.run(["ip", "netns", "exec", ns, *cmd], capture_output=True, text=True, timeout=timeout)


def vm(name, ns, lan=False):
    networks = [{"name": n, "multus": {"networkName": n}} for n in ([NAD, LAN] if lan else [NAD])]
    manifest = vmi(name, kernel_args=f"http={HTTP_PORT} shell=1", networks=networks)
    manifest["spec"]["domain"]["devices"]["interfaces"] = [{"name": NAD, "binding": {"name": "macvtap"}}] + (
        [{"name": LAN, "bridge": {}}] if lan else [])
    return Launcher(manifest, prefix=["ip", "netns", "exec", ns], args=["--pod-network"])


def reach(ns, addr, tries=60):
    for _ in range(tries):
        r = in_ns(ns, "curl", "-s", "--max-time", "3", f"http://{addr}:{HTTP_PORT}/")
        if r.returncode == 0 and r.stdout.strip():
            return r.stdout.strip()
        time.sleep(0.5)
    return None


server = None
try:
    net = Node(node, macvlan_master=True)
    ns_a, ip_a, lan_a = attach("a", (conf, lan_conf))
    ns_b, ip_b = attach("b")
    ns_c, ip_c = attach("c")
    # the plain container: a web server in its own Pod namespace
    os.makedirs(os.path.join(ipam_dir, "www"), exist_ok=True)
    with open(os.path.join(ipam_dir, "www", "index.html"), "w") as f:
        f.write("container-c\n")
    server = subprocess.Popen(["ip", "netns", "exec", ns_c, sys.executable, "-m", "http.server", str(HTTP_PORT),
                               "--bind", ip_c, "--directory", os.path.join(ipam_dir, "www")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    A, B = vm("mvta", ns_a, lan=True), vm("mvtb", ns_b)
    for L, addr in ((A, ip_a), (B, ip_b)):
        L.wait_phase("Running", 60)
        L.wait_serial_re(rf"NET eth\d {addr}", 120)
        st = (L.status().get("interfaces") or [{}])[0]
        check(st.get("name") == NAD and st.get("ipAddress") == addr, f"status.interfaces[0] names the IPAM address {addr}: {st}", L)
    mvt = json.loads(in_ns(ns_a, "ip", "-j", "link", "show", "mvt" + pod_ifname(NAD)[3:]).stdout or "[{}]")[0]
    st_a = A.status()["interfaces"][0]
    check(mvt.get("address") == st_a.get("mac"), f"VM a's MAC is its macvtap's own ({mvt.get('address')})", A)
    pod_a = json.loads(in_ns(ns_a, "ip", "-j", "addr", "show", pod_ifname(NAD)).stdout)[0]
    check(all(a["local"] != ip_a for a in pod_a.get("addr_info", [])), "the Pod interface gave its address to the guest", A)
    # the linux-bridge network: VM a's guest holds the address host-local gave its Pod interface, and the node
    # (the bridge, the network's gateway) reaches it there
    L = A
    L.wait_serial_re(rf"NET eth\d {lan_a}", 60)
    st = {i.get("name"): i for i in L.status().get("interfaces") or []}.get(LAN, {})
    check(st.get("ipAddress") == lan_a, f"status.interfaces names {LAN}'s IPAM address {lan_a}: {st}", L)
    lan_if = json.loads(in_ns(ns_a, "ip", "-j", "addr", "show", pod_ifname(LAN)).stdout)[0]
    check(all(a.get("local") != lan_a for a in lan_if.get("addr_info", [])),
          f"the {LAN} Pod interface gave its address to the guest", L)
    page = reach(node, lan_a)
    check(page and page.startswith("kvguest"), f"node -> VM a on the bridge network at {lan_a}: {page!r}", L)
    # container -> VMs
    for L, addr in ((A, ip_a), (B, ip_b)):
        page = reach(ns_c, addr)
        check(page and page.startswith("kvguest"), f"container {ip_c} -> VM {addr}: {page!r}", L)
    # VMs -> container, VM a <-> VM b
    for L, me, other in ((A, "a", ip_b), (B, "b", ip_a)):
        ask = L.guest_shell()
        got = ask(f"c{me}", f"wget -q -O- http://{ip_c}:{HTTP_PORT}/ 2>&1")
        check(got == "container-c", f"VM {me} -> container {ip_c}: {got!r}", L)
        got = ask(f"v{me}", f"wget -q -O- http://{other}:{HTTP_PORT}/ 2>&1")
        check(got.startswith("kvguest"), f"VM {me} -> the other VM {other}: {got!r}", L)
        ask.close()
    A.cleanup(), B.cleanup()
finally:
    cleanup()
    if server:
        server.kill()
        server.wait()
    if net:  # CNI DEL while the Pod namespaces still exist, then the node namespace
        net.close()
    for ns in pods:
        ip("netns", "del", ns, check_rc=False)
    subprocess.run(["rm", "-rf", ipam_dir])
print("ok: macvlan layer 2 between two VMs and a container; a VM on a bridge network with its IPAM address")
