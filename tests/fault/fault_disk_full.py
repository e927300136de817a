"""Disk full while the launcher creates a containerDisk overlay and an emptyDisk: the run directory is a
64 KiB tmpfs. Expected: exit 3 (setup error), phase Failed, a reason naming the volume step and ENOSPC,
nothing left running, and the launcher removes what it created."""
import os
import shutil

from faultlib import Launcher, check, container_disk_vmi, log_text, need_guest, need_root, qemu_orphans, scratch_dir, tmpfs, vmi

need_guest()
need_root("a tmpfs run directory")
cases = {
    "overlay": container_disk_vmi("full-overlay"),
    "emptydisk": vmi("full-empty", kernel_args="cnt=0", disks=[{"name": "scratch", "disk": {"bus": "virtio"}}],
                     volumes=[{"name": "scratch", "emptyDisk": {"capacity": "4Gi"}}]),
}
for name, manifest in cases.items():
    run_dir = os.path.join(scratch_dir("kv-fault-full-"), "run")
    try:
        with tmpfs(run_dir, "size=64k,mode=0700"):
            L2 = Launcher(manifest, run_dir=False, args=["--run-dir", run_dir])
            rc = L2.wait_exit(30)
            st = L2.status()
            log = log_text(L2)
            check(rc == 3, f"{name}: exit 3 (setup) on a full disk (got {rc})", L2)
            check(st.get("phase") == "Failed", f"{name}: phase Failed", L2)
            reason = st.get("reason", "")
            check("prepare volumes" in reason and ("No space left" in reason or "ENOSPC" in reason or "space" in reason),
                  f"{name}: reason says why: {reason!r}", L2)
            check(log.count(reason[:60]) >= 1, f"{name}: logged", L2)
            check(not qemu_orphans(L2.dir) and not qemu_orphans(run_dir), f"{name}: nothing left running", L2)
            left = os.listdir(run_dir)
            check(not [f for f in left if f.endswith(".qcow2")], f"{name}: no half-written disk left: {left}", L2)
            L2.cleanup()
    finally:
        shutil.rmtree(os.path.dirname(run_dir), ignore_errors=True)
print("PASS")
