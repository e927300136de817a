#!/usr/bin/env python3
# KubeVirt's backend storage end to end with the real kubectl (docs/launcher-model.md, "Persistent TPM and EFI"):
# a kernelBoot VM with a persistent TPM (devices.tpm.persistent). The controller makes the claim
# persistent-state-for-<vm> before the launcher Pod, owned by the VM and labelled as KubeVirt does; the Pod
# mounts it (the kubelet stand-in waits for the provisioner to bind it, as a kubelet does); the launcher's
# swtpm keeps its state there. The guest sees its TPM 2.0. Stopped and started again, the VM gets a new VMI and
# Pod on the same claim, and swtpm goes on from the state the first run left (its state file is that TPM's,
# not a new one's: the seeds are kept).
# Usage: test_backend_storage.py
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import test_e2e as e2e  # noqa: E402
from kubetest import wait_for  # noqa: E402
from test_snapshot_offline import SnapEnv, create, e2e_skip, set_running, skip_without_guest_or_root  # noqa: E402

VM, CLAIM = "tpmvm", "persistent-state-for-tpmvm"


def tpm_state(env):
    return os.path.join(os.path.dirname(env.claim_file(CLAIM)), "tpm", "tpm2-00.permall")


def run_scenario(env):
    vm = e2e.kernelboot_vm(VM, "Always", "console=ttyS0", {"emptyDisk": {"capacity": "1Mi"}})
    vm["spec"]["template"]["spec"]["domain"]["devices"]["tpm"] = {"persistent": True}
    create(env, vm)
    vmi, pod, _ = env.wait_running(VM)
    pvc = env.get("pvc", CLAIM)
    owner = pvc["metadata"]["ownerReferences"][0]
    vm_obj = env.get("vm", VM)
    assert owner["kind"] == "VirtualMachine" and owner["uid"] == vm_obj["metadata"]["uid"], pvc["metadata"]
    assert pvc["metadata"]["labels"] == {"persistent-state-for": VM}, pvc["metadata"]
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"] and pvc["status"]["phase"] == "Bound", pvc
    mounts = [v for v in pod["spec"]["volumes"] if v.get("persistentVolumeClaim", {}).get("claimName") == CLAIM]
    assert len(mounts) == 1, pod["spec"]["volumes"]
    print("ok - backend storage claim %s: owned by the VM, labelled, bound, mounted by the launcher Pod" % CLAIM)
    state = wait_for("swtpm's state in the claim", lambda: os.path.exists(tpm_state(env)) and tpm_state(env),
                     timeout=30, interval=0.5)
    first = open(state, "rb").read()
    set_running(env, VM, False)
    wait_for("VMI gone", lambda: env.get("vmi", VM) is None, timeout=60, interval=0.5)
    assert env.get("pvc", CLAIM)["metadata"]["uid"] == pvc["metadata"]["uid"]
    set_running(env, VM, True)
    vmi2, _, _ = env.wait_running(VM)
    assert vmi2["metadata"]["uid"] != vmi["metadata"]["uid"]
    assert env.get("pvc", CLAIM)["metadata"]["uid"] == pvc["metadata"]["uid"]
    now = open(state, "rb").read()
    same = sum(a == b for a, b in zip(first, now)) / max(len(first), len(now))
    # a TPM made anew has new random seeds: its state file shares about 2/3 of its bytes with another fresh one
    # (their layout); the same TPM after a restart differs only in its clock and counters
    assert same > 0.95, "the TPM state was made anew: %.3f of its bytes as after the first run" % same
    print("ok - stopped and started: a new VMI on the same claim; swtpm went on from the first run's TPM "
          "(%.3f of its state file's bytes unchanged)" % same)
    set_running(env, VM, False)
    wait_for("VMI gone", lambda: env.get("vmi", VM) is None, timeout=60, interval=0.5)


def main():
    skip_without_guest_or_root()
    if not shutil.which("swtpm"):
        e2e_skip("swtpm is not installed (ci/deps.sh installs it)")
    with SnapEnv() as env:
        run_scenario(env)


if __name__ == "__main__":
    main()
