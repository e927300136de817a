#!/usr/bin/env python3
# Benchmark: virt-controller against the Python Kubernetes API test server (no kubelet stand-in).
#  1. a burst of N VMIs (default 1,000): time from each VMI's create to its launcher Pod appearing in a Pod
#     watch (p50/p95/max) and the controller's peak RSS;
#  2. filled up to M VMIs (default 10,000, each with its Pod): the controller's RSS with all of them cached,
#     then after a restart that lists them all.
# Figures are printed beside the goals of issue 5 as ratios (<1.00 meets the goal).
# Usage: controller-scale.py [--burst N] [--total M] [--workers W]
import argparse
import http.client
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "controller", "tests"))
from kubetest import POD_PATH, VMI_PATH, Controller, Server, cleanup, vmi_manifest, wait_for  # noqa: E402

NS = "default"


class PodWatch(threading.Thread):
    """Records when each VMI uid's first Pod shows up, from a raw watch stream."""

    def __init__(self, port, rv):
        super().__init__(daemon=True)
        self.port, self.rv = port, rv
        self.seen = {}
        self.lock = threading.Lock()

    def run(self):
        c = http.client.HTTPConnection("127.0.0.1", self.port)
        c.request("GET", POD_PATH % NS + "?watch=true&resourceVersion=%s" % self.rv)
        r = c.getresponse()
        while True:
            line = r.readline()
            if not line:
                return
            ev = json.loads(line)
            uid = ev["object"]["metadata"].get("labels", {}).get("kubevirt.io/created-by")
            if ev["type"] == "ADDED" and uid:
                with self.lock:
                    self.seen.setdefault(uid, time.monotonic())

    def count(self):
        with self.lock:
            return len(self.seen)


def create_vmis(port, names, sent, uids, threads=4):
    def work(chunk):
        from kubetest import Api
        api = Api(port)
        for n in chunk:
            t = time.monotonic()
            obj = api.create(VMI_PATH % NS, vmi_manifest(n))
            sent[n] = t
            uids[n] = obj["metadata"]["uid"]
    ts = [threading.Thread(target=work, args=(names[i::threads],)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


def row(name, value, goal, unit):
    ratio = "%.2f" % (value / goal) if goal else "-"
    print("%-44s %10.1f %-4s goal %8s %-4s ratio %s" % (name, value, unit, goal if goal else "-", unit, ratio))


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--burst", type=int, default=1000)
    ap.add_argument("--total", type=int, default=10000)
    ap.add_argument("--workers", type=int, default=4)
    args = ap.parse_args()
    srv = Server("--history", str(max(20000, args.total * 8)), "--no-gc").start()
    ctl = None
    try:
        ctl = Controller(srv, "--workers", str(args.workers)).start()
        base_rss = ctl.rss_kib("VmRSS")
        rv = srv.api.get(POD_PATH % NS)[1]["metadata"]["resourceVersion"]
        watch = PodWatch(srv.port, rv)
        watch.start()
        names = ["bench-%05d" % i for i in range(args.burst)]
        sent, uids = {}, {}
        t0 = time.monotonic()
        create_vmis(srv.port, names, sent, uids)
        t_created = time.monotonic() - t0
        wait_for("all burst Pods", lambda: watch.count() >= args.burst, timeout=600, interval=0.05)
        t_all = time.monotonic() - t0
        lat = [watch.seen[uids[n]] - sent[n] for n in names]
        print("controller-scale: %d VMIs created in %.2f s (%.0f/s); all Pods after %.2f s" %
              (args.burst, t_created, args.burst / t_created, t_all))
        row("burst: VMI create → Pod, p50", pct(lat, 50) * 1000, None, "ms")
        row("burst: VMI create → Pod, p95", pct(lat, 95) * 1000, 2000, "ms")
        row("burst: VMI create → Pod, max", max(lat) * 1000, None, "ms")
        row("burst: controller peak RSS (VmHWM)", ctl.rss_kib() / 1024.0, 64, "MiB")
        row("idle controller RSS before the burst", base_rss / 1024.0, None, "MiB")

        more = ["bench-%05d" % i for i in range(args.burst, args.total)]
        if more:
            create_vmis(srv.port, more, sent, uids)
            wait_for("all Pods", lambda: watch.count() >= args.total, timeout=1800, interval=0.2)
            wait_for("queue drained", lambda: ctl.metrics().get("kvlite_controller_workqueue_depth", 1) == 0,
                     timeout=600, interval=0.5)
        m = ctl.metrics()
        cached = m['kvlite_controller_cache_objects{resource="virtualmachineinstances"}']
        pods = m['kvlite_controller_cache_objects{resource="pods"}']
        row("%d VMIs + %d Pods cached: controller RSS" % (cached, pods), ctl.rss_kib("VmRSS") / 1024.0, 64, "MiB")
        row("%d VMIs + %d Pods cached: peak RSS (VmHWM)" % (cached, pods), ctl.rss_kib() / 1024.0, 64, "MiB")
        # a restart lists everything at once (paged by 500 when the server pages)
        ctl.stop()
        t0 = time.monotonic()
        ctl = Controller(srv, "--workers", str(args.workers)).start()
        t_sync = time.monotonic() - t0
        wait_for("queue drained after restart",
                 lambda: ctl.metrics().get("kvlite_controller_workqueue_depth", 1) == 0, timeout=600, interval=0.5)
        time.sleep(1)
        m = ctl.metrics()
        row("restart: list+sync of everything", t_sync * 1000, None, "ms")
        row("restart: RSS with %d VMIs cached" % cached, ctl.rss_kib("VmRSS") / 1024.0, 64, "MiB")
        row("restart: peak RSS (VmHWM)", ctl.rss_kib() / 1024.0, 64, "MiB")
        row("restart: Pods created (must be 0)", m["kvlite_controller_pods_created_total"], None, "")
    finally:
        cleanup(*(x for x in (ctl, srv) if x))
        srv.remove()


if __name__ == "__main__":
    main()
