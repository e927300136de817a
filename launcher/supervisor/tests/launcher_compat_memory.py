"""Issue 20, the second boot of the compat fields (those that exclude the first boot's: one sound device, one
panic device, utc or timezone): clock.timezone (the guest's RTC runs at the zone's offset), sound ac97 and a
pvpanic PCI panic device (their PCI ids in the guest), cpu.realtime (QEMU's memory locked: VmLck of the QEMU
process), and, where this host lets us reserve 2 MiB pages and mount a hugetlbfs in a private mount namespace,
memory.hugepages with numa.guestMappingPassthrough (the guest's RAM preallocated from the host's free huge
pages, one NUMA node backed by it). Elsewhere the VMI boots without hugepages and says why."""
import os
import resource
import subprocess
import sys
import time

from launcherlib import Launcher, check, need_guest, vmi

need_guest()

ZONE, ZONE_OFFSET = "Asia/Kolkata", 5 * 3600 + 1800  # no daylight saving time: one offset all year
NR = "/proc/sys/vm/nr_hugepages"
PAGES = 64 + 8  # 128 MiB of guest RAM in 2 MiB pages, and a few to spare for other users of the pool


def free_huge():
    with open("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages") as f:
        return int(f.read())


def reserve_hugepages():
    """The previous nr_hugepages when PAGES more 2 MiB pages are free now, else None and why."""
    if not os.path.exists(NR) or os.geteuid() != 0:
        return None, "not root or no hugetlb support"
    try:
        with open(NR) as f:
            before = int(f.read())
        with open(NR, "w") as f:
            f.write(str(before + PAGES))
    except OSError as e:
        return None, f"cannot reserve huge pages ({e})"
    if free_huge() < PAGES - 8:
        restore_hugepages(before)
        return None, f"the kernel found only {free_huge()} free 2 MiB pages"
    return before, None


def restore_hugepages(before):
    with open(NR, "w") as f:
        f.write(str(before))


prefix, hugepages_before = [], None
hugepages_before, why = reserve_hugepages()
mnt = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"kv-hugetlbfs-{os.getpid()}")
if hugepages_before is not None:
    os.makedirs(mnt, exist_ok=True)
    # The launcher finds the hugetlbfs in its own mount table: mount it in a namespace only it sees.
    prefix = ["unshare", "-m", "--propagation", "private", "sh", "-c",
              f"mount -t hugetlbfs -o pagesize=2M none {mnt} && exec \"$0\" \"$@\""]
    if subprocess.run(prefix + ["true"]).returncode != 0:
        restore_hugepages(hugepages_before)
        hugepages_before, prefix, why = None, [], "cannot mount a hugetlbfs in a private mount namespace"
HUGE = hugepages_before is not None
if not HUGE:
    print(f"note: hugepages and numa.guestMappingPassthrough not checked: {why}")


def can_lock_128mi():
    """Whether this process (so the launcher) may lift RLIMIT_MEMLOCK enough for QEMU's mlockall."""
    soft, hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    if hard == resource.RLIM_INFINITY or hard >= 256 << 20:
        return True
    try:
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (soft, resource.RLIM_INFINITY))
    except (ValueError, OSError):
        return False
    resource.setrlimit(resource.RLIMIT_MEMLOCK, (soft, hard))  # a privileged process can lower it back
    return True


REALTIME = can_lock_128mi()

try:
    m = vmi("compatmem", "shell=1")
    d = m["spec"]["domain"]
    d["resources"]["requests"]["memory"] = "128Mi"
    d["cpu"] = {"dedicatedCpuPlacement": True, "realtime": {}}
    if not REALTIME:  # QEMU could not lock its memory: the launcher refuses before it starts QEMU
        bad = Launcher(m)
        rc = bad.wait_exit(20)
        with open(bad.log_path) as f:
            log = f.read()
        check(rc == 3 and "spec.domain.cpu.realtime: QEMU must lock the guest's memory in RAM" in log,
              f"realtime on a host where RLIMIT_MEMLOCK cannot be raised: refused naming the field (exit {rc})", bad)
        bad.cleanup()
        print("note: this host's memlock limit cannot be raised (no CAP_SYS_RESOURCE): the guest boots without realtime")
        del d["cpu"]["realtime"]
    if HUGE:
        d["memory"] = {"hugepages": {"pageSize": "2Mi"}}
        d["cpu"]["numa"] = {"guestMappingPassthrough": {}}
    d["clock"] = {"timezone": ZONE}
    d["devices"].update({"sound": {"name": "snd", "model": "ac97"}, "panicDevices": [{"model": "pvpanic"}]})
    free_before = free_huge() if HUGE else 0

    L = Launcher(m, prefix=prefix)
    L.wait_phase("Running")
    L.wait_serial("KVGUEST READY")
    ask = L.guest_shell()
    rtc = int(ask("M1", "cat /sys/class/rtc/rtc0/since_epoch"))
    check(abs(rtc - (time.time() + ZONE_OFFSET)) < 300, f"clock.timezone {ZONE}: the guest's RTC is "
          f"{rtc - time.time():.0f} s ahead of UTC (want {ZONE_OFFSET})", L)
    pci = ask("M2", "cat /sys/bus/pci/devices/*/vendor /sys/bus/pci/devices/*/device | tr '\\n' ,").split(",")
    check("0x2415" in pci, "sound ac97: the guest has the AC'97 controller (8086:2415)", L)
    check("0x0011" in pci, "panicDevices pvpanic: the guest has the pvpanic PCI device (1b36:0011)", L)
    if HUGE:
        nodes = ask("M3", "ls -d /sys/devices/system/node/node* | wc -l")
        check(nodes == "1", f"numa.guestMappingPassthrough: the guest has one NUMA node ({nodes})", L)
    ask.close()

    if REALTIME:
        with open(f"/proc/{L.status()['qemuPid']}/status") as f:
            locked = next(int(line.split()[1]) for line in f if line.startswith("VmLck:"))
        check(locked >= 128 << 10, f"realtime: QEMU's memory is locked in RAM (VmLck {locked} kB)", L)
    if HUGE:
        path = L.qmp("qom-get", {"path": "/objects/mem0", "property": "mem-path"})["return"]
        check(path == mnt, f"hugepages: the guest's RAM is a file on the hugetlbfs ({path})", L)
        used = free_before - free_huge()
        check(used >= 64, f"hugepages: 128 MiB preallocated from the host's 2 MiB pages ({used} pages)", L)
        numa = L.qmp("human-monitor-command", {"command-line": "info numa"})["return"]
        check(numa.startswith("1 nodes") and "node 0 size: 128 MB" in numa,
              f"numa.guestMappingPassthrough: one node of the whole RAM ({numa.splitlines()[:2]})", L)
    L.proc.terminate()
    check(L.wait_exit(30) == 0, "SIGTERM → powered off, exit 0", L)
finally:
    if HUGE:
        restore_hugepages(hugepages_before)
        try:
            os.rmdir(mnt)
        except OSError:
            pass
print("PASS")
sys.exit(0)
