"""valgrind memcheck on one full launcher lifecycle: boot the test guest (kernelBoot + an emptyDisk +
cloud-init, so volume preparation runs too), ctl status, SIGTERM, the guest powers off, exit 0. No
definite leak and no memory error (--errors-for-leak-kinds=definite --error-exitcode=99). Skipped in
sanitizer builds (KV_SANITIZED=1, set by meson from b_sanitize): ASan and valgrind do not mix.
--no-sandbox: the launcher's seccomp filter would also bind valgrind's own syscalls."""
import os
import signal
import sys

from faultlib import Valgrind, check, control, need_guest, vmi
import launcherlib

vg = Valgrind(launcherlib.LAUNCHER, "virt-launcher", extra="--trace-children=no")
need_guest()
launcherlib.LAUNCHER = vg.wrapper  # Launcher() builds its argv from this module global
try:
    m = vmi("vg", kernel_args="cnt=0", grace=30,
            disks=[{"name": "scratch", "disk": {"bus": "virtio"}}, {"name": "ci", "disk": {"bus": "virtio"}}],
            volumes=[{"name": "scratch", "emptyDisk": {"capacity": "16Mi"}},
                     {"name": "ci", "cloudInitNoCloud": {"userData": "#cloud-config\n"}}])
    L = launcherlib.Launcher(m, args=["--no-sandbox"])
    L.wait_phase("Running", timeout=60)
    L.wait_serial("KVGUEST READY", timeout=60)
    reply, _ = control(L.run_dir, "status", timeout=20)
    check(reply and reply["ok"], "ctl status under valgrind", L)
    L.proc.send_signal(signal.SIGTERM)
    rc = L.wait_exit(60)
    report = vg.report(rc)
    check(rc == 0, f"lifecycle under valgrind: exit {rc} (99 = memcheck errors or definite leaks)", L)
    check("definitely lost: 0 bytes" in report or "definitely lost" not in report, "no definite leak", L)
    print("PASS")
finally:
    launcherlib.cleanup()
    vg.remove()
