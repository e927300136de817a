"""Helpers for the virt-launcher integration tests: start a launcher on a manifest in a private
directory, watch its status file and serial log, talk to its control socket and public QMP socket,
and kill everything it started on every path (atexit + a scan of /proc for our directory)."""
import atexit
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

GUEST = os.environ.get("KV_GUEST_DIR", "")
LAUNCHER = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else "virt-launcher"
SKIP = 77
_live = []
# A fault the guest kernel itself reports. QEMU 7.2's TCG has been seen to resume a migrated guest into
# "BUG: scheduling while atomic" in its idle task (once in dozens of CI runs, never with the same
# launcher code again): a test that fails with such a line on the console runs once more, saying so.
GUEST_FAULT = re.compile(r"\] (BUG: [^\n]*|Oops[^\n]*|general protection fault[^\n]*|Kernel panic[^\n]*)")
_rerun = []


def need_guest():
    if not os.path.exists(os.path.join(GUEST, "vmlinuz")):
        print(f"SKIP: no test guest in {GUEST!r} (tests/guest/build.sh)")
        sys.exit(SKIP)


def vmi(name, kernel_args="", grace=5, disks=(), volumes=(), kernel_boot=True, **spec):
    domain = {"resources": {"requests": {"memory": "256Mi"}}, "devices": {"disks": list(disks)}}
    if kernel_boot:
        domain["firmware"] = {"kernelBoot": {
            "container": {"image": os.path.join(GUEST, "kernelboot"), "kernelPath": "/boot/vmlinuz",
                          "initrdPath": "/boot/initrd.img"},
            "kernelArgs": ("console=ttyS0 " + kernel_args).strip()}}
    body = {"terminationGracePeriodSeconds": grace, "domain": domain, "volumes": list(volumes)}
    body.update(spec)
    return {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
            "metadata": {"name": name, "namespace": "kvtest", "uid": "uid-" + name}, "spec": body}


def free_port():
    """A free TCP port on 127.0.0.1 (for migration targets)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def counters(text):
    """The test guest's counter values (its `CNT n cpus=...` lines) in text."""
    return [int(n) for n in re.findall(r"CNT (\d+) cpus=", text)]


def _kill_strays(marker):
    """Any process whose command line mentions our temp dir is ours (QEMU's argv has run-dir paths)."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    os.kill(int(pid), signal.SIGKILL)
        except OSError:
            pass


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            return "State:\tZ" not in f.read()
    except OSError:
        return False


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def hotplug_attach(run_dir, volume, path):
    """virt-handler's hand-over of a hot-plugged claim: `hotplug-attach` with the open image and its directory
    (two SCM_RIGHTS descriptors) on the launcher's control socket; the launcher's reply."""
    dirfd = os.open(os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY)
    try:
        with socket.socket(socket.AF_UNIX) as c, open(path, "r+b") as img:
            c.connect(os.path.join(run_dir, "control.sock"))
            line = json.dumps({"cmd": "hotplug-attach", "args": {"volume": volume}}).encode() + b"\n"
            socket.send_fds(c, [line], [img.fileno(), dirfd])
            return json.loads(c.makefile("rb").readline())
    finally:
        os.close(dirfd)


class Launcher:
    def __init__(self, manifest, accel="tcg", args=(), run_dir=True, manifest_text=None, via_env=False,
                 prefix=(), via_stdin=False, env_extra=None):
        self.dir = tempfile.mkdtemp(prefix="kv-lt-")
        self.run_dir = os.path.join(self.dir, "run")
        self.status_path = os.path.join(self.dir, "status.json")
        self.manifest_path = os.path.join(self.dir, "vmi.json")
        with open(self.manifest_path, "w") as f:
            f.write(manifest_text if manifest_text is not None else json.dumps(manifest))
        self.log_path = os.path.join(self.dir, "launcher.log")
        self.log = open(self.log_path, "wb")
        env = dict(os.environ, **(env_extra or {}))
        if via_env:  # the Pod form: the VMI JSON in an environment variable
            env["KVLITE_VMI"] = manifest_text if manifest_text is not None else json.dumps(manifest)
            argv = [LAUNCHER, "--vmi-env", "KVLITE_VMI", "--status-file", self.status_path]
        else:  # via_stdin: `--vmi -`, the manifest piped in
            argv = [LAUNCHER, "--vmi", "-" if via_stdin else self.manifest_path, "--status-file", self.status_path]
        if run_dir:
            argv += ["--run-dir", self.run_dir]
        if accel:
            argv += ["--accel", accel]
        self.t0 = time.monotonic()
        # prefix: e.g. ["ip", "netns", "exec", NS] (which execs, so proc is still the launcher)
        self.proc = subprocess.Popen(list(prefix) + argv + list(args), stdout=subprocess.DEVNULL, stderr=self.log,
                                     env=env, stdin=subprocess.PIPE if via_stdin else None)
        if via_stdin:
            with open(self.manifest_path, "rb") as f:
                self.proc.stdin.write(f.read())
            self.proc.stdin.close()
        _live.append(self)

    # --- observation ---
    def status(self):
        try:
            with open(self.status_path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def condition(self, ctype):
        for c in self.status().get("conditions", []):
            if c["type"] == ctype:
                return c
        return None

    def wait_phase(self, phase, timeout=30):
        return self.wait(lambda: self.status().get("phase") == phase, timeout, f"phase {phase}")

    def serial(self):
        try:
            with open(os.path.join(self.run_dir, "serial.log"), "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def wait_serial(self, text, timeout=40):
        return self.wait(lambda: text in self.serial(), timeout, f"serial {text!r}")

    def wait_serial_re(self, pattern, timeout=40):
        return self.wait(lambda: re.search(pattern, self.serial()) is not None, timeout, f"serial /{pattern}/")

    def wait(self, pred, timeout, what):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if pred():
                return True
            if self.proc.poll() is not None and not pred():
                self.fail(f"launcher exited ({self.proc.returncode}) while waiting for {what}")
            time.sleep(0.05)
        self.fail(f"timed out after {timeout} s waiting for {what}")

    def qemu_pid(self):
        return self.status().get("qemuPid", 0)

    def wait_exit(self, timeout=20):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.fail(f"launcher still running after {timeout} s")

    # --- talking to it ---
    def ctl(self, *args):
        r = subprocess.run([LAUNCHER, "ctl", "--run-dir", self.run_dir, *args], capture_output=True,
                           text=True, timeout=10)
        reply = json.loads(r.stdout) if r.stdout.strip() else {}
        return r.returncode, reply

    def qmp(self, command, arguments=None):
        """One command on the public monitor <run-dir>/qmp.sock (what the qmp CLI uses)."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(os.path.join(self.run_dir, "qmp.sock"))
            f = s.makefile("rwb")
            json.loads(f.readline())
            for cmd in ({"execute": "qmp_capabilities"}, {"execute": command, "arguments": arguments or {}}):
                f.write(json.dumps(cmd).encode() + b"\n")
                f.flush()
                while True:
                    msg = json.loads(f.readline())
                    if "return" in msg or "error" in msg:
                        break
            return msg

    def guest_shell(self):
        """ask(tag, cmd) -> the output of cmd in the guest's serial shell (kernel arg shell=1), attached
        through the control socket's `console`."""
        con = socket.socket(socket.AF_UNIX)
        con.settimeout(5)
        con.connect(os.path.join(self.run_dir, "control.sock"))
        con.sendall(b'{"cmd":"console"}\n')
        line = b""
        while not line.endswith(b"\n"):
            line += con.recv(1)
        check(json.loads(line)["ok"], "console attached over control.sock", self)

        def ask(tag, cmd):
            con.sendall(f'echo "{tag}: $({cmd}) :{tag}"\n'.encode())
            self.wait_serial_re(rf"{tag}: ([^$\n]*) :{tag}", timeout=10)
            return re.search(rf"{tag}: ([^$\n]*) :{tag}", self.serial()).group(1).strip()
        ask.close = con.close
        ask.send = lambda cmd: con.sendall(f"{cmd}\n".encode())  # no answer awaited
        return ask

    # --- teardown ---
    def fail(self, msg):
        print(f"FAIL: {msg}")
        print("--- launcher log ---")
        self.log.flush()
        with open(self.log_path, errors="replace") as f:
            print(f.read()[-6000:])
        print("--- serial tail ---")
        serial = self.serial()
        print(serial[-2000:])
        fault = GUEST_FAULT.search(serial)
        if fault and not os.environ.get("KV_GUEST_FAULT_RERUN"):
            print(f"the guest kernel faulted ({fault.group(1)!r}), QEMU's TCG and not the launcher: "
                  "the test runs once more")
            _rerun.append(True)
        cleanup()
        sys.exit(1)

    def cleanup(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        _kill_strays(self.dir)
        shutil.rmtree(self.dir, ignore_errors=True)


def cleanup():
    while _live:
        _live.pop().cleanup()


def _rerun_after_guest_fault():
    """Registered before cleanup, so it runs after it and after the test's own finally blocks."""
    if _rerun:
        sys.stdout.flush()
        os.execve(sys.executable, [sys.executable] + sys.argv, dict(os.environ, KV_GUEST_FAULT_RERUN="1"))


atexit.register(_rerun_after_guest_fault)
atexit.register(cleanup)


def check(cond, msg, launcher=None):
    if not cond:
        if launcher:
            launcher.fail(msg)
        print(f"FAIL: {msg}")
        sys.exit(1)
    print(f"ok: {msg}")
