"""SIGKILL of the launcher at N ms after its start, for N spanning every lifecycle step (manifest, run
dir, qemu-img overlay, cloud-init ISO, sockets, QEMU spawn at -S, QMP handshake, cont, running).
Expected every time: within 2 s no QEMU (or qemu-img) process mentions the test's run directory
(QEMU dies with its launcher through PR_SET_PDEATHSIG, also when the launcher dies between fork and
the prctl)."""
import os
import signal
import time

from faultlib import Launcher, check, container_disk_vmi, need_guest, processes_mentioning, qemu_orphans

need_guest()
manifest = container_disk_vmi("killme")
manifest["spec"]["domain"]["devices"]["disks"].append({"name": "ci", "disk": {"bus": "virtio"}})
manifest["spec"]["volumes"].append({"name": "ci", "cloudInitNoCloud": {"userData": "#cloud-config\n"}})

seen_phases = {}
delays = [0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 20, 40, 70, 100, 150, 250, 400, 700, 1200, 2000]
for ms in delays:
    L = Launcher(manifest)
    deadline = L.t0 + ms / 1000.0
    while time.monotonic() < deadline:
        time.sleep(0.001)
    phase = L.status().get("phase", "(no status yet)")
    qemu_seen = bool(processes_mentioning(L.dir, ("qemu-system-x86_64",)))
    L.proc.send_signal(signal.SIGKILL)
    L.proc.wait()
    left = qemu_orphans(L.dir, wait=2.0)
    seen_phases[ms] = (phase, qemu_seen)
    check(not left, f"killed at {ms:4d} ms (phase {phase}, QEMU {'running' if qemu_seen else 'not started'}): "
          f"no orphan ({left})", L)
    L.cleanup()
started = [ms for ms, (_, q) in seen_phases.items() if q]
check(started and len(started) < len(delays), f"the delays cover before and after QEMU's start ({started})")
print("PASS")
