#!/usr/bin/env python3
"""virtctl create vm against the user guide's examples (docs/user_workloads/creating_vms.md): every manifest parses
as YAML (the API test server's loader) into the VirtualMachine KubeVirt's virtctl describes; bad flags exit 1 naming
the flag and print nothing on stdout.
Usage: test_createvm.py VIRTCTL"""
import os
import subprocess
import sys
import tempfile

ROOT = os.environ.get("KV_SOURCE_ROOT", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "kube-api"))
import yamlite  # noqa: E402

VIRTCTL = sys.argv[1]
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def create(*args):
    p = subprocess.run([VIRTCTL, "create", "vm", *args], capture_output=True, text=True, timeout=10)
    if p.returncode != 0:
        raise AssertionError("create vm %s: exit %d: %s" % (" ".join(args), p.returncode, p.stderr))
    docs = yamlite.load_all(p.stdout)
    assert len(docs) == 1 and docs[0]["kind"] == "VirtualMachine", p.stdout
    return docs[0]


def refused(args, words):
    p = subprocess.run([VIRTCTL, "create", "vm", *args], capture_output=True, text=True, timeout=10)
    check(p.returncode == 1 and p.stdout == "" and all(w in p.stderr for w in words),
          "refused: %s (%s)" % (" ".join(args), p.stderr.strip()))


def volumes(vm):
    return {v["name"]: v for v in vm["spec"]["template"]["spec"].get("volumes", [])}


def main():
    vm = create("--name", "my-vm", "--run-strategy", "Always")
    spec = vm["spec"]
    check(vm["metadata"]["name"] == "my-vm" and spec["runStrategy"] == "Always" and
          spec["template"]["spec"]["domain"]["memory"] == {"guest": "512Mi"} and
          spec["template"]["spec"]["terminationGracePeriodSeconds"] == 180, "a named VM: 512Mi, grace 180")
    check(create()["metadata"]["name"].startswith("vm-"), "a VM without --name gets a generated name")

    vm = create("--instancetype=virtualmachineinstancetype/my-it", "--preference=my-pref")
    check(vm["spec"]["instancetype"] == {"kind": "virtualmachineinstancetype", "name": "my-it"} and
          vm["spec"]["preference"] == {"kind": "virtualmachineclusterpreference", "name": "my-pref"} and
          "memory" not in vm["spec"]["template"]["spec"]["domain"], "instancetype and preference with kinds, no memory")

    # a cloned DataSource in a namespace with a size, inferred instancetype and preference
    vm = create("--name", "ds-vm", "--volume-import=type:ds,src:my-ns/my-ds,size:50Gi", "--infer-instancetype",
                "--infer-preference")
    dvt = vm["spec"]["dataVolumeTemplates"]
    check(len(dvt) == 1 and dvt[0]["metadata"]["name"] == "ds-vm-ds-my-ds" and dvt[0]["spec"] == {
        "sourceRef": {"kind": "DataSource", "name": "my-ds", "namespace": "my-ns"},
        "storage": {"resources": {"requests": {"storage": "50Gi"}}}}, "--volume-import type:ds: a DataVolume template")
    check(volumes(vm) == {"ds-vm-ds-my-ds": {"name": "ds-vm-ds-my-ds", "dataVolume": {"name": "ds-vm-ds-my-ds"}}},
          "its volume names the template")
    check(vm["spec"]["instancetype"] == {"inferFromVolume": "ds-vm-ds-my-ds", "inferFromVolumeFailurePolicy": "Reject"}
          and vm["spec"]["preference"]["inferFromVolume"] == "ds-vm-ds-my-ds" and
          "memory" not in vm["spec"]["template"]["spec"]["domain"], "inference from the boot volume, Reject")

    # boot order: containerdisks, claims, DataSources, clones, blank, imports; a disk only for a bootorder
    vm = create("--name", "multi", "--volume-import=type:blank,size:1Gi", "--volume-import=type:pvc,src:ns1/base",
                "--volume-pvc=src:data", "--volume-containerdisk=src:my.registry/my-image:my-tag",
                "--volume-import=type:ds,src:my-ds,bootorder:1", "--infer-preference-from=data")
    names = [v["name"] for v in vm["spec"]["template"]["spec"]["volumes"]]
    check(names == ["multi-containerdisk-0", "data", "multi-ds-my-ds", "multi-pvc-base", "multi-volume-0"],
          "volumes in KubeVirt's boot order: %s" % names)
    check(vm["spec"]["template"]["spec"]["domain"]["devices"] == {"disks": [{"bootOrder": 1, "name": "multi-ds-my-ds"}]},
          "a disk carries the boot order")
    clone = [t for t in vm["spec"]["dataVolumeTemplates"] if t["metadata"]["name"] == "multi-pvc-base"][0]
    check(clone["spec"]["source"] == {"pvc": {"name": "base", "namespace": "ns1"}} and clone["spec"]["storage"] == {},
          "a cloned claim keeps its size (no request)")
    check(vm["spec"]["preference"]["inferFromVolume"] == "data", "--infer-preference-from names the volume")
    vm = create("--volume-import=type:ds,src:a", "--volume-import=type:ds,src:b", "--infer-instancetype",
                "--name", "two")
    check(vm["spec"]["instancetype"]["inferFromVolume"] == "two-ds-a", "without a boot order the first volume boots")
    vm = create("--volume-import=type:registry,src:docker://quay.io/containerdisks/fedora:latest,size:5Gi,name:root")
    check(vm["spec"]["dataVolumeTemplates"][0]["spec"]["source"] == {
        "registry": {"url": "docker://quay.io/containerdisks/fedora:latest"}}, "a registry import")

    # cloud-init user data: generated, or given in base64
    with tempfile.NamedTemporaryFile("w", suffix=".pw") as pw:
        pw.write("s3cret\n")
        pw.flush()
        vm = create("--user=cloud-user", "--ssh-key=ssh-ed25519 AAAA key1", "--ssh-key=ssh-rsa BBBB key2",
                    "--password-file", pw.name)
    data = volumes(vm)["cloudinitdisk"]["cloudInitNoCloud"]["userData"]
    check(data == "#cloud-config\nuser: cloud-user\npassword: s3cret\nchpasswd: { expire: False }\n"
          "ssh_authorized_keys:\n  - ssh-ed25519 AAAA key1\n  - ssh-rsa BBBB key2", "generated user data: %r" % data)
    vm = create("--cloud-init-user-data", "I2Nsb3VkLWNvbmZpZwo=")
    check(volumes(vm)["cloudinitdisk"]["cloudInitNoCloud"] == {"userDataBase64": "I2Nsb3VkLWNvbmZpZwo="},
          "user data given in base64")
    # access credentials (the user guide's and virtctl's examples)
    vm = create("--user", "cloud-user", "--access-cred=type:ssh,src:my-keys")
    tspec = vm["spec"]["template"]["spec"]
    check(tspec["accessCredentials"] == [{"sshPublicKey": {"source": {"secret": {"secretName": "my-keys"}},
                                          "propagationMethod": {"qemuGuestAgent": {"users": ["cloud-user"]}}}}],
          "--access-cred type:ssh: the guest agent method for --user")
    check(volumes(vm)["cloudinitdisk"]["cloudInitNoCloud"]["userData"] ==
          "#cloud-config\nuser: cloud-user\nruncmd:\n  - [ setsebool, -P, 'virt_qemu_ga_manage_ssh', 'on' ]",
          "the guest agent may manage SSH keys (cloud-init runcmd)")
    vm = create("--access-cred=type:ssh,src:my-keys,user:myuser", "--access-cred=type:password,src:my-pws")
    creds = vm["spec"]["template"]["spec"]["accessCredentials"]
    check(creds[0]["sshPublicKey"]["propagationMethod"]["qemuGuestAgent"]["users"] == ["myuser"] and
          creds[1] == {"userPassword": {"source": {"secret": {"secretName": "my-pws"}},
                                        "propagationMethod": {"qemuGuestAgent": {}}}}, "an ssh key and a password")
    vm = create("--access-cred=src:k,method:configdrive")
    check(volumes(vm)["cloudinitdisk"] == {"name": "cloudinitdisk",
                                           "cloudInitConfigDrive": {"userData": "#cloud-config"}} and
          vm["spec"]["template"]["spec"]["accessCredentials"][0]["sshPublicKey"]["propagationMethod"] ==
          {"configDrive": {}}, "method configdrive brings a config drive")
    vm = create("--cloud-init", "none", "--user", "u")
    check("cloudinitdisk" not in volumes(vm), "--cloud-init none: no disk")
    vm = create("--volume-sysprep", "src:my-cm", "--volume-containerdisk", "src:img")
    check(volumes(vm)["sysprepdisk"] == {"name": "sysprepdisk", "sysprep": {"configMap": {"name": "my-cm"}}},
          "a sysprep ConfigMap")
    check(list(volumes(vm))[0] != "sysprepdisk", "the sysprep disk comes after the boot volume")
    vm = create("--volume-sysprep", "src:my-secret,type:secret")
    check(volumes(vm)["sysprepdisk"]["sysprep"] == {"secret": {"name": "my-secret"}}, "a sysprep Secret")
    # the manifests pass the VMI validation virt-api and the launcher share
    vm = create("--name", "creds", "--volume-containerdisk", "src:img", "--access-cred=src:k,method:nocloud",
                "--access-cred=type:password,src:p")
    check(vm["spec"]["template"]["spec"]["accessCredentials"][0]["sshPublicKey"]["propagationMethod"] ==
          {"noCloud": {}} and "cloudInitNoCloud" in volumes(vm)["cloudinitdisk"], "method nocloud")
    # a value YAML would read as another type stays a string
    vm = create("--name", "q", "--memory", "1024", "--run-strategy", "Halted")
    check(vm["spec"]["template"]["spec"]["domain"]["memory"]["guest"] == "1024", "a numeric quantity stays a string")

    refused(["--volume-import=type:ds"], ['"--volume-import"', "src must be specified"])
    refused(["--volume-import=type:blank"], ['"--volume-import"', "size must be specified"])
    refused(["--volume-import=type:s3,src:x,size:1Gi"], ["unsupported type s3"])
    refused(["--volume-import=type:ds,src:x,colour:red"], ["unknown param(s): colour:red"])
    refused(["--volume-containerdisk=src:a,bootorder:0"], ["bootorder must be a positive number"])
    refused(["--instancetype=u1.small", "--infer-instancetype"], ["mutually exclusive"])
    refused(["--infer-instancetype"], ["at least one volume"])
    refused(["--volume-pvc=src:a", "--infer-preference=nothere"], ["no volume with name nothere"])
    refused(["--instancetype=u1.small", "--memory=1Gi"], ["--memory"])
    refused(["--instancetype=flavours/u1.small"], ["invalid --instancetype kind flavours"])
    refused(["--volume-pvc=src:a", "--volume-pvc=src:a"], ["already a volume with name a"])
    refused(["--user=u", "--cloud-init-user-data=eA=="], ["mutually exclusive"])
    refused(["--access-cred=type:ssh,src:k"], ['"--access-cred"', "user must be specified"])
    refused(["--access-cred=type:ssh,src:k,method:nocloud", "--cloud-init=configdrive"],
            ["method param and value passed to --cloud-init have to match: nocloud vs configdrive"])
    refused(["--access-cred=type:password,src:k,user:u"], ["user cannot be specified"])
    refused(["--access-cred=type:password,src:k,method:nocloud"], ['invalid access credentials password method'])
    refused(["--access-cred=type:token,src:k"], ['invalid access credential type "token"'])
    refused(["--access-cred=type:ssh,user:u"], ["src must be specified"])
    refused(["--access-cred=src:ns/k,user:u"], ['not allowed to specify namespace of secret "k"'])
    refused(["--volume-sysprep=src:x,type:disk"], ['invalid sysprep source type "disk"'])
    refused(["--cloud-init=iso", "--user=u"], ['invalid cloud-init data source type "iso"'])
    refused(["--no-such-flag"], ["unknown flag: --no-such-flag"])
    refused(["--volume-import"], ["flag needs an argument: --volume-import"])
    if failures:
        print("%d failures" % len(failures))
        sys.exit(1)


if __name__ == "__main__":
    main()
