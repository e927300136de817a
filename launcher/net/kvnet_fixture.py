"""A test "Pod": two network namespaces created for one test (pod + host side, joined by a veth), the
kvnet-testdriver running inside the pod namespace with the test guest, and guaranteed cleanup. With multus= the
guest's only NIC is on a Multus secondary network instead: a node namespace (tests/cninet.py) and the real CNI
plugin attach both the Pod and the host side to it, and the host side reaches the guest there.

Used by launcher/net/test-net.py and bench/net-throughput.py. Only namespaces created here are touched;
addresses are private (10.x) and exist only inside them. Python 3 stdlib only.
"""
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests"))
import cninet  # noqa: E402
import hostcaps  # noqa: E402
from proclib import stop_process  # noqa: E402

HTTP_PORT = 8080  # the guest's busybox httpd
GUEST_IP6 = "fd10:0:2::2"  # KubeVirt's masquerade address for the guest
SECONDARY = "sec"  # the Multus network (NAD) of a multus= Pod
PEER_IFNAME = "net1"  # the host side's interface on it

# A DHCPv6 client for one exchange with the launcher's server on the masquerade bridge, run in the Pod's
# namespace (the test guest's busybox has no DHCPv6 client): SOLICIT with rapid commit and an IA_NA,
# prints the reply in hex.
DHCP6_CLIENT = """
import socket, sys
idx = socket.if_nametoindex(sys.argv[1])
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, idx)
s.bind(("::", 546))
s.settimeout(5)
msg = bytes([1, 0x12, 0x34, 0x56]) + bytes([0, 1, 0, 4]) + b"kvt6" + bytes([0, 3, 0, 12, 0, 0, 0, 9] + [0] * 8)
s.sendto(msg + bytes([0, 14, 0, 0]), ("ff02::1:2", 547, 0, idx))
print(s.recvfrom(1500)[0].hex())
"""


def run(*cmd, check=True, **kw):
    return subprocess.run(cmd, check=check, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def can_run():
    """None when namespaces, QEMU and the guest are available, else why not."""
    why = hostcaps.missing("root", "ip", "netns", "veth", "bridge", "tun", "nftables")
    if why:
        return why
    guest = os.environ.get("KV_GUEST_DIR", "")
    if not os.path.exists(os.path.join(guest, "vmlinuz")):
        return "no test guest in KV_GUEST_DIR (tests/guest/build.sh)"
    for tool in ("ip", "qemu-system-x86_64", "passt"):
        if not shutil.which(tool):
            return f"missing {tool}"
    return None


def multus_missing(plugin):
    """None when a multus= Pod on a network of this CNI plugin can be made here, else why not."""
    return cninet.missing_plugins(plugin, "host-local")


class PodNet:
    """with PodNet(driver, "masquerade", 1) as pod: pod.host(...), pod.serial_cmd(...)"""

    def __init__(self, driver, binding, index, ports=(HTTP_PORT,), append="", timeout=150, ipv6=False, multus=None):
        """multus: "macvlan" or "bridge", the CNI plugin of a secondary network that carries the guest's only
        NIC (binding macvtap or bridge); secondary_ip is then the address its IPAM gave the Pod (the guest's)."""
        self.driver, self.binding, self.index = driver, binding, index
        self.multus, self.node, self.secondary_ip = multus, None, None
        # dual stack: the veth also gets fd00:231:N::1 (host side) and ::2 (the Pod), a default route too
        self.host_ip6 = f"fd00:231:{index}::1" if ipv6 else None
        self.pod_ip6 = f"fd00:231:{index}::2" if ipv6 else None
        self.ports, self.append, self.timeout = ports, append, timeout
        self.tag = tag = f"kvn{os.getpid() % 100000}x{index}"
        self.ns_pod, self.ns_host = f"{tag}-pod", f"{tag}-host"
        self.host_ip, self.pod_ip = f"10.231.{index}.1", f"10.231.{index}.2"
        self.dir = tempfile.mkdtemp(prefix=f"kvnet-{binding}-")
        self.search = ("default.svc.cluster.local", "svc.cluster.local")  # the Pod's resolv.conf
        self.procs = []
        self.result = None
        self.serial_sock = None
        self._drain = None

    # --- lifecycle -------------------------------------------------------------------------------------
    def __enter__(self):
        try:
            self._make_namespaces()
            self._start_driver()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def _make_namespaces(self):
        run("ip", "netns", "add", self.ns_host)
        run("ip", "netns", "add", self.ns_pod)
        # Created inside the host-side namespace, peer moved straight into the pod: the root namespace
        # never sees either end.
        run("ip", "-n", self.ns_host, "link", "add", "h0", "type", "veth", "peer", "name", "eth0", "netns", self.ns_pod)
        for ns, dev, ip in ((self.ns_host, "h0", self.host_ip), (self.ns_pod, "eth0", self.pod_ip)):
            run("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", dev)
            run("ip", "-n", ns, "link", "set", dev, "up")
            run("ip", "-n", ns, "link", "set", "lo", "up")
        run("ip", "-n", self.ns_pod, "route", "add", "default", "via", self.host_ip)
        if self.pod_ip6:
            for ns, dev, ip in ((self.ns_host, "h0", self.host_ip6), (self.ns_pod, "eth0", self.pod_ip6)):
                run("ip", "-n", ns, "addr", "add", f"{ip}/64", "dev", dev, "nodad")
            run("ip", "-n", self.ns_pod, "-6", "route", "add", "default", "via", self.host_ip6)
        if self.multus:
            self._attach_secondary()
        link = run("ip", "-n", self.ns_pod, "-o", "link", "show", "eth0").stdout
        self.pod_mac = re.search(r"link/ether (\S+)", link).group(1)
        with open(os.path.join(self.dir, "resolv.conf"), "w") as f:
            f.write(f"nameserver {self.host_ip}\nsearch {' '.join(self.search)}\n")
            if self.host_ip6:
                f.write(f"nameserver {self.host_ip6}\n")

    def _attach_secondary(self):
        """The node namespace and network SECONDARY (10.232.N.0/24) with the Pod and the host side on it."""
        why = multus_missing(self.multus)
        if why:
            raise RuntimeError(why)
        self.node = cninet.Node(f"{self.tag}-node", macvlan_master=self.multus == "macvlan")
        subnet, ipam = f"10.232.{self.index}.0/24", os.path.join(self.dir, "ipam")
        conf = (cninet.macvlan_conf(SECONDARY, subnet, ipam) if self.multus == "macvlan"
                else cninet.bridge_conf(SECONDARY, "kvsec0", subnet, ipam))
        self.secondary_ip = self.node.attach(self.ns_pod, conf)
        self.node.attach(self.ns_host, conf, PEER_IFNAME)

    def _vmi(self):
        name = SECONDARY if self.multus else "default"
        iface = {"name": name}
        if self.binding in ("passt", "macvtap"):
            iface["binding"] = {"name": self.binding}
        else:
            iface[self.binding] = {}
        if self.binding not in ("bridge", "macvtap") and self.ports:
            iface["ports"] = [{"port": p} for p in self.ports]
        network = {"name": name, "multus": {"networkName": SECONDARY}} if self.multus else {"name": name, "pod": {}}
        return {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
                "metadata": {"name": "testvm", "namespace": "default"},
                "spec": {"domain": {"devices": {"interfaces": [iface]}}, "networks": [network]}}

    def _start_driver(self):
        vmi = os.path.join(self.dir, "vmi.json")
        with open(vmi, "w") as f:
            json.dump(self._vmi(), f)
        self.driver_log = open(os.path.join(self.dir, "driver.log"), "w")
        cmd = ["ip", "netns", "exec", self.ns_pod, self.driver, "--vmi", vmi, "--guest", os.environ["KV_GUEST_DIR"],
               "--run-dir", self.dir, "--resolv-conf", os.path.join(self.dir, "resolv.conf"),
               "--timeout", str(self.timeout), "--append", f"http={HTTP_PORT} shell=1 cnt=0 {self.append}"]
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.driver_log, text=True)
        self.procs.append(p)
        line = p.stdout.readline()
        if not line:
            p.wait(timeout=10)
            raise RuntimeError(f"driver failed (rc {p.returncode}): {self.log('driver.log')}")
        self.result = json.loads(line)
        self.driver_proc = p

    def host_bg(self, *cmd):
        """A process in the host-side namespace, killed on close."""
        return self._bg(self.ns_host, cmd)

    def pod_bg(self, *cmd):
        """A process in the Pod's namespace (where the launcher's QEMU listens), killed on close."""
        return self._bg(self.ns_pod, cmd)

    def _bg(self, ns, cmd):
        p = subprocess.Popen(["ip", "netns", "exec", ns, *cmd], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        self.procs.append(p)
        return p

    def pod(self, *cmd, timeout=30):
        """Runs a command in the Pod's namespace (where the launcher runs)."""
        return run("ip", "netns", "exec", self.ns_pod, *cmd, check=False, timeout=timeout)

    def dhcp6_solicit(self, bridge="k6t-eth0"):
        """The launcher's DHCPv6 reply to a SOLICIT (rapid commit) sent on the bridge, or b"" on timeout."""
        r = self.pod(sys.executable, "-c", DHCP6_CLIENT, bridge)
        return bytes.fromhex(r.stdout.strip()) if r.returncode == 0 else b""

    @staticmethod
    def dhcp6_leased(reply, addr):
        """True when reply is a REPLY to dhcp6_solicit's transaction that carries addr."""
        return reply[:4] == bytes([7, 0x12, 0x34, 0x56]) and socket.inet_pton(socket.AF_INET6, addr) in reply

    def host(self, *cmd, timeout=30):
        return run("ip", "netns", "exec", self.ns_host, *cmd, check=False, timeout=timeout)

    def close(self):
        for p in reversed(self.procs):
            stop_process(p, grace=5)
        if self.serial_sock:
            self.serial_sock.close()
        if self.node:  # CNI DEL while the attached namespaces still exist
            self.node.close()
        for ns in (self.ns_pod, self.ns_host):
            # Anything still inside (QEMU, passt, servers) dies before its namespace goes.
            pids = run("ip", "netns", "pids", ns, check=False).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            run("ip", "netns", "del", ns, check=False)
        if getattr(self, "driver_log", None):
            self.driver_log.close()
        if os.environ.get("KVNET_KEEP_LOGS"):
            print(f"logs kept in {self.dir}")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    # --- guest console ---------------------------------------------------------------------------------
    def log(self, name):
        try:
            with open(os.path.join(self.dir, name), errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def wait_serial(self, pattern, timeout=60, after=0):
        """Waits for a regex in the serial log (from offset after); returns the match."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.compile(pattern, re.M).search(self.log("serial.log"), after)
            if m:
                return m
            if self.driver_proc.poll() is not None:
                raise RuntimeError(f"driver exited rc {self.driver_proc.returncode}")
            time.sleep(0.1)
        raise TimeoutError(f"no /{pattern}/ on the serial console within {timeout}s")

    def serial_cmd(self, line):
        """Types a line into the guest's shell; returns the serial log offset before it."""
        if not self.serial_sock:
            self.serial_sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.serial_sock.connect(os.path.join(self.dir, "serial.sock"))
            # QEMU also writes to the socket; drain it so the guest's console never stalls.
            self._drain = threading.Thread(target=self._drain_serial, daemon=True)
            self._drain.start()
        offset = len(self.log("serial.log"))
        self.serial_sock.sendall(line.encode() + b"\n")
        return offset

    def _drain_serial(self):
        try:
            while self.serial_sock.recv(65536):
                pass
        except OSError:
            pass

    def masquerade_ipv6_up(self, tries=40):
        """Gives the masquerade guest KubeVirt's GUEST_IP6/120 (what the launcher's DHCPv6 hands out; the test
        guest has no DHCPv6 client) and waits for its default route from the launcher's router advertisements
        (the guest's solicitations or the periodic advertisement)."""
        self.wait_serial(r"^v6-set", 10, self.serial_cmd(f"ip -6 addr add {GUEST_IP6}/120 dev eth0 && echo v6-set"))
        for _ in range(tries):
            try:
                self.wait_serial(r"^default via fe80::\S+ dev eth0", 1, self.serial_cmd("ip -6 route show default"))
                return
            except TimeoutError:
                time.sleep(0.5)
        raise AssertionError("no IPv6 default route in the guest from the launcher's router advertisements")

    def passt_ipv6_up(self, within=60):
        """Readies a passt guest for inbound IPv6 and returns its address. The test guest has no DHCPv6 client: it
        takes a SLAAC address in the Pod's /64 from passt's router advertisements. passt forwards inbound IPv6 to
        the address it last saw the guest send from, which starts as the Pod's IPv6 address (what its DHCPv6 would
        hand out), so until the guest has sent from its SLAAC address passt's SYNs go to an address the guest does
        not hold and the connection is reset after ~10 s (docs/networking.md). So: wait until the address has
        passed duplicate address detection, then send one echo request from it to the host side."""
        prefix = ipaddress.ip_network(f"{self.pod_ip6}/64", strict=False)
        deadline, seen = time.monotonic() + within, ""
        while True:
            off = self.serial_cmd("ip -6 addr show dev eth0 scope global; echo v6-addrs")
            end = self.wait_serial(r"^v6-addrs", 10, off).start()
            seen = self.log("serial.log")[off:end]
            ready = [a for a, flags in re.findall(r"inet6 ([0-9a-f:]+)/\d+ scope global([^\n]*)", seen)
                     if ipaddress.ip_address(a) in prefix and "tentative" not in flags and "dadfailed" not in flags]
            if ready:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"no SLAAC address in {prefix} past duplicate address detection in the guest "
                                     f"within {within}s; eth0: {seen.strip()!r}")
            time.sleep(0.5)
        # no reply is needed (passt may not be allowed ICMP sockets): passt learns the address from the request
        self.wait_serial(r"^v6-sent", 10, self.serial_cmd(f"ping -c 1 -W 1 -I {ready[0]} {self.host_ip6}; echo v6-sent"))
        return ready[0]

    def wait_lease(self, timeout=90):
        return self.wait_serial(r"NET eth0 (\d+\.\d+\.\d+\.\d+)", timeout).group(1)
