"""Shared by the fault-injection and security tests: the launcher test helpers (launcher/supervisor/tests/
launcherlib.py, reused as is), a control-socket client with its own timeout, /proc scans for processes
left behind, and tmpfs mounts that are always unmounted."""
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

SRC = os.environ.get("KV_SOURCE_ROOT") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(SRC, "launcher", "supervisor", "tests"))
sys.path.insert(0, os.path.join(SRC, "controller", "tests"))

import launcherlib  # noqa: E402
from launcherlib import GUEST, LAUNCHER, Launcher, check, need_guest, pid_alive, proc_status, vmi  # noqa: E402,F401

SKIP = 77


def need_root(what):
    if os.geteuid() != 0:
        print(f"SKIP: {what} needs root (mount)")
        sys.exit(SKIP)


def processes_mentioning(marker, names=None):
    """pids whose command line contains marker (optionally only these executables' basenames)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state == "Z" or not any(marker.encode() in a for a in argv):
            continue
        if names and os.path.basename(argv[0].decode(errors="replace")) not in names:
            continue
        found.append(int(pid))
    return found


def qemu_orphans(marker, wait=2.0):
    """QEMU (or qemu-img) processes still mentioning marker after up to `wait` seconds."""
    names = ("qemu-system-x86_64", "qemu-img")
    end = time.monotonic() + wait
    while True:
        left = processes_mentioning(marker, names)
        if not left or time.monotonic() >= end:
            return left
        time.sleep(0.02)


def control(run_dir, cmd, timeout=20.0, **extra):
    """One request on <run-dir>/control.sock; returns (reply dict or None, seconds taken)."""
    t = time.monotonic()
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(timeout)
        s.connect(os.path.join(run_dir, "control.sock"))
        req = dict(cmd=cmd, **extra)
        s.sendall(json.dumps(req).encode() + b"\n")
        return read_reply(s), time.monotonic() - t


def read_reply(s):
    """The first JSON line from a control-socket connection, or None on EOF or the socket's timeout."""
    buf = b""
    try:
        while b"\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    except socket.timeout:
        return None
    line = buf.split(b"\n", 1)[0]
    return json.loads(line) if line else None


class Valgrind:
    """A wrapper script that runs `binary` under memcheck (definite leaks and memory errors exit 99), for
    code that starts the binary by path. Skips the test (77) in a sanitizer build or without valgrind."""

    def __init__(self, binary, name, extra=""):
        if os.environ.get("KV_SANITIZED") == "1" or not shutil.which("valgrind"):
            print("SKIP: sanitizer build, or no valgrind")
            sys.exit(77)
        self.dir = tempfile.mkdtemp(prefix="kv-vg-")
        self.log = os.path.join(self.dir, "valgrind.log")
        self.wrapper = os.path.join(self.dir, name + "-vg")
        with open(self.wrapper, "w") as f:
            f.write("#!/bin/sh\nexec valgrind --tool=memcheck --leak-check=full --errors-for-leak-kinds=definite "
                    f"--error-exitcode=99 {extra} --log-file={self.log} {binary} \"$@\"\n")
        os.chmod(self.wrapper, 0o755)

    def report(self, rc):
        """The memcheck log; its tail is printed when the run failed."""
        with open(self.log) as f:
            text = f.read()
        if rc != 0:
            print(text[-6000:])
        return text

    def remove(self):
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def tmpfs(path, options):
    """Mount a tmpfs at path for the block; always unmounted (lazily if busy)."""
    os.makedirs(path, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "kvlite-fault", path], check=True)
    try:
        yield path
    finally:
        if subprocess.run(["umount", path]).returncode != 0:
            subprocess.run(["umount", "-l", path])


def log_text(L):
    L.log.flush()
    with open(L.log_path, errors="replace") as f:
        return f.read()


def container_disk_vmi(name, **kw):
    image = os.path.join(GUEST, "containerdisk")
    return vmi(name, kernel_boot=False, disks=[{"name": "root", "disk": {"bus": "virtio"}}],
               volumes=[{"name": "root", "containerDisk": {"image": image}}], **kw)


def scratch_dir(prefix):
    return tempfile.mkdtemp(prefix=prefix)


def stop(L, sig=signal.SIGKILL):
    if L.proc.poll() is None:
        L.proc.send_signal(sig)
        L.proc.wait()
