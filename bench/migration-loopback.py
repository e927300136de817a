#!/usr/bin/env python3
"""Live migration over loopback of a 256 MiB guest holding random data (guest switch fill=N): libkvliveops'
defaults (through liveops-driver) vs bare QEMU 7.2 at its defaults and at hand-tuned settings. Goal (issue 6):
library defaults within 1.2x of the best hand-tuned bare QEMU total time.

Usage: migration-loopback.py LIVEOPS_DRIVER [ROUNDS]   (needs the test guest in $KV_GUEST_DIR)
  ROUNDS defaults to 40 (6-8 min on this 2-core machine); no round starts after MIGBENCH_BUDGET_S
  (600 s), so a busy machine gives fewer rounds rather than a timeout. MIGBENCH_JSON=FILE keeps the samples.

How it stays honest on a shared 2-core machine (docs/live-operations.md, "Benchmark"):
- One guest is booted and filled once, then migrated along a chain: each migration goes to a fresh
  `-incoming defer` QEMU, which is `cont`ed and becomes the next source. No boot or fill competes with a
  measurement, and a round costs ~1 s instead of ~7 s, so there can be many rounds.
- Every round runs every setup once, in a shuffled order (fixed seed), so drift and position effects hit all
  setups alike.
- The target QEMU runs with -mem-prealloc, so its RAM is touched before the migration, not while receiving.
  This machine is a VM whose balloon reports free pages to its host (virtio-balloon free page reporting,
  ~2 s after they are freed); touching a reported page faults in the host too: a fresh 256 MiB THP region
  costs 220-590 ms to touch here instead of 22 ms, depending on how much was reported, which made the
  target's receive time (and the total time of every setup) bimodal. A bare-metal target pays the 22 ms.
- Before each migration the bench waits for a quiet machine (source QEMU and everything else idle); during it
  it measures the CPU time used by processes other than the two QEMUs, the bench and its driver. A sample
  taken while something else used more than NOISE_PCT % of a core is repeated (at most RETRIES times): that
  is machine noise, not the setup.
- Spread: min / quartiles / max per setup. The "best hand-tuned" setup is chosen on the odd rounds and the
  ratio is computed on the even rounds (choosing and judging on the same noisy medians favours luck); the
  ratio's 95 % interval is a bootstrap over those rounds (paired, as they ran in the same round).

The guest's /tmp is a tmpfs of 90 % of its RAM (tests/guest/init), so fill=128 (issue 6's 128 MiB of random
data; FILL_MIB overrides it) fits in the 256 MiB guest."""
import json
import os
import random
import resource
import statistics
import sys
import tempfile
import time

SRC = os.environ.get("KV_SOURCE_ROOT", os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(SRC, "launcher", "liveops", "tests"))
from lo_fixture import Vm, driver, guest_dir  # noqa: E402

FILL_MIB = int(os.environ.get("FILL_MIB", "128"))
NOISE_PCT = float(os.environ.get("NOISE_PCT", "15"))  # foreign CPU, % of one core, above which a sample is redone
RETRIES = 3
BUDGET_S = float(os.environ.get("MIGBENCH_BUDGET_S", "600"))  # no new round starts after this (meson: 900 s)
TICK = os.sysconf("SC_CLK_TCK")
BW = 10 << 30

# Bare QEMU setups: name -> (multifd channels or 0, source-only params). Everything is set explicitly on both
# sides: a chained source was a target before and keeps the capabilities and parameters it was given then.
QEMU_DEFAULTS = {"max-bandwidth": 128 << 20, "downtime-limit": 300}
BARE = {
    "bare qemu defaults": (0, {}),
    "tuned: 10 GiB/s": (0, {"max-bandwidth": BW}),
    "tuned: 10 GiB/s + multifd 1": (1, {"max-bandwidth": BW}),
    "tuned: 10 GiB/s + multifd 2": (2, {"max-bandwidth": BW}),
    "tuned: 10 GiB/s + multifd 4": (4, {"max-bandwidth": BW}),
    "tuned: 10 GiB/s + multifd 8": (8, {"max-bandwidth": BW}),
}
LIB = "libkvliveops defaults"
SETUPS = list(BARE) + [LIB]


def proc_cpu(pid):
    """utime + stime of a process (all its threads), seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def machine_busy():
    """Seconds of non-idle CPU time of the whole machine."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / TICK


def own_cpu():
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime  # children: reaped liveops-driver runs


class CpuWindow:
    """CPU time over a window: the two QEMUs, and everything else ("foreign")."""

    def __init__(self, vms):
        self.pids = [v.proc.pid for v in vms]
        self.t, self.busy, self.own = time.monotonic(), machine_busy(), own_cpu()
        self.qemu = [proc_cpu(p) for p in self.pids]

    def end(self):
        dt = time.monotonic() - self.t
        qemu = [proc_cpu(p) - q for p, q in zip(self.pids, self.qemu)]
        foreign = machine_busy() - self.busy - sum(qemu) - (own_cpu() - self.own)
        return dt, qemu, max(foreign, 0.0)


def wait_quiet(src, timeout=3.0):
    """Until the source guest is idle and nothing else runs (0.2 s windows), or timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        w = CpuWindow([src])
        time.sleep(0.2)
        dt, (q,), foreign = w.end()
        if q / dt < 0.10 and foreign / dt < NOISE_PCT / 100:
            return


def caps(multifd):
    return [{"capability": "events", "state": True}, {"capability": "multifd", "state": multifd > 0},
            {"capability": "postcopy-ram", "state": False}, {"capability": "auto-converge", "state": False}]


def finished(src):
    deadline = time.monotonic() + 60
    while True:
        m = src.qmp.cmd("query-migrate")
        if m.get("status") in ("failed", "cancelled") or time.monotonic() > deadline:
            return m
        if m.get("status") == "completed" and m.get("total-time", 0) > 0:
            return m
        time.sleep(0.05)  # the library's own poll waits up to 50 ms too


def migrate(tmp, src, name, tag):
    """One migration of src to a fresh target; returns (query-migrate of the source, target, CPU window)."""
    # -mem-prealloc: the target's RAM is touched before the migration starts, not while receiving (docstring).
    tgt = Vm(tmp, tag, append=f"fill={FILL_MIB} cnt=0", incoming=True, extra=["-mem-prealloc"])
    uri = f"unix:{tmp}/{tag}.sock"
    try:
        if name == LIB:
            driver(DRV, tgt.qmp_path, "migrate-target", {"uri": uri})
        else:
            channels, src_params = BARE[name]
            for vm in (tgt, src):
                vm.qmp.cmd("migrate-set-capabilities", capabilities=caps(channels))
                vm.qmp.cmd("migrate-set-parameters", **{"multifd-channels": channels or 2})
            tgt.qmp.cmd("migrate-incoming", uri=uri)
            src.qmp.cmd("migrate-set-parameters", **{**QEMU_DEFAULTS, **src_params})
        wait_quiet(src)
        w = CpuWindow([src, tgt])
        if name == LIB:
            driver(DRV, src.qmp_path, "migrate", {"uri": uri})
        else:
            src.qmp.cmd("migrate", uri=uri)
        m = finished(src)
        win = w.end()
    except BaseException:
        tgt.kill()
        raise
    if m["status"] != "completed":
        tgt.kill()
        raise SystemExit(f"{name}: migration {m['status']}: {m.get('error-desc')}")
    tgt.qmp.cmd("cont")  # the target was started with -S; it now runs the guest and is the next source
    return m, tgt, win


def quartiles(xs):
    xs = sorted(xs)
    if len(xs) < 4:
        return xs[0], statistics.median(xs), xs[-1]
    q = statistics.quantiles(xs, n=4)
    return q[0], q[1], q[2]


def ratio_ci(num, den, rng, n=2000):
    """Ratio of medians num/den over paired rounds, with a bootstrap 95 % interval."""
    k = len(num)
    point = statistics.median(num) / statistics.median(den)
    boots = []
    for _ in range(n):
        idx = [rng.randrange(k) for _ in range(k)]
        boots.append(statistics.median(num[i] for i in idx) / statistics.median(den[i] for i in idx))
    boots.sort()
    return point, boots[int(0.025 * n)], boots[int(0.975 * n) - 1]


def run(rounds, tmp):
    res = {n: [] for n in SETUPS}  # name -> per round (total ms, downtime ms, MiB sent, foreign %, qemu CPU s)
    retried = 0
    t0 = time.monotonic()
    rng = random.Random(6)
    src = Vm(tmp, "boot", append=f"fill={FILL_MIB} cnt=0")
    try:
        deadline = time.monotonic() + 90
        while f"FILLED {FILL_MIB}" not in open(src.log, errors="replace").read():
            if time.monotonic() > deadline or src.proc.poll() is not None:
                raise SystemExit("guest did not fill its memory")
            time.sleep(0.2)
        for r in range(rounds):
            if r >= 2 and time.monotonic() - t0 > BUDGET_S:  # two rounds at least: one to choose, one to judge
                print(f"  time budget ({BUDGET_S:.0f} s) spent: stopping after {r} rounds", flush=True)
                break
            order = SETUPS[:]
            rng.shuffle(order)
            for name in order:
                for attempt in range(RETRIES + 1):
                    m, tgt, (dt, qemu, foreign) = migrate(tmp, src, name, f"r{r}-{SETUPS.index(name)}-{attempt}")
                    src.kill()
                    src = tgt
                    noisy = foreign / dt * 100 > NOISE_PCT
                    if not noisy or attempt == RETRIES:
                        break
                    retried += 1
                res[name].append((m["total-time"], m["downtime"], m["ram"]["transferred"] / 2**20,
                                  foreign / dt * 100, sum(qemu)))
                print(f"  round {r + 1}/{rounds} {name}: total {m['total-time']} ms, downtime {m['downtime']} ms, "
                      f"foreign CPU {foreign / dt * 100:.0f} %{' (noisy, kept)' if noisy else ''}", flush=True)
    finally:
        src.kill()
    return res, retried


def report(res, retried):
    rng = random.Random(1)
    rounds = len(res[LIB])
    print(f"\nmigration of a 256 MiB guest holding {FILL_MIB} MiB of random data, unix socket, TCG, "
          f"{os.cpu_count()} host CPUs, {rounds} interleaved rounds ({retried} noisy samples redone)")
    print(f"{'setup':30} {'total ms: min':>13} {'q1':>5} {'median':>6} {'q3':>5} {'max':>5}  "
          f"{'downtime ms (q1/med/q3)':>23} {'MiB sent':>8} {'QEMU CPU s':>10}")
    for n in SETUPS:
        t = [x[0] for x in res[n]]
        q1, med, q3 = quartiles(t)
        d1, dm, d3 = quartiles([x[1] for x in res[n]])
        print(f"{n:30} {min(t):13.0f} {q1:5.0f} {med:6.0f} {q3:5.0f} {max(t):5.0f}  "
              f"{f'{d1:.0f} / {dm:.0f} / {d3:.0f}':>23} {statistics.median(x[2] for x in res[n]):8.0f} "
              f"{statistics.median(x[4] for x in res[n]):10.2f}")
    total = {n: [x[0] for x in res[n]] for n in SETUPS}
    tuned = [n for n in BARE if n.startswith("tuned")]
    print("\nlibrary defaults / each setup (ratio of medians, all rounds, bootstrap 95 % interval):")
    for n in BARE:
        p, lo, hi = ratio_ci(total[LIB], total[n], rng)
        print(f"  / {n:30} {p:5.2f}x  [{lo:.2f}, {hi:.2f}]")
    odd, even = range(0, rounds, 2), range(1, rounds, 2)
    best = min(tuned, key=lambda n: statistics.median(total[n][i] for i in odd))
    if len(even) >= 2:
        p, lo, hi = ratio_ci([total[LIB][i] for i in even], [total[best][i] for i in even], rng)
        verdict = "met" if hi <= 1.2 else "met (interval reaches past 1.2)" if p <= 1.2 else "NOT met"
        print(f"\nbest hand-tuned (chosen on rounds 1,3,5,...): {best}\n"
              f"library defaults / best, on rounds 2,4,6,...: {p:.2f}x [{lo:.2f}, {hi:.2f}] "
              f"(goal <= 1.20x: {verdict})")
    else:
        print("\ntoo few rounds to choose the best hand-tuned setup on half of them and judge on the other half")


def main():
    global DRV
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        sys.exit(0 if len(sys.argv) > 1 else 2)
    DRV = os.path.abspath(sys.argv[1])
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 40
    guest_dir()
    with tempfile.TemporaryDirectory(prefix="kv-migbench-") as tmp:
        res, retried = run(rounds, tmp)
    if os.environ.get("MIGBENCH_JSON"):  # raw samples, for a later look at the distribution
        with open(os.environ["MIGBENCH_JSON"], "w") as f:
            json.dump({"rounds": len(res[LIB]), "retried": retried, "samples": res}, f)
    report(res, retried)


if __name__ == "__main__":
    main()
