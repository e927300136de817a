#!/usr/bin/env python3
"""kvmcheck CLI test: --json schema and exit codes, --node-labels, --profile/--replay round trip,
--help and usage errors.  usage: test-cli.py KVMCHECK_BINARY TESTDATA_DIR"""
import json
import os
import subprocess
import sys
import tempfile

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
    rep = check_report(run("--json"))
    if os.path.isdir("/sys/module/kvm_pvm") and not os.path.isdir("/sys/module/kvm_intel") \
            and not os.path.isdir("/sys/module/kvm_amd"):
        smoke = rep["checks"][4]
        assert rep["verdict"] == "unusable" and smoke["status"] == "fail", rep
        assert "smoke loop did not finish" in smoke["evidence"], smoke
        assert rep["profile"]["smoke"]["timed_out"] is True
    labels = run("--node-labels")
    assert labels.returncode == rep["exit_code"]
    want = ["kubevirt.io/schedulable=true",
            f"kvlite.io/kvm-usable={'true' if rep['verdict'] == 'usable' else 'false'}",
            f"kvlite.io/kvm-verdict={rep['verdict']}"]
    assert labels.stdout.splitlines() == want, labels.stdout
    human = run()
    assert human.returncode == rep["exit_code"]
    assert f"verdict: {rep['verdict']} (exit code {rep['exit_code']})" in human.stdout, human.stdout


def test_replay():
    r = run("--replay", os.path.join(TESTDATA, "profile-intel-vtx.json"), "--json")
    rep = check_report(r)
    assert rep["verdict"] == "usable" and r.returncode == 0
    with open(os.path.join(TESTDATA, "report-intel-vtx.json")) as f:
        golden = json.load(f)
    del rep["profile"]
    assert rep == golden
    r = run("--replay", os.path.join(TESTDATA, "profile-kvm-pvm.json"))
    assert r.returncode == 1 and "verdict: unusable" in r.stdout
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
