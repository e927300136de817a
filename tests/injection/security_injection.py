"""Manifests that try to inject QEMU options or make QEMU open host files, run through the real
virt-launcher: each is rejected (exit 2, the message naming the field) or neutralised (the QEMU argv
carries the hostile string as one inert JSON string / argv element; for the boot cases, the real QEMU
opens only the literal file and never the named host file or network address). docs/security.md lists
them with their case names."""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fault"))
from faultlib import GUEST, LAUNCHER, Launcher, check, need_guest, vmi  # noqa: E402

need_guest()
WORK = tempfile.mkdtemp(prefix="kv-inject-")
SECRET = os.path.join(WORK, "host-secret")
with open(SECRET, "wb") as f:
    f.write(b"\0" * 1024 * 1024)


def dry_run(manifest):
    """(exit code, argv list or None, stderr) of virt-launcher --dry-run."""
    d = tempfile.mkdtemp(dir=WORK)
    path = os.path.join(d, "vmi.json")
    with open(path, "w") as f:
        json.dump(manifest, f)
    r = subprocess.run([LAUNCHER, "--vmi", path, "--run-dir", os.path.join(d, "run"), "--accel", "tcg",
                        "--dry-run"], capture_output=True, text=True, timeout=30)
    argv = json.loads(r.stdout) if r.returncode == 0 and r.stdout.strip() else None
    return r.returncode, argv, r.stderr


def blockdevs(argv):
    return [json.loads(argv[i + 1]) for i, a in enumerate(argv) if a == "-blockdev"]


def files_of(argv):
    out = []
    def walk(node):
        if isinstance(node, dict):
            if node.get("driver") == "file":
                out.append(node["filename"])
            for v in node.values():
                walk(v)
    for b in blockdevs(argv):
        walk(b)
    return out


def disk_vmi(name, volume, extra_disk=None):
    return vmi(name, kernel_args="cnt=0", disks=[dict({"name": "d", "disk": {"bus": "virtio"}}, **(extra_disk or {}))],
               volumes=[dict({"name": "d"}, **volume)])


def rejected(case, manifest, needle):
    rc, _, err = dry_run(manifest)
    check(rc == 2 and needle in err, f"{case}: rejected, exit {rc}, message names {needle!r}")


def neutralised_file(case, manifest, literal):
    rc, argv, err = dry_run(manifest)
    check(rc == 0, f"{case}: accepted" + ("" if rc == 0 else f" ({err.strip()[-300:]})"))
    check(literal in files_of(argv), f"{case}: QEMU gets the literal file name in a JSON blockdev")
    check(not any(a.startswith(("file=", "json:", "nbd:")) or ",file=" in a for a in argv),
          f"{case}: no QemuOpts string carries it")
    check("-drive" not in argv, f"{case}: no -drive")
    return argv


def host_disk(path, kind="Disk"):
    return {"hostDisk": {"path": path, "type": kind, "capacity": "1Mi"}}


# --- option injection through file names ---------------------------------------------------------
comma = os.path.join(WORK, "a,file.driver=nbd,file.host=127.0.0.1,b.img")
neutralised_file("commas in a hostDisk path", disk_vmi("comma", host_disk(comma, "DiskOrCreate")), comma)
jsonname = os.path.join(WORK, 'json:{"driver":"nbd","host":"127.0.0.1","port":"1"}')
neutralised_file("json: file name (absolute)", disk_vmi("jsonabs", host_disk(jsonname, "DiskOrCreate")), jsonname)
rejected("json: file name (as given)", disk_vmi("jsonrel", host_disk('json:{"driver":"nbd","host":"h"}')), "path")
rejected("nbd: file name (as given)", disk_vmi("nbdrel", host_disk("nbd:127.0.0.1:10809")), "path")

# --- paths leaving their place ---------------------------------------------------------------------
rejected("'..' in a hostDisk path", disk_vmi("dotdot", host_disk(WORK + "/x/../host-secret")), "path")
rejected("'..' in containerDisk.path",
         disk_vmi("cdotdot", {"containerDisk": {"image": os.path.join(GUEST, "containerdisk"),
                                                "path": "/disk/../../../../etc/passwd"}}), "path")
rejected("control character in a path", disk_vmi("ctrl", host_disk(WORK + "/a\nb")), "path")
img = os.path.join(WORK, "symlink-image")
os.makedirs(os.path.join(img, "disk"))
os.symlink(SECRET, os.path.join(img, "disk", "disk.img"))
rejected("symlink out of the containerDisk directory", disk_vmi("symlink", {"containerDisk": {"image": img}}),
         "outside")
kimg = os.path.join(WORK, "symlink-kernel")
os.makedirs(os.path.join(kimg, "boot"))
os.symlink(SECRET, os.path.join(kimg, "boot", "vmlinuz"))
kb = vmi("ksym")
kb["spec"]["domain"]["firmware"]["kernelBoot"]["container"]["image"] = kimg
kb["spec"]["domain"]["firmware"]["kernelBoot"]["container"]["initrdPath"] = None
del kb["spec"]["domain"]["firmware"]["kernelBoot"]["container"]["initrdPath"]
rejected("symlink out of the kernelBoot directory", kb, "kernelPath")

# --- qcow2 headers naming host files --------------------------------------------------------------
def qcow2_image(name, *opts):
    d = os.path.join(WORK, name)
    os.makedirs(os.path.join(d, "disk"))
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", *opts, os.path.join(d, "disk", "disk.qcow2"), "64M"],
                   check=True)
    return d


backing = qcow2_image("backing-image", "-u", "-b", SECRET, "-F", "raw")
datafile = qcow2_image("datafile-image", "-o", "data_file=" + SECRET + ",data_file_raw=on")
rejected("qcow2 data-file naming a host file", disk_vmi("datafile", {"containerDisk": {"image": datafile}}),
         "data file")
argv = neutralised_file("qcow2 backing file naming a host file", disk_vmi("backing", {"containerDisk": {"image": backing}}),
                        os.path.join(backing, "disk", "disk.qcow2"))
base = [b for b in blockdevs(argv) if b.get("file", {}).get("filename", "").endswith("disk.qcow2")
        or b.get("file") == os.path.join(backing, "disk", "disk.qcow2")]
check(SECRET not in json.dumps(blockdevs(argv)), "qcow2 backing file: the host file is named nowhere in the argv")

# --- odd bytes and shell metacharacters -----------------------------------------------------------
odd = "#cloud-config\n\u0000\u0001\u007f\u00ff\ufeff\u2028,=;$(reboot)`id`\r\n--\n-device virtio-net\n"
rc, argv, err = dry_run(disk_vmi("odd", {"cloudInitNoCloud": {"userData": odd}}))
check(rc in (0, 2), f"cloud-init userData with odd bytes: exit {rc}")
if rc == 0:
    check(not any("reboot" in a or "`id`" in a or "\u2028" in a for a in argv),
          "odd userData: its bytes stay in the ISO, not the argv")
else:
    check("userData" in err, "odd userData: refused naming userData")
for field, value in (("metadata.name", "a;rm -rf /"), ("metadata.name", "$(reboot)"), ("disk name", "d`id`"),
                     ("metadata.namespace", "ns,b=c"), ("disk serial", "x,drive=y")):
    m = vmi("meta", kernel_args="cnt=0", disks=[{"name": "d", "disk": {"bus": "virtio"}}],
            volumes=[{"name": "d", "emptyDisk": {"capacity": "1Mi"}}])
    if field == "metadata.name":
        m["metadata"]["name"] = value
    elif field == "metadata.namespace":
        m["metadata"]["namespace"] = value
    elif field == "disk name":
        m["spec"]["domain"]["devices"]["disks"][0]["name"] = value
        m["spec"]["volumes"][0]["name"] = value
    else:
        m["spec"]["domain"]["devices"]["disks"][0]["serial"] = value
    rc, _, err = dry_run(m)
    check(rc == 2, f"{field} {value!r}: rejected (exit {rc}: {err.strip()[-120:]})")
m = vmi("append", kernel_args="x,y=z -device virtio-net-pci -drive file=/etc/passwd")
rc, argv, _ = dry_run(m)
check(rc == 0 and argv[argv.index("-append") + 1] == "console=ttyS0 x,y=z -device virtio-net-pci -drive file=/etc/passwd"
      and argv.count("-drive") == 0, "kernelArgs stay one -append argument (the guest's command line)")

# --- the real QEMU: the literal nbd: file is opened, the host file and the network are not ---------
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(4)
listener.settimeout(0.2)
port = listener.getsockname()[1]
nbd_literal = os.path.join(WORK, f"nbd:127.0.0.1:{port}")
with open(nbd_literal, "wb") as f:
    f.truncate(1024 * 1024)
m = vmi("boot", kernel_args="cnt=0",
        disks=[{"name": "nbd", "disk": {"bus": "virtio"}}, {"name": "backing", "disk": {"bus": "virtio"}}],
        volumes=[{"name": "nbd", "hostDisk": {"path": nbd_literal, "type": "Disk"}},
                 {"name": "backing", "containerDisk": {"image": backing}}])
L = Launcher(m)
try:
    L.wait_phase("Running")
    L.wait_serial("KVGUEST READY")
    fds = set()
    for fd in os.listdir(f"/proc/{L.qemu_pid()}/fd"):
        try:
            fds.add(os.readlink(f"/proc/{L.qemu_pid()}/fd/{fd}"))
        except OSError:
            pass
    check(nbd_literal in fds, "QEMU opened the literal nbd:… file", L)
    check(SECRET not in fds, "QEMU did not open the host file the qcow2 header names", L)
    try:
        listener.accept()
        check(False, "QEMU connected to the nbd: address", L)
    except socket.timeout:
        print("ok: no connection to the nbd: address")
finally:
    listener.close()
    L.cleanup()
    shutil.rmtree(WORK, ignore_errors=True)
print("PASS")
