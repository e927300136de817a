"""Issue 3 audit, devices and volumes on one real boot (kernelBoot guest under TCG, manifest as YAML on
stdin through `--vmi -`): CPU topology and model, memory, firmware uuid/serial (SMBIOS, seen by the
guest), disks on virtio/scsi/sata with serial, bootOrder, cache and readonly, hostDisk Disk and
DiskOrCreate, a persistentVolumeClaim (--pvc-root) and an ephemeral one (the guest's writes stay in the
overlay), emptyDisks, a cloud-init cdrom on scsi (userDataBase64 + networkData), a configMap volume (its
keys from --secret-root, an ISO9660 disk labelled cfgdata the guest mounts and reads), a configMap shared over
virtiofs (virtiofsd started and stopped by the launcher; the guest mounts the tag when its kernel has
virtiofs) and a containerPath (a directory of the launcher's container, read-only, files written after boot
reach the guest), rng, tablets,
slirp networking, VNC on vnc.sock, the run-dir contents and the status file's fields; a lun disk (over a
loop block device when the host lets us make one, else a file: scsi-hd either way, a loop device takes no
SCSI commands), clock.timezone (the guest's RTC at the zone's offset), sound ac97 and a pvpanic PCI panic device
(their PCI ids in the guest) and a TPM 2.0 (tpm-crb over the swtpm the launcher runs, when swtpm is installed). The guest is asked
through its serial shell (console over control.sock); what the cloud kernel cannot see (sata) is checked
on QEMU's side over qmp.sock."""
import base64
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time

from launcherlib import GUEST, Launcher, check, need_guest

need_guest()

work = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"kv-audit-dev-{os.getpid()}")
for claim in ("pvc1", "eph1", "lun1"):
    os.makedirs(os.path.join(work, "pvc", claim), exist_ok=True)
os.makedirs(os.path.join(work, "secrets", "cfg1"))
with open(os.path.join(work, "secrets", "cfg1", "app.properties"), "w") as f:  # a ConfigMap key, as mounted
    f.write("color=blue\n")
os.makedirs(os.path.join(work, "secrets", "share1"))
with open(os.path.join(work, "secrets", "share1", "hello.txt"), "w") as f:
    f.write("over-virtiofs\n")
# containerPath: a directory of the launcher's own container (a webhook-injected token, as AWS IRSA's)
token_dir = os.path.join(work, "container", "eks-token")
os.makedirs(token_dir)
with open(os.path.join(token_dir, "token"), "w") as f:
    f.write("irsa-token-1\n")
host1, host2 = os.path.join(work, "host1.img"), os.path.join(work, "host2.img")
pvc_img = os.path.join(work, "pvc", "pvc1", "disk.img")
eph_img = os.path.join(work, "pvc", "eph1", "disk.img")
lun_file = os.path.join(work, "lun1.img")
for path, head in ((host1, b"HOSTDISK-OK!"), (pvc_img, b"PVCDISK--OK!"), (eph_img, b"EPHEMERAL-OK"),
                   (lun_file, b"LUNDISK--OK!")):
    with open(path, "wb") as f:  # a recognisable first sector, read back by the guest
        f.write(head.ljust(512, b"\0"))
        f.truncate(8 << 20)
# A block-mode claim is a block device: a loop device over the file when this host lets us make one.
loop = subprocess.run(["losetup", "--find", "--show", lun_file], capture_output=True, text=True).stdout.strip() \
    if shutil.which("losetup") else ""
os.symlink(loop or lun_file, os.path.join(work, "pvc", "lun1", "disk.img"))
print(f"lun1 claim: {'loop block device ' + loop if loop else 'a file (no loop device here)'}")
TPM = shutil.which("swtpm") is not None


def comm(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:  # "pid (comm) state ppid ...": a zombie counts as gone
            head, rest = f.read().rsplit(") ", 1)
        return None if rest.split()[0] == "Z" else head.split(" (", 1)[1]
    except OSError:
        return None


def children(pid):
    out = []
    for p in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{p}/stat") as f:
                if f.read().rsplit(") ", 1)[1].split()[1] == str(pid):
                    out.append(p)
        except OSError:
            pass
    return out

if not TPM:
    print("note: swtpm is not installed (ci/deps.sh installs it): the TPM checks are skipped")

USER_DATA = "#cloud-config\nhostname: audit\n"
NET_DATA = "version: 2\n"
UUID = "6a1c3f0e-2b4d-4e8f-9a10-b2c3d4e5f601"
ZONE, ZONE_OFFSET = "Asia/Kolkata", 5 * 3600 + 1800  # no daylight saving time: one offset all year
KB = os.path.join(GUEST, "kernelboot")
manifest = f"""apiVersion: kubevirt.io/v1
kind: VirtualMachineInstance
metadata: {{name: audit, namespace: kvtest, uid: uid-audit}}
spec:
  terminationGracePeriodSeconds: 20
  domain:
    machine: {{type: q35}}
    cpu: {{sockets: 1, cores: 2, threads: 1, model: host-passthrough}}
    memory: {{guest: 320Mi}}
    clock: {{timezone: {ZONE}}}
    firmware:
      uuid: {UUID}
      serial: AUD-SN.42
      bootloader: {{bios: {{}}}}
      kernelBoot:
        container: {{image: {KB}, kernelPath: /boot/vmlinuz, initrdPath: /boot/initrd.img}}
        kernelArgs: console=ttyS0 shell=1
    devices:
      autoattachSerialConsole: true
      autoattachGraphicsDevice: true
      rng: {{}}
      sound: {{name: snd, model: ac97}}
      panicDevices: [{{model: pvpanic}}]
      filesystems:
      - {{name: share1, virtiofs: {{}}}}
      - {{name: tok1, virtiofs: {{}}}}
      {"tpm: {}" if TPM else ""}
      inputs:
      - {{name: tablet1, type: tablet, bus: usb}}
      - {{name: tablet2, type: tablet, bus: virtio}}
      interfaces:
      - {{name: default, slirp: {{}}}}
      disks:
      - {{name: scratch, serial: AUD.SER-1, bootOrder: 2, cache: writethrough, disk: {{bus: virtio}}}}
      - {{name: host1, cache: none, io: native, disk: {{bus: virtio}}}}
      - {{name: host2, disk: {{bus: virtio}}}}
      - {{name: pvc1, disk: {{bus: virtio, readonly: true}}}}
      - {{name: eph1, disk: {{bus: virtio}}}}
      - {{name: scsi1, bootOrder: 1, disk: {{bus: scsi}}}}
      - {{name: cd1, cdrom: {{bus: scsi}}}}
      - {{name: sata1, disk: {{bus: sata}}}}
      - {{name: cfg1, disk: {{}}}}
      - {{name: lun1, lun: {{}}}}
  networks:
  - {{name: default, pod: {{}}}}
  volumes:
  - {{name: scratch, emptyDisk: {{capacity: 16Mi}}}}
  - {{name: host1, hostDisk: {{path: {host1}, type: Disk}}}}
  - {{name: host2, hostDisk: {{path: {host2}, type: DiskOrCreate, capacity: 12Mi}}}}
  - {{name: pvc1, persistentVolumeClaim: {{claimName: claim1, readOnly: true}}}}
  - {{name: eph1, ephemeral: {{persistentVolumeClaim: {{claimName: claim2}}}}}}
  - {{name: scsi1, emptyDisk: {{capacity: 4Mi}}}}
  - {{name: cd1, cloudInitNoCloud: {{userDataBase64: {base64.b64encode(USER_DATA.encode()).decode()}, networkData: "{NET_DATA.strip()}\\n"}}}}
  - {{name: sata1, emptyDisk: {{capacity: 4Mi}}}}
  - {{name: cfg1, configMap: {{name: app-config}}}}
  - {{name: share1, configMap: {{name: shared-files}}}}
  - {{name: tok1, containerPath: {{path: {token_dir}}}}}
  - {{name: lun1, persistentVolumeClaim: {{claimName: lunclaim}}}}
"""
try:
    L = Launcher(None, manifest_text=manifest, via_stdin=True, args=["--pvc-root", os.path.join(work, "pvc"),
                                                                 "--secret-root", os.path.join(work, "secrets")])
    L.wait_phase("Running")
    L.wait_serial("KVGUEST READY")
    m = L.wait_serial_re(r"CNT \d+ .*blk=vda,vdb,vdc,vdd,vde,vdf,sda,sdb ", timeout=15) and \
        re.findall(r"CNT \d+ cpus=(\S*) memKB=(\d+) blk=(\S*) net=(\S*)", L.serial())[-1]
    print("ok: `--vmi -` read the YAML manifest from stdin and booted")
    check(m[0] == "0-1", f"guest has 2 CPUs online ({m[0]})", L)
    check(300 * 1024 > int(m[1]) > 240 * 1024, f"guest memKB {m[1]} fits memory.guest 320Mi", L)
    print(f"ok: guest sees virtio vda-vdf and the scsi disk: blk={m[2]}")
    L.wait_serial_re(r"NET eth0 10\.0\.2\.15", timeout=15)
    print("ok: slirp interface: the guest got a DHCP lease 10.0.2.15")
    L.wait_serial("CIDATA network-config", timeout=10)
    cidata = dict(re.findall(r"CIDATA (\S+) ([0-9a-f]{32})", L.serial()))
    check(cidata.get("user-data") == hashlib.md5(USER_DATA.encode()).hexdigest() and
          cidata.get("network-config") == hashlib.md5(NET_DATA.encode()).hexdigest() and "meta-data" in cidata,
          "the guest mounted the cidata cdrom on scsi: userDataBase64 decoded, networkData", L)

    # the guest's own view, asked through its shell on the serial console (control socket `console`)
    ask = L.guest_shell()

    rtc = int(ask("QR", "cat /sys/class/rtc/rtc0/since_epoch"))
    check(abs(rtc - (time.time() + ZONE_OFFSET)) < 300, f"clock.timezone {ZONE}: the guest's RTC is "
          f"{rtc - time.time():.0f} s ahead of UTC (want {ZONE_OFFSET})", L)
    # one short answer per device (a line listing every PCI id is long enough for the serial console to garble)
    def pci_count(tag, device):
        return ask(tag, f"grep -lx {device} /sys/bus/pci/devices/*/device | wc -l")
    check(pci_count("PCIA", "0x2415") == "1", "sound ac97: the guest has the AC'97 controller (8086:2415)", L)
    check(pci_count("PCIV", "0x0011") == "1",
          "panicDevices pvpanic: the guest has the pvpanic PCI device (1b36:0011)", L)
    check(ask("Q1", "cat /sys/block/vda/serial") == "AUD.SER-1", "guest reads the disk serial AUD.SER-1", L)
    check(ask("Q2", "cat /sys/class/dmi/id/product_serial") == "AUD-SN.42", "guest SMBIOS serial AUD-SN.42", L)
    check(ask("Q3", "cat /sys/class/dmi/id/product_uuid") == UUID, "guest SMBIOS uuid = firmware.uuid", L)
    check(ask("Q4", "head -c 12 /dev/vdb") == "HOSTDISK-OK!", "hostDisk Disk: guest reads the host file", L)
    check(ask("Q5", "head -c 12 /dev/vdd") == "PVCDISK--OK!", "persistentVolumeClaim: guest reads disk.img", L)
    check(ask("Q6", "cat /sys/block/vdd/ro") == "1", "readonly PVC disk is read-only in the guest", L)
    check(ask("Q7", "cat /sys/block/vdc/size") == str(12 << 11), "DiskOrCreate: guest sees 12 MiB", L)
    check(ask("Q9", "head -c 12 /dev/vde") == "EPHEMERAL-OK", "ephemeral PVC: guest reads the claim", L)
    check(ask("QA", "echo GUEST-WROTE-IT | dd of=/dev/vde conv=fsync 2>/dev/null; head -c 12 /dev/vde") ==
          "GUEST-WROTE-", "ephemeral PVC: the guest writes to its disk", L)
    check(ask("QB", "findfs LABEL=cfgdata") == "/dev/vdf", "configMap disk: the guest finds label cfgdata", L)
    check(ask("QC", "mkdir -p /mnt/cfg && mount -t iso9660 -o ro /dev/vdf /mnt/cfg && cat /mnt/cfg/app.properties")
          == "color=blue", "configMap disk: the guest mounts the ISO and reads the key's file", L)
    check(ask("QD", "cat /sys/block/vdf/ro") == "1", "configMap disk is read-only in the guest", L)
    if ask("QE", "grep -c virtiofs /proc/filesystems") == "1":
        check(ask("QF", "mkdir -p /mnt/fs && mount -t virtiofs share1 /mnt/fs && cat /mnt/fs/hello.txt") ==
              "over-virtiofs", "virtiofs: the guest mounts tag share1 and reads the configMap's file", L)
        check(ask("QG", "echo x > /mnt/fs/hello.txt; echo x > /mnt/fs/new; ls /mnt/fs | tr '\\n' ,") ==
              "hello.txt,", "virtiofs: the configMap share is read-only (no write, no new file)", L)
        check(ask("QH", "mkdir -p /mnt/tok && mount -t virtiofs tok1 /mnt/tok && cat /mnt/tok/token") ==
              "irsa-token-1", "containerPath: the guest mounts tag tok1 and reads the container's file", L)
        with open(os.path.join(token_dir, "token-2"), "w") as f:  # what a token rotation writes
            f.write("irsa-token-2\n")
        check(ask("QI", "cat /mnt/tok/token-2") == "irsa-token-2",
              "containerPath: a file written there after boot reaches the guest (shared as it is)", L)
        ask("QJ", "echo x > /mnt/tok/token; echo x > /mnt/tok/new; rm -f /mnt/tok/token-2; mkdir /mnt/tok/d")
        check(sorted(os.listdir(token_dir)) == ["token", "token-2"] and
              open(os.path.join(token_dir, "token")).read() == "irsa-token-1\n",
              f"containerPath: read-only, the guest changed nothing ({sorted(os.listdir(token_dir))})", L)
        check(ask("QK", "echo x 2>&1 > /mnt/tok/new | grep -c 'Read-only file system'") == "1",
              "containerPath: a guest write fails with EROFS", L)
    else:
        print("note: this guest kernel has no virtiofs module (tests/guest/build.sh adds it): QEMU's side only")
    check("sr0" in ask("Q8", "ls /sys/block | tr '\\n' ,"), "guest sees the scsi cdrom as sr0", L)
    # SCSI disk names follow the kernel's probe order, not the target ids: find the lun by its content
    lun = ask("LA", "for d in /sys/block/sd*; do n=${d##*/}; [ \"$(head -c 12 /dev/$n)\" = LUNDISK--OK! ] && "
                    "echo -n $n; done")
    check(lun.startswith("sd"), f"lun: the guest reads the claim as a SCSI disk ({lun or 'none'})", L)
    check(ask("LB", f"cat /sys/block/{lun}/device/type") == "0", f"lun: {lun} is a SCSI direct-access device", L)
    if TPM:
        check(ask("LC", "ls /sys/class/tpm | tr '\\n' ,") == "tpm0,", "tpm: the guest has a TPM (/sys/class/tpm)", L)
        check(ask("LD", "cat /sys/class/tpm/tpm0/tpm_version_major") == "2", "tpm: a TPM 2.0", L)
    ask.close()

    # QEMU's view over qmp.sock
    check(L.qmp("query-uuid")["return"]["UUID"] == UUID, "QMP query-uuid = firmware.uuid", L)
    check(L.qmp("qom-get", {"path": "/machine", "property": "type"})["return"].startswith("pc-q35"),
          "machine type q35", L)
    cpus = L.qmp("query-cpus-fast")["return"]
    check(sorted((c["props"]["socket-id"], c["props"]["core-id"], c["props"]["thread-id"]) for c in cpus) ==
          [(0, 0, 0), (0, 1, 0)], "CPU topology sockets=1 cores=2 threads=1", L)
    cpu_type = L.qmp("qom-get", {"path": cpus[0]["qom-path"], "property": "type"})["return"]
    check(cpu_type == "max-x86_64-cpu", f"host-passthrough under TCG is `max` ({cpu_type})", L)
    check(L.qmp("query-memory-size-summary")["return"]["base-memory"] == 320 << 20, "QEMU memory 320 MiB", L)

    def qom(dev, prop):
        return L.qmp("qom-get", {"path": f"/machine/peripheral/{dev}", "property": prop}).get("return")

    types = {p["name"]: p["type"] for p in L.qmp("qom-list", {"path": "/machine/peripheral"})["return"]}
    check(types.get("ua-fs-share1") == "child<vhost-user-fs-pci>", "filesystem share1: vhost-user-fs-pci", L)
    check(qom("ua-fs-share1", "tag") == "share1", "virtiofs tag = the filesystem's name", L)
    check(L.qmp("qom-get", {"path": "/objects/mem0", "property": "share"})["return"] is True,
          "guest RAM is a shared memory backend (vhost-user)", L)
    sock = os.path.join(L.run_dir, "virtiofs-share1.sock")
    daemons = [p for p in os.listdir("/proc") if p.isdigit() and
               open(f"/proc/{p}/cmdline", "rb").read().startswith(b"/usr/lib/qemu/virtiofsd\0--socket-path=" +
                                                                     sock.encode())]
    check(len(daemons) == 1, f"one virtiofsd serves share1 ({daemons})", L)
    check(types.get("ua-sata1") == "child<ide-hd>", "sata disk is an ide-hd on q35's AHCI (QEMU's view)", L)
    check(types.get("ua-cd1") == "child<scsi-cd>" and types.get("ua-scsi1") == "child<scsi-hd>",
          "scsi disk and cdrom are scsi-hd / scsi-cd", L)
    check(types.get("ua-lun1") == "child<scsi-hd>", "lun on a file or loop device: scsi-hd (no SG_IO)", L)
    if TPM:
        check(types.get("tpm0") == "child<tpm-crb>", "tpm: tpm-crb device", L)
        tpm = L.qmp("query-tpm")["return"]
        check(len(tpm) == 1 and tpm[0]["options"]["type"] == "emulator", f"tpm: QEMU's emulator backend ({tpm})", L)
        swtpms = [p for p in children(L.proc.pid) if comm(p) == "swtpm"]
        check(len(swtpms) == 1, f"tpm: the launcher runs one swtpm child ({swtpms})", L)
    check(types.get("ua-tablet1") == "child<usb-tablet>", "input tablet on usb", L)
    check(types.get("ua-tablet2") == "child<virtio-tablet-pci>", "input tablet on virtio", L)
    check(any(t == "child<virtio-rng-pci>" for t in types.values()), "rng: virtio-rng-pci", L)
    check(qom("ua-scsi1", "bootindex") == 1 and qom("ua-scratch", "bootindex") == 2, "bootOrder → bootindex", L)
    check(qom("ua-scratch", "serial") == "AUD.SER-1", "disk serial on the device", L)
    blocks = {b.get("qdev", ""): b for b in L.qmp("query-block")["return"]}
    lun_node = next(b for q, b in blocks.items() if "ua-lun1" in q)["inserted"]
    check(lun_node["file"] in (loop, os.path.join(work, "pvc", "lun1", "disk.img")) and
          lun_node["image"].get("backing-image") is None, f"lun: the claim itself ({lun_node['file']})", L)
    if loop:
        nodes = {n["node-name"]: n for n in L.qmp("query-named-block-nodes")["return"]}
        check(any(n["drv"] == "host_device" and n["file"] == lun_node["file"] for n in nodes.values()),
              "lun over a block device: host_device node", L)
    sata = next((b for q, b in blocks.items() if "ua-sata1" in q), None)
    check(sata is not None and sata["inserted"]["file"].endswith("disk-sata1.qcow2"), "sata disk in query-block", L)
    scratch = next(b for q, b in blocks.items() if "ua-scratch" in q)["inserted"]
    check(scratch["cache"] == {"writeback": False, "direct": False, "no-flush": False},
          f"cache: writethrough ({scratch['cache']})", L)
    check(next(b for q, b in blocks.items() if "ua-pvc1" in q)["inserted"]["ro"], "readonly disk: ro node", L)
    host1_node = next(b for q, b in blocks.items() if "ua-host1" in q)["inserted"]
    check(host1_node["cache"]["direct"] and host1_node["cache"]["writeback"] and host1_node["file"] == host1,
          f"cache: none, io: native → O_DIRECT on the hostDisk ({host1_node['cache']})", L)
    check(qom("ua-host1", "write-cache") in ("auto", "on") and qom("ua-scratch", "write-cache") == "off",
          "device write cache: on for none (as libvirt's cache='none'), off for writethrough", L)

    def pci_classes(devices):  # devices behind root ports are nested under pci_bridge
        for d in devices:
            yield d["class_info"]["class"]
            yield from pci_classes(d.get("pci_bridge", {}).get("devices", []))

    classes = set(pci_classes(d for bus in L.qmp("query-pci")["return"] for d in bus["devices"]))
    check(0x0106 in classes and 0x0c03 in classes, "query-pci: AHCI (sata) and xHCI (usb tablet)", L)

    # VNC on the run dir's unix socket answers with the RFB greeting
    with socket.socket(socket.AF_UNIX) as v:
        v.settimeout(5)
        v.connect(os.path.join(L.run_dir, "vnc.sock"))
        check(v.recv(12) == b"RFB 003.008\n", "autoattachGraphicsDevice: vnc.sock answers RFB 003.008", L)

    files = set(os.listdir(L.run_dir))
    want = {"qmp.sock", "control.sock", "serial.sock", "vnc.sock", "serial.log", "disk-scratch.qcow2",
            "disk-scsi1.qcow2", "disk-sata1.qcow2", "disk-eph1.qcow2", "cidata-cd1.iso", "data-cfg1.iso"}
    check(want <= files, f"run dir holds {sorted(want)}", L)
    check(os.path.getsize(host2) == 12 << 20 and os.stat(host2).st_blocks * 512 < 1 << 20,
          "DiskOrCreate made a sparse 12 MiB file", L)

    with open(eph_img, "rb") as f:
        check(f.read(12) == b"EPHEMERAL-OK", "ephemeral PVC: the guest's write went to the overlay, not the claim", L)
    st = L.status()
    for key in ("phase", "reason", "accel", "qemuPid", "conditions", "vmi"):
        check(key in st, f"status file has `{key}`", L)
    check(st["vmi"] == {"name": "audit", "namespace": "kvtest", "uid": "uid-audit"}, "status identity", L)

    t = time.monotonic()
    L.proc.send_signal(signal.SIGTERM)
    check(L.wait_exit(25) == 0, f"SIGTERM → powered off, exit 0 ({time.monotonic() - t:.1f} s)", L)
    check(L.status()["phase"] == "Succeeded", "phase Succeeded", L)
    check(not os.path.exists(f"/proc/{daemons[0]}") if daemons else True, "virtiofsd stopped with the launcher", L)
    if TPM:
        check(all(comm(p) != "swtpm" for p in swtpms), "tpm: the swtpm child is gone after the launcher exits", L)
finally:
    if loop:
        subprocess.run(["losetup", "-d", loop])
    shutil.rmtree(work, ignore_errors=True)
print("PASS")
