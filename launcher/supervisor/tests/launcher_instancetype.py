"""A VirtualMachine manifest run by `virt-launcher --vmi`: its template sized by the bundled common
instancetype u1.nano (1 vCPU, 512Mi; build/crds/common-instancetypes/instancetypes.yaml, found relative to the
binary), with a namespaced preference in the same multi-document file. The guest sees one vCPU and about
512 MiB (the template itself asks for no memory)."""
import json

from launcherlib import Launcher, check, need_guest, vmi

need_guest()

m = vmi("itnano", "shell=1")
del m["spec"]["domain"]["resources"]  # the instancetype sizes the guest: memory here would conflict
vm = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
      "metadata": {"name": "itnano", "namespace": "kvtest"},
      "spec": {"runStrategy": "Always", "instancetype": {"name": "u1.nano"},
               "preference": {"kind": "VirtualMachinePreference", "name": "cores"},
               "template": {"metadata": {"labels": {"app": "itnano"}}, "spec": m["spec"]}}}
pref = {"apiVersion": "instancetype.kubevirt.io/v1beta1", "kind": "VirtualMachinePreference",
        "metadata": {"name": "cores", "namespace": "kvtest"},
        "spec": {"cpu": {"preferredCPUTopology": "cores"}}}
text = "---\n" + json.dumps(vm) + "\n---\n" + json.dumps(pref) + "\n"

L = Launcher(None, manifest_text=text)
L.wait_phase("Running")
L.wait_serial("KVGUEST READY")
ask = L.guest_shell()
cpus = ask("C1", "grep -c ^processor /proc/cpuinfo")
check(cpus == "1", f"u1.nano: the guest sees 1 vCPU (got {cpus})", L)
mem_kib = int(ask("M1", "awk '/MemTotal/ {print $2}' /proc/meminfo"))
check(400 * 1024 < mem_kib <= 512 * 1024, f"u1.nano: the guest sees about 512 MiB (MemTotal {mem_kib} KiB)", L)
ask.close()
L.proc.terminate()
check(L.wait_exit(30) == 0, "SIGTERM → powered off, exit 0", L)
print("PASS")
