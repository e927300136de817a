#!/usr/bin/env python3
"""Boots the test guest of $KV_GUEST_DIR under TCG (kernel+initrd and disk.qcow2) and checks the contract of
tests/guest/README.md: readiness time, counter lines, ACPI power button via QMP, and the switches."""
import ctypes
import hashlib
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
import urllib.request

SKIP = 77
# Boot *time* is a benchmark figure (bench/guest-boot.py compares it with the 3 s goal); this test only
# requires each boot to reach the marker within BOOT_TIMEOUT and prints how long it took. ~1.5 s on an idle
# 2-core machine, but 15 s were seen on a loaded one: the bound is for a slow host, not a goal.
BOOT_TIMEOUT = 45.0
# Unanchored: with shell=1 the prompt may come first on a line.
CNT_RE = re.compile(r"CNT (\d+) cpus=\S+ memKB=\d+ blk=(\S*) net=(\S*)$")


LIBC = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1
LIVE = []  # every Guest started, killed at exit whatever happened


def die_with_parent():
    """In the QEMU child: SIGKILL when this test dies, even by SIGKILL (meson's timeout)."""
    LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class Guest:
    """One QEMU running the guest: serial console on a pipe (lines with arrival times) and a QMP socket."""

    def __init__(self, tmp, name, args, stdin=False):
        self.name = name
        self.qmp_path = os.path.join(tmp, name + ".qmp")
        cmd = ["qemu-system-x86_64", "-accel", "tcg", "-machine", "q35", "-m", "256M", "-nodefaults",
               "-no-user-config", "-display", "none", "-serial", "stdio",
               "-qmp", f"unix:{self.qmp_path},server=on,wait=off"] + args
        self.start = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, preexec_fn=die_with_parent)
        LIVE.append(self)
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

    def wait_line(self, regex, timeout, since=None):
        """Returns (time, match) of the first serial line matching regex after the last line returned, or
        after line index `since` (then the lines in between stay unconsumed), or fails the test."""
        pattern = re.compile(regex)
        deadline = time.monotonic() + timeout
        i = self.seen if since is None else since
        while True:
            for i in range(i, len(self.lines)):
                t, line = self.lines[i]
                m = pattern.search(line)
                if m:
                    if since is None:
                        self.seen = i + 1
                    return t, m
            i = len(self.lines)
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(min(left, 0.2)):
                fail(f"{self.name}: no line matching {regex!r} within {timeout}s; last lines:\n" +
                     "\n".join(l for _, l in self.lines[-15:]))

    def type(self, text):
        """Types text on the serial console (needs stdin=True)."""
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

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
        if self.proc.stdin:
            self.proc.stdin.close()


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


def test_kernel_boot(tmp, guest_dir):
    g = Guest(tmp, "kernel", ["-kernel", f"{guest_dir}/vmlinuz", "-initrd", f"{guest_dir}/initrd.img",
                              "-append", "console=ttyS0"])
    t = wait_ready(g)
    check_counter(g)
    check_powerdown(g)
    return t


def test_disk_boot(tmp, guest_dir):
    g = Guest(tmp, "disk", ["-drive", f"file={guest_dir}/disk.qcow2,format=qcow2,if=none,id=d0,snapshot=on",
                            "-device", "virtio-blk-pci,drive=d0"])
    t = wait_ready(g)
    check_counter(g, expect_blk="vda")
    check_powerdown(g)
    return t


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_cidata(tmp):
    """A vfat disk labelled cidata, the way cloud-init's NoCloud finds it; returns (path, {file: md5})."""
    src = os.path.join(tmp, "cidata")
    os.mkdir(src)
    files = {"meta-data": b"instance-id: i-1\nlocal-hostname: ci-host\n", "user-data": b"#cloud-config\n"}
    for name, data in files.items():
        with open(os.path.join(src, name), "wb") as f:
            f.write(data)
    img = os.path.join(tmp, "cidata.img")
    subprocess.run(["mkfs.vfat", "-C", "-n", "CIDATA", img, "1024"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["mcopy", "-i", img] + [os.path.join(src, n) for n in files] + ["::/"], check=True,
                   env=dict(os.environ, MTOOLS_SKIP_CHECK="1"))
    return img, {n: hashlib.md5(d).hexdigest() for n, d in files.items()}


def read_head(path, n):
    with open(path, "rb") as f:
        return f.read(n)


def wait_for(cond, seconds):
    deadline = time.monotonic() + seconds
    while not (ok := cond()) and time.monotonic() < deadline:
        time.sleep(0.2)
    return ok


def test_switches(tmp, guest_dir):
    """One boot with acpid=0 http= diskw= shell=1, a NIC, a cidata disk and a hot-plugged CPU."""
    port = free_port()
    cidata, md5s = make_cidata(tmp)
    scratch = os.path.join(tmp, "scratch.img")
    with open(scratch, "wb") as f:
        f.truncate(1 << 20)
    g = Guest(tmp, "switches", [
        "-kernel", f"{guest_dir}/vmlinuz", "-initrd", f"{guest_dir}/initrd.img",
        "-append", "console=ttyS0 acpid=0 http=8080 diskw=vda shell=1", "-smp", "1,maxcpus=2",
        "-drive", f"file={scratch},format=raw,if=none,id=d0", "-device", "virtio-blk-pci,drive=d0",
        "-drive", f"file={cidata},format=raw,if=none,id=d1,readonly=on", "-device", "virtio-blk-pci,drive=d1",
        "-netdev", f"user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:8080", "-device", "virtio-net-pci,netdev=n0"],
        stdin=True)
    t = wait_ready(g)
    booted = g.seen
    g.wait_line(r"NET eth0 10\.0\.2\.15$", 10, since=booted)
    for name, md5 in md5s.items():
        g.wait_line(rf"CIDATA {name} {md5}$", 10, since=booted)
    page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10).read()
    check(page == b"kvguest ci-host\n", f"switches: http served {page!r}")
    g.type("echo typed$((6*7))\n")
    g.wait_line(r"typed42", 5)
    # The init loop writes vda after its CIDATA lines, 0.5 s apart and with fsync: under load it may lag.
    written = wait_for(lambda: re.match(rb"DISKCNT \d+\n", read_head(scratch, 16)), 15)
    check(written, f"switches: diskw wrote no DISKCNT to vda in 15 s (it holds {read_head(scratch, 16)!r})")

    g.execute("system_powerdown")
    g.drain(3)
    check(g.proc.poll() is None, "switches: the guest powered off although acpid=0")
    check(g.execute("query-status")["status"] == "running", "switches: guest not running")
    check_counter(g)

    free = [c for c in g.execute("query-hotpluggable-cpus") if "qom-path" not in c][0]
    g.execute("device_add", driver=free["type"], id="cpu1", **free["props"])
    # TCG sometimes stalls the guest for many seconds after onlining a CPU (see the QEMU notes).
    g.wait_line(r"CNT \d+ cpus=0-1 ", 40)
    g.execute("quit")
    check(g.wait_exit(10) == 0, "switches: QEMU did not exit 0 after quit")
    return t


def main():
    guest_dir = os.environ.get("KV_GUEST_DIR", "")
    missing = [f for f in ("vmlinuz", "initrd.img", "disk.qcow2") if not os.path.isfile(os.path.join(guest_dir, f))]
    if missing:
        print(f"skip: KV_GUEST_DIR={guest_dir!r} lacks {', '.join(missing)} (run tests/guest/build.sh)")
        return SKIP
    # meson's timeout sends SIGTERM: turn it into an exception so that every QEMU is killed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))
    try:
        with tempfile.TemporaryDirectory(prefix="kvguest-test.") as tmp:
            times = {"kernel": [test_kernel_boot(tmp, guest_dir)],
                     "disk": [test_disk_boot(tmp, guest_dir)]}
            times["kernel"].append(test_switches(tmp, guest_dir))
            for kind in times:
                print(f"readiness: {kind} boot best {min(times[kind]):.2f} s of {len(times[kind])}", flush=True)
    except Failure as e:
        print(f"FAIL: {e}", flush=True)
        return 1
    finally:
        for g in LIVE:
            g.kill()
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
