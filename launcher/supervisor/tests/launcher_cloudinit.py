"""A kernelBoot guest with an emptyDisk and a cloud-init NoCloud volume: the guest checksums the
cidata files (CIDATA lines) and the test compares; stopped through `ctl shutdown`."""
import hashlib
import os
import re

from launcherlib import Launcher, check, need_guest, vmi

need_guest()

# emptyDisk + cloud-init NoCloud on a kernelBoot guest
user_data = "#cloud-config\npassword: kvlite\nchpasswd: { expire: False }\n"
network_data = "version: 2\nethernets: {}\n"
L = Launcher(vmi("cinit", kernel_args="cnt=0",
                 disks=[{"name": "scratch", "disk": {"bus": "virtio"}},
                        {"name": "cloudinit", "disk": {"bus": "virtio"}}],
                 volumes=[{"name": "scratch", "emptyDisk": {"capacity": "64Mi"}},
                          {"name": "cloudinit", "cloudInitNoCloud": {"userData": user_data,
                                                                     "networkData": network_data}}]))
L.wait_phase("Running")
L.wait_serial("CIDATA user-data")
L.wait_serial("KVGUEST READY")
serial = L.serial()
cidata = dict(re.findall(r"CIDATA (\S+) ([0-9a-f]{32})", serial))
check(cidata.get("user-data") == hashlib.md5(user_data.encode()).hexdigest(), "user-data md5 matches", L)
# NoCloud names the file network-config (cloud-init docs)
check(cidata.get("network-config") == hashlib.md5(network_data.encode()).hexdigest(), "network-config md5 matches", L)
check("meta-data" in cidata, "meta-data present", L)
run_files = os.listdir(L.run_dir)
check(any(f.endswith((".qcow2", ".img", ".raw")) for f in run_files), f"emptyDisk created in the run dir {run_files}", L)
rc, reply = L.ctl("shutdown")
check(rc == 0 and reply["ok"], "ctl shutdown accepted", L)
check(L.wait_exit(15) == 0, "stopped through the control socket, exit 0", L)
check(L.status()["reason"] == "guest powered off", "the guest powered off (ACPI)", L)
print("PASS")
