"""Bad manifests and bad usage: exit 2 with a message naming the field or argument, a Failed status,
and nothing left running. QEMU that cannot start: exit 1 with the reason. (The full bad-manifest
corpus is launcher/core's; this checks the launcher's exit path.)"""
import json
import os
import shutil
import subprocess

from launcherlib import GUEST, LAUNCHER, Launcher, check, need_guest, vmi

need_guest()  # the good manifests below boot the test guest's kernelBoot image


def nothing_running(L):
    found = []
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if L.dir.encode() in f.read() and int(pid) != os.getpid():
                    found.append(pid)
        except OSError:
            pass
    return not found


def run_bad(name, manifest=None, text=None, args=(), expect_rc=2, expect_msg=None):
    L = Launcher(manifest, manifest_text=text, args=args)
    rc = L.wait_exit(15)
    with open(L.log_path) as f:
        log = f.read()
    check(rc == expect_rc, f"{name}: exit {rc}", L)
    if expect_msg:
        check(expect_msg in log, f"{name}: message names {expect_msg!r}", L)
    check(L.status().get("phase") == "Failed", f"{name}: status phase Failed ({L.status().get('reason')})", L)
    check(nothing_running(L), f"{name}: nothing left running", L)
    L.cleanup()


good = vmi("bad")
neg = vmi("bad")
neg["spec"]["domain"]["resources"]["requests"]["memory"] = "-1Gi"
ide = vmi("bad", disks=[{"name": "d", "disk": {"bus": "ide"}}],
          volumes=[{"name": "d", "emptyDisk": {"capacity": "1Mi"}}])
novol = vmi("bad", disks=[{"name": "orphan", "disk": {"bus": "virtio"}}])
escape = vmi("bad", disks=[{"name": "c", "disk": {}}],
             volumes=[{"name": "c", "containerDisk": {"image": os.path.join(GUEST, "containerdisk"),
                                                      "path": "/../../../etc/shadow"}}])

# virtiofs: a daemon that cannot run fails the VMI naming the filesystem (exit 3, the host's part)
share = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"kv-bad-share-{os.getpid()}")
os.makedirs(os.path.join(share, "cfg"), exist_ok=True)
fs = vmi("bad", volumes=[{"name": "cfg", "configMap": {"name": "app-config"}}])
fs["spec"]["domain"]["devices"]["filesystems"] = [{"name": "cfg", "virtiofs": {}}]
run_bad("virtiofsd exits at once", fs, args=["--secret-root", share, "--virtiofsd", "/bin/false"], expect_rc=3,
        expect_msg="spec.domain.devices.filesystems[0]: virtiofsd cannot run on this host (exit status 1)")
run_bad("no virtiofsd", fs, args=["--secret-root", share, "--virtiofsd", "/nonexistent/virtiofsd"], expect_rc=3,
        expect_msg="spec.domain.devices.filesystems[0]: virtiofs needs virtiofsd")
os.remove(os.path.join(share, "cfg", "key")) if os.path.exists(os.path.join(share, "cfg", "key")) else None
os.rmdir(os.path.join(share, "cfg"))
os.rmdir(share)
run_bad("not YAML", text="{ this is : [ not valid", expect_msg="invalid manifest")
run_bad("negative memory", neg, expect_msg="memory")
run_bad("unknown bus", ide, expect_msg="spec.domain.devices.disks[0]")
run_bad("disk without volume", novol, expect_msg="orphan")
run_bad("path escaping the image", escape, expect_msg="path")
run_bad("wrong type", text=json.dumps({**good, "spec": {**good["spec"], "terminationGracePeriodSeconds": "soon"}}),
        expect_msg="terminationGracePeriodSeconds")
run_bad("missing qemu", good, args=["--qemu", "/nonexistent/qemu"], expect_rc=1, expect_msg="qemu failed to start")
run_bad("qemu that exits at once", good, args=["--qemu", "/bin/false"], expect_rc=1,
        expect_msg="qemu failed to start")
# QEMU's own last words become the reason
fake = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"kv-fake-qemu-{os.getpid()}")
with open(fake, "w") as f:
    f.write("#!/bin/sh\necho \"qemu-system-x86_64: -blockdev x: Could not open 'x'\" >&2\nexit 1\n")
os.chmod(fake, 0o755)
try:
    run_bad("qemu error on stderr", good, args=["--qemu", fake], expect_rc=1,
            expect_msg="qemu failed to start: qemu-system-x86_64: -blockdev x: Could not open 'x' (qemu exited with status 1)")
finally:
    os.unlink(fake)

# usage errors
for args, msg in ((["--accel", "xen", "--vmi", "x"], "--accel"), ([], "--vmi"),
                  (["--vmi", "a", "--vmi-env", "B"], "--vmi"), (["--vmi", "x", "extra"], "unexpected")):
    r = subprocess.run([LAUNCHER, *args], capture_output=True, text=True, timeout=10)
    check(r.returncode == 2 and msg in r.stderr, f"usage {args}: exit 2 naming {msg}")
r = subprocess.run([LAUNCHER, "--help"], capture_output=True, text=True, timeout=10)
check(r.returncode == 0 and "Exit codes" in r.stdout, "--help")
for sub in ("ctl", "console"):
    r = subprocess.run([LAUNCHER, sub, "--help"], capture_output=True, text=True, timeout=10)
    check(r.returncode == 0 and "--run-dir" in r.stdout, f"{sub} --help")
r = subprocess.run([LAUNCHER, "ctl", "--run-dir", "/nonexistent", "status"], capture_output=True, text=True,
                   timeout=10)
check(r.returncode == 3 and "control.sock" in r.stderr, "ctl without a launcher: exit 3")
# --dry-run never touches the network, even with --pod-network: in a network namespace of its own, the argv
# of bridge, masquerade and passt interfaces comes out and the namespace keeps nothing but lo.
ns = f"kvdry{os.getpid()}"
if subprocess.run(["ip", "netns", "add", ns], capture_output=True).returncode == 0:
    try:
        for binding in ("bridge", "masquerade", "passt"):
            m = vmi("dry", networks=[{"name": "default", "pod": {}}])
            m["spec"]["domain"]["devices"]["interfaces"] = [{"name": "default", binding: {}}]
            r = subprocess.run(["ip", "netns", "exec", ns, LAUNCHER, "--dry-run", "--pod-network", "--vmi", "-",
                                "--run-dir", os.path.join(os.environ.get("TMPDIR", "/tmp"), f"kv-dry-{os.getpid()}")],
                               input=json.dumps(m), capture_output=True, text=True, timeout=30)
            links = subprocess.run(["ip", "-n", ns, "-o", "link"], capture_output=True, text=True).stdout
            argv = " ".join(json.loads(r.stdout)) if r.returncode == 0 else ""
            want = "passt-default.sock" if binding == "passt" else '"ifname":"tap0"'
            check(r.returncode == 0 and want in argv and ["lo"] == [ln.split(": ")[1].split("@")[0]
                                                                     for ln in links.splitlines()],
                  f"--dry-run --pod-network, {binding}: the argv ({want}), only lo in the namespace" +
                  ("" if r.returncode == 0 else f" (exit {r.returncode}: {r.stderr.strip()[-300:]})"))
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        shutil.rmtree(os.path.join(os.environ.get("TMPDIR", "/tmp"), f"kv-dry-{os.getpid()}"), ignore_errors=True)
else:
    print("note: cannot create a network namespace here: the --dry-run network check is skipped")
print("PASS")
