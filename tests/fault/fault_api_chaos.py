"""virt-controller reconciles a burst of VMIs (some invalid) while the API test server drops watches
(cleanly and abruptly) and fails random requests with 500, 429 and 409 (/_test/ hooks), then deletes them
all under the same chaos. Expected: no lost VMI (every valid one gets its Pod and reaches Scheduling), no
duplicate Pod (counted by the kubevirt.io/created-by label, at the end and all along), every invalid VMI
Failed with its reason recorded once (one Failed transition), every VMI and Pod gone after the deletes.
KV_CHAOS_SEED fixes the random choices (the seed is printed)."""
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultlib  # noqa: E402,F401  (puts controller/tests on sys.path)
from kubetest import POD_PATH, VMI_PATH, Api, Controller, Server, cleanup, vmi_manifest, wait_for  # noqa: E402

NS = "default"
VMIS, PODS = VMI_PATH % NS, POD_PATH % NS
seed = int(os.environ.get("KV_CHAOS_SEED", int(time.time())))
rng = random.Random(seed)
CHAOS_SECONDS = float(os.environ.get("KV_CHAOS_SECONDS", "5"))
print("chaos seed %d (KV_CHAOS_SEED=%d reproduces the choices)" % (seed, seed))


def retry(fn, what):
    """The test's own requests go through the same faulty server: retry them."""
    for _ in range(50):
        try:
            return fn()
        except AssertionError as e:
            last = e
            time.sleep(0.05)
    raise AssertionError("%s: %s" % (what, last))


class Chaos(threading.Thread):
    RULES = [("POST", r"/pods$"), ("PATCH", r"virtualmachineinstances/"), ("DELETE", r"/pods/"),
             ("GET", r"/pods\?"), ("GET", r"virtualmachineinstances\?"), ("GET", r"/pods\?.*watch=true"),
             ("GET", r"virtualmachineinstances\?.*watch=true")]

    def __init__(self, port):
        super().__init__(daemon=True)
        self.api = Api(port)  # its own connection: kubetest.Api is not thread-safe
        self.stop, self.injected, self.drops = threading.Event(), 0, 0
        self.max_pods_seen = {}

    def run(self):
        while not self.stop.wait(rng.uniform(0.02, 0.08)):
            try:
                self.inject()
                self.watch_duplicates()
            except Exception as e:  # the API itself is being broken: keep going
                print("chaos: %s" % e)

    def inject(self):
        if rng.random() < 0.2:
            self.api.ok("POST", "/_test/drop-watches", {"abrupt": rng.random() < 0.5})
            self.drops += 1
        else:
            method, path = rng.choice(self.RULES)
            n = rng.randint(1, 3)
            self.api.fault(code=rng.choice([500, 429, 409]), method=method, path=path, count=n)
            self.injected += n

    def watch_duplicates(self):
        code, pods = self.api.get(PODS)
        if code != 200:
            return
        per = {}
        for p in pods["items"]:
            if not p["metadata"].get("deletionTimestamp"):
                uid = p["metadata"]["labels"]["kubevirt.io/created-by"]
                per[uid] = per.get(uid, 0) + 1
        for uid, n in per.items():
            self.max_pods_seen[uid] = max(self.max_pods_seen.get(uid, 0), n)


def vmis(api):
    return {v["metadata"]["name"]: v for v in retry(lambda: api.items(VMIS), "list VMIs")}


def pods_by_owner(api):
    per = {}
    for p in retry(lambda: api.items(PODS), "list Pods"):
        uid = p["metadata"]["labels"]["kubevirt.io/created-by"]
        per.setdefault(uid, []).append(p["metadata"]["name"])
    return per


def main():
    srv = Server("--pod-finalize-after", "0.2", "--no-gc").start()
    ctl = None
    chaos = None
    try:
        ctl = Controller(srv).start()
        api = srv.api
        chaos = Chaos(srv.port)
        for _ in range(12):  # armed before the burst, so the first reconciles already meet faults
            chaos.inject()
        chaos.start()
        good = ["ok%02d" % i for i in range(24)]
        bad = ["bad%d" % i for i in range(4)]
        for n in good + bad:
            m = vmi_manifest(n)
            if n in bad:
                m["spec"]["domain"]["devices"]["disks"][0]["disk"]["bus"] = "ide"
            api.create(VMIS, m)  # POST on VMIs is never failed by the chaos rules
            time.sleep(rng.uniform(0, 0.08))  # a burst spread over ~1 s, interleaved with the chaos
        time.sleep(CHAOS_SECONDS)  # the controller reconciles the burst while the chaos goes on
        # On a slow (sanitized, loaded) run fewer requests meet the armed faults: keep the chaos going (bounded)
        # until enough of them have reached the controller for the run to prove something.
        deadline = time.monotonic() + 30
        while api.get("/_test/stats")[1].get("faultsInjected", 0) < 10 and time.monotonic() < deadline:
            time.sleep(0.5)
        chaos.stop.set()
        chaos.join()
        api.clear_faults()
        def settled():
            vs = vmis(api)
            phases = {n: (vs.get(n) or {}).get("status", {}).get("phase") for n in good + bad}
            done = all(phases[n] == "Scheduling" for n in good) and all(phases[n] == "Failed" for n in bad)
            return done or (False, sorted(phases.items()))
        wait_for("every VMI Scheduling or Failed after the chaos", lambda: settled() is True, timeout=60,
                        interval=0.2)
        time.sleep(1.0)  # anything still in flight lands now
        vs = vmis(api)
        per = pods_by_owner(api)
        for n in good:
            uid = vs[n]["metadata"]["uid"]
            assert len(per.get(uid, [])) == 1, "VMI %s has Pods %s" % (n, per.get(uid))
        for n in bad:
            st = vs[n]["status"]
            assert vs[n]["metadata"]["uid"] not in per, "invalid VMI %s got a Pod" % n
            assert 'disks[0].disk.bus: "ide"' in st["reason"], st
            failed = [t for t in st.get("phaseTransitionTimestamps", []) if t["phase"] == "Failed"]
            assert len(failed) == 1, "the failure of %s is recorded %d times: %s" % (n, len(failed), st)
        assert sum(len(v) for v in per.values()) == len(good), per
        dup = {u: n for u, n in chaos.max_pods_seen.items() if n > 1}
        assert not dup, "duplicate Pods seen during the chaos: %s" % dup
        log = ctl.logtext()
        for n in bad:
            assert "VMI default/%s cannot run" % n in log, "the controller logs why %s cannot run" % n
        stats = api.get("/_test/stats")[1]
        assert stats.get("faultsInjected", 0) >= 10, "too few faults reached the controller: %s" % stats
        print("ok: %d VMIs, %d injected faults (%s served), %d watch drops; no duplicate, none lost" % (
            len(good) + len(bad), chaos.injected, stats.get("faultsInjected"), chaos.drops))

        # delete them all under chaos: the finalizer must come off only when the Pod is gone
        chaos = Chaos(srv.port)
        chaos.start()
        for n in good + bad:
            retry(lambda: api.ok("DELETE", "%s/%s" % (VMIS, n), {"propagationPolicy": "Background"}), "delete")
        time.sleep(CHAOS_SECONDS / 2)
        chaos.stop.set()
        chaos.join()
        api.clear_faults()
        wait_for("every VMI gone", lambda: not vmis(api), timeout=60, interval=0.2)
        wait_for("every Pod gone", lambda: not pods_by_owner(api), timeout=20, interval=0.2)
        print("ok: deleted under chaos: no VMI and no Pod left")
        rc = ctl.stop()
        assert rc == 0, "virt-controller exit %s" % rc
        ctl = None
        print("PASS")
    finally:
        if chaos:
            chaos.stop.set()
        cleanup(*(x for x in (ctl, srv) if x))


main()
