#!/usr/bin/env python3
"""spec.accessCredentials on the real test guest (docs/access-credentials.md): an sshPublicKey Secret
propagated by noCloud lands in the cloud-init seed's meta-data (public-keys); one propagated by
qemuGuestAgent becomes root's and kvuser's authorized_keys through Debian's qemu-ga in the guest; a
userPassword Secret sets root's password (guest-set-user-password: the guest's /etc/shadow holds its
SHA-512 crypt). The condition AccessCredentialsSynchronized is True. Then the Secrets change as the
kubelet changes a mounted Secret (an atomic rename): the new keys replace the old ones in the guest; a
password for a user the guest lacks turns the condition False naming the command and the user, and
removing it turns it True again.
usage: launcher_access_credentials.py VIRT_LAUNCHER"""
import os
import shutil
import tempfile
import time

from launcherlib import Launcher, check, cleanup, need_guest, vmi

AGENT_KEYS = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAagentone one@kvlite", "ssh-rsa AAAAB3NzaC1yc2EAAAAagenttwo two@kvlite"]
NEW_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAArotated rotated@kvlite"
NOCLOUD_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAnocloud nc@kvlite"
PASSWORD = "s3cret pass: with colon"


def write_key(secret_dir, key, text):
    """As the kubelet updates a mounted Secret: the new content appears at once, whole."""
    os.makedirs(secret_dir, exist_ok=True)
    tmp = os.path.join(secret_dir, ".tmp-" + key)
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, os.path.join(secret_dir, key))


def synced(L):
    return L.condition("AccessCredentialsSynchronized") or {}


need_guest()
root = tempfile.mkdtemp(prefix="kv-lt-access-")
try:
    acd = os.path.join(root, "access-credentials.d")
    write_key(os.path.join(acd, "agent-keys"), "keys", f"{AGENT_KEYS[0]}\n\n  {AGENT_KEYS[1]}  \n")
    write_key(os.path.join(acd, "nocloud-keys"), "key", NOCLOUD_KEY + "\n")
    write_key(os.path.join(acd, "passwords"), "root", PASSWORD)
    m = vmi("accvm", "shell=1", disks=[{"name": "cloudinit", "disk": {"bus": "virtio"}}],
            volumes=[{"name": "cloudinit", "cloudInitNoCloud": {"userData": "#cloud-config\n"}}],
            accessCredentials=[
                {"sshPublicKey": {"source": {"secret": {"secretName": "agent-keys"}},
                                  "propagationMethod": {"qemuGuestAgent": {"users": ["root", "kvuser"]}}}},
                {"sshPublicKey": {"source": {"secret": {"secretName": "nocloud-keys"}},
                                  "propagationMethod": {"noCloud": {}}}},
                {"userPassword": {"source": {"secret": {"secretName": "passwords"}},
                                  "propagationMethod": {"qemuGuestAgent": {}}}}])
    L = Launcher(m, args=["--secret-root", root])
    L.wait_phase("Running", 60)
    L.wait(lambda: synced(L).get("status") == "True", 90, "AccessCredentialsSynchronized True")
    c = synced(L)
    check(c["reason"] == "AccessCredentialsSyncSuccess", f"the condition as KubeVirt's: {c}", L)
    ask = L.guest_shell()
    for user, home in (("root", "/root"), ("kvuser", "/home/kvuser")):
        got = ask(f"K-{user}", f"tr '\\n' '|' < {home}/.ssh/authorized_keys")
        check(got.rstrip("|") == "|".join(AGENT_KEYS), f"{user}'s authorized_keys holds the Secret's keys: {got!r}", L)
    # (the shell helper's answers cannot hold "$": a crypt's "$" come back as "%")
    crypt = ask("S1", "grep ^root: /etc/shadow | cut -d: -f2 | tr '$' '%'").replace("%", "$")
    check(crypt.startswith("$6$"), f"root's password set through the guest agent: {crypt!r}", L)
    salt = crypt.split("$")[2]
    again = ask("S2", f"mkpasswd -m sha512 -S {salt} '{PASSWORD}' | tr '$' '%'").replace("%", "$")
    check(again == crypt, "the guest's crypt is the Secret's password", L)
    seen = ask("M1", "grep -c '" + NOCLOUD_KEY + "' /mnt/cidata/meta-data")
    check(seen == "1", "the noCloud key is in the cloud-init meta-data (public-keys)", L)

    # --- the rest of what the agent tells (KubeVirt's guestosinfo, userlist, filesystemlist) ---
    L.wait(lambda: "fsInfo" in L.status().get("guestAgentInfo", {}) and "hostname" in L.status()["guestAgentInfo"],
           20, "guestAgentInfo")
    info = L.status()["guestAgentInfo"]
    cmds = {c["name"]: c.get("enabled", False) for c in info.get("supportedCommands", [])}
    check(info.get("guestAgentVersion", "").startswith("7.") and cmds.get("guest-ssh-add-authorized-keys") and
          info["hostname"] == ask("H1", "hostname") and info.get("timezone", "").count(",") == 1 and
          info.get("userList") == [], f"guestAgentInfo: version, commands, host name, time zone, no users: "
          f"{ {k: v for k, v in info.items() if k != 'supportedCommands'} }", L)
    cidata = [d for d in info["fsInfo"]["disks"] if d["mountPoint"] == "/mnt/cidata"]
    check(len(cidata) == 1 and cidata[0]["fileSystemType"] == "iso9660" and cidata[0]["totalBytes"] > 0,
          f"fsInfo lists the mounted cloud-init seed: {info['fsInfo']}", L)

    # --- the Secrets change under the running guest ---
    write_key(os.path.join(acd, "agent-keys"), "keys", NEW_KEY + "\n")
    end, got, n = time.monotonic() + 20, "", 0
    while time.monotonic() < end and got.rstrip("|") != NEW_KEY:
        time.sleep(0.5)
        n += 1  # a tag per question: the helper finds the first answer with its tag
        got = ask(f"K2-{n}", "tr '\\n' '|' < /root/.ssh/authorized_keys")
    check(got.rstrip("|") == NEW_KEY, f"a changed Secret replaces the keys in the guest: {got!r}", L)
    write_key(os.path.join(acd, "passwords"), "nosuchuser", "x")
    L.wait(lambda: synced(L).get("status") == "False", 30, "AccessCredentialsSynchronized False")
    c = synced(L)
    check(c["reason"] == "AccessCredentialsSyncFailed" and
          "guest-set-user-password for user nosuchuser" in c["message"],
          f"a user the guest lacks: the condition says which: {c}", L)
    os.unlink(os.path.join(acd, "passwords", "nosuchuser"))
    L.wait(lambda: synced(L).get("status") == "True", 30, "AccessCredentialsSynchronized True again")
    ask.close()
    L.ctl("shutdown")
    check(L.wait_exit(30) == 0, "the guest powers off", L)
    print("access credentials: ok")
finally:
    cleanup()
    shutil.rmtree(root, ignore_errors=True)
