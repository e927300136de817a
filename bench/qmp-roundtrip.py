#!/usr/bin/env python3
"""qmp-roundtrip: median query-status round trip over CALLS calls (default 10,000) for libqmp
(bench-qmp) and for a plain Python stdlib QMP client, against the same QEMU (TCG, -S) in the same run,
printed side by side with the ratio libqmp/python (goal: <= 0.5)."""
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
    times = []
    for i in range(calls + 200):
        t0 = time.perf_counter()
        execute("query-status")
        if i >= 200:
            times.append((time.perf_counter() - t0) * 1e6)
    s.close()
    times.sort()
    return {"median_us": statistics.median(times), "p90_us": times[len(times) * 9 // 10]}


def main():
    bench = sys.argv[1]
    calls = int(os.environ.get("QMP_BENCH_CALLS", "10000"))
    with tempfile.TemporaryDirectory(prefix="kvqmp-bench-") as d:
        a, b = os.path.join(d, "a.sock"), os.path.join(d, "b.sock")
        qemu = subprocess.Popen(["qemu-system-x86_64", "-accel", "tcg", "-machine", "q35", "-m", "128M", "-nodefaults",
                                 "-no-user-config", "-display", "none", "-S",
                                 "-qmp", f"unix:{a},server=on,wait=off", "-qmp", f"unix:{b},server=on,wait=off"],
                                stdin=subprocess.DEVNULL)
        try:
            while not (os.path.exists(a) and os.path.exists(b)):
                time.sleep(0.02)
            c = json.loads(subprocess.run([bench, a, str(calls)], check=True, capture_output=True, text=True,
                                          timeout=600).stdout)
            py = python_client(b, calls)
        finally:
            qemu.kill()
            qemu.wait()
    ratio = c["median_us"] / py["median_us"]
    print(f"qmp-roundtrip: query-status x {calls}, same QEMU 7.2 (TCG, -S)")
    print(f"  libqmp  median {c['median_us']:8.1f} us   p90 {c['p90_us']:8.1f} us")
    print(f"  python  median {py['median_us']:8.1f} us   p90 {py['p90_us']:8.1f} us")
    print(f"  floor   median {c['floor_median_us']:8.1f} us   (fixed request, write + spinning read, no JSON: QEMU's own cost)")
    print(f"  ratio libqmp/python (median): {ratio:.2f}x   goal <= 0.50x: {'met' if ratio <= 0.5 else 'NOT met'}")
    print(f"  ratio floor/python  (median): {c['floor_median_us'] / py['median_us']:.2f}x   (best any client could do)")
    floor = c['floor_median_us']
    if py['median_us'] > floor:
        over = max(c['median_us'] - floor, 0.0) / (py['median_us'] - floor)
        print(f"  client's own cost above the floor, libqmp/python: {over:.2f}x "
              f"({c['median_us'] - floor:.1f} us vs {py['median_us'] - floor:.1f} us)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
