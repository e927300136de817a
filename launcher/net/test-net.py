#!/usr/bin/env python3
"""Integration test of libkvnet: for each binding, a test Pod netns (veth to a host-side netns), the
kvnet-testdriver inside it wiring the network and booting the test guest under TCG, then
  - the guest got the expected address by DHCP (NET line on its console),
  - the host side reaches the guest's HTTP port through the Pod IP,
  - the guest reaches an HTTP server on the host side (wget typed on its shell),
  - the launcher no longer holds CAP_NET_ADMIN, and binding specific checks (DNS, MAC, ports[]),
  - from inside the Pod, where virt-handler's port-forward connects (docs/portforward.md), the guest's HTTP
    port answers: masquerade at the guest's address, bridge at the Pod IP through k6t-eth0, slirp on loopback.
Everything is created in namespaces made here and removed afterwards, also on failure.
usage: test-net.py KVNET_TESTDRIVER [binding...]
"""
import os
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kvnet_fixture import GUEST_IP6, HTTP_PORT, PodNet, can_run, run  # noqa: E402

HOST_HTTP = 18080
OTHER_PORT = 8081  # a second guest server, not listed in ports[]
MIGRATION_PORTS = (49152, 49153)  # common/migration-ports.h
REACH_WITHIN = 60  # seconds the host side retries a fetch from the guest


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def host_reaches(pod, port, within=REACH_WITHIN, ip=None):
    """The page the host side fetches from port of the Pod IP (or ip), retried until within seconds have passed
    (TCG on a loaded machine is slow); None if it never got one."""
    host = f"[{ip}]" if ip and ":" in ip else ip or pod.pod_ip
    deadline = time.monotonic() + within
    while True:
        r = pod.host("curl", "-s", "-g", "--max-time", "5", f"http://{host}:{port}/")
        if r.returncode == 0 and r.stdout.startswith("kvguest"):
            return r.stdout.strip()
        if time.monotonic() > deadline:
            return None
        time.sleep(0.3)


def pod_reaches(pod, url, *curl_args, within=20):
    """The page a fetch from inside the Pod's namespace gets (port-forward's way in), retried for a while."""
    deadline = time.monotonic() + within
    while True:
        r = pod.pod("curl", "-s", "--max-time", "5", *curl_args, url)
        if r.returncode == 0 and r.stdout.startswith("kvguest"):
            return r.stdout.strip()
        if time.monotonic() > deadline:
            return None
        time.sleep(0.3)


# From inside the Pod, as virt-handler's port-forward connects (virt-api/portforward.c).
PORTFORWARD_URL = {"masquerade": ("http://10.0.2.2:%d/", "--interface", "k6t-eth0"),
                   "bridge": ("http://%s:%d/", "--interface", "k6t-eth0"),
                   "slirp": ("http://127.0.0.1:%d/",)}


def check_portforward_path(pod, binding):
    url, *args = PORTFORWARD_URL[binding]
    url = url % ((pod.pod_ip, HTTP_PORT) if binding == "bridge" else HTTP_PORT)
    page = pod_reaches(pod, url, *args)
    check(page and page.startswith("kvguest"), f"{url} from inside the Pod (port-forward's path): {page!r}")


def guest_reaches_host(pod, ip=None, port=HOST_HTTP):
    ip = ip or pod.host_ip
    www = os.path.join(pod.dir, "www")
    os.makedirs(www, exist_ok=True)
    token = f"hello-{pod.binding}-{port}-{os.getpid()}"
    with open(os.path.join(www, "hello.txt"), "w") as f:
        f.write(token + "\n")
    pod.host_bg("python3", "-m", "http.server", str(port), "--bind", ip, "--directory", www)
    url_host = f"[{ip}]" if ":" in ip else ip
    for _ in range(3):  # the server may need a moment to listen
        time.sleep(0.4)
        off = pod.serial_cmd(f"wget -q -O- http://{url_host}:{port}/hello.txt")
        try:
            pod.wait_serial(token + r"\r?$", 10, off)
            return True
        except TimeoutError:
            continue
    return False


def guest_shell(pod, cmd, pattern, timeout=10):
    off = pod.serial_cmd(cmd)
    return pod.wait_serial(pattern, timeout, off)


# A stand-in for the target's QEMU in the Pod (http.server would first reverse-resolve its address,
# which hangs in a Pod netns without DNS).
POD_LISTENER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen()
while True:
    c, _ = s.accept()
    c.recv(4096)
    c.sendall(b"HTTP/1.0 200 OK\\r\\nContent-Length: 17\\r\\n\\r\\nkvguest pod-side\\n")
    c.close()
"""


def check_migration_ports_kept(pod):
    """TCP 49152/49153 of the Pod IP reach a listener in the Pod (a migration target's QEMU), not the
    guest, although every other port is forwarded (docs/cluster-live-ops.md)."""
    for port in MIGRATION_PORTS:
        guest_shell(pod, f"httpd -p {port} -h /www && echo started-{port}", rf"^started-{port}")
        pod.pod_bg(sys.executable, "-c", POD_LISTENER, pod.pod_ip, str(port))
        page = host_reaches(pod, port)
        check(page == "kvguest pod-side", f"port {port}: reached {page!r}, not the Pod's own listener")


def check_ipv6_masquerade(pod):
    """Dual stack: the guest, with KubeVirt's fd10:0:2::2/120 (what KubeVirt's docs put in cloud-init;
    DHCPv6 clients get it from the launcher), takes its default route from the launcher's router
    advertisements, answers on the Pod's IPv6 address and reaches the host side through the ip6 NAT."""
    check(pod.result["guest_ip6"] == GUEST_IP6, f"guest_ip6 {pod.result['guest_ip6']!r}")
    check(pod.result["status_ip6"] == pod.pod_ip6, f"status_ip6 {pod.result['status_ip6']!r} != {pod.pod_ip6}")
    reply = pod.dhcp6_solicit()
    check(pod.dhcp6_leased(reply, GUEST_IP6), f"DHCPv6 REPLY with {GUEST_IP6} expected, got {reply.hex()}")
    dns6 = bytes([0, 23, 0, 16]) + socket.inet_pton(socket.AF_INET6, pod.host_ip6)
    check(dns6 in reply, f"DHCPv6 REPLY without the Pod's IPv6 name server {pod.host_ip6}: {reply.hex()}")
    labels = b"".join(bytes([len(w)]) + w.encode() for d in pod.search for w in d.split(".") + [""])
    check(bytes([0, 24, 0, len(labels)]) + labels in reply,
          f"DHCPv6 REPLY without the Pod's search domains {pod.search} (option 24): {reply.hex()}")
    pod.masquerade_ipv6_up()
    page = host_reaches(pod, HTTP_PORT, ip=pod.pod_ip6)
    check(page == "kvguest testvm",
          f"host side cannot reach the guest at [{pod.pod_ip6}]:{HTTP_PORT} within {REACH_WITHIN}s: {page!r}")
    check(guest_reaches_host(pod, pod.host_ip6, HOST_HTTP + 1), "guest cannot reach the host side over IPv6")


def check_ipv6_passt(pod):
    """Dual stack through passt: the guest configures IPv6 from passt's router advertisements (SLAAC in
    the Pod's /64; the test guest has no DHCPv6 client), and once it has sent from that address (passt
    forwards to the address it last saw the guest use: PodNet.passt_ipv6_up) answers on the Pod's IPv6
    address; it reaches the host side over IPv6."""
    check(pod.result["status_ip6"] == pod.pod_ip6, f"status_ip6 {pod.result['status_ip6']!r} != {pod.pod_ip6}")
    slaac = pod.passt_ipv6_up()
    page = host_reaches(pod, HTTP_PORT, ip=pod.pod_ip6)
    check(page and page.startswith("kvguest"), f"host side cannot reach the guest (SLAAC address {slaac}) at "
          f"[{pod.pod_ip6}]:{HTTP_PORT} within {REACH_WITHIN}s after it sent from that address: {page!r}")
    check(guest_reaches_host(pod, pod.host_ip6, HOST_HTTP + 1), "guest cannot reach the host side over IPv6")


def test_binding(driver, binding, index, ports=(HTTP_PORT,), ipv6=False):
    label = binding + (" (all ports)" if binding == "masquerade" and not ports else "") + (" dual-stack" if ipv6 else "")
    t0 = time.monotonic()
    with PodNet(driver, binding, index, ports=ports, ipv6=ipv6) as pod:
        try:
            res = pod.result
            check(res["net_admin"] is False, "CAP_NET_ADMIN still held after net_setup")
            expected = {"masquerade": "10.0.2.2", "slirp": "10.0.2.15"}.get(binding, pod.pod_ip)
            check(res["guest_ip"] == expected, f"result guest_ip {res['guest_ip']} != {expected}")
            check(res["status_ip"] == pod.pod_ip, f"status_ip {res['status_ip']} != Pod IP {pod.pod_ip}")
            lease = pod.wait_lease()
            check(lease == expected, f"guest leased {lease}, expected {expected}")
            page = host_reaches(pod, HTTP_PORT)
            check(page, f"host side cannot reach the guest at {pod.pod_ip}:{HTTP_PORT} within {REACH_WITHIN}s")
            if binding in ("masquerade", "bridge"):
                check(page == "kvguest testvm", f"hostname from DHCP not applied: {page!r}")
                guest_shell(pod, "cat /etc/resolv.conf", rf"nameserver {pod.host_ip}")
            if binding == "bridge":
                check(res["mac"] == pod.pod_mac, f"guest MAC {res['mac']} is not the Pod's {pod.pod_mac}")
            check(guest_reaches_host(pod), "guest cannot reach the host-side server")
            if binding in PORTFORWARD_URL:
                check_portforward_path(pod, binding)
            if binding == "masquerade":
                guest_shell(pod, f"httpd -p {OTHER_PORT} -h /www && echo started-{OTHER_PORT}",
                            rf"^started-{OTHER_PORT}")
                reached = host_reaches(pod, OTHER_PORT, within=5)
                if ports:
                    check(not reached, f"port {OTHER_PORT} is forwarded although ports[] lists only {ports}")
                else:
                    check(reached, f"port {OTHER_PORT} not forwarded with no ports[] (all ports)")
                    check_migration_ports_kept(pod)
            if ipv6 and binding == "masquerade":
                check_ipv6_masquerade(pod)
            if ipv6 and binding == "passt":
                check_ipv6_passt(pod)
        except BaseException:
            print(f"--- {label}: driver log\n{pod.log('driver.log')[-4000:]}", file=sys.stderr)
            print(f"--- {label}: serial log\n{pod.log('serial.log')[-3000:]}", file=sys.stderr)
            raise
    print(f"ok {label}: {time.monotonic() - t0:.1f}s")


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    why = can_run()
    if why:
        print(f"SKIP: {why}")
        return 77
    driver = sys.argv[1]
    # meson's timeout sends SIGTERM: unwind through the fixtures' cleanup instead of dying on the spot.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    # (binding, ports[], dual stack): the IPv6 checks ride on guests that boot anyway
    cases = [("masquerade", (HTTP_PORT,), False), ("masquerade", (), True), ("bridge", (), False),
             ("passt", (HTTP_PORT,), True), ("slirp", (HTTP_PORT,), False)]
    wanted = sys.argv[2:]
    failed = 0
    for i, (binding, ports, ipv6) in enumerate(cases, start=1):
        if wanted and binding not in wanted:
            continue
        try:
            test_binding(driver, binding, i, ports, ipv6)
        except Exception as e:  # report every binding, fail at the end
            print(f"FAIL {binding}: {e}", file=sys.stderr)
            failed += 1
    leftovers = [ns for ns in run("ip", "netns", "list").stdout.split() if ns.startswith(f"kvn{os.getpid() % 100000}x")]
    if leftovers:
        print(f"FAIL: namespaces left behind: {leftovers}", file=sys.stderr)
        failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
