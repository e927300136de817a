#!/usr/bin/env python3
"""kvmcheck CLI test: --json schema and exit codes, --node-labels, --profile/--replay round trip,
--help and usage errors.  usage: test-cli.py KVMCHECK_BINARY TESTDATA_DIR"""
import json
import os
import subprocess
import sys
import tempfile

import hostkvm  # beside this script

EXIT = {"usable": 0, "unusable": 1, "absent": 2}
CHECKS = ["host", "device", "caps", "cpuid", "smoke", "irq"]


def run(*args):
    return subprocess.run([KVMCHECK, *args], capture_output=True, text=True, timeout=10)


def check_report(r):
    rep = json.loads(r.stdout)
    assert rep["verdict"] in EXIT, rep["verdict"]
    assert r.returncode == EXIT[rep["verdict"]] == rep["exit_code"], (r.returncode, rep["exit_code"])
    assert isinstance(rep["reason"], str) and rep["reason"]
    assert [c["name"] for c in rep["checks"]] == CHECKS
    assert [c["id"] for c in rep["checks"]] == [1, 2, 3, 4, 5, 6]
    for c in rep["checks"]:
        assert c["status"] in ("pass", "warn", "fail", "skip"), c
        assert c["evidence"], c
    assert set(rep["profile"]) == {"host", "device", "caps", "cpuid", "smoke", "irq"}
    return rep


def test_live():
    """The live verdict agrees with what /dev/kvm is on this host, found without kvmcheck (hostkvm). Whether
    a present device is `usable` or `unusable` only a guest boot tells: kvmcheck-consistency does that."""
    rep = check_report(run("--json"))
    kind, why = hostkvm.device_kind()
    print(f"host: /dev/kvm {kind} ({why}); kvmcheck: {rep['verdict']}: {rep['reason']}")
    status = {c["name"]: c["status"] for c in rep["checks"]}
    device = rep["checks"][1]
    if kind == "absent":
        assert rep["verdict"] == "absent" and rep["reason"].startswith("no working KVM: "), rep["reason"]
        assert device["status"] == "fail", device
    elif kind == "denied":
        assert rep["verdict"] == "unusable" and device["status"] == "fail", rep["reason"]
        assert "cannot be opened read-write" in device["evidence"], device
    else:
        assert rep["verdict"] in ("usable", "unusable") and device["status"] == "pass", (rep["verdict"], device)
        failing = [n for n, s in status.items() if s == "fail"]
        if rep["verdict"] == "usable":
            assert not failing and status["smoke"] in ("pass", "skip"), status  # skip: not x86
        else:
            assert failing or status["smoke"] != "pass", status
    if device["status"] != "pass":
        assert all(status[n] == "skip" for n in ("caps", "cpuid", "smoke", "irq")), status  # not reached
    labels = run("--node-labels")
    assert labels.returncode == rep["exit_code"]
    want = ["kubevirt.io/schedulable=true",
            f"kvlite.io/kvm-usable={'true' if rep['verdict'] == 'usable' else 'false'}",
            f"kvlite.io/kvm-verdict={rep['verdict']}"]
    assert labels.stdout.splitlines() == want, labels.stdout
    human = run()
    assert human.returncode == rep["exit_code"]
    assert f"verdict: {rep['verdict']} (exit code {rep['exit_code']})" in human.stdout, human.stdout


# the recorded hosts, one of each kind: profile-NAME.json replays to report-NAME.json
RECORDED = (("intel-vtx", "usable"), ("kvm-pvm", "unusable"), ("no-device", "absent"))


def test_replay():
    for name, verdict in RECORDED:
        r = run("--replay", os.path.join(TESTDATA, f"profile-{name}.json"), "--json")
        rep = check_report(r)
        assert rep["verdict"] == verdict and r.returncode == EXIT[verdict], (name, rep["verdict"])
        with open(os.path.join(TESTDATA, f"report-{name}.json")) as f:
            golden = json.load(f)
        del rep["profile"]
        assert rep == golden, name
        human = run("--replay", os.path.join(TESTDATA, f"profile-{name}.json"))
        assert human.returncode == EXIT[verdict] and f"verdict: {verdict}" in human.stdout, (name, human.stdout)
    # a live profile replays to the same verdict
    prof = run("--profile")
    with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
        f.write(prof.stdout)
        f.flush()
        again = check_report(run("--replay", f.name, "--json"))
    assert again["exit_code"] == prof.returncode, (again["exit_code"], prof.returncode)


def test_usage():
    h = run("--help")
    assert h.returncode == 0 and "Exit codes" in h.stdout and "--node-labels" in h.stdout
    for args, needle in ((["--bogus"], "--bogus: unknown option"),
                         (["extra"], "extra: unexpected argument"),
                         (["--replay"], "--replay: needs a FILE argument"),
                         (["--json", "--node-labels"], "only one of")):
        r = run(*args)
        assert r.returncode == 3 and needle in r.stderr, (args, r.returncode, r.stderr)
    r = run("--replay", "/nonexistent/profile.json")
    assert r.returncode == 4 and "/nonexistent/profile.json" in r.stderr, r.stderr
    with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
        f.write('{"device": {"api_version": "12"}}')
        f.flush()
        r = run("--replay", f.name)
    assert r.returncode == 4 and "device.api_version: wrong type" in r.stderr, r.stderr


if __name__ == "__main__":
    KVMCHECK, TESTDATA = sys.argv[1], sys.argv[2]
    test_usage()
    test_replay()
    test_live()
    print("test-cli: ok")
