"""Issue 20: the KubeVirt fields real manifests use, on one real boot of the test guest under TCG, seen by the
guest where it can see them and by QEMU otherwise: machine.type "" (q35), a volume without a disk (KubeVirt's
default virtio disk), features (acpi, apic, hyperv, kvm hidden, pvspinlock), clock utc.offsetSeconds and
timers (hpet off, rtc catchup), chassis (SMBIOS type 3), video virtio, an i6300esb watchdog, blockMultiQueue,
ioThreadsPolicy shared with a dedicated iothread, errorPolicy, shareable, rotationRate, blockSize (custom and
matchVolume: the guest's queue limits), dedicatedCpuPlacement
(the vCPU threads' affinity, read from /proc), sound ich9, an ISA panic device (and a guest panic that fails the
VMI, as KubeVirt's does, when the guest has the pvpanic driver), useVirtioTransitional (the guest's virtio PCI
ids), autoattachInputDevice (the USB tablet; the cloud kernel has no USB stack, so the guest sees its xHCI
controller), an interface at pciAddress 00:10.0 with state down (the guest's eth0 there, without carrier), a
disk at pciAddress 00:11.0 (the guest's vda there),
downwardMetrics (the guest asks the vhostmd port for the metrics XML and reads it) and a downwardMetrics volume
(the guest reads vhostmd's metrics disk; the launcher rewrites it every 5 s); where the host lets us reserve 2 MiB
pages and mount a hugetlbfs in a private mount namespace, memory.hugepages with numa.guestMappingPassthrough
(preallocated from the host's free huge pages, one NUMA node backed by them; the reservation is undone at exit);
cpu.realtime where RLIMIT_MEMLOCK can be lifted and a CPU is left over (QEMU's memory locked), else its
refusal naming the field.
Hyper-V enlightenments and kvm hidden reach QEMU's vCPU (checked over QMP); QEMU exposes them to the guest
only under KVM, which these machines lack."""
import atexit
import os
import re
import resource
import subprocess
import time

from launcherlib import Launcher, check, need_guest, vmi

need_guest()

OFFSET = 10 * 86400  # the guest's RTC runs ten days ahead of the host
NR_HUGEPAGES = "/proc/sys/vm/nr_hugepages"
PAGES = 128 + 8  # the guest's 256 MiB in 2 MiB pages, and a few to spare for other users of the pool


def free_hugepages():
    with open("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages") as f:
        return int(f.read())


def set_hugepages(n):
    with open(NR_HUGEPAGES, "w") as f:
        f.write(str(n))


def reserve_hugepages():
    """(the previous nr_hugepages, None) once PAGES more 2 MiB pages are free, else (None, why not)."""
    if os.geteuid() != 0 or not os.path.exists(NR_HUGEPAGES):
        return None, "not root, or no hugetlb support"
    try:
        with open(NR_HUGEPAGES) as f:
            before = int(f.read())
        set_hugepages(before + PAGES)
    except OSError as e:
        return None, f"cannot reserve huge pages ({e})"
    atexit.register(set_hugepages, before)
    if free_hugepages() < PAGES - 8:
        return None, f"the kernel found only {free_hugepages()} free 2 MiB pages"
    return before, None


def can_lift_memlock():
    """Whether the launcher (this process's child) may lift RLIMIT_MEMLOCK for QEMU's mlockall."""
    soft, hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    if hard == resource.RLIM_INFINITY or hard >= 512 << 20:
        return True
    try:
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (soft, resource.RLIM_INFINITY))
    except (ValueError, OSError):
        return False
    resource.setrlimit(resource.RLIMIT_MEMLOCK, (soft, hard))
    return True


# memory.hugepages: the launcher finds a hugetlbfs in its mount table; mount one in a namespace only it sees
hugepages_before, why = reserve_hugepages()
prefix, mnt = [], os.path.join(os.environ.get("TMPDIR", "/tmp"), f"kv-hugetlbfs-{os.getpid()}")
if hugepages_before is not None:
    os.makedirs(mnt, exist_ok=True)
    atexit.register(os.rmdir, mnt)
    prefix = ["unshare", "-m", "--propagation", "private", "sh", "-c",
              f"mount -t hugetlbfs -o pagesize=2M none {mnt} && exec \"$0\" \"$@\""]
    if subprocess.run(prefix + ["true"]).returncode != 0:
        prefix, why = [], "cannot mount a hugetlbfs in a private mount namespace"
HUGE = bool(prefix)
if not HUGE:
    print(f"note: memory.hugepages and numa.guestMappingPassthrough not checked: {why}")
m = vmi("compat", "shell=1", grace=20,
        disks=[
            {"name": "fast", "dedicatedIOThread": True, "errorPolicy": "stop",
             "disk": {"bus": "virtio", "pciAddress": "0000:00:11.0"}},
            {"name": "shared", "shareable": True, "disk": {"bus": "virtio"},
             "blockSize": {"matchVolume": {"enabled": True}}},
            {"name": "ssd", "disk": {"bus": "scsi", "rotationRate": 1},
             "blockSize": {"custom": {"logical": 512, "physical": 4096}}},
            {"name": "metrics", "disk": {"bus": "virtio"}},
        ],
        volumes=[{"name": n, "emptyDisk": {"capacity": "16Mi"}} for n in ("fast", "shared", "ssd", "nodisk")] +
        [{"name": "metrics", "downwardMetrics": {}}])
d = m["spec"]["domain"]
d["machine"] = {"type": ""}
d["cpu"] = {"cores": 2}
# dedicatedCpuPlacement: each vCPU thread pinned to its own CPU of the launcher's set (a 2-CPU host has room)
DEDICATED = len(os.sched_getaffinity(0)) >= 2
if DEDICATED:
    d["cpu"]["dedicatedCpuPlacement"] = True
else:
    print("note: fewer than 2 CPUs here, dedicatedCpuPlacement not checked")
d["chassis"] = {"manufacturer": "Compat Inc", "asset": "ASSET-42"}
d["features"] = {"acpi": {}, "apic": {}, "kvm": {"hidden": True}, "pvspinlock": {"enabled": False},
                 "hyperv": {"relaxed": {}, "vapic": {}, "spinlocks": {"spinlocks": 8191}}}
d["clock"] = {"utc": {"offsetSeconds": OFFSET},
              "timer": {"hpet": {"present": False}, "rtc": {"tickPolicy": "catchup"}, "hyperv": {}}}
d["devices"].update({"video": {"type": "virtio"}, "watchdog": {"name": "wd", "i6300esb": {"action": "poweroff"}},
                     "blockMultiQueue": True, "ioThreadsPolicy": "shared",
                     "sound": {"name": "snd", "model": "ich9"}, "panicDevices": [{"model": "isa"}],
                     "useVirtioTransitional": True, "autoattachInputDevice": True, "downwardMetrics": {},
                     "interfaces": [{"name": "default", "state": "down", "pciAddress": "0000:00:10.0"}]})
m["spec"]["networks"] = [{"name": "default", "pod": {}}]
if HUGE:
    d["memory"] = {"hugepages": {"pageSize": "2Mi"}}
    if DEDICATED:
        d["cpu"]["numa"] = {"guestMappingPassthrough": {}}
# cpu.realtime: QEMU locks its memory (the launcher lifts RLIMIT_MEMLOCK) and the vCPU threads run SCHED_FIFO,
# which on TCG (vCPUs that spin) needs a CPU left for everything else
REALTIME = DEDICATED and can_lift_memlock() and len(os.sched_getaffinity(0)) > 2
if DEDICATED and not can_lift_memlock():  # refused before QEMU starts, naming the field
    d["cpu"]["realtime"] = {}
    bad = Launcher(m, prefix=prefix)
    rc = bad.wait_exit(20)
    with open(bad.log_path) as f:
        log = f.read()
    check(rc == 3 and "spec.domain.cpu.realtime: QEMU must lock the guest's memory in RAM" in log,
          f"realtime where RLIMIT_MEMLOCK cannot be lifted (no CAP_SYS_RESOURCE): refused naming the field (exit {rc})",
          bad)
    bad.cleanup()
if REALTIME:
    d["cpu"]["realtime"] = {}
else:
    d["cpu"].pop("realtime", None)
    print("note: cpu.realtime does not boot here (needs RLIMIT_MEMLOCK liftable and more than 2 CPUs)")

free_before = free_hugepages() if HUGE else 0
started = time.time()
L = Launcher(m, prefix=prefix)
L.wait_phase("Running")
L.wait_serial("KVGUEST READY")
L.wait_serial_re(r"CNT \d+ .*blk=vda,vdb,vdc,vdd,sda ", timeout=15)
print("ok: the guest sees the virtio disks, the scsi disk and the volume without a disk (vdd)")
ask = L.guest_shell()

def many(tag, *cmds):
    """The outputs of several guest commands in few round trips over the serial console (each is slow under
    TCG), newlines removed, one field per command. A line longer than a few hundred bytes loses its end on
    the way to the guest's shell, so the commands go in chunks."""
    out, chunk = [], []
    for i, c in enumerate(cmds + (None,)):
        part = c and f"({c}) 2>/dev/null | tr -d '\\n'; echo -n '|'"
        if chunk and (part is None or len("; ".join(chunk + [part])) > 360):
            out += ask(f"{tag}{len(out)}", " " + "; ".join(chunk)).split("|")[:len(chunk)]  # " ": not $((...
            chunk = []
        chunk += [part] if part else []
    return out


def agreed(tag, cmd, tries=4):
    """A long answer, asked until two in a row agree: under load, the serial console's log of a long line
    has been seen with a byte doubled ("0x10022")."""
    prev = None
    for i in range(tries):
        answer = ask(f"{tag}{i}", cmd)
        if answer == prev:
            return answer
        prev = answer
    return prev


rtc, clocksources, acpi, panic_driver, nic, link, nocarrier, mq, rot, asset, vendor = many(
    "R1", "cat /sys/class/rtc/rtc0/since_epoch",
    "cat /sys/devices/system/clocksource/clocksource0/available_clocksource",
    # only the two devices looked for: a long line on the serial console is more often cut by kernel messages
    "ls /sys/bus/acpi/devices | grep -E '^(QEMU0001|LNXPWRBN):00$' | tr '\\n' ,", "ls -d /sys/bus/platform/drivers/pvpanic-mmio/QEMU0001:00 | wc -l",
    "readlink -f /sys/class/net/eth0/device/..", "cat /sys/class/net/eth0/operstate /sys/class/net/eth0/carrier",
    "ip -o link show eth0 | grep -c NO-CARRIER", "ls /sys/block/vda/mq | wc -l", "cat /sys/block/sda/queue/rotational",
    "cat /sys/class/dmi/id/chassis_asset_tag", "cat /sys/class/dmi/id/chassis_vendor")
check(abs(int(rtc) - (time.time() + OFFSET)) < 300, f"clock.utc.offsetSeconds: the guest's RTC is "
      f"{int(rtc) - time.time():.0f} s ahead (want {OFFSET})", L)
check("hpet" not in clocksources, f"timer hpet present false: no hpet clocksource ({clocksources})", L)
pci = agreed("PD", "cat /sys/bus/pci/devices/*/device | sort -u | tr '\\n' ,").split(",")
check("0x1050" in pci, "video virtio: the guest has a virtio GPU (1af4:1050)", L)
check("0x25ab" in pci, "watchdog i6300esb: the guest has the 6300ESB (8086:25ab)", L)
check("0x293e" in pci, "sound ich9: the guest has the ICH9 HD Audio controller (8086:293e)", L)
# useVirtioTransitional: virtio 0.9 ids 0x1000-0x103f (net, blk, balloon, scsi, serial), no 1.0-only ones
# except the GPU, which has no transitional model
modern = sorted(set(x for x in pci if x.startswith("0x104")) - {"0x1050"})
check({"0x1000", "0x1001", "0x1002", "0x1003", "0x1004"} <= set(pci) and not modern,
      f"useVirtioTransitional: transitional virtio ids in the guest (virtio 1.0-only ids: {modern})", L)
check("0x000d" in pci, "autoattachInputDevice: the guest has the USB controller of the tablet (1b36:000d; "
      "the cloud kernel has no USB stack, the tablet itself is checked over QMP)", L)
check("QEMU0001:00" in acpi.split(","), "panicDevices isa: the guest sees the pvpanic device (ACPI QEMU0001)", L)
PANIC_DRIVER = panic_driver == "1"
check(nic.endswith("/0000:00:10.0"), f"pciAddress 0000:00:10.0: the guest's eth0 is at {nic}", L)
vda = agreed("PV", "readlink -f /sys/block/vda/device/..")
check(vda.endswith("/0000:00:11.0"), f"disk pciAddress 0000:00:11.0: the guest's vda is at {vda}", L)
check(link == "down0" and nocarrier == "1", "interface state down: the guest's eth0 has no carrier", L)
check(mq == "2", "blockMultiQueue: 2 virtio-blk queues for 2 vCPUs", L)
check(rot == "0", "rotationRate 1: the scsi disk is not rotational", L)
sizes = many("BS", "cat /sys/block/sda/queue/logical_block_size", "cat /sys/block/sda/queue/physical_block_size",
             "cat /sys/block/vdb/queue/logical_block_size", "cat /sys/block/vdb/queue/physical_block_size")
fs_bsize = os.statvfs(L.run_dir).f_bsize  # the emptyDisk's image lives in the run dir
check(sizes == ["512", "4096", str(fs_bsize), str(fs_bsize)],
      f"blockSize: custom 512/4096 on the scsi disk, matchVolume {fs_bsize} (the run dir's filesystem) on "
      f"the virtio one: {sizes}", L)
check(asset == "ASSET-42" and vendor == "Compat Inc", "chassis: SMBIOS type 3 asset and vendor", L)
check("LNXPWRBN:00" in acpi.split(","), "features.acpi: the ACPI power button", L)
if HUGE and DEDICATED:
    nodes = ask("R2", "ls -d /sys/devices/system/node/node* | wc -l")
    check(nodes == "1", f"numa.guestMappingPassthrough: the guest has one NUMA node ({nodes})", L)


def metric(xml, context, name):
    """The guest command printing a metric's value from its copy of a metrics document."""
    return f"grep -o 'context=.{context}.[^>]*><name>{name}</name><value>[^<]*' {xml} | sed 's/.*<value>//'"


# downwardMetrics: what vm-dump-metrics --virtio does, by hand: the request on the vhostmd port, the XML back
port = ask("S1", "for p in /sys/class/virtio-ports/*; do [ \"$(cat $p/name)\" = org.github.vhostmd.1 ] && "
                 "echo -n ${p##*/}; done")
check(port.startswith("vport"), f"downwardMetrics: the guest has the virtio-serial port org.github.vhostmd.1 ({port})", L)
ask("S2", f"exec 3<>/dev/{port}; printf 'GET /metrics/XML\\n\\n' >&3; timeout 2 cat <&3 >/tmp/m.xml; echo")
vendor, vcpus, mem, cputime, end = many(
    "S3", metric("/tmp/m.xml", "host", "VirtualizationVendor"), metric("/tmp/m.xml", "vm", "ResourceProcessorLimit"),
    metric("/tmp/m.xml", "vm", "PhysicalMemoryAllocatedToVirtualSystem"), metric("/tmp/m.xml", "vm", "TotalCPUTime"),
    "grep -c '^</metrics>$' /tmp/m.xml")
check(vendor == "kubevirt.io" and vcpus == "2" and mem == str(256 << 10) and float(cputime or 0) > 0 and end == "1",
      f"downwardMetrics: the guest reads the metrics XML (vendor {vendor}, {vcpus} vCPUs, {mem} KiB, QEMU's CPU time "
      f"{cputime} s)", L)
# the downwardMetrics volume: vhostmd's disk (header "mvbd", busy, checksum, length, then the XML) as vdc
sig, ro, _ = many("T1", "head -c 4 /dev/vdc", "cat /sys/block/vdc/ro",
                  "dd if=/dev/vdc bs=4096 count=2 | tail -c +17 | tr -d '\\000' >/tmp/d.xml")
check(sig == "mvbd" and ro == "1",
      "downwardMetrics volume: the guest's vdc is a read-only vhostmd metrics disk (signature mvbd)", L)
vendor, vcpus = many("T2", metric("/tmp/d.xml", "host", "VirtualizationVendor"),
                     metric("/tmp/d.xml", "vm", "ResourceProcessorLimit"))
check(vendor == "kubevirt.io" and vcpus == "2", "downwardMetrics volume: the guest reads the metrics XML from the disk", L)
ask.close()

check(L.qmp("qom-get", {"path": "/machine", "property": "type"})["return"].startswith("pc-q35"),
      "machine.type \"\" runs q35", L)
cpu = L.qmp("query-cpus-fast")["return"][0]["qom-path"]


def cpu_prop(name):
    return L.qmp("qom-get", {"path": cpu, "property": name})["return"]


check(cpu_prop("hv-relaxed") and cpu_prop("hv-vapic") and cpu_prop("hv-spinlocks") == 8191 and cpu_prop("hv-time"),
      "hyperv relaxed, vapic, spinlocks 8191 and the hyperv timer on the vCPU", L)
check(cpu_prop("kvm") is False and cpu_prop("kvm-pv-unhalt") is False, "kvm hidden, pvspinlock disabled on the vCPU", L)
threads = sorted(t["id"] for t in L.qmp("query-iothreads")["return"])
check(threads == ["iothread1", "iothread2"], f"ioThreadsPolicy shared + dedicatedIOThread: {threads}", L)


def dev_prop(dev, name):
    return L.qmp("qom-get", {"path": f"/machine/peripheral/{dev}", "property": name}).get("return")


check(dev_prop("ua-fast", "iothread") == "/objects/iothread2" and
      dev_prop("ua-shared", "iothread") == "/objects/iothread1",
      "the dedicated disk has its own iothread, the others share one", L)
check(dev_prop("ua-fast", "werror") == "stop" and dev_prop("ua-fast", "rerror") == "stop", "errorPolicy stop", L)
check(dev_prop("ua-shared", "share-rw") is True, "shareable: share-rw", L)
check(L.qmp("qom-get", {"path": "/machine", "property": "hpet"})["return"] is False, "machine hpet off", L)
if HUGE:
    path = L.qmp("qom-get", {"path": "/objects/mem0", "property": "mem-path"})["return"]
    check(path == mnt, f"hugepages: the guest's RAM is a file on the hugetlbfs ({path})", L)
    used = free_before - free_hugepages()
    check(used >= 128, f"hugepages: 256 MiB preallocated from the host's 2 MiB pages ({used} pages)", L)
    if DEDICATED:
        numa = L.qmp("human-monitor-command", {"command-line": "info numa"})["return"]
        check(numa.startswith("1 nodes") and "node 0 size: 256 MB" in numa,
              f"numa.guestMappingPassthrough: one node of the whole RAM ({numa.splitlines()[:3]})", L)
if REALTIME:
    with open(f"/proc/{L.status()['qemuPid']}/status") as f:
        locked = next(int(line.split()[1]) for line in f if line.startswith("VmLck:"))
    check(locked >= 256 << 10, f"realtime: QEMU's memory is locked in RAM (VmLck {locked} kB)", L)


def disk_time():
    with open(os.path.join(L.run_dir, "metrics-metrics.img"), "rb") as f:
        found = re.search(rb"<name>Time</name><value>(\d+)<", f.read(65536))
    return int(found.group(1)) if found else 0


# the first document is written before QEMU starts, then every 5 s: by now (or within 7 s) a later one
L.wait(lambda: disk_time() >= started + 5, 7, "a rewritten metrics disk")
print(f"ok: downwardMetrics volume: the launcher rewrites the disk (Time {disk_time() - started:.0f} s after start)")
types = {p["name"]: p["type"] for p in L.qmp("qom-list", {"path": "/machine/peripheral"})["return"]}
check(types.get("ua-default-0") == "child<usb-tablet>", "autoattachInputDevice: a USB tablet named default-0", L)

if DEDICATED:
    pid = L.qemu_pid() if hasattr(L, "qemu_pid") else L.status().get("qemuPid", 0)
    pinned = []
    for vcpu in L.qmp("query-cpus-fast")["return"]:
        with open(f"/proc/{pid}/task/{vcpu['thread-id']}/status") as f:
            pinned.append(next(line.split()[1] for line in f if line.startswith("Cpus_allowed_list:")))
    check(len(set(pinned)) == 2 and all(p.isdigit() for p in pinned),
          f"dedicatedCpuPlacement: each vCPU thread on a CPU of its own ({pinned})", L)

if PANIC_DRIVER:  # a guest kernel panic reaches QEMU through pvpanic: the VMI fails, as KubeVirt's does
    ask = L.guest_shell()
    ask.send("echo c >/proc/sysrq-trigger")
    rc = L.wait_exit(30)
    st = L.status()
    check(rc != 0 and st.get("phase") == "Failed" and "panic" in st.get("reason", ""),
          f"guest panic: the launcher exits {rc}, phase {st.get('phase')} ({st.get('reason')})", L)
else:
    print("note: this guest has no pvpanic driver (tests/guest/build.sh adds it): no panic triggered")
    L.proc.terminate()
    check(L.wait_exit(30) == 0, "SIGTERM → powered off, exit 0", L)
print("PASS")
