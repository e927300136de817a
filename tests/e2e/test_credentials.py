#!/usr/bin/env python3
# `virtctl credentials` end to end (docs/virtctl.md, docs/access-credentials.md) with tests/e2e's Env (real
# kubectl, the API test server, virt-api's webhooks, the controller, the kubelet stand-in, a launcher and the
# test guest under TCG): add-ssh-key on a stopped VM without accessCredentials makes a Secret the VM owns and
# adds its credential to the VM's template; set-password sets a user's entry; started, the guest's root has the
# key and the password (its serial shell reads authorized_keys and /etc/shadow); on the running VM a second key,
# the same key again, its removal and a new password reach the guest; refusals name the flag or the object;
# --create-secret --force adds a credential that the next start brings into the guest.
# Usage: test_credentials.py
import base64
import json
import os
import re
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_e2e import Env, kernelboot_vm, kubectl_json, skip_without_pod_network, wait_for  # noqa: E402
from test_datavolume import guest_shell  # noqa: E402
from test_virtctl import VirtApi, Virtctl  # noqa: E402

VM = "e2e-cred"
PW_SECRET = "e2e-cred-pw"
KEYS = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAcredone one@kvlite", "ssh-rsa AAAAB3NzaC1yc2EAAAAcredtwo two@kvlite",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAcredthree three@kvlite",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAcredfour four@kvlite"]
PASSWORDS = ["first-Pass1", "second-Pass2", "kvuser-Pass3"]
DATA_KEY = re.compile(r"^ssh-key-[bcdfghjklmnpqrstvwxz2456789]{6}$")


def secret_data(env, name):
    data = kubectl_json(env, "get", "secret", name).get("data") or {}
    return {k: base64.b64decode(v).decode() for k, v in data.items()}


def credentials(env):
    return kubectl_json(env, "get", "vm", VM)["spec"]["template"]["spec"].get("accessCredentials", [])


def ssh_credential(secret):
    return {"sshPublicKey": {"source": {"secret": {"secretName": secret}},
                             "propagationMethod": {"qemuGuestAgent": {"users": ["root"]}}}}


def add_password_credential(env, secret):
    env.kubectl("patch", "vm", VM, "--type=json", "-p", json.dumps([{
        "op": "add", "path": "/spec/template/spec/accessCredentials/-",
        "value": {"userPassword": {"source": {"secret": {"secretName": secret}},
                                   "propagationMethod": {"qemuGuestAgent": {}}}}}]))


def refused(vctl, *args):
    """virtctl credentials ARGS exits 1 with "Error: ..." on stderr; its text."""
    out = vctl("credentials", *args, rc=1)
    assert out.startswith("Error: "), out
    return out


class Guest:
    """Questions to the guest's serial shell, each with a tag of its own."""

    def __init__(self, env, pod):
        self.ask, self.n = guest_shell(env, pod), 0

    def run(self, cmd):
        self.n += 1
        return self.ask("Q%d" % self.n, cmd)

    def keys(self):
        return sorted(k for k in self.run("tr '\\n' '|' </root/.ssh/authorized_keys").split("|") if k)

    def password_is(self, password, user="root"):
        # (the shell helper's answers cannot hold "$": a crypt's "$" come back as "%")
        crypt = self.run("grep ^%s: /etc/shadow | cut -d: -f2 | tr '$' '%%'" % user).replace("%", "$")
        if not crypt.startswith("$6$"):
            return False
        again = self.run("mkpasswd -m sha512 -S %s '%s' | tr '$' '%%'" % (crypt.split("$")[2], password))
        return again.replace("%", "$") == crypt

    def wait_keys(self, what, want):
        wait_for(what, lambda: self.keys() == sorted(want), timeout=40, interval=1)

    def wait_password(self, what, password, user="root"):
        wait_for(what, lambda: self.password_is(password, user), timeout=40, interval=1)


def synced(env):
    vmi = env.vmi(VM) or {}
    return any(c["type"] == "AccessCredentialsSynchronized" and c["status"] == "True"
               for c in vmi.get("status", {}).get("conditions", []))


def start(env):
    vmi, pod, _ = env.wait_running(VM)
    wait_for("AccessCredentialsSynchronized True", lambda: synced(env), timeout=90, interval=0.5)
    return Guest(env, pod)


def stopped_vm(env, vctl, key_file):
    """On the stopped VM: a new owned Secret and credential, a userPassword credential on a Secret kubectl made,
    set-password, and the refusals. The name of the key Secret."""
    vm = kubectl_json(env, "get", "vm", VM)
    assert vctl("credentials", "add-ssh-key", VM, "--user", "root", "--value", KEYS[0]) == ""
    creds = credentials(env)
    name = creds[0]["sshPublicKey"]["source"]["secret"]["secretName"] if creds else ""
    assert creds == [ssh_credential(name)] and name.startswith(VM + "-ssh-key-"), creds
    meta = kubectl_json(env, "get", "secret", name)["metadata"]
    assert meta["ownerReferences"] == [{"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "name": VM,
                                        "uid": vm["metadata"]["uid"], "controller": True,
                                        "blockOwnerDeletion": False}], meta
    data = secret_data(env, name)
    assert list(data.values()) == [KEYS[0]] and all(DATA_KEY.match(k) for k in data), data
    print("ok - add-ssh-key on a stopped VM: Secret %s owned by the VM, the credential in its template" % name)

    env.kubectl("create", "secret", "generic", PW_SECRET, "--from-literal=root=unused")
    add_password_credential(env, PW_SECRET)
    for args, words in (
            (["set-password", VM, "--user", "root", "--password", PASSWORDS[0]],
             "secret %s does not have an owner reference pointing to VM %s" % (PW_SECRET, VM)),
            (["add-ssh-key", VM, "--value", KEYS[1]], 'required flag(s) "user" not set'),
            (["set-password", VM], 'required flag(s) "password", "user" not set'),
            (["add-ssh-key", VM, "--user", "root", "--file", key_file, "--value", KEYS[1]],
             "if any flags in the group [file value] are set none of the others can be"),
            (["add-ssh-key", VM, "--user", "root", "--value", KEYS[1], "--create-secret", "--update-secret"],
             "[create-secret update-secret] were all set"),
            (["add-ssh-key", VM, "--user", "root"], "one of --file, or --value must be specified"),
            (["add-ssh-key", VM, "--user", "root", "--value", KEYS[1], "--secret", "nope"],
             "secret nope was not assigned"),
            (["set-password", VM, "--user", "root", "--password", "x", "--secret", "nope"],
             "secret nope was not assigned"),
            (["remove-ssh-key", VM, "--user", "root", "--value", KEYS[0], "--secret", "nope"],
             "secret nope is not associated with user root"),
            (["add-ssh-key", VM, "--user", "kvuser", "--value", KEYS[1], "--update-secret"],
             "no secrets specified for user: kvuser"),
            (["add-ssh-key", "nope", "--user", "root", "--value", KEYS[1]],
             'error getting virtual machine: virtualmachines.kubevirt.io "nope" not found'),
            (["set-password", VM, "--user", "root", "--password", "x", "--file", key_file], "unknown flag: --file")):
        out = refused(vctl, *args)
        assert words in out, (args, out)
    assert secret_data(env, PW_SECRET) == {"root": "unused"} and secret_data(env, name) == data
    assert vctl("credentials", "remove-ssh-key", VM, "--user", "kvuser", "--value", KEYS[0]) == \
        "No secrets associated with user kvuser\n"
    assert len(credentials(env)) == 2
    print("ok - refusals name the flag or the object and change nothing")

    assert vctl("credentials", "set-password", VM, "--user", "root", "--password", PASSWORDS[0], "--force") == \
        'Successfully set password in secret "%s"\n' % PW_SECRET
    assert secret_data(env, PW_SECRET) == {"root": PASSWORDS[0]}
    # a second userPassword Secret, without data: --secret picks it, the patch adds its data
    env.kubectl("create", "secret", "generic", PW_SECRET + "2")
    add_password_credential(env, PW_SECRET + "2")
    out = refused(vctl, "set-password", VM, "--user", "kvuser", "--password", PASSWORDS[2], "--force")
    assert "multiple secrets specified, use option --secret to specify which secret to modify" in out, out
    vctl("credentials", "set-password", VM, "--user", "kvuser", "--password", PASSWORDS[2], "--force", "--secret",
         PW_SECRET + "2")
    assert secret_data(env, PW_SECRET + "2") == {"kvuser": PASSWORDS[2]}
    assert secret_data(env, PW_SECRET) == {"root": PASSWORDS[0]}
    print("ok - set-password: the user's entry, in the Secret --secret names when there are two")
    return name


def running_vm(env, vctl, guest, name, key_file):
    """On the running VM: a second key (from a file), the same again, --create-secret refused, the key removed,
    a new password, a Secret the VM does not own; each change of the Secrets reaches the guest."""
    with open(key_file, "w") as f:
        f.write(KEYS[1] + "\n")
    assert vctl("credentials", "add-ssh-key", VM, "--user", "root", "--file", key_file) == \
        'Successfully added the key to secret "%s"\n' % name
    data = secret_data(env, name)
    assert sorted(data.values()) == sorted(KEYS[:2]) and all(DATA_KEY.match(k) for k in data), data
    guest.wait_keys("the second key in the guest", KEYS[:2])
    assert vctl("credentials", "add-ssh-key", VM, "--user", "root", "--value", KEYS[1]) == \
        'Secret "%s" already contains this SSH key.\n' % name
    assert secret_data(env, name) == data
    out = refused(vctl, "add-ssh-key", VM, "--user", "root", "--value", KEYS[2], "--create-secret")
    assert "virtual machine %s is running. Use --force flag to update a running VM, it will take effect after " \
        "restart" % VM in out, out
    assert len(credentials(env)) == 3
    assert vctl("credentials", "remove-ssh-key", VM, "--user", "root", "--file", key_file) == ""
    assert list(secret_data(env, name).values()) == [KEYS[0]]
    guest.wait_keys("the second key gone from the guest", KEYS[:1])
    print("ok - add-ssh-key (a second data entry; the same key again is there already), remove-ssh-key: the guest's "
          "authorized_keys follows")

    vctl("credentials", "set-password", VM, "--user", "root", "--password", PASSWORDS[1], "--force", "--secret",
         PW_SECRET)
    guest.wait_password("the new password in the guest", PASSWORDS[1])
    print("ok - set-password on the running VM: root's crypt in the guest is the new password")

    env.kubectl("patch", "secret", name, "--type=json", "-p", '[{"op":"remove","path":"/metadata/ownerReferences"}]')
    for verb in ("add-ssh-key", "remove-ssh-key"):
        out = refused(vctl, verb, VM, "--user", "root", "--value", KEYS[2])
        assert "secret %s does not have an owner reference pointing to VM %s" % (name, VM) in out, out
    assert vctl("credentials", "add-ssh-key", VM, "--user", "root", "--value", KEYS[2], "--force").startswith(
        "Successfully added the key")
    guest.wait_keys("the forced key in the guest", [KEYS[0], KEYS[2]])
    vctl("credentials", "remove-ssh-key", VM, "--user", "root", "--value", KEYS[2], "--force")
    assert list(secret_data(env, name).values()) == [KEYS[0]]
    print("ok - a Secret the VM does not own: refused, then changed with --force")


def new_secret_at_restart(env, vctl, name):
    """--create-secret --force on the running VM: a second credential for root, which the next start brings in."""
    vmi = env.vmi(VM)
    assert vctl("credentials", "add-ssh-key", VM, "--user", "root", "--value", KEYS[3], "--create-secret",
                "--force") == ""
    creds = credentials(env)
    second = creds[3]["sshPublicKey"]["source"]["secret"]["secretName"] if len(creds) == 4 else ""
    assert creds[0] == ssh_credential(name) and creds[3] == ssh_credential(second) and second != name, creds
    assert list(secret_data(env, second).values()) == [KEYS[3]]
    out = refused(vctl, "add-ssh-key", VM, "--user", "root", "--value", KEYS[2])
    assert "multiple secrets specified, use option --secret to specify which secret to modify" in out, out
    assert "VM %s was scheduled to restart" % VM in vctl("restart", VM)
    wait_for("a new VMI", lambda: (env.vmi(VM) or vmi)["metadata"]["uid"] != vmi["metadata"]["uid"], timeout=90,
             interval=0.5)
    guest = start(env)
    guest.wait_keys("both Secrets' keys in the restarted guest", [KEYS[0], KEYS[3]])
    guest.wait_password("the password kept across the restart", PASSWORDS[1])
    guest.ask.close()
    print("ok - add-ssh-key --create-secret --force on a running VM: a second credential, in the guest after a restart")


def test_credentials(env):
    vapi = VirtApi(env)
    try:
        vctl = Virtctl(env)
        key_file = os.path.join(tempfile.mkdtemp(prefix="keys.", dir=env.srv.dir), "id.pub")
        with open(key_file, "w") as f:
            f.write(KEYS[1] + "\n")
        vm = kernelboot_vm(VM, "Halted", "console=ttyS0 shell=1", {"emptyDisk": {"capacity": "1Mi"}})
        env.kubectl("apply", "-f", "-", input=json.dumps(vm))
        name = stopped_vm(env, vctl, key_file)
        assert "VM %s was scheduled to start" % VM in vctl("start", VM)
        guest = start(env)
        guest.wait_keys("the key in root's authorized_keys", KEYS[:1])
        guest.wait_password("root's password", PASSWORDS[0])
        guest.wait_password("kvuser's password", PASSWORDS[2], "kvuser")
        print("ok - started: the key and the passwords in the guest")
        running_vm(env, vctl, guest, name, key_file)
        guest.ask.close()
        new_secret_at_restart(env, vctl, name)
    finally:
        vapi.stop()


if __name__ == "__main__":
    skip_without_pod_network(os.path.join("kernelboot", "boot", "vmlinuz"))
    t0 = time.time()
    with Env() as env:
        test_credentials(env)
    print("ok credentials (%.1f s)" % (time.time() - t0))
