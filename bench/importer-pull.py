#!/usr/bin/env python3
"""Importer benchmark, figures of issue 16: import of a 1 GiB image (kvlite-importer vs skopeo copy + tar +
qemu-img convert doing the same work; goal <= 1.1x), the importer's peak RSS (goal < 32 MiB) and the time
failover adds when the first registry refuses or hangs (goal < 2 s). Uses the importer test's registry helpers.
Usage: importer-pull.py KVLITE_IMPORTER"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "importer", "tests"))
import test_importer as t  # noqa: E402

IMPORTER = os.path.abspath(sys.argv[1])
SIZE = int(os.environ.get("KV_BENCH_IMAGE_MIB", "1024")) << 20


def vm_hwm_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def timed(args):
    """Wall time and the process's own peak RSS (VmHWM, polled: wait4's figure would include qemu-img)."""
    t0 = time.monotonic()
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    hwm = 0
    while p.poll() is None:
        hwm = max(hwm, vm_hwm_kib(p.pid))
        time.sleep(0.01)
    if p.returncode != 0:
        raise RuntimeError(f"{args[0]} failed")
    return time.monotonic() - t0, hwm / 1024


def make_disk(root):
    """A 1 GiB qcow2 whose first half is random data and second half zeros."""
    raw = os.path.join(root, "disk.raw")
    with open(raw, "wb") as f:
        left = SIZE // 2
        while left > 0:
            f.write(os.urandom(min(left, 8 << 20)))
            left -= 8 << 20
        f.truncate(SIZE)
    qcow = os.path.join(root, "disk.qcow2")
    subprocess.run(["qemu-img", "convert", "-O", "qcow2", raw, qcow], check=True)
    os.unlink(raw)
    return qcow


def main():
    for tool in ("docker-registry", "skopeo", "qemu-img", "tar"):
        if not shutil.which(tool):
            print(f"SKIP: {tool} missing")
            return 77
    root = tempfile.mkdtemp(prefix="kv-bench-importer-", dir=os.environ.get("KV_BENCH_TMP"))
    regs = []
    try:
        qcow = make_disk(root)
        info = tarfile.TarInfo("disk/disk.qcow2")
        info.size = os.path.getsize(qcow)
        with open(qcow, "rb") as f:
            layout = t.oci_layout(root, "big", [(info, f)])
        os.unlink(qcow)
        r1, r2 = t.Registry(root, "r1"), t.Registry(root, "r2")
        regs = [r1, r2]
        for r in regs:
            t.push_oci(layout, r, "vms/big")
        shutil.rmtree(layout)
        cfg = t.write_config(root, "bench", [{"location": r1.addr, "plainHTTP": True},
                                             {"location": r2.addr, "plainHTTP": True}])
        ref = "docker://vms.example/vms/big:1"

        dest = t.fresh_dest(root, "imp")
        imp_s, imp_rss = timed([IMPORTER, "--registry-url", ref, "--registry-config", cfg, "--dest", dest])
        shutil.rmtree(dest)

        work = os.path.join(root, "baseline")
        t0 = time.monotonic()
        subprocess.run(["skopeo", "copy", "--quiet", "--src-tls-verify=false", f"docker://{r1.addr}/vms/big:1",
                        f"dir:{work}"], check=True)
        layer = max((os.path.join(work, n) for n in os.listdir(work)), key=os.path.getsize)
        subprocess.run(["tar", "-xzf", layer, "-C", work], check=True)
        subprocess.run(["qemu-img", "convert", "-O", "raw", os.path.join(work, "disk", "disk.qcow2"),
                        os.path.join(work, "disk.img")], check=True)
        base_s = time.monotonic() - t0
        shutil.rmtree(work)

        r1.stop(signal.SIGKILL)
        dest = t.fresh_dest(root, "failover")
        fo_s, _ = timed([IMPORTER, "--registry-url", ref, "--registry-config", cfg, "--dest", dest])
        shutil.rmtree(dest)
        # A registry that accepts connections but never answers (the listen backlog does the accepting).
        hung = socket.socket()
        hung.bind(("127.0.0.1", 0))
        hung.listen(16)
        hcfg = t.write_config(root, "hung", [{"location": "127.0.0.1:%d" % hung.getsockname()[1], "plainHTTP": True},
                                             {"location": r2.addr, "plainHTTP": True}])
        dest = t.fresh_dest(root, "hung")
        hung_s, _ = timed([IMPORTER, "--registry-url", ref, "--registry-config", hcfg, "--dest", dest])
        # The hung registry alone: what giving up on it costs, without the 1 GiB import's run-to-run noise.
        acfg = t.write_config(root, "hung-alone", [{"location": "127.0.0.1:%d" % hung.getsockname()[1],
                                                    "plainHTTP": True}])
        t0 = time.monotonic()
        subprocess.run([IMPORTER, "--registry-url", ref, "--registry-config", acfg, "--dest", t.fresh_dest(root, "alone")],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        alone_s = time.monotonic() - t0
        hung.close()

        print(f"import of a {SIZE >> 20} MiB image (qcow2, half random data):")
        print(f"  kvlite-importer                      {imp_s:7.2f} s")
        print(f"  skopeo copy + tar + qemu-img convert {base_s:7.2f} s")
        print(f"  ratio                                {imp_s / base_s:7.2f}x (goal <= 1.1x)")
        print(f"importer peak RSS                      {imp_rss:7.1f} MiB (goal < 32 MiB; qemu-img convert not counted)")
        print(f"failover, first registry refusing     {fo_s - imp_s:+7.2f} s vs both up (goal < 2 s)")
        print(f"failover, first registry hung          {hung_s - imp_s:+7.2f} s vs both up (goal < 2 s; "
              f"accepts, never answers: responseTimeoutSeconds, default 1)")
        print(f"  the hung registry alone: given up after {alone_s:5.2f} s (process start included)")
    finally:
        for r in regs:
            r.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
