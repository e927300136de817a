"""valgrind memcheck on both launchers of a live migration, the path where an uninitialised stack buffer
once leaked into the status file (decide_phase) and that ASan/UBSan cannot see: a source launcher with a
local PVC disk and a target started with --incoming tcp:... --incoming-nbd ... (the way the controller
starts target Pods), ctl migrate (NBD mirror + RAM), the source ends Succeeded/Migrated, the target
finishes by itself, then a CPU hot-plug through `ctl apply` on the target and a graceful shutdown. Both
exit 0 under --error-exitcode=99 (memory errors, definite leaks). Skipped in sanitizer builds."""
import copy
import json
import os
import shutil

from faultlib import Valgrind, check, control, need_guest
import launcherlib
from launcherlib import counters, free_port, vmi

need_guest()
real = launcherlib.LAUNCHER
vg_src = Valgrind(real, "source", extra="--trace-children=no")
vg_tgt = Valgrind(real, "target", extra="--trace-children=no")
root = f"/tmp/kv-vg-mig-{os.getpid()}"


def pvc(side):
    os.makedirs(os.path.join(root, side, "data"), exist_ok=True)
    with open(os.path.join(root, side, "data", "disk.img"), "wb") as f:
        f.truncate(16 << 20)
    return os.path.join(root, side)


def start(vg, args):
    """A launcher under memcheck; ctl calls (launcherlib.LAUNCHER) stay native."""
    launcherlib.LAUNCHER = vg.wrapper
    try:
        return launcherlib.Launcher(m, args=["--no-sandbox", *args])
    finally:
        launcherlib.LAUNCHER = real


def ctl(L, cmd, args=None):
    reply, _ = control(L.run_dir, cmd, timeout=60, **({"args": args} if args is not None else {}))
    return reply or {}


m = vmi("vgmig", "diskw=vda", grace=30, disks=[{"name": "data", "disk": {"bus": "virtio"}}],
        volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}])
m["spec"]["domain"]["cpu"] = {"sockets": 1, "cores": 1, "threads": 1, "maxSockets": 2}
port, nbd = free_port(), free_port()
try:
    A = start(vg_src, ["--pvc-root", pvc("a")])
    B = start(vg_tgt, ["--pvc-root", pvc("b"), "--incoming", f"tcp:127.0.0.1:{port}",
                       "--incoming-nbd", f"127.0.0.1:{nbd}"])
    A.wait_phase("Running", timeout=90)
    A.wait_serial_re(r"CNT 2 ", 60)
    B.wait(lambda: B.status().get("qemuStatus") == "inmigrate", 90, "target waiting")
    reply = ctl(A, "migrate", {"uri": f"tcp:127.0.0.1:{port}", "nbdHost": "127.0.0.1", "nbdPort": nbd})
    check(reply.get("ok"), f"source migrate: {reply}", A)
    rc_a = A.wait_exit(90)
    st = A.status()
    check(st.get("phase") == "Succeeded" and st.get("reason") == "Migrated",
          f"source: phase {st.get('phase')}, reason {st.get('reason')!r}", A)
    json.dumps(st, ensure_ascii=False).encode("utf-8")  # the status file must be valid UTF-8 text
    B.wait_phase("Running", 60)
    B.wait(lambda: len(counters(B.serial())) >= 2, 60, "counter on the target's console")
    two = copy.deepcopy(m)
    two["spec"]["domain"]["cpu"]["sockets"] = 2
    reply = ctl(B, "apply", {"vmi": json.dumps(two)})
    check(reply.get("ok"), f"target apply (sockets 1 -> 2): {reply}", B)
    B.wait_serial_re(r"CNT \d+ cpus=0-1 ", 60)
    check(ctl(B, "shutdown").get("ok"), "target shutdown", B)
    rc_b = B.wait_exit(90)
    for name, rc, vg, L in (("source", rc_a, vg_src, A), ("target", rc_b, vg_tgt, B)):
        check("Memcheck" in vg.report(rc), f"the {name} ran under memcheck", L)
        check(rc == 0, f"{name} under valgrind: exit {rc} (99 = memcheck errors or definite leaks)", L)
    print("PASS")
finally:
    launcherlib.cleanup()
    vg_src.remove()
    vg_tgt.remove()
    shutil.rmtree(root, ignore_errors=True)
