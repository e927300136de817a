"""virt-launcher's network modes end to end (issue 8): bad network input exits 2 naming the field;
locally (no --pod-network) an explicit bridge is refused and passt boots the guest to a DHCP lease;
with --pod-network inside a test "Pod" netns (launcher/net/kvnet_fixture.py: veth to a host-side netns,
removed afterwards on every path) masquerade and bridge make the guest's HTTP port answer on the Pod IP
and status.interfaces[] shows that IP; the masquerade guest (2 vCPUs, shell=1) sees its NIC's 2 queue pairs
(networkInterfaceMultiqueue), its acpiIndex and the dhcpOptions its DHCP client receives."""
import os
import sys
import time

from launcherlib import Launcher, check, cleanup, need_guest, vmi

sys.path.insert(0, os.path.join(os.environ.get("KV_SOURCE_ROOT", "."), "launcher", "net"))
from kvnet_fixture import HTTP_PORT, PodNet, can_run  # noqa: E402


def net_vmi(name, iface, kernel_args=""):
    manifest = vmi(name, kernel_args=kernel_args, networks=[{"name": "default", "pod": {}}])
    manifest["spec"]["domain"]["devices"]["interfaces"] = [{"name": "default", **iface}]
    return manifest


def run_bad(name, iface, field, args=()):
    L = Launcher(net_vmi("bad", iface), args=args)
    rc = L.wait_exit(15)
    with open(L.log_path) as f:
        log = f.read()
    check(rc == 2, f"{name}: exit 2 (got {rc})", L)
    check(field in log, f"{name}: the message names {field}", L)
    check(L.status().get("phase") == "Failed", f"{name}: status Failed", L)
    L.cleanup()


run_bad("unknown binding", {"binding": {"name": "vdpa"}}, "spec.domain.devices.interfaces[0].binding.name")
run_bad("bad MAC", {"masquerade": {}, "macAddress": "02:00:00:zz:00:01"},
        "spec.domain.devices.interfaces[0].macAddress")
run_bad("port 70000", {"masquerade": {}, "ports": [{"port": 70000}]},
        "spec.domain.devices.interfaces[0].ports[0].port")
run_bad("bridge without a Pod netns", {"bridge": {}}, "spec.domain.devices.interfaces[0].bridge: needs --pod-network")

need_guest()
why = can_run()
if why:
    print(f"SKIP: {why}")
    sys.exit(77)


class TestPod(PodNet):
    """kvnet_fixture's namespaces and veth only: the launcher under test replaces its driver."""

    def _start_driver(self):
        pass

    def launcher(self, manifest, pod_network=True):
        L = Launcher(manifest, prefix=["ip", "netns", "exec", self.ns_pod],
                     args=["--pod-network"] if pod_network else [])
        self.driver_proc = L.proc
        return L


def host_reaches(pod, L, tries=60):
    for _ in range(tries):
        r = pod.host("curl", "-s", "--max-time", "3", f"http://{pod.pod_ip}:{HTTP_PORT}/")
        if r.returncode == 0 and r.stdout.startswith("kvguest"):
            return r.stdout.strip()
        if L.proc.poll() is not None:
            break
        time.sleep(0.5)
    return None


def stray_processes(marker):
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if marker.encode() in f.read() and int(pid) != os.getpid():
                    found.append(pid)
        except OSError:
            pass
    return found


def iface_status(L):
    ifaces = L.status().get("interfaces") or [{}]
    return ifaces[0]


DHCP_OPTIONS = {"bootFileName": "pxelinux.0", "tftpServerName": "tftp.example.com",
                "ntpServers": ["192.0.2.1", "192.0.2.2"], "privateOptions": [{"option": 240, "value": "extra-data"}]}
# A second udhcpc in the guest asks for the options and prints what its script gets (busybox names them
# tftp, bootfile, ntpsrv; a private option is optNNN), on one line the shell answer can carry.
DHCP_PROBE = ("printf '#!/bin/sh\\n[ $1 = bound ] && echo tftp=$tftp bootfile=$bootfile ntp=$ntpsrv opt240=$opt240\\n'"
              " >/tmp/opts.sh && chmod +x /tmp/opts.sh && "
              "udhcpc -i eth0 -n -q -f -T 1 -t 5 -O tftp -O bootfile -O ntpsrv -O 240 -s /tmp/opts.sh 2>/dev/null")


def guest_sees_nic(L):
    """The masquerade guest's own view of its NIC: 2 queue pairs, the ACPI index, the DHCP options."""
    ask = L.guest_shell()
    queues = ask("N1", "ls /sys/class/net/eth0/queues | tr '\\n' ' '").split()
    check(queues == ["rx-0", "rx-1", "tx-0", "tx-1"], f"networkInterfaceMultiqueue: the guest's eth0 has {queues}", L)
    check(ask("N2", "cat /sys/class/net/eth0/device/../acpi_index") == "5",
          "acpiIndex 5: the guest reads it from its NIC's PCI device (acpi_index)", L)
    opts = ask("N3", DHCP_PROBE)
    check(opts == "tftp=tftp.example.com bootfile=pxelinux.0 ntp=192.0.2.1 192.0.2.2 opt240=" +
          "extra-data".encode().hex(), f"dhcpOptions: the guest's DHCP client receives {opts!r}", L)
    ask.close()


def test_pod(binding, index):
    t0 = time.monotonic()
    dual = binding == "masquerade"  # a dual-stack Pod: IPv6 on top (RAs, DHCPv6, ip6 NAT)
    with TestPod("-", binding, index, ipv6=dual) as pod:
        try:
            iface = {binding: {}}
            if binding == "masquerade":  # acpiIndex and dhcpOptions, asked in the guest's shell below
                iface.update(acpiIndex=5, dhcpOptions=DHCP_OPTIONS)
            manifest = net_vmi("netvm", iface, f"http={HTTP_PORT} shell=1")
            if binding == "masquerade":  # networkInterfaceMultiqueue: a 2-queue tap for 2 vCPUs
                manifest["spec"]["domain"]["cpu"] = {"cores": 2}
                manifest["spec"]["domain"]["devices"]["networkInterfaceMultiqueue"] = True
            L = pod.launcher(manifest)
            L.wait_phase("Running", 60)
            L.wait_serial_re(r"NET eth0 \d+\.\d+\.\d+\.\d+", 120)
            if binding == "masquerade":
                net = L.qmp("human-monitor-command", {"command-line": "info network"})["return"]
                check(net.count("type=tap") == 2 and "index=1,type=tap,ifname=" in net,
                      f"networkInterfaceMultiqueue: the tap netdev has 2 queues ({net.strip()!r})", L)
                dev = L.qmp("qom-get", {"path": "/machine/peripheral/ua-default", "property": "mq"})
                check(dev.get("return") is True, "networkInterfaceMultiqueue: the virtio NIC has mq=on", L)
                guest_sees_nic(L)
            page = host_reaches(pod, L)
            check(page is not None, f"{binding}: host side reaches the guest's :{HTTP_PORT} via Pod IP {pod.pod_ip}", L)
            st = iface_status(L)
            ips = [pod.pod_ip, pod.pod_ip6] if dual else [pod.pod_ip]
            check(st.get("name") == "default" and st.get("ipAddress") == pod.pod_ip and
                  st.get("ipAddresses") == ips and st.get("mac") and st.get("infoSource"),
                  f"{binding}: status.interfaces[0] {st}", L)
            if dual:  # the launcher's DHCPv6 server works under its seccomp filter
                check(pod.dhcp6_leased(pod.dhcp6_solicit(), "fd10:0:2::2"),
                      f"{binding}: DHCPv6 from the launcher hands out fd10:0:2::2", L)
            if binding == "bridge":
                check(st.get("mac") == pod.pod_mac, f"bridge: guest MAC is the Pod's {pod.pod_mac}", L)
            L.cleanup()
        finally:
            cleanup()
    print(f"ok {binding} in a Pod netns: {time.monotonic() - t0:.1f}s")


def test_local_passt(index):
    with TestPod("-", "passt", index) as pod:
        try:
            # ports[] listed: passt's "all ports" needs a socket per port, more than RLIMIT_NOFILE here
            L = pod.launcher(net_vmi("passtvm", {"binding": {"name": "passt"}, "ports": [{"port": HTTP_PORT}]},
                                     f"http={HTTP_PORT}"), pod_network=False)
            L.wait_phase("Running", 60)
            L.wait_serial_re(rf"NET eth0 {pod.pod_ip}", 120)
            check(True, "local passt: the guest leased the namespace's address from passt")
            check(host_reaches(pod, L) is not None, f"local passt: :{HTTP_PORT} answers on {pod.pod_ip}", L)
            st = iface_status(L)
            check(st.get("ipAddress") == pod.pod_ip, f"local passt: status.interfaces[0] {st}", L)
            L.proc.terminate()  # graceful stop: net_result_release stops passt under the seccomp filter
            check(L.wait_exit(30) == 0, "local passt: SIGTERM stops the launcher with exit 0", L)
            check(not pod.host("true").returncode and not stray_processes(L.dir),
                  "local passt: no passt or QEMU left behind", L)
            L.cleanup()
        finally:
            cleanup()


test_pod("masquerade", 1)
test_local_passt(2)
if os.environ.get("KV_NET_QUICK") is None:
    test_pod("bridge", 3)
