#!/usr/bin/env python3
"""Consistency test: kvmcheck's verdict must match what this host really is, whatever it is.

absent   -> /dev/kvm is missing or gives no VM (hostkvm.device_kind(), probed here without kvmcheck), and an
            -accel kvm QEMU exits without booting while -accel tcg boots
unusable -> /dev/kvm exists (or exists but may not be opened read-write), and an -accel kvm boot does NOT
            reach `KVGUEST READY` within 10 s nor before -accel tcg does, while -accel tcg does
usable   -> a VM can be created, and the test guest really boots to the marker with -accel kvm
The verdict of the machine the test was written on is named nowhere: the host decides.
The TCG boot gets up to 60 s (a loaded host is slow, not wrong). Every QEMU started here is SIGKILLed on
every path (and dies with this script: PR_SET_PDEATHSIG).

usage: test-consistency.py KVMCHECK_BINARY   (guest from $KV_GUEST_DIR)
"""
import ctypes
import os
import select
import signal
import subprocess
import sys
import time

import hostkvm  # beside this script

MARKER = b"KVGUEST READY"
BOOT_WINDOW_S = 10.0  # what KVM gets to boot, and to not boot, the test guest
SLOW_HOST_S = 60.0  # the most a loaded host may need to boot it under TCG
SKIP = 77


def die_with_parent():
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def start_qemu(accel, guest):
    argv = ["qemu-system-x86_64", "-accel", accel, "-machine", "q35", "-m", "256M", "-smp", "1",
            "-nodefaults", "-no-user-config", "-display", "none", "-monitor", "none",
            "-kernel", os.path.join(guest, "vmlinuz"), "-initrd", os.path.join(guest, "initrd.img"),
            "-append", "console=ttyS0 cnt=0 dhcp=0 acpid=0", "-serial", "stdio"]
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True, preexec_fn=die_with_parent)


def watch(procs, window, enough):
    """Reads every QEMU's serial console until each reached the marker or exited, enough(done, elapsed) holds,
    or the window ended. Returns {accel: (reached, seconds, tail of output, exit code or None)}."""
    start = time.monotonic()
    out = {accel: b"" for accel in procs}
    done = {}
    while len(done) < len(procs) and not enough(done, time.monotonic() - start):
        left = window - (time.monotonic() - start)
        if left <= 0:
            break
        fds = {p.stdout.fileno(): a for a, p in procs.items() if a not in done}
        ready, _, _ = select.select(list(fds), [], [], min(left, 0.2))
        for fd in ready:
            accel = fds[fd]
            chunk = os.read(fd, 65536)
            out[accel] += chunk
            if MARKER in out[accel]:
                done[accel] = (True, time.monotonic() - start)
            elif not chunk:  # QEMU closed its console: it is exiting
                done[accel] = (False, time.monotonic() - start)
                try:
                    procs[accel].wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
    return {a: (done.get(a, (False, window))[0], done.get(a, (False, window))[1], out[a][-300:],
                procs[a].poll()) for a in procs}


def kill_all(procs):
    for p in procs.values():
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
        p.wait(timeout=10)
        p.stdout.close()
        p.stderr.close()


def boot(accels, guest, window, enough):
    procs = {}
    try:
        for accel in accels:
            procs[accel] = start_qemu(accel, guest)
        return watch(procs, window, enough)
    finally:
        kill_all(procs)


def expected_verdicts(kind):
    """The verdicts kvmcheck may give for what hostkvm found /dev/kvm to be."""
    return {"absent": ("absent",), "denied": ("unusable",), "present": ("usable", "unusable")}[kind]


def main():
    kvmcheck = sys.argv[1]
    guest = os.environ.get("KV_GUEST_DIR", "")
    t0 = time.monotonic()
    report = hostkvm.live_verdict(kvmcheck)
    took = time.monotonic() - t0
    verdict = report["verdict"]
    kind, why = hostkvm.device_kind()
    print(f"kvmcheck: {verdict} in {took:.2f} s: {report['reason']}")
    print(f"host: /dev/kvm {kind}: {why}")
    assert verdict in expected_verdicts(kind), f"/dev/kvm is {kind} ({why}) but kvmcheck said {verdict}"
    assert took < 2.0, f"kvmcheck took {took:.2f} s, limit 2 s"
    if not all(os.path.exists(os.path.join(guest, f)) for f in ("vmlinuz", "initrd.img")):
        print(f"no test guest in KV_GUEST_DIR={guest!r}: build it with tests/guest/build.sh")
        return SKIP

    if verdict == "usable":
        res = boot(["kvm"], guest, SLOW_HOST_S, lambda done, _: "kvm" in done)
        ok, secs, tail, _ = res["kvm"]
        print(f"-accel kvm: marker={ok} after {secs:.1f} s")
        assert ok, f"kvmcheck said usable but -accel kvm did not boot in {SLOW_HOST_S} s: {tail!r}"
        return 0

    # KVM gets BOOT_WINDOW_S, and at least as long as TCG needed on this host, to show it does not boot
    res = boot(["kvm", "tcg"], guest, SLOW_HOST_S,
               lambda done, elapsed: "tcg" in done and elapsed >= BOOT_WINDOW_S)
    for accel, (ok, secs, tail, rc) in res.items():
        print(f"-accel {accel}: marker={ok} after {secs:.1f} s, qemu exit={rc}")
    assert res["tcg"][0], f"-accel tcg did not boot in {SLOW_HOST_S} s: {res['tcg'][2]!r}"
    assert not res["kvm"][0], f"kvmcheck said {verdict} but -accel kvm booted in {res['kvm'][1]:.1f} s"
    if kind != "present":  # no VM can be created: QEMU must give up at once, not seem to hang
        assert res["kvm"][3] not in (None, 0), f"/dev/kvm is {kind} but QEMU ran with -accel kvm: {res['kvm']}"
    return 0


if __name__ == "__main__":
    sys.exit(main())
