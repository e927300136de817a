#!/usr/bin/env python3
"""Live migration over loopback of a 256 MiB guest holding random data (guest switch fill=N):
libkvliveops' defaults (through liveops-driver) vs bare QEMU 7.2 at its defaults and at hand-tuned settings,
interleaved in the same run. Prints QEMU's total-time and downtime (median of RUNS) and the ratio of each to
the best hand-tuned total time. Goal: library defaults within 1.2x of the best hand-tuned bare QEMU.

Usage: migration-loopback.py LIVEOPS_DRIVER [RUNS]   (needs the test guest in $KV_GUEST_DIR)

The guest's /tmp is a tmpfs of 90 % of its RAM (tests/guest/init), so fill=128 (issue 6's 128 MiB of random
data; FILL_MIB overrides it) fits in the 256 MiB guest."""
import os
import statistics
import sys
import tempfile
import time

SRC = os.environ.get("KV_SOURCE_ROOT", os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(SRC, "launcher", "liveops", "tests"))
from lo_fixture import Vm, driver, guest_dir  # noqa: E402

DRV = os.path.abspath(sys.argv[1])
RUNS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
FILL_MIB = int(os.environ.get("FILL_MIB", "128"))

# Bare QEMU setups: name -> (caps on both sides, source-only caps, params both sides, source-only params)
BARE = {
    "bare qemu defaults": ([], [], {}, {}),
    "tuned: 10 GiB/s": ([], [], {}, {"max-bandwidth": 10 << 30}),
    "tuned: 10 GiB/s + multifd 2": (["multifd"], [], {"multifd-channels": 2}, {"max-bandwidth": 10 << 30}),
    "tuned: 10 GiB/s + multifd 4": (["multifd"], [], {"multifd-channels": 4}, {"max-bandwidth": 10 << 30}),
    "tuned: 10 GiB/s + multifd 8": (["multifd"], [], {"multifd-channels": 8}, {"max-bandwidth": 10 << 30}),
}
LIB = "libkvliveops defaults"


def caps(names):
    return [{"capability": c, "state": True} for c in ["events"] + names]


def pair(tmp, tag):
    src = Vm(tmp, tag + "-src", append=f"fill={FILL_MIB} cnt=0")
    tgt = Vm(tmp, tag + "-tgt", append=f"fill={FILL_MIB} cnt=0", incoming=True)
    deadline = time.monotonic() + 60
    while f"FILLED {FILL_MIB}" not in open(src.log, errors="replace").read():
        if time.monotonic() > deadline:
            raise SystemExit("guest did not fill its memory")
        time.sleep(0.2)
    return src, tgt


def finished(src):
    while True:
        m = src.qmp.cmd("query-migrate")
        if m.get("status") in ("completed", "failed", "cancelled") and m.get("total-time", 0) > 0:
            return m
        time.sleep(0.02)


def run_bare(tmp, tag, setup):
    both, src_only, params, src_params = setup
    src, tgt = pair(tmp, tag)
    try:
        uri = f"unix:{tmp}/{tag}.sock"
        tgt.qmp.cmd("migrate-set-capabilities", capabilities=caps(both))
        if params:
            tgt.qmp.cmd("migrate-set-parameters", **params)
        tgt.qmp.cmd("migrate-incoming", uri=uri)
        src.qmp.cmd("migrate-set-capabilities", capabilities=caps(both + src_only))
        if params or src_params:
            src.qmp.cmd("migrate-set-parameters", **params, **src_params)
        src.qmp.cmd("migrate", uri=uri)
        m = finished(src)
    finally:
        src.kill()
        tgt.kill()
    return m


def run_lib(tmp, tag):
    src, tgt = pair(tmp, tag)
    try:
        uri = f"unix:{tmp}/{tag}.sock"
        driver(DRV, tgt.qmp_path, "migrate-target", {"uri": uri})
        driver(DRV, src.qmp_path, "migrate", {"uri": uri})
        m = finished(src)
    finally:
        src.kill()
        tgt.kill()
    return m


def main():
    guest_dir()
    results = {name: [] for name in list(BARE) + [LIB]}
    with tempfile.TemporaryDirectory(prefix="kv-migbench-") as tmp:
        for run in range(RUNS):
            for name in results:  # interleaved, so drift on a shared machine hits every setup alike
                tag = f"r{run}-{len(results[name])}-{abs(hash(name)) % 10000}"
                m = run_lib(tmp, tag) if name == LIB else run_bare(tmp, tag, BARE[name])
                if m["status"] != "completed":
                    raise SystemExit(f"{name}: migration {m['status']}: {m.get('error-desc')}")
                results[name].append((m["total-time"], m["downtime"], m["ram"]["transferred"]))
                print(f"  run {run + 1}/{RUNS} {name}: total {m['total-time']} ms, downtime {m['downtime']} ms",
                      flush=True)
    med = {n: (statistics.median(t for t, _, _ in r), statistics.median(d for _, d, _ in r),
               statistics.median(x for _, _, x in r)) for n, r in results.items()}
    best = min((n for n in BARE if n.startswith("tuned")), key=lambda n: med[n][0])
    print(f"\nmigration of a 256 MiB guest holding {FILL_MIB} MiB of random data, unix socket, TCG, median of {RUNS}")
    print(f"{'setup':32} {'total ms':>9} {'downtime ms':>12} {'MiB sent':>9} {'vs best tuned':>14}")
    for n, (t, d, x) in med.items():
        print(f"{n:32} {t:9.0f} {d:12.0f} {x / 2**20:9.0f} {t / med[best][0]:13.2f}x")
    ratio = med[LIB][0] / med[best][0]
    print(f"\nbest hand-tuned: {best}; library defaults / best = {ratio:.2f}x "
          f"(goal <= 1.20x: {'met' if ratio <= 1.2 else 'NOT met'})")


if __name__ == "__main__":
    main()
