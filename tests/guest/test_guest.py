#!/usr/bin/env python3
"""Boots the test guest of $KV_GUEST_DIR under TCG (kernel+initrd and disk.qcow2) and checks the contract of
tests/guest/README.md: readiness time, counter lines, ACPI power button via QMP, acpid=0."""
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time

SKIP = 77
# Boot time is measured on a shared 2-core machine where other TCG guests may be running: the limit applies
# to the fastest kernel boot of this test, and each boot must still reach the marker within BOOT_TIMEOUT.
READY_LIMIT = float(os.environ.get("KV_GUEST_READY_LIMIT", "3.0"))
BOOT_TIMEOUT = 20.0
CNT_RE = re.compile(r"^CNT (\d+) cpus=\S+ memKB=\d+ blk=(\S*) net=(\S*)$")


class Guest:
    """One QEMU running the guest: serial console on a pipe (lines with arrival times) and a QMP socket."""

    def __init__(self, tmp, name, args):
        self.name = name
        self.qmp_path = os.path.join(tmp, name + ".qmp")
        cmd = ["qemu-system-x86_64", "-accel", "tcg", "-machine", "q35", "-m", "256M", "-nodefaults",
               "-no-user-config", "-display", "none", "-serial", "stdio",
               "-qmp", f"unix:{self.qmp_path},server=on,wait=off"] + args
        self.start = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
        os.set_blocking(self.proc.stdout.fileno(), False)
        self.partial = b""
        self.lines = []  # (seconds since start, line)
        self.seen = 0  # lines already consumed by wait_line
        self.qmp = None

    def _read(self, timeout):
        r, _, _ = select.select([self.proc.stdout], [], [], max(timeout, 0))
        if not r:
            return True
        data = os.read(self.proc.stdout.fileno(), 65536)
        if not data:
            return False
        now = time.monotonic() - self.start
        self.partial += data
        *done, self.partial = self.partial.split(b"\n")
        self.lines += [(now, l.decode(errors="replace").rstrip("\r")) for l in done]
        return True

    def wait_line(self, regex, timeout):
        """Returns (time, match) of the next serial line matching regex, or fails the test."""
        pattern = re.compile(regex)
        deadline = time.monotonic() + timeout
        while True:
            while self.seen < len(self.lines):
                t, line = self.lines[self.seen]
                self.seen += 1
                m = pattern.search(line)
                if m:
                    return t, m
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(min(left, 0.2)):
                fail(f"{self.name}: no line matching {regex!r} within {timeout}s; last lines:\n" +
                     "\n".join(l for _, l in self.lines[-15:]))

    def drain(self, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and self._read(deadline - time.monotonic()):
            pass

    def execute(self, command, **arguments):
        if self.qmp is None:
            self.qmp = Qmp(self.qmp_path)
        return self.qmp.execute(command, arguments)

    def wait_exit(self, timeout):
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            self.drain(0.1)
        return self.proc.poll()

    def kill(self):
        if self.qmp:
            self.qmp.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()


class Qmp:
    """The smallest QMP client: greeting, capabilities, then one command at a time (events skipped)."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        for _ in range(100):  # QEMU creates the socket shortly after it starts
            try:
                self.sock.connect(path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                time.sleep(0.05)
        else:
            fail(f"cannot connect to QMP socket {path}")
        self.file = self.sock.makefile("rb")
        if "QMP" not in self._recv():
            fail("no QMP greeting")
        self.execute("qmp_capabilities", {})

    def _recv(self):
        line = self.file.readline()
        if not line:
            fail("QMP connection closed")
        return json.loads(line)

    def execute(self, command, arguments):
        self.sock.sendall(json.dumps({"execute": command, "arguments": arguments}).encode() + b"\n")
        while True:
            msg = self._recv()
            if "error" in msg:
                fail(f"QMP {command}: {msg['error']}")
            if "return" in msg:
                return msg["return"]

    def close(self):
        self.file.close()
        self.sock.close()


class Failure(Exception):
    pass


def fail(msg):
    raise Failure(msg)


def check(cond, msg):
    if not cond:
        fail(msg)


def wait_ready(g):
    t, _ = g.wait_line(r"^KVGUEST READY$", BOOT_TIMEOUT)
    print(f"{g.name}: KVGUEST READY after {t:.2f} s", flush=True)
    return t


def check_counter(g, expect_blk=None):
    _, first = g.wait_line(CNT_RE.pattern, 5)
    _, second = g.wait_line(CNT_RE.pattern, 5)
    check(int(second.group(1)) == int(first.group(1)) + 1,
          f"{g.name}: counter did not increment: {first.group(0)!r} then {second.group(0)!r}")
    if expect_blk:
        check(expect_blk in second.group(2).split(","), f"{g.name}: no {expect_blk} in {second.group(0)!r}")


def check_powerdown(g):
    t0 = time.monotonic()
    g.execute("system_powerdown")
    rc = g.wait_exit(15)
    check(rc == 0, f"{g.name}: QEMU did not exit 0 after system_powerdown (rc {rc})")
    print(f"{g.name}: powered off {time.monotonic() - t0:.2f} s after system_powerdown", flush=True)


def test_kernel_boot(tmp, guest_dir, guests):
    g = Guest(tmp, "kernel", ["-kernel", f"{guest_dir}/vmlinuz", "-initrd", f"{guest_dir}/initrd.img",
                              "-append", "console=ttyS0"])
    guests.append(g)
    t = wait_ready(g)
    check_counter(g)
    check_powerdown(g)
    return t


def test_disk_boot(tmp, guest_dir, guests):
    g = Guest(tmp, "disk", ["-drive", f"file={guest_dir}/disk.qcow2,format=qcow2,if=none,id=d0,snapshot=on",
                            "-device", "virtio-blk-pci,drive=d0"])
    guests.append(g)
    t = wait_ready(g)
    check_counter(g, expect_blk="vda")
    check_powerdown(g)
    return t


def test_acpid_off(tmp, guest_dir, guests):
    g = Guest(tmp, "acpid0", ["-kernel", f"{guest_dir}/vmlinuz", "-initrd", f"{guest_dir}/initrd.img",
                              "-append", "console=ttyS0 acpid=0"])
    guests.append(g)
    t = wait_ready(g)
    g.wait_line(CNT_RE.pattern, 5)
    g.execute("system_powerdown")
    g.drain(3)
    check(g.proc.poll() is None, "acpid0: the guest powered off although acpid=0")
    check_counter(g)
    check(g.execute("query-status")["status"] == "running", "acpid0: guest not running")
    g.execute("quit")
    check(g.wait_exit(10) == 0, "acpid0: QEMU did not exit 0 after quit")
    return t


def main():
    guest_dir = os.environ.get("KV_GUEST_DIR", "")
    missing = [f for f in ("vmlinuz", "initrd.img", "disk.qcow2") if not os.path.isfile(os.path.join(guest_dir, f))]
    if missing:
        print(f"skip: KV_GUEST_DIR={guest_dir!r} lacks {', '.join(missing)} (run tests/guest/build.sh)")
        return SKIP
    # meson's timeout sends SIGTERM: turn it into an exception so that every QEMU is killed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))
    guests = []
    try:
        with tempfile.TemporaryDirectory(prefix="kvguest-test.") as tmp:
            kernel_times = [test_kernel_boot(tmp, guest_dir, guests)]
            disk_time = test_disk_boot(tmp, guest_dir, guests)
            kernel_times.append(test_acpid_off(tmp, guest_dir, guests))
            best = min(kernel_times)
            print(f"readiness: kernel boot best {best:.2f} s of {len(kernel_times)}, disk boot {disk_time:.2f} s")
            check(best < READY_LIMIT, f"kernel boot took {best:.2f} s to KVGUEST READY (limit {READY_LIMIT} s)")
    except Failure as e:
        print(f"FAIL: {e}", flush=True)
        return 1
    finally:
        for g in guests:
            g.kill()
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
