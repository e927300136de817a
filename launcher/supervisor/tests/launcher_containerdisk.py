"""Boot from a containerDisk directory: BIOS boot of /disk/disk.qcow2 through a qcow2 overlay in the
run dir; the image itself is never modified."""
import os
import signal

from launcherlib import GUEST, Launcher, check, need_guest, vmi

need_guest()

# containerDisk: the image directory holds /disk/disk.qcow2; the launcher must not modify it
image = os.path.join(GUEST, "containerdisk")
disk = os.path.join(image, "disk", "disk.qcow2")
before = os.stat(disk).st_mtime_ns, os.path.getsize(disk)
L = Launcher(vmi("cdisk", kernel_boot=False, disks=[{"name": "root", "disk": {"bus": "virtio"}}],
                 volumes=[{"name": "root", "containerDisk": {"image": image}}]))
L.wait_phase("Running")
L.wait_serial("KVGUEST READY")
L.wait_serial_re(r"CNT \d+ .*blk=vda", timeout=10)
print("ok: guest sees its root disk as vda")
L.proc.send_signal(signal.SIGTERM)
check(L.wait_exit(15) == 0, "containerDisk guest powered off, exit 0", L)
check((os.stat(disk).st_mtime_ns, os.path.getsize(disk)) == before, "containerDisk image untouched", L)
print("PASS")
