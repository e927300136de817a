#!/usr/bin/env python3
"""virtctl credentials without a cluster: the words KubeVirt's cobra command checks before any request (the
subcommand, one VM, required flags, exclusive groups, flags a subcommand lacks) and the key read before the VM is
fetched are refused with exit 1 naming the flag, nothing on stdout; no subcommand prints the usage (exit 0).
The requests themselves: tests/e2e/test_credentials.py.
Usage: test_credentials_flags.py VIRTCTL"""
import atexit
import os
import shutil
import subprocess
import sys
import tempfile

VIRTCTL = sys.argv[1]
failures = []
tmp = tempfile.mkdtemp(prefix="virtctl-cred.")
atexit.register(shutil.rmtree, tmp, True)  # also when a check raises
# a kubeconfig whose server nobody serves: what is checked before a request never gets there
KUBECONFIG = os.path.join(tmp, "kubeconfig")
with open(KUBECONFIG, "w") as f:
    f.write("apiVersion: v1\nkind: Config\ncurrent-context: a\nclusters: [{name: a, cluster: {server: "
            "'http://127.0.0.1:9'}}]\nusers: [{name: a, user: {}}]\ncontexts: [{name: a, context: {cluster: a, "
            "user: a}}]\n")
BLANK = os.path.join(tmp, "blank.pub")
with open(BLANK, "w") as f:
    f.write(" \n\n")


def virtctl(*args):
    return subprocess.run([VIRTCTL, "--kubeconfig", KUBECONFIG, "credentials", *args], capture_output=True, text=True,
                          timeout=10)


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def refused(args, words):
    p = virtctl(*args)
    check(p.returncode == 1 and p.stdout == "" and p.stderr == "Error: %s\n" % words,
          "refused: %s (%s)" % (" ".join(args), p.stderr.strip()))


p = virtctl()
check(p.returncode == 0 and p.stdout.startswith("Usage: virtctl credentials") and "set-password" in p.stdout,
      "no subcommand: the usage")
for args, words in (
        (["rotate", "vm"], 'unknown command "rotate" for "virtctl credentials"'),
        (["add-ssh-key", "--user", "u", "--value", "k"], "accepts 1 arg(s), received 0"),
        (["remove-ssh-key", "a", "b", "--user", "u", "--value", "k"], "accepts 1 arg(s), received 2"),
        (["add-ssh-key", "vm", "--value", "k"], 'required flag(s) "user" not set'),
        (["set-password", "vm"], 'required flag(s) "password", "user" not set'),
        (["set-password", "vm", "-u", "u"], 'required flag(s) "password" not set'),
        (["add-ssh-key", "vm", "--user"], "flag needs an argument: --user"),
        (["add-ssh-key", "vm", "-u", "u", "-f", "f", "--value", "k"],
         "if any flags in the group [file value] are set none of the others can be; [file value] were all set"),
        (["add-ssh-key", "vm", "-u", "u", "--value", "k", "--create-secret", "--update-secret"],
         "if any flags in the group [create-secret update-secret] are set none of the others can be; "
         "[create-secret update-secret] were all set"),
        (["remove-ssh-key", "vm", "-u", "u", "--value", "k", "--create-secret"], "unknown flag: --create-secret"),
        (["set-password", "vm", "-u", "u", "-p", "p", "--value", "k"], "unknown flag: --value"),
        (["set-password", "vm", "-u", "u", "-p", "p", "-f", "k"], "unknown shorthand flag: 'f' in -f"),
        (["add-ssh-key", "vm", "-u", "u", "--no-such-flag"], "unknown flag: --no-such-flag"),
        (["add-ssh-key", "vm", "-u", "u"], "error getting ssh key: one of --file, or --value must be specified"),
        (["add-ssh-key", "vm", "-u", "u", "--value", ""],
         "error getting ssh key: one of --file, or --value must be specified"),
        (["add-ssh-key", "vm", "-u", "u", "-f", os.path.join(tmp, "none.pub")],
         "error getting ssh key: open %s: No such file or directory" % os.path.join(tmp, "none.pub")),
        (["remove-ssh-key", "vm", "-u", "u", "--file", BLANK], "error getting ssh key: %s holds no key" % BLANK)):
    refused(args, words)
p = virtctl("add-ssh-key", "vm", "-u", "u", "--value", "ssh-ed25519 AAAA k")
check(p.returncode == 1 and "error getting virtual machine: " in p.stderr, "a good key goes on to the API: " +
      p.stderr.strip())
sys.exit(1 if failures else 0)
