#!/usr/bin/env python3
"""Every shipped binary speaks for itself: --help exits 0 with a usage line and its exit codes on stdout,
and an unknown option exits non-zero naming the option on stderr.
usage: test_help.py BINARY...   (the installed binaries: meson.build passes them)"""
import os
import subprocess
import sys

BAD = "--no-such-option"
# virt-launcher's subcommands have their own --help
SUBCOMMANDS = {"virt-launcher": ["ctl", "console"]}


def run(argv):
    return subprocess.run(argv, capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL)


def check_help(binary, prefix, exit_codes=True):
    name = " ".join([os.path.basename(binary)] + prefix)
    r = run([binary, *prefix, "--help"])
    assert r.returncode == 0, f"{name} --help: exit {r.returncode}, stderr {r.stderr!r}"
    assert f"Usage: {name}" in r.stdout, f"{name} --help: no 'Usage: {name}' on stdout: {r.stdout!r}"
    assert not exit_codes or "Exit" in r.stdout, f"{name} --help does not document its exit codes"
    print(f"ok: {name} --help")


def check_bad_option(binary):
    name = os.path.basename(binary)
    r = run([binary, BAD])
    assert r.returncode != 0, f"{name} {BAD}: exit 0"
    assert BAD in r.stderr, f"{name} {BAD}: stderr does not name the option: {r.stderr!r}"
    assert r.stdout == "", f"{name} {BAD}: wrote to stdout: {r.stdout!r}"
    print(f"ok: {name} {BAD} -> exit {r.returncode}")


# Flags (or commands) a binary's --help must name, and (flag, bad value) pairs it must refuse with exit 2 naming the flag.
FLAGS = {"virt-api": (["--cert-dir", "--service", "--cert-validity", "--cert-check", "--tls-cert", "--client-ca"],
                      [("--cert-validity", "0"), ("--cert-check", "x"), ("--service", "virt-api")]),
         "virt-handler": (["--api-relay-dir"], []),
         "virtctl": (["credentials add-ssh-key", "credentials remove-ssh-key", "credentials set-password"], [])}


def check_flags(binary):
    name = os.path.basename(binary)
    names, bad = FLAGS.get(name, ([], []))
    text = run([binary, "--help"]).stdout
    for flag in names:
        assert flag in text, f"{name} --help does not name {flag}"
    for flag, value in bad:
        r = run([binary, "--cert-dir", "/nonexistent", flag, value])
        assert r.returncode == 2 and flag in r.stderr, f"{name} {flag} {value}: exit {r.returncode} {r.stderr!r}"
    if names:
        print(f"ok: {name} --help names {' '.join(names)}; bad values refused with exit 2")


def main():
    for binary in sys.argv[1:]:
        check_help(binary, [])
        check_flags(binary)
        for sub in SUBCOMMANDS.get(os.path.basename(binary), []):
            check_help(binary, [sub], exit_codes=False) # `console --help` has none yet
        check_bad_option(binary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
