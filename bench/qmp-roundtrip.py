#!/usr/bin/env python3
"""qmp-roundtrip: median query-status round trip over CALLS calls (default 10,000) for libqmp
(bench-qmp) and for a plain Python stdlib QMP client, against the same QEMU (TCG, -S) in the same run,
printed side by side with the ratio libqmp/python (goal: <= 0.5).

It also prints what QEMU itself costs. QEMU 7.2 reads its monitor socket one byte per main-loop pass
(monitor_can_read() returns 1), so a request's bytes dominate the round trip on these machines: bench-qmp
measures the floor (libqmp's own request bytes, written raw, answered into a spinning read, no JSON work)
and the cost of each extra request byte. The shortest request that carries an id,
{"execute":"query-status","id":0}, is 33 bytes; its floor over Python's median is the best ratio any
client that matches replies by id can reach here (docs/qmp.md "Latency")."""
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time


def python_client(path, calls):
    """A straightforward stdlib client: one JSON line out, read lines until the reply with our id."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    f = s.makefile("rb")
    json.loads(f.readline())  # greeting
    next_id = 0

    def execute(cmd):
        nonlocal next_id
        next_id += 1
        s.sendall(json.dumps({"execute": cmd, "id": next_id}).encode() + b"\n")
        while True:
            msg = json.loads(f.readline())
            if msg.get("id") == next_id:
                return msg

    execute("qmp_capabilities")
    sizes = []
    times = []
    for i in range(calls + 200):
        sizes.append(len(json.dumps({"execute": "query-status", "id": next_id + 1}).encode()) + 1)
        t0 = time.perf_counter()
        execute("query-status")
        if i >= 200:
            times.append((time.perf_counter() - t0) * 1e6)
    s.close()
    times.sort()
    return {"median_us": statistics.median(times), "p90_us": times[len(times) * 9 // 10],
            "request_bytes": statistics.median(sizes)}


ROUNDS = 5


def median_of(rounds, key):
    return statistics.median(r[key] for r in rounds)


def report(calls, cs, pys):
    """Each figure is the median over ROUNDS rounds of that round's median; the ratio's spread is shown."""
    c = {k: median_of(cs, k) for k in ("median_us", "p90_us", "floor_median_us", "us_per_byte", "request_bytes")}
    py = {k: median_of(pys, k) for k in ("median_us", "p90_us", "request_bytes")}
    ratios = sorted(a["median_us"] / b["median_us"] for a, b in zip(cs, pys))
    floors = sorted(a["floor_median_us"] / b["median_us"] for a, b in zip(cs, pys))
    ratio = statistics.median(ratios)
    print(f"qmp-roundtrip: query-status x {calls}, same QEMU 7.2 (TCG, -S), {ROUNDS} interleaved rounds")
    print(f"  libqmp  median {c['median_us']:8.1f} us   p90 {c['p90_us']:8.1f} us   request {c['request_bytes']:.0f} bytes")
    print(f"  python  median {py['median_us']:8.1f} us   p90 {py['p90_us']:8.1f} us   request {py['request_bytes']:.0f} bytes")
    print(f"  QEMU    {c['us_per_byte']:.2f} us per request byte; floor for libqmp's request "
          f"{c['floor_median_us']:.1f} us (raw write, spinning read, no JSON)")
    print(f"  ratio libqmp/python (median): {ratio:.2f}x (rounds {ratios[0]:.2f}-{ratios[-1]:.2f})   "
          f"goal <= 0.50x: {'met' if ratio <= 0.5 else 'NOT met'}")
    print(f"  best ratio for any client sending an id (QEMU's floor for the 33-byte request / python): "
          f"{statistics.median(floors):.2f}x (rounds {floors[0]:.2f}-{floors[-1]:.2f})")
    extra = (py["request_bytes"] - c["request_bytes"]) * c["us_per_byte"]
    print(f"  own cost above QEMU's floor: libqmp {c['median_us'] - c['floor_median_us']:.1f} us, python "
          f"{py['median_us'] - c['floor_median_us'] - extra:.1f} us (+{extra:.1f} us for its "
          f"{py['request_bytes'] - c['request_bytes']:.0f} more request bytes)")


def main():
    bench = sys.argv[1]
    calls = int(os.environ.get("QMP_BENCH_CALLS", "10000"))
    per_round = max(calls // ROUNDS, 1)
    with tempfile.TemporaryDirectory(prefix="kvqmp-bench-") as d:
        a, b = os.path.join(d, "a.sock"), os.path.join(d, "b.sock")
        qemu = subprocess.Popen(["qemu-system-x86_64", "-accel", "tcg", "-machine", "q35", "-m", "128M", "-nodefaults",
                                 "-no-user-config", "-display", "none", "-S",
                                 "-qmp", f"unix:{a},server=on,wait=off", "-qmp", f"unix:{b},server=on,wait=off"],
                                stdin=subprocess.DEVNULL)
        cs, pys = [], []
        try:
            while not (os.path.exists(a) and os.path.exists(b)):
                time.sleep(0.02)
            for _ in range(ROUNDS):  # alternate, so drift on a shared machine hits both clients alike
                cs.append(json.loads(subprocess.run([bench, a, str(per_round)], check=True, capture_output=True,
                                                    text=True, timeout=600).stdout))
                pys.append(python_client(b, per_round))
        finally:
            qemu.kill()
            qemu.wait()
    report(per_round * ROUNDS, cs, pys)
    return 0


if __name__ == "__main__":
    sys.exit(main())
