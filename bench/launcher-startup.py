#!/usr/bin/env python3
"""Start-up cost of virt-launcher: time from exec to QMP status "running", launcher vs bare QEMU with
the same argv, interleaved in the same run, printed as added milliseconds (goal <= 5 ms); and the
launcher's own peak RSS (VmHWM, goal <= 4 MiB), also once as in a Pod, with the status reporter's RSS
printed separately.

Usage: launcher-startup.py VIRT_LAUNCHER [RUNS]   (needs the test guest in $KV_GUEST_DIR)

Both sides are observed the same way: connect to the public QMP socket, qmp_capabilities, poll
query-status until "running". The bare QEMU gets the launcher's own argv (from --dry-run) with the
fd-passed sockets turned into paths and the launcher's private monitor removed; it starts at -S too,
so this script sends the `cont` the launcher would send."""
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

LAUNCHER = os.path.abspath(sys.argv[1])
RUNS = int(sys.argv[2]) if len(sys.argv) > 2 else 15
GUEST = os.environ.get("KV_GUEST_DIR", "")
if not os.path.exists(os.path.join(GUEST, "vmlinuz")):
    print("SKIP: no test guest (tests/guest/build.sh)")
    sys.exit(77)

VMI = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
       "metadata": {"name": "bench", "namespace": "bench", "uid": "bench"},
       "spec": {"domain": {"resources": {"requests": {"memory": "256Mi"}}, "devices": {},
                           "firmware": {"kernelBoot": {"container": {
                               "image": os.path.join(GUEST, "kernelboot"), "kernelPath": "/boot/vmlinuz",
                               "initrdPath": "/boot/initrd.img"}, "kernelArgs": "console=ttyS0 cnt=0"}}}}}


def qmp_until_running(path, t0, cont=False, timeout=20):
    """Returns seconds from t0 until query-status says running."""
    end = time.monotonic() + timeout
    s = socket.socket(socket.AF_UNIX)
    while True:
        try:
            s.connect(path)
            break
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.0005)
    f = s.makefile("rwb")

    def cmd(name):
        f.write(json.dumps({"execute": name}).encode() + b"\n")
        f.flush()
        while True:
            msg = json.loads(f.readline())
            if "return" in msg or "error" in msg:
                return msg

    f.readline()
    cmd("qmp_capabilities")
    if cont:
        cmd("cont")
    while cmd("query-status")["return"]["status"] != "running":
        if time.monotonic() > end:
            raise TimeoutError("not running")
    took = time.monotonic() - t0
    s.close()
    return took


def vmhwm_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def run_launcher(d, manifest, i):
    run = os.path.join(d, f"run{i}")  # fresh each time: the last QEMU may still hold the old socket
    t0 = time.monotonic()
    p = subprocess.Popen([LAUNCHER, "--vmi", manifest, "--run-dir", run, "--accel", "tcg",
                          "--log-level", "warning"], stderr=subprocess.DEVNULL)
    try:
        took = qmp_until_running(os.path.join(run, "qmp.sock"), t0)
        return took, vmhwm_kib(p.pid)
    finally:
        p.send_signal(signal.SIGKILL)  # QEMU follows through PR_SET_PDEATHSIG
        p.wait()


def bare_argv(d, manifest):
    run = os.path.join(d, "dry")
    out = subprocess.run([LAUNCHER, "--vmi", manifest, "--run-dir", run, "--accel", "tcg", "--dry-run",
                          "--log-level", "error"], capture_output=True, text=True, check=True).stdout
    argv = json.loads(out)
    fixed = []
    for a in argv:
        if a.startswith("socket,id=kvlite-qmp,") or a == "chardev=kvlite-qmp,mode=control":
            fixed.pop()  # the launcher's private monitor: drop the value and its -chardev/-mon
            continue
        for fd, name in (("fd=4", "qmp.sock"), ("fd=6", "serial.sock")):
            if a.startswith("socket,") and f",{fd}," in a:
                a = a.replace(fd, "path=" + os.path.join(d, name).replace(",", ",,"))
        fixed.append(a)
    return fixed, os.path.join(d, "qmp.sock")


def run_bare(argv, qmp_path):
    if os.path.exists(qmp_path):
        os.unlink(qmp_path)  # the previous bare QEMU was reaped (kill + wait) before we got here
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return qmp_until_running(qmp_path, t0, cont=True)
    finally:
        p.kill()
        p.wait()


def timed(argv):
    t0 = time.monotonic()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return (time.monotonic() - t0) * 1000


def in_cluster_rss(d, manifest):
    """One run as in a Pod, against the API test server over HTTPS: the launcher's VmHWM and that of its
    status reporter (a separate process that links libcurl), once the Running status is on the Pod."""
    src = os.environ.get("KV_SOURCE_ROOT") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    sys.path.insert(0, os.path.join(src, "controller", "tests"))
    from kubetest import POD_PATH, Server, wait_for
    srv = Server("--tls-port", "0")
    srv.sa_dir = os.path.join(srv.dir, "sa")
    srv.extra += ["--serviceaccount-dir", srv.sa_dir]
    srv.start()
    p = None
    try:
        srv.api.create(POD_PATH % "default", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bench"},
                                              "spec": {"containers": [{"name": "compute", "image": "x"}]}})
        host, port = srv.info["https_url"].rsplit("//", 1)[1].rsplit(":", 1)
        env = dict(os.environ, POD_NAME="bench", POD_NAMESPACE="default", KUBERNETES_SERVICE_HOST=host,
                   KUBERNETES_SERVICE_PORT=port, KVLITE_SA_DIR=srv.sa_dir)
        run = os.path.join(d, "cluster")
        p = subprocess.Popen([LAUNCHER, "--vmi", manifest, "--run-dir", run, "--accel", "tcg",
                              "--log-level", "warning"], stderr=subprocess.DEVNULL, env=env)
        qmp_until_running(os.path.join(run, "qmp.sock"), time.monotonic())

        def annotated_running():
            ann = (srv.api.get(POD_PATH % "default" + "/bench")[1]["metadata"].get("annotations") or {})
            return json.loads(ann.get("kvlite.io/launcher-status", "{}")).get("phase") == "Running"
        wait_for("Running on the Pod annotation", annotated_running, timeout=20)
        with open(f"/proc/{p.pid}/task/{p.pid}/children") as f:
            kids = [int(c) for c in f.read().split()]
        reporter = [k for k in kids if b"virt-launcher-reporter" in open(f"/proc/{k}/cmdline", "rb").read()]
        return vmhwm_kib(p.pid), vmhwm_kib(reporter[0]) if reporter else 0
    finally:
        if p:
            p.send_signal(signal.SIGKILL)  # QEMU and the reporter follow through PR_SET_PDEATHSIG
            p.wait()
        srv.stop()
        srv.remove()


def main():
    d = tempfile.mkdtemp(prefix="kv-bench-")
    try:
        manifest = os.path.join(d, "vmi.json")
        with open(manifest, "w") as f:
            json.dump(VMI, f)
        argv, qmp_path = bare_argv(d, manifest)
        run_bare(argv, qmp_path)  # warm the page cache for both
        launcher, bare, hwm = [], [], []
        for i in range(RUNS):
            took, kib = run_launcher(d, manifest, i)
            launcher.append(took * 1000)
            hwm.append(kib)
            bare.append(run_bare(argv, qmp_path) * 1000)
        ml, mb = statistics.median(launcher), statistics.median(bare)
        print(f"exec -> QMP running, median of {RUNS} interleaved runs (TCG, kernelBoot test guest):")
        print(f"  bare QEMU      {mb:7.1f} ms  (min {min(bare):.1f}, max {max(bare):.1f})")
        print(f"  virt-launcher  {ml:7.1f} ms  (min {min(launcher):.1f}, max {max(launcher):.1f})")
        print(f"  added by the launcher: {ml - mb:+.1f} ms median, {min(launcher) - min(bare):+.1f} ms best case "
              f"(ratio {ml / mb:.3f}; goal <= 5 ms)")
        dry = [timed([LAUNCHER, "--vmi", manifest, "--run-dir", os.path.join(d, "dry"), "--accel", "tcg",
                      "--dry-run", "--log-level", "error"]) for _ in range(RUNS)]
        true = [timed(["/bin/true"]) for _ in range(RUNS)]
        print(f"launcher work before spawning QEMU (--dry-run minus exec of /bin/true): "
              f"{statistics.median(dry) - statistics.median(true):.2f} ms")
        print(f"launcher peak RSS (VmHWM) while QEMU runs: {max(hwm) / 1024:.2f} MiB (goal <= 4 MiB)")
        launcher_kib, reporter_kib = in_cluster_rss(d, manifest)
        print(f"in a Pod (reporting to the API test server): launcher {launcher_kib / 1024:.2f} MiB "
              f"(goal <= 4 MiB), its status reporter process {reporter_kib / 1024:.2f} MiB (separately)")
    finally:
        shutil.rmtree(d, ignore_errors=True)


main()
