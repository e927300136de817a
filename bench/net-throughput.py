#!/usr/bin/env python3
"""TCP throughput host -> guest through each libkvnet binding, side by side in one run, as ratios to slirp
and to masquerade over IPv4 (the Pod network binding KubeVirt recommends).

For each binding a test Pod (launcher/net/kvnet_fixture.py: two fresh network namespaces, the
kvnet-testdriver, the test guest under TCG) is started; the guest runs busybox `nc -l -p PORT >/dev/null`,
and a client in the host-side namespace sends N MiB to the Pod IP, half-closes and waits for the guest to
close (so the time covers delivery, not just the local socket buffer). Best of R transfers per binding.
The "-v6" cases run on a dual-stack Pod and send to the Pod's IPv6 address: masquerade through the ip6 NAT
(the guest holds fd10:0:2::2 with the launcher's router as default route), passt to the guest's SLAAC address
once the guest has sent from it (PodNet.passt_ipv6_up; without that passt resets the connection after ~10 s).
The Multus cases (issue 19) put the guest's only NIC on a secondary network made by the real CNI plugin, with
the host side attached to the same network as another Pod and sending to the address its IPAM gave the guest:
"macvtap" on a macvlan (bridge mode) network, "bridge-secondary" the bridge binding on a linux-bridge network.

usage: net-throughput.py KVNET_TESTDRIVER [--mib N] [--repeat R] [case...]   (cases: see CASES)
Figures are TCG figures (no KVM here): compare the ratios, not the absolute MiB/s.
"""
import argparse
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("KV_SOURCE_ROOT", os.path.dirname(__file__) + "/.."), "launcher", "net"))
from kvnet_fixture import PodNet, can_run, multus_missing  # noqa: E402

PORT = 5001
# case -> (binding, over IPv6, the CNI plugin of its Multus network or None for the Pod network); slirp and
# masquerade come first, the baselines of the ratios
CASES = {"slirp": ("slirp", False, None), "masquerade": ("masquerade", False, None),
         "bridge": ("bridge", False, None), "passt": ("passt", False, None),
         "masquerade-v6": ("masquerade", True, None), "passt-v6": ("passt", True, None),
         "macvtap": ("macvtap", False, "macvlan"), "bridge-secondary": ("bridge", False, "bridge")}
BASELINES = ("slirp", "masquerade")


def send(host, port, mib):
    """Runs inside the host-side namespace: prints the seconds a whole transfer took."""
    chunk = b"\0" * (1 << 20)
    for _ in range(50):  # nc in the guest may not listen yet
        try:
            s = socket.create_connection((host, port), timeout=2)
            break
        except OSError:
            time.sleep(0.2)
    else:
        sys.exit("cannot connect")
    s.settimeout(120)
    t0 = time.monotonic()
    for _ in range(mib):
        s.sendall(chunk)
    s.shutdown(socket.SHUT_WR)
    while s.recv(4096):
        pass
    print(f"{time.monotonic() - t0:.3f}")


def measure(driver, case, index, mib, repeat):
    binding, v6, multus = CASES[case]
    best = None
    with PodNet(driver, binding, index, ports=(PORT,), ipv6=v6, multus=multus) as pod:
        leased = pod.wait_lease()
        if multus and leased != pod.secondary_ip:
            raise RuntimeError(f"the guest leased {leased}, not its IPAM address {pod.secondary_ip}")
        if v6 and binding == "masquerade":
            pod.masquerade_ipv6_up()
        elif v6:  # passt: forwards to the guest's SLAAC address once the guest has sent from it
            pod.passt_ipv6_up()
        target = pod.pod_ip6 if v6 else pod.secondary_ip or pod.pod_ip
        for _ in range(repeat):
            off = pod.serial_cmd(f"nc -l -p {PORT} >/dev/null; echo nc-done")
            time.sleep(0.3)
            r = pod.host(sys.executable, os.path.abspath(__file__), "--send", target, str(PORT), str(mib),
                         timeout=300)
            if r.returncode != 0:
                raise RuntimeError(f"transfer failed: {(r.stderr.strip().splitlines() or ['?'])[-1]}")
            pod.wait_serial(r"^nc-done", 30, off)
            secs = float(r.stdout.strip())
            best = secs if best is None else min(best, secs)
    return best


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "--send":
        send(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("driver")
    ap.add_argument("--mib", type=int, default=int(os.environ.get("KVNET_BENCH_MIB", "64")))
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("cases", nargs="*", default=list(CASES), metavar="case")
    args = ap.parse_intermixed_args()
    unknown = [c for c in args.cases if c not in CASES]
    if unknown:
        ap.error(f"unknown case {unknown[0]} (cases: {', '.join(CASES)})")
    why = can_run()
    if why:
        print(f"SKIP: {why}")
        return 77
    cases = list(BASELINES) + [c for c in args.cases if c not in BASELINES]
    results, failed, skipped = {}, {}, {}
    for i, c in enumerate(cases, start=1):
        why = CASES[c][2] and multus_missing(CASES[c][2])
        if why:  # this host has no such network to measure: not a failure
            skipped[c] = why
            continue
        try:
            results[c] = measure(args.driver, c, i, args.mib, args.repeat)
        except (RuntimeError, TimeoutError) as e:  # a baseline must work; another case is reported as failed
            if c in BASELINES:
                raise
            failed[c] = str(e)
    slirp, masq = (args.mib / results[b] for b in BASELINES)
    print(f"net-throughput: {args.mib} MiB host -> guest over TCP, best of {args.repeat}, QEMU -accel tcg")
    print(f"{'case':<16} {'seconds':>8} {'MiB/s':>8} {'vs slirp':>9} {'vs masq v4':>11}")
    for c in cases:
        if c in failed or c in skipped:
            print(f"{c:<16} failed: {failed[c]}" if c in failed else f"{c:<16} skipped: {skipped[c]}")
            continue
        rate = args.mib / results[c]
        print(f"{c:<16} {results[c]:>8.2f} {rate:>8.1f} {rate / slirp:>8.2f}x {rate / masq:>10.2f}x")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
