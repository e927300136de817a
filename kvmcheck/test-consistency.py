#!/usr/bin/env python3
"""Consistency test: kvmcheck's verdict must match what QEMU really does on this machine.

usable   -> the test guest boots to `KVGUEST READY` with -accel kvm within 10 s
unusable -> an -accel kvm boot does NOT reach the marker in 10 s, while -accel tcg does
absent   -> -accel kvm cannot start at all, while -accel tcg boots
On hosts whose /dev/kvm is served by kvm_pvm (the build machines) the verdict must be `unusable`.
Every QEMU started here is SIGKILLed on every path (and dies with this script: PR_SET_PDEATHSIG).

usage: test-consistency.py KVMCHECK_BINARY   (guest from $KV_GUEST_DIR)
"""
import ctypes
import json
import os
import select
import signal
import subprocess
import sys
import time

MARKER = b"KVGUEST READY"
BOOT_WINDOW_S = 10.0
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


def watch(procs, window):
    """Reads every QEMU's serial console until each reached the marker, exited, or the window ended.
    Returns {accel: (reached, seconds, tail of output, exit code or None)}."""
    start = time.monotonic()
    out = {accel: b"" for accel in procs}
    done = {}
    while len(done) < len(procs):
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
            elif not chunk:
                done[accel] = (False, time.monotonic() - start)
    return {a: (done.get(a, (False, window))[0], done.get(a, (False, window))[1], out[a][-300:],
                procs[a].poll()) for a in procs}


def kill_all(procs):
    for p in procs.values():
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
        p.wait(timeout=10)
        p.stdout.close()
        p.stderr.close()


def boot(accels, guest):
    procs = {}
    try:
        for accel in accels:
            procs[accel] = start_qemu(accel, guest)
        return watch(procs, BOOT_WINDOW_S)
    finally:
        kill_all(procs)


def main():
    kvmcheck = sys.argv[1]
    guest = os.environ.get("KV_GUEST_DIR", "")
    t0 = time.monotonic()
    run = subprocess.run([kvmcheck, "--json"], capture_output=True, timeout=10)
    took = time.monotonic() - t0
    report = json.loads(run.stdout)
    verdict = report["verdict"]
    print(f"kvmcheck: {verdict} in {took:.2f} s: {report['reason']}")
    assert run.returncode == {"usable": 0, "unusable": 1, "absent": 2}[verdict], run.returncode
    assert took < 2.0, f"kvmcheck took {took:.2f} s, limit 2 s"
    if os.path.isdir("/sys/module/kvm_pvm") and not os.path.isdir("/sys/module/kvm_intel") \
            and not os.path.isdir("/sys/module/kvm_amd"):
        assert verdict == "unusable", f"kvm_pvm host must be unusable, got {verdict}"
    if not all(os.path.exists(os.path.join(guest, f)) for f in ("vmlinuz", "initrd.img")):
        print(f"no test guest in KV_GUEST_DIR={guest!r}: build it with tests/guest/build.sh")
        return SKIP

    if verdict == "usable":
        res = boot(["kvm"], guest)
        ok, secs, tail, _ = res["kvm"]
        print(f"-accel kvm: marker={ok} after {secs:.1f} s")
        assert ok, f"kvmcheck said usable but -accel kvm did not boot in {BOOT_WINDOW_S} s: {tail!r}"
        return 0

    res = boot(["kvm", "tcg"], guest)
    for accel, (ok, secs, tail, rc) in res.items():
        print(f"-accel {accel}: marker={ok} after {secs:.1f} s, qemu exit={rc}")
    assert res["tcg"][0], f"-accel tcg did not boot in {BOOT_WINDOW_S} s: {res['tcg'][2]!r}"
    assert not res["kvm"][0], f"kvmcheck said {verdict} but -accel kvm booted in {res['kvm'][1]:.1f} s"
    if verdict == "absent":
        assert res["kvm"][3] is not None, "kvmcheck said absent but QEMU started with -accel kvm"
    return 0


if __name__ == "__main__":
    sys.exit(main())
