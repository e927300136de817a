"""Test fixture for libkvliveops: QEMU processes running the test guest under TCG (every one killed on every
path), a minimal QMP client, the serial log's counter lines, and a runner for liveops-driver."""
import atexit
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

SKIP = 77
CNT_RE = re.compile(r"CNT (\d+) cpus=(\S+) memKB=(\d+) blk=(\S*) net=(\S*)")
_procs = []


def _kill_all(*_):
    for p in _procs:
        if p.poll() is None:
            p.kill()
            p.wait()


atexit.register(_kill_all)
signal.signal(signal.SIGTERM, lambda *a: (_kill_all(), sys.exit(1)))


def guest_dir():
    g = os.environ.get("KV_GUEST_DIR", "")
    if not os.path.exists(os.path.join(g, "vmlinuz")):
        print("no test guest in $KV_GUEST_DIR; skipping")
        sys.exit(SKIP)
    return g


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


class Qmp:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(60)
        for _ in range(200):
            try:
                self.sock.connect(path)
                break
            except OSError:
                time.sleep(0.05)
        self.f = self.sock.makefile("rw")
        self.f.readline()
        self.cmd("qmp_capabilities")

    def cmd(self, name, **args):
        self.f.write(json.dumps({"execute": name, "arguments": args}) + "\n")
        self.f.flush()
        while True:
            m = json.loads(self.f.readline())
            if "event" not in m:
                if "error" in m:
                    raise RuntimeError(f"{name}: {m['error']}")
                return m["return"]

    def close(self):
        self.sock.close()


def root_ports(n=8):
    out = []
    for k in range(n):
        d = {"driver": "pcie-root-port", "id": f"rp{k}", "bus": "pcie.0", "chassis": k + 1, "port": k,
             "addr": f"0x{2 + k // 8:x}.{k % 8}"}
        if k % 8 == 0:
            d["multifunction"] = True
        out += ["-device", json.dumps(d)]
    return out


def data_disk(path, node="disk0", dev="vd0", port="rp7"):
    """A qcow2 data disk on the command line (as lcore's argv builder does: JSON, backing null)."""
    bd = {"node-name": node, "driver": "qcow2", "file": {"driver": "file", "filename": path}, "backing": None}
    return ["-blockdev", json.dumps(bd), "-device",
            json.dumps({"driver": "virtio-blk-pci", "id": dev, "drive": node, "bus": port})]


class Vm:
    def __init__(self, tmp, name, append="", extra=(), memory="256M", smp="1", incoming=False):
        g = guest_dir()
        self.name = name
        self.log = os.path.join(tmp, name + ".serial")
        self.py_qmp = os.path.join(tmp, name + ".py.qmp")
        self.qmp_path = os.path.join(tmp, name + ".qmp")  # for liveops-driver (one client per socket)
        cmd = ["qemu-system-x86_64", "-accel", "tcg", "-machine", "q35", "-m", memory, "-smp", smp,
               "-nodefaults", "-no-user-config", "-display", "none", "-kernel", g + "/vmlinuz",
               "-initrd", g + "/initrd.img", "-append", "console=ttyS0 dhcp=0 " + append,
               "-serial", "file:" + self.log,
               "-qmp", f"unix:{self.py_qmp},server=on,wait=off",
               "-qmp", f"unix:{self.qmp_path},server=on,wait=off"] + root_ports() + list(extra)
        if incoming:
            cmd += ["-incoming", "defer", "-S"]
        self.stderr = open(os.path.join(tmp, name + ".stderr"), "w")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.stderr, stderr=self.stderr)
        _procs.append(self.proc)
        self.qmp = Qmp(self.py_qmp)

    def counters(self):
        try:
            with open(self.log, errors="replace") as f:
                text = f.read()
        except FileNotFoundError:
            return []
        return [m for m in CNT_RE.finditer(text)]

    def wait_cnt(self, pred, timeout, what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                fail(f"{self.name}: QEMU exited ({self.proc.returncode}) while waiting for {what}")
            c = self.counters()
            if c and pred(c[-1]):
                return c[-1]
            time.sleep(0.2)
        last = self.counters()[-1:]
        try:
            with open(self.log, errors="replace") as f:
                tail = f.read()[-400:]
        except FileNotFoundError:
            tail = ""
        fail(f"{self.name}: {what} not seen within {timeout}s; last counter line: "
             f"{last[0][0] if last else 'none'}; the console's end: {tail!r}")

    def last_n(self):
        c = self.counters()
        return int(c[-1].group(1)) if c else -1

    def status(self):
        return self.qmp.cmd("query-status")["status"]

    def kill(self):
        self.qmp.close()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def driver_start(exe, sock, verb, args=None):
    """liveops-driver in the background (the test watches QEMU meanwhile); driver_result() collects it."""
    cmd = [exe, sock, verb] + ([json.dumps(args)] if args is not None else [])
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    p.kv_started, p.kv_verb, p.kv_args = time.monotonic(), verb, args
    return p


def driver_result(p, expect_ok=True):
    try:
        out, errout = p.communicate(timeout=240)
    finally:
        p.kill()
    try:
        res = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        fail(f"liveops-driver {p.kv_verb}: no JSON (rc {p.returncode}): {out} {errout}")
    res["_seconds"] = time.monotonic() - p.kv_started
    if expect_ok is not None and res["ok"] != expect_ok:
        fail(f"liveops-driver {p.kv_verb} {p.kv_args}: expected ok={expect_ok}, got {res}")
    return res


def driver(exe, sock, verb, args=None, expect_ok=True):
    return driver_result(driver_start(exe, sock, verb, args), expect_ok)


def qemu_img(*args):
    subprocess.run(["qemu-img"] + list(args), check=True, capture_output=True, timeout=60)


def sector0(image):
    """The first sector of a qcow2 image, read without taking its lock."""
    p = subprocess.run(["qemu-io", "-r", "-U", "-f", "qcow2", "-c", "read -v 0 64", image],
                       capture_output=True, text=True, timeout=30)
    hexpart = "".join(l.split(":", 1)[1][:48] for l in p.stdout.splitlines() if re.match(r"^[0-9a-f]{8}:", l))
    data = bytes.fromhex(hexpart.replace(" ", ""))
    return data.split(b"\n")[0].decode(errors="replace")
