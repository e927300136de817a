#!/usr/bin/env python3
"""Benchmark: time from QEMU exec to the test guest's `KVGUEST READY` under TCG, kernel+initrd and BIOS disk
boot, N runs each, printed as median/min and as a ratio to the 3 s goal (issue 2)."""
import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.join(os.environ.get("KV_SOURCE_ROOT", os.path.dirname(__file__) + "/.."), "tests", "guest"))
import test_guest as tg  # noqa: E402  (reuses its Guest class: one way to start and read the guest)

GOAL = 3.0
RUNS = int(os.environ.get("KV_BENCH_RUNS", "5"))


def one(tmp, guest_dir, kind):
    if kind == "kernel":
        args = ["-kernel", f"{guest_dir}/vmlinuz", "-initrd", f"{guest_dir}/initrd.img", "-append", "console=ttyS0"]
    else:
        args = ["-drive", f"file={guest_dir}/disk.qcow2,format=qcow2,if=none,id=d0,snapshot=on",
                "-device", "virtio-blk-pci,drive=d0"]
    g = tg.Guest(tmp, kind, args)
    try:
        t, _ = g.wait_line(r"^KVGUEST READY$", tg.BOOT_TIMEOUT)
        return t
    finally:
        g.kill()


def main():
    guest_dir = os.environ["KV_GUEST_DIR"]
    with tempfile.TemporaryDirectory(prefix="kvguest-bench.") as tmp:
        for kind in ("kernel", "disk"):
            times = [one(tmp, guest_dir, kind) for _ in range(RUNS)]
            med = statistics.median(times)
            print(f"guest-boot {kind}: median {med:.2f} s, min {min(times):.2f} s over {RUNS} runs; "
                  f"median/goal = {med / GOAL:.2f}x (goal {GOAL:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
