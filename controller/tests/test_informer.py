#!/usr/bin/env python3
# kube_informer with a field selector (test-informer.c drives one) against the API test server: the list
# and every watch carry fieldSelector=metadata.name%3Db, only the selected VMI reaches the handler and the
# store (not its namesake in another namespace, not its neighbour), and it stays so through a dropped
# watch and a 410 relist, which also reports the deletion it missed. Usage: test_informer.py TEST_INFORMER
import json
import os
import queue
import signal
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kubetest import VMI_PATH, Server, vmi_manifest, wait_for  # noqa: E402

DRIVER = os.path.abspath(sys.argv[1])
SELECTED = "fieldSelector=metadata.name%3Db"


def log_records(text):
    """The JSON records of the server's log. Its threads share stderr, so a line may hold two records
    back to back (or a record cut by the read racing a write): decode what decodes, skip the rest."""
    dec, out = json.JSONDecoder(), []
    for line in text.splitlines():
        at = line.find("{")
        while at >= 0:
            try:
                rec, end = dec.raw_decode(line, at)
            except ValueError:
                break
            if isinstance(rec, dict):
                out.append(rec)
            at = line.find("{", end)
    return out


class Driver:
    def __init__(self, srv, ns, selector):
        log = open(os.path.join(srv.dir, "driver.log"), "ab")
        self.proc = subprocess.Popen([DRIVER, srv.kubeconfig, ns, selector], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=log)
        log.close()
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))
        self.lines.put(None)

    def next(self, timeout=10):
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no event from the informer within %ss" % timeout)
        assert line is not None, "the driver exited early"
        return line

    def expect(self, event, name="b", mark=""):
        got = self.next()
        want = {"event": event, "name": name, "namespace": "default", "mark": mark}
        assert got == want, "got %s, expected %s" % (got, want)

    def finish(self):
        self.proc.stdin.close()
        stats = self.next()
        assert self.proc.wait(10) == 0
        assert self.lines.get(timeout=5) is None
        return stats

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def watchers(srv):
    return srv.api.ok("GET", "/_test/stats")["watchers"]


def frozen(srv, drv, changes):
    """Makes changes the informer cannot watch: its watch dropped, the history compacted (resuming = 410)."""
    drv.proc.send_signal(signal.SIGSTOP)
    try:
        srv.api.ok("POST", "/_test/drop-watches", {})
        changes()
        srv.api.ok("POST", "/_test/compact")
    finally:
        drv.proc.send_signal(signal.SIGCONT)


def mark(srv, ns, name, value):
    srv.api.merge(VMI_PATH % ns + "/" + name, {"metadata": {"labels": {"mark": value}}})


def main():
    srv = Server("--log-requests")
    drv = None
    try:
        srv.start()
        srv.api.create("/api/v1/namespaces",
                       {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}})
        for ns, name in (("default", "a"), ("default", "b"), ("other", "b")):
            srv.api.create(VMI_PATH % ns, vmi_manifest(name, ns))
        drv = Driver(srv, "default", "metadata.name=b")
        drv.expect("ADDED")
        wait_for("the informer's watch", lambda: watchers(srv) == 1)

        # Only b of default: its neighbour and its namesake elsewhere change first and are never heard of.
        mark(srv, "default", "a", "1")
        mark(srv, "other", "b", "1")
        mark(srv, "default", "b", "2")
        drv.expect("MODIFIED", mark="2")

        # A dropped watch resumes with the selector; a 410 relists with it (a's change must not come in).
        frozen(srv, drv, lambda: (mark(srv, "default", "a", "3"), mark(srv, "default", "b", "3")))
        drv.expect("MODIFIED", mark="3")
        wait_for("the informer's watch again", lambda: watchers(srv) == 1)
        frozen(srv, drv, lambda: srv.api.ok("DELETE", VMI_PATH % "default" + "/b"))
        drv.expect("DELETED", mark="3")
        srv.api.create(VMI_PATH % "default", vmi_manifest("b"))
        drv.expect("ADDED")
        srv.api.ok("DELETE", VMI_PATH % "default" + "/a")

        stats = drv.finish()
        assert stats["synced"] and stats["store"] == 1, stats
        assert stats["lists"] >= 3 and stats["expired"] >= 2, stats

        # What went over the wire: every list and watch of the driver carried the escaped selector.
        with open(os.path.join(srv.dir, "server.log")) as f:
            reqs = log_records(f.read())
        mine = [r["path"] for r in reqs
                if r.get("method") == "GET" and "/virtualmachineinstances?" in r.get("path", "")]
        watches = [p for p in mine if "watch=true" in p]
        assert len(watches) >= 3 and len(mine) > len(watches), mine
        assert all(SELECTED in p for p in mine), mine
        print("ok: informer field selector (%d lists, %d watches)" % (len(mine) - len(watches), len(watches)))
        srv.remove()
    finally:
        if drv:
            drv.kill()
        srv.stop()


if __name__ == "__main__":
    main()
