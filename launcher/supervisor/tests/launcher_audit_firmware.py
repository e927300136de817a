"""Issue 3 audit, firmware and the no-Kubernetes demo on real boots under TCG:
* bootloader efi (KubeVirt's default secureBoot) with kernelBoot: OVMF from Debian's `ovmf` loads the
  kernel's EFI stub (serial: "UEFI Secure Boot is enabled"), the guest reaches its marker; the pflash pair
  is the read-only OVMF_CODE and a VARS copy in the launcher's private 0700 run dir (no --run-dir), which
  is removed at exit;
* `virt-launcher --vmi examples/vmi-demo.yaml` from the source tree, nothing else, on a terminal: the
  guest's serial console shows, Ctrl-C (SIGINT) powers it off, exit 0;
* KVLITE_IMAGE_ROOT stands for --image-root (seen in --dry-run's argv)."""
import json
import os
import pty
import re
import select
import shutil
import signal
import stat
import subprocess
import tempfile
import time

from launcherlib import GUEST, LAUNCHER, Launcher, _kill_strays, check, need_guest, vmi

need_guest()
SOURCE = os.environ.get("KV_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "..", "..", ".."))
OVMF = "/usr/share/OVMF"

# --- EFI + secure boot, kernel loaded by OVMF; private run dir ---
if not os.path.exists(os.path.join(OVMF, "OVMF_CODE_4M.secboot.fd")):
    print("SKIP part: no Debian ovmf package")
else:
    m = vmi("efi", kernel_args="cnt=0", grace=20)
    m["spec"]["domain"]["firmware"]["bootloader"] = {"efi": {}}
    L = Launcher(m, run_dir=False)
    L.wait_phase("Running")
    L.wait(lambda: '"msg":"run directory ' in open(L.log_path).read(), 10, "run directory in the log")
    L.run_dir = re.search(r'"msg":"run directory ([^"]+)"', open(L.log_path).read()).group(1)
    try:
        check(stat.S_IMODE(os.stat(L.run_dir).st_mode) == 0o700, f"private run dir {L.run_dir} is 0700", L)
        vars_copy = os.path.join(L.run_dir, "efi-vars.fd")
        check(os.path.getsize(vars_copy) == os.path.getsize(os.path.join(OVMF, "OVMF_VARS_4M.ms.fd")),
              "the VARS copy (OVMF_VARS_4M.ms.fd) is in the run dir", L)
        L.wait_serial("EFI stub: UEFI Secure Boot is enabled", timeout=40)
        print("ok: OVMF ran and booted the kernel's EFI stub with Secure Boot on")
        L.wait_serial("KVGUEST READY", timeout=40)
        print("ok: EFI guest reached its marker")
        check(L.qmp("query-status")["return"]["status"] == "running", "QMP status running", L)
        flash = {b["qdev"]: b["inserted"] for b in L.qmp("query-block")["return"] if "flash" in b.get("qdev", "")}
        code = [i for i in flash.values() if i["file"].endswith("OVMF_CODE_4M.secboot.fd")]
        var = [i for i in flash.values() if i["file"] == vars_copy]
        check(len(code) == 1 and code[0]["ro"] and len(var) == 1 and not var[0]["ro"],
              "pflash pair: read-only OVMF_CODE_4M.secboot.fd + writable VARS copy", L)
        L.proc.send_signal(signal.SIGTERM)
        check(L.wait_exit(25) == 0, "EFI guest powered off on SIGTERM, exit 0", L)
        check(not os.path.exists(L.run_dir), "private run dir removed at exit", L)
    finally:
        _kill_strays(L.run_dir)

    # --- efi.persistent: the VARS live in the backend storage (<pvc-root>/persistent-state-for-<name>/efi) and
    # are kept: made without Secure Boot keys, they stay keyless when the VM later asks for secureBoot (a fresh
    # copy of the Microsoft-keyed template would turn Secure Boot on) ---
    pvc = tempfile.mkdtemp(prefix="kv-audit-efi-pvc-")
    kept = os.path.join(pvc, "persistent-state-for-efip", "efi", "efi-vars.fd")
    for secure in (False, True):
        m = vmi("efip", kernel_args="cnt=0", grace=20)
        m["spec"]["domain"]["firmware"]["bootloader"] = {"efi": {"secureBoot": secure, "persistent": True}}
        L = Launcher(m, args=["--pvc-root", pvc])
        L.wait_serial("KVGUEST READY", timeout=60)
        var = [b["inserted"]["file"] for b in L.qmp("query-block")["return"] if "flash" in b.get("qdev", "")
               and not b["inserted"]["ro"]]
        check(var == [kept], f"efi.persistent: the VARS in the backend storage ({var})", L)
        enabled = "Secure Boot is enabled" in L.serial()
        check(not enabled, f"secureBoot {secure}, VARS made without keys: Secure Boot stays off", L)
        L.ctl("shutdown")
        check(L.wait_exit(25) == 0, "the EFI guest powers off", L)
        L.cleanup()
    with open(kept, "rb") as f, open(os.path.join(OVMF, "OVMF_VARS_4M.fd"), "rb") as t:
        check(f.read() != t.read(), "OVMF wrote its variables into the kept VARS")
    shutil.rmtree(pvc, ignore_errors=True)

# --- the literal demo command, from the source tree, on a terminal ---
env = {k: v for k, v in os.environ.items() if k != "KVLITE_IMAGE_ROOT"}
pid, fd = pty.fork()
if pid == 0:
    os.chdir(SOURCE)
    os.execve(LAUNCHER, [LAUNCHER, "--vmi", "examples/vmi-demo.yaml", "--accel", "tcg"], env)
out = b""
status = None
try:
    end = time.monotonic() + 40
    while time.monotonic() < end and b"KVGUEST READY" not in out:
        if select.select([fd], [], [], 0.2)[0]:
            try:
                out += os.read(fd, 65536)
            except OSError:
                break
    check(b"KVGUEST READY" in out, "`virt-launcher --vmi examples/vmi-demo.yaml` shows the guest's console")
    os.write(fd, b"\x03")  # Ctrl-C on the terminal: SIGINT from the line discipline
    end = time.monotonic() + 30
    while status is None and time.monotonic() < end:
        if select.select([fd], [], [], 0.2)[0]:
            try:
                out += os.read(fd, 65536)
            except OSError:
                pass
        done, st = os.waitpid(pid, os.WNOHANG)
        status = st if done else None
    check(status is not None and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0,
          "Ctrl-C: the demo guest powered off, exit 0")
    check(b'"reason":"guest powered off"' in out, "final log line: guest powered off")
finally:
    if status is None:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    os.close(fd)

# --- KVLITE_IMAGE_ROOT = --image-root ---
with tempfile.TemporaryDirectory(prefix="kv-audit-root-") as root:
    os.makedirs(os.path.join(root, "containerdisk", "disk"))
    base = os.path.join(root, "containerdisk", "disk", "disk.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", base, "16M"], check=True)
    r = subprocess.run([LAUNCHER, "--vmi", os.path.join(SOURCE, "examples", "vmi-demo.yaml"), "--dry-run",
                        "--accel", "tcg", "--run-dir", os.path.join(root, "run")], capture_output=True,
                       text=True, timeout=20, env={**env, "KVLITE_IMAGE_ROOT": root})
    check(r.returncode == 0 and base in "".join(json.loads(r.stdout)),
          "KVLITE_IMAGE_ROOT: the containerDisk resolves to $KVLITE_IMAGE_ROOT/containerdisk")
print("PASS")
