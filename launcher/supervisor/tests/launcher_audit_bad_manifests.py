"""Issue 3 audit: every bad manifest of launcher/core/testdata/bad (wrong types, unknown bus, a disk
without a volume, negative memory, duplicate names, path tricks, ...; at least 15) through the real
virt-launcher: exit 2, the message on stderr names the field (the substring on the file's "# error:"
line: the JSON path, or line/column for YAML errors) in a JSON-lines log, a Failed status file, and nothing left running (no process mentions the test's directory)."""
import concurrent.futures
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile

from launcherlib import LAUNCHER, check

SOURCE = os.environ.get("KV_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "..", "..", ".."))
top = tempfile.mkdtemp(prefix="kv-audit-bad-")
images = os.path.join(top, "images")
os.makedirs(os.path.join(images, "escape", "boot"))
os.symlink("/etc/hostname", os.path.join(images, "escape", "boot", "secret"))  # the symlink-escape fixture
claims = os.path.join(top, "pvc")  # a claim volume named "data" is a plain file (lun-reservation-file)
os.makedirs(os.path.join(claims, "data"))
with open(os.path.join(claims, "data", "disk.img"), "wb") as f:
    f.truncate(1 << 20)


def run(path):
    name = os.path.basename(path)[:-5]
    d = os.path.join(top, name)
    os.makedirs(d)
    with open(path) as f:
        want = f.readline().split("# error: ", 1)[1].strip().replace("@TMP@/images", images)
    r = subprocess.run([LAUNCHER, "--vmi", path, "--run-dir", os.path.join(d, "run"), "--accel", "tcg",
                        "--image-root", images, "--pvc-root", claims, "--status-file", os.path.join(d, "status.json")],
                       capture_output=True, text=True, timeout=30)
    with open(os.path.join(d, "status.json")) as f:
        st = json.load(f)
    msgs = []  # the log is JSON lines: compare the decoded messages
    for line in r.stderr.splitlines():
        try:
            msgs.append(json.loads(line)["msg"])
        except (ValueError, KeyError):
            msgs.append("NOT A JSON LOG LINE: " + line)
    return name, want, r.returncode, "\n".join(msgs), st


def strays():
    found = []
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if top.encode() in f.read() and int(pid) != os.getpid():
                    found.append(pid)
        except OSError:
            pass
    return found


try:
    files = sorted(glob.glob(os.path.join(SOURCE, "launcher", "core", "testdata", "bad", "*.yaml")))
    check(len(files) >= 15, f"{len(files)} bad manifests (the issue asks for at least 15)")
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(run, files))
    for name, want, rc, err, st in results:
        field = want if want.startswith("line ") else want.split(": ")[0]  # the launcher may word it its own way
        ok = rc == 2 and field in err and "NOT A JSON LOG LINE" not in err and st.get("phase") == "Failed" and st.get("exitCode") == 2
        if not ok:
            print(err[-2000:])
        check(ok, f"{name}: exit {rc}, names {field!r}, status {st.get('phase')}")
    check(not strays(), "nothing left running")
finally:
    shutil.rmtree(top, ignore_errors=True)
print("PASS")
sys.exit(0)
