"""What KVM this host has, for tests that must expect what the host they run on gives them.

device_kind() looks at /dev/kvm on its own (stat, open O_RDWR, KVM_GET_API_VERSION, KVM_CREATE_VM), without
kvmcheck, so a test can hold kvmcheck's verdict against it. live_verdict() runs the built kvmcheck; a test
that starts a launcher with `--accel auto` derives the accelerator it expects from that verdict with
expected_accel() / expected_emulation_reason(), never from a constant."""
import errno
import fcntl
import json
import os
import stat
import subprocess

DEVICE = "/dev/kvm"
KVM_GET_API_VERSION = 0xAE00  # _IO(KVMIO, 0x00)
KVM_CREATE_VM = 0xAE01  # _IO(KVMIO, 0x01)
# open(2) errors that mean "a KVM we may not use" (an admin can fix them): kvmcheck calls those `unusable`
DENIED = (errno.EACCES, errno.EPERM, errno.EROFS)


def device_kind(path=DEVICE):
    """("absent" | "denied" | "present", one line of evidence).
    absent: no device node, not a character device, or it does not give a VM (another open error, API != 12,
    KVM_CREATE_VM fails); denied: the node exists but may not be opened read-write; present: a VM was created,
    whether guests really run on it only a boot tells."""
    try:
        st = os.stat(path)
    except OSError as e:
        return "absent", f"{path}: {e.strerror}"
    if not stat.S_ISCHR(st.st_mode):
        return "absent", f"{path} is not a character device"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        return ("denied" if e.errno in DENIED else "absent"), f"open {path} O_RDWR: {e.strerror}"
    step = "KVM_GET_API_VERSION"
    try:
        api = fcntl.ioctl(fd, KVM_GET_API_VERSION, 0)
        if api != 12:
            return "absent", f"KVM_GET_API_VERSION = {api}"
        step = "KVM_CREATE_VM"
        os.close(fcntl.ioctl(fd, KVM_CREATE_VM, 0))
        return "present", f"{path} opened O_RDWR, API 12, KVM_CREATE_VM ok"
    except OSError as e:  # not a KVM device (ENOTTY), or it refuses a VM
        return "absent", f"{path}: {step}: {e.strerror}"
    finally:
        os.close(fd)


def kvmcheck_path():
    return os.path.join(os.environ.get("KV_BUILD_ROOT", "build"), "kvmcheck", "kvmcheck")


def live_verdict(kvmcheck=None):
    """kvmcheck's --json report for this host (exit code checked against the verdict)."""
    r = subprocess.run([kvmcheck or kvmcheck_path(), "--json"], capture_output=True, text=True, timeout=10)
    rep = json.loads(r.stdout)
    assert r.returncode == rep["exit_code"], (r.returncode, rep["exit_code"])
    return rep


def expected_accel(verdict):
    """The accelerator `virt-launcher --accel auto` must pick for kvmcheck's verdict."""
    return "kvm" if verdict == "usable" else "tcg"


def expected_emulation_reason(verdict):
    """The SoftwareEmulation condition's reason under `--accel auto` (None: no such condition)."""
    return {"usable": None, "unusable": "KVMUnusable", "absent": "KVMAbsent"}[verdict]
