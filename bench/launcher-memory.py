#!/usr/bin/env python3
"""Per-VM memory of kvlite's Pod-side processes (issue 21): virt-launcher and virt-launcher-reporter, QEMU
not counted, at steady state beside KubeVirt's published budget for the same role (virt-launcher-monitor,
virt-launcher, virtlogd and virtqemud in the compute container: about 190 MiB). Goal: under 8 MiB together.

Usage: launcher-memory.py VIRT_LAUNCHER [--detail] [--vms N]   (the test guest in $KV_GUEST_DIR, kubectl)

N (default 2) VMs side by side, as on a node, each run as launcher_cluster.py runs one: the API test server
over HTTPS with a service account, the VMI created there, the launcher started with it in $KVLITE_VMI and
the Pod environment, so it runs its reporter with --vmi (status patches + the VMI watch + the control
socket). Steady state: the guest prints its counter, the Running status is on the Pod, the reporter
forwarded the first spec (`apply done`), then CYCLES pause/unpause round trips through the reporter (the
VMI's kvlite.io/paused annotation, as virt-api's subresources set it: a watch event, `pause` forwarded to
the control socket, the launcher's new status patched onto the Pod, and back), and a settle of a few
seconds. Then, per process of each VM, from /proc/PID/smaps_rollup and /proc/PID/status:
  RSS  resident pages mapped by the process (VmRSS), whoever else maps them too;
  PSS  each resident page divided by the number of processes mapping it (the process's fair share);
  USS  private pages (Private_Clean + Private_Dirty): what the kernel frees when the process ends;
  HWM  peak RSS (VmHWM).
Which one is the per-VM cost: every launcher and reporter on a node maps the same executables and shared
libraries (libc, mbedTLS, libcjson, libseccomp...), and their file pages are in memory
once per node, not once per VM. What one more VM adds is its processes' private pages (USS, measured with
at least two VMs running so that the executables' own pages count as shared, as on any node with more than
one VM); PSS adds a fair share of the shared pages, which shrinks as more processes on the node map them.
RSS counts every shared page in full for each VM: an upper bound, not a cost.
--detail also prints each process's largest mappings (by PSS) from /proc/PID/smaps."""
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("KV_SOURCE_ROOT") or os.path.join(HERE, "..")
sys.path.insert(0, os.path.join(SRC, "launcher", "supervisor", "tests"))
from clusterlib import VMI_PATH, Cluster, log_of, wait_for  # noqa: E402
from launcherlib import Launcher, cleanup, counters, need_guest, vmi  # noqa: E402

KUBEVIRT_MIB = 190  # virt-launcher-monitor + virt-launcher + virtlogd + virtqemud, per VM Pod
GOAL_MIB = 8
CYCLES = 5
VMS = int(sys.argv[sys.argv.index("--vms") + 1]) if "--vms" in sys.argv else 2
PAUSE_ANN = "kvlite.io/paused"  # what virt-api's pause/unpause set; the reporter forwards it
DETAIL = "--detail" in sys.argv[2:]


def kib_fields(path, keys):
    out = dict.fromkeys(keys, 0)
    with open(path) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in out:
                out[k] = int(v.split()[0])
    return out


def measure(pid):
    """MiB figures of one process."""
    roll = kib_fields(f"/proc/{pid}/smaps_rollup", ("Rss", "Pss", "Private_Clean", "Private_Dirty"))
    st = kib_fields(f"/proc/{pid}/status", ("VmRSS", "VmHWM"))
    return {"RSS": roll["Rss"] / 1024, "PSS": roll["Pss"] / 1024,
            "USS": (roll["Private_Clean"] + roll["Private_Dirty"]) / 1024, "HWM": st["VmHWM"] / 1024}


def mappings(pid, top=20):
    """(PSS KiB, USS KiB, RSS KiB, name) of the largest mappings, summed per name."""
    per = {}
    name = None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split()
            if "-" in head[0] and ":" not in head[0]:
                lo, hi = (int(a, 16) for a in head[0].split("-"))
                name = head[5] if len(head) > 5 else f"[anon {(hi - lo) >> 10} KiB {head[1]}]"
                per.setdefault(name, [0, 0, 0])
            elif head[0] in ("Pss:", "Rss:", "Private_Clean:", "Private_Dirty:"):
                i = {"Pss:": 0, "Rss:": 2}.get(head[0], 1)
                per[name][i] += int(head[1])
    return sorted(((p, u, r, n) for n, (p, u, r) in per.items()), reverse=True)[:top]


def children(pid):
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(c) for c in f.read().split()]


def reporter_of(pid):
    for kid in children(pid):
        with open(f"/proc/{kid}/cmdline", "rb") as f:
            if b"virt-launcher-reporter" in f.read():
                return kid
    return 0


def paused(cl, name):
    return any(c.get("type") == "Paused" and c.get("status") == "True"
               for c in cl.annotation(name).get("conditions", []))


def steady_state(cl, L, name):
    """Running, status on the Pod, the first spec forwarded, CYCLES watch events and status changes."""
    L.wait_phase("Running", 30)
    L.wait(lambda: counters(L.serial()), 40, "the guest's counter on the console")
    wait_for("Running on the Pod annotation", lambda: cl.annotation(name).get("phase") == "Running", timeout=15)
    L.wait(lambda: "launcher: apply done" in log_of(L), 15, "the first spec forwarded (apply done)")
    for i in range(CYCLES):
        for want in ("true", "false"):
            cl.srv.api.merge(VMI_PATH % "default" + "/" + name, {"metadata": {"annotations": {PAUSE_ANN: want}}})
            wait_for(f"{name} cycle {i}: paused={want} on the Pod", lambda: paused(cl, name) == (want == "true"),
                     timeout=15)


def report(rows):
    print(f"{'process':<24}{'RSS':>9}{'PSS':>9}{'USS':>9}{'HWM':>9}   (MiB)")
    total = dict.fromkeys(("RSS", "PSS", "USS", "HWM"), 0.0)
    for name, m in rows:
        print(f"{name:<24}" + "".join(f"{m[k]:9.2f}" for k in ("RSS", "PSS", "USS", "HWM")))
        for k in total:
            total[k] += m[k]
    print(f"{'launcher + reporter':<24}" + "".join(f"{total[k]:9.2f}" for k in ("RSS", "PSS", "USS", "HWM")))
    return total


def verdict(total):
    print(f"KubeVirt's budget for the same role (virt-launcher-monitor, virt-launcher, virtlogd, virtqemud): "
          f"~{KUBEVIRT_MIB} MiB per VM")
    for k, what in (("USS", "per-VM cost (private pages: what each more VM adds on a node)"),
                    ("PSS", "fair share (private + this pair's share of the shared library pages)"),
                    ("RSS", "upper bound (every shared library page counted in full)")):
        verdict = "met" if total[k] < GOAL_MIB else "NOT met"
        print(f"  {k} {total[k]:6.2f} MiB = {total[k] / KUBEVIRT_MIB:6.1%} of KubeVirt's, "
              f"{KUBEVIRT_MIB / total[k]:5.1f}x less; goal < {GOAL_MIB} MiB {verdict}: {what}")
    print("The per-VM figure is USS: the executables' and shared libraries' file pages are shared by every "
          "launcher and reporter on the node and are in memory once; PSS charges each process its share of "
          "them (it shrinks as more VMs and other processes map the same libraries), RSS charges them in "
          "full to every VM. Figures above: the largest of the VMs.")


def main():
    need_guest()
    cl = Cluster()
    try:
        cl.start()
        Ls = []
        for n in range(VMS):
            name = f"mem-{n}"
            m = vmi(name, grace=5)
            m["metadata"] = {"name": name, "namespace": "default"}
            created = cl.srv.api.create(VMI_PATH % "default", m)
            cl.create_pod(name)
            Ls.append(Launcher(created, via_env=True, env_extra=cl.pod_env(name), args=["--log-level", "info"]))
        for n, L in enumerate(Ls):
            steady_state(cl, L, f"mem-{n}")
        time.sleep(3)  # let the reporters' loops go idle (watch open, nothing pending)
        print(f"steady state, {VMS} VMs: guest running, status on the Pod, {CYCLES} pause/unpause round trips "
              f"through each reporter's watch")
        totals = []
        for n, L in enumerate(Ls):
            rep = reporter_of(L.proc.pid)
            if not rep:
                L.fail("no virt-launcher-reporter child")
            print(f"\nVM mem-{n}")
            totals.append(report([("virt-launcher", measure(L.proc.pid)), ("virt-launcher-reporter", measure(rep))]))
            if DETAIL:
                for pname, pid in (("virt-launcher", L.proc.pid), ("virt-launcher-reporter", rep)):
                    print(f"\n{pname}: largest mappings (KiB)   PSS    USS    RSS")
                    for p, u, r, mname in mappings(pid):
                        print(f"  {mname[-40:]:<40}{p:7d}{u:7d}{r:7d}")
        print()
        verdict({k: max(t[k] for t in totals) for k in totals[0]})
        for L in Ls:
            L.ctl("shutdown")
        for L in Ls:
            L.wait_exit(30)
        cl.srv.remove()
    finally:
        cleanup()
        cl.stop()


main()
