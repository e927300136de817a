"""The run directory cannot be written: a read-only tmpfs as --run-dir, and a --run-dir to be created
under a read-only directory. Expected: exit 3 (setup), phase Failed, a reason naming the run directory
and the errno, nothing started."""
import os
import shutil

from faultlib import Launcher, check, container_disk_vmi, need_guest, need_root, qemu_orphans, scratch_dir, tmpfs, vmi

need_guest()
need_root("a read-only tmpfs")
for name, manifest in (("kernelboot", vmi("ro-kb", kernel_args="cnt=0")), ("overlay", container_disk_vmi("ro-cd"))):
    ro = os.path.join(scratch_dir("kv-fault-ro-"), "ro")
    try:
        with tmpfs(ro, "ro,size=64k,mode=0700"):
            for what, run_dir in (("read-only run dir", ro), ("run dir under a read-only dir", os.path.join(ro, "sub"))):
                L2 = Launcher(manifest, run_dir=False, args=["--run-dir", run_dir])
                rc = L2.wait_exit(30)
                st = L2.status()
                reason = st.get("reason", "")
                check(rc == 3, f"{name}, {what}: exit 3 (got {rc})", L2)
                check(st.get("phase") == "Failed" and "Read-only file system" in reason,
                      f"{name}, {what}: Failed, reason {reason!r}", L2)
                check(run_dir in reason or "run" in reason, f"{name}, {what}: the reason names the place", L2)
                check(not qemu_orphans(L2.dir) and not qemu_orphans(ro), f"{name}, {what}: nothing running", L2)
                L2.cleanup()
    finally:
        shutil.rmtree(os.path.dirname(ro), ignore_errors=True)
print("PASS")
