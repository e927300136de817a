"""Sandbox proof for virt-launcher-reporter (docs/security.md "The reporter's filter"). The reporter runs
against the Kubernetes API test server over HTTPS with a service account and a stand-in for the
launcher's control socket, through every flow it has: status patches (with retries), the VMI watch
forwarding `apply`, `migrate` and `migrate-cancel`, a 410 relist, a restart of the API server, the control
socket going away and back, and its exit once stdin closes. Under its seccomp filter it must come through
all of them alive, which is the proof that the allowlist is complete for those flows. Then, with ptrace
(ptrace_inject.py, root only): /proc says Seccomp 2; getpid and socket(AF_INET) injected into it run;
listen(), socket(AF_NETLINK) and mount() injected into fresh reporters kill them with SIGSYS and a log
line naming the call.

KV_REPORTER_STRACE=FILE runs the same flows with the reporter under `strace -f -o FILE` instead of the
injections: how the allowlist was found (reporter-sandbox.c).
usage: security_reporter.py VIRT_LAUNCHER_REPORTER"""
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("KV_SOURCE_ROOT") or os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(SRC, "controller", "tests"))
sys.path.insert(0, os.path.join(SRC, "launcher", "supervisor", "tests"))
sys.path.insert(0, os.path.join(SRC, "reporter", "tests"))
from kubetest import POD_PATH, VMI_PATH, Server, vmi_manifest, wait_for  # noqa: E402
from launcher_reporter import tls_fault  # noqa: E402
from launcherlib import free_port, proc_status  # noqa: E402
from ptrace_inject import inject_syscall, inject_syscall_signalled  # noqa: E402

REPORTER = os.path.abspath(sys.argv[1])
STRACE = os.environ.get("KV_REPORTER_STRACE")
SANITIZED = os.environ.get("KV_SANITIZED") == "1"
ANN = "kvlite.io/launcher-status"
SYS_close, SYS_socket, SYS_getpid, SYS_listen, SYS_mount = 3, 41, 39, 50, 165
AF_INET, AF_NETLINK, SOCK_STREAM, SOCK_RAW = 2, 16, 1, 3


class FakeLauncher:
    """The launcher's control socket: answers every request line {"id": N, "ok": true} and records it."""

    def __init__(self, path):
        self.path, self.requests, self.conns = path, [], []
        self.lock = threading.Lock()
        self.listen()

    def listen(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(4)
        threading.Thread(target=self._accept, args=(self.sock,), daemon=True).start()

    def _accept(self, sock):
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            with self.lock:
                self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        buf = b""
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    req = json.loads(line)
                    with self.lock:
                        self.requests.append(req)
                    conn.sendall(json.dumps({"id": req.get("id"), "ok": True}).encode() + b"\n")
        except OSError:
            return

    def cmds(self):
        with self.lock:
            return [r.get("cmd") for r in self.requests]

    def restart(self):
        """Closes the listener and every connection, then listens again: the reporter must reconnect."""
        self.sock.close()
        with self.lock:
            for c in self.conns:
                c.close()
            self.conns = []
        os.unlink(self.path)
        self.listen()

    def close(self):
        self.sock.close()
        with self.lock:
            for c in self.conns:
                c.close()


class Reporter:
    def __init__(self, srv, pod, argv=(), strace=None, host=None):
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ip, port = srv.info["https_url"].rsplit("//", 1)[1].rsplit(":", 1)
        host = host or ip
        env = dict(os.environ, POD_NAME=pod, POD_NAMESPACE="default", KUBERNETES_SERVICE_HOST=host,
                   KUBERNETES_SERVICE_PORT=port, KVLITE_SA_DIR=srv.sa_dir)
        self.log_path = os.path.join(srv.dir, "reporter-%s.log" % pod)
        self.log = open(self.log_path, "wb")
        wrap = ["strace", "-f", "-qq", "-o", strace] if strace else []
        self.proc = subprocess.Popen(wrap + [REPORTER, *argv], stdin=theirs, stderr=self.log, env=env,
                                     preexec_fn=_no_core)
        theirs.close()
        self.pid = self.proc.pid
        if strace:  # the reporter is strace's child
            self.pid = int(wait_for("reporter under strace", lambda: _child_of(self.proc.pid), timeout=5))

    def send(self, doc):
        self.sock.send(json.dumps(doc).encode())

    def text(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def stop(self):
        self.sock.close()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def _no_core():
    """The kill tests end reporters by SIGSYS, whose default action dumps core."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _child_of(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            kids = f.read().split()
    except OSError:
        return None
    return kids[0] if kids else None


def check(cond, what, rep=None):
    if not cond:
        print("FAIL: %s" % what)
        if rep:
            print("--- reporter log ---\n" + rep.text())
        sys.exit(1)
    print("ok: %s" % what)


def annotation(srv, pod):
    _, obj = srv.api.get(POD_PATH % "default" + "/" + pod)
    text = ((obj or {}).get("metadata", {}).get("annotations") or {}).get(ANN)
    return json.loads(text) if text else {}


def step(what, fn, timeout=15):
    wait_for(what, fn, timeout=timeout)
    print("ok: %s" % what)


def flows(srv, fake, rep):
    """Every path of the reporter, each one observed from the outside."""
    path = VMI_PATH % "default" + "/rs"
    rep.send({"phase": "Running", "n": 1})
    step("the status on the Pod", lambda: annotation(srv, "rs").get("n") == 1, timeout=15)
    step("the first spec forwarded as apply", lambda: "apply" in fake.cmds(), timeout=15)
    tls_fault(srv, code=500, method="PATCH", path="/pods/rs$", count=2)
    rep.send({"phase": "Running", "n": 2})
    step("a patch retried after two 500s", lambda: annotation(srv, "rs").get("n") == 2, timeout=15)

    srv.api.merge(path, {"spec": {"domain": {"cpu": {"sockets": 2}}}})
    step("a spec change forwarded", lambda: fake.cmds().count("apply") >= 2, timeout=15)
    srv.api.merge(path, {"status": {"migrationState": {
        "migrationUid": "m1", "sourcePod": "rs", "targetPod": "rs-dst", "targetNodeAddress": "127.0.0.1"}}})
    step("migrate forwarded", lambda: "migrate" in fake.cmds(), timeout=15)
    rep.send({"phase": "Running", "n": 3, "migrationState": {"migrationUid": "m1"}})
    srv.api.merge(path, {"status": {"migrationState": {"abortRequested": True}}})
    step("migrate-cancel forwarded", lambda: "migrate-cancel" in fake.cmds(), timeout=15)
    rep.send({"phase": "Running", "n": 3, "migrationState": {"migrationUid": "m1", "failed": True}})

    # 410: the watch falls behind a compaction and relists
    srv.api.ok("POST", "/_test/compact")
    srv.api.ok("POST", "/_test/drop-watches")
    srv.api.merge(path, {"spec": {"domain": {"cpu": {"sockets": 3}}}})
    step("a change after the relist forwarded", lambda: fake.cmds().count("apply") >= 3, timeout=20)

    # the API server restarts (same ports, same objects): patches and the watch reconnect
    srv.stop()
    rep.send({"phase": "Running", "n": 4})
    srv.start()
    step("a status patched after the API server restarted", lambda: annotation(srv, "rs").get("n") == 4,
             timeout=20)
    srv.api.merge(path, {"spec": {"domain": {"cpu": {"sockets": 4}}}})
    step("the watch back after the restart", lambda: fake.cmds().count("apply") >= 4, timeout=20)

    # the control socket goes away and comes back: reconnected, the next change still arrives
    fake.restart()
    srv.api.merge(path, {"spec": {"domain": {"cpu": {"sockets": 5}}}})
    step("apply after the control socket came back", lambda: fake.cmds().count("apply") >= 5, timeout=20)


def inject_kill(srv, pod, nr, args, name):
    """Injects a forbidden syscall into a fresh (status-only) reporter: it must die by SIGSYS and say so."""
    rep = Reporter(srv, pod)
    try:
        rep.send({"phase": "Running", "pod": pod})
        wait_for("%s's status" % pod, lambda: annotation(srv, pod).get("pod") == pod, timeout=15)
        r, sig = inject_syscall_signalled(rep.pid, nr, *args)
        check(sig == signal.SIGSYS, "injected %s traps (SIGSYS; the call did not run: %d)" % (name, r), rep)
        rc = rep.proc.wait(10)
        check(rc == -signal.SIGSYS, "and the reporter dies by SIGSYS (exit %s)" % rc, rep)
        check("forbidden system call %s (%d)" % (name, nr) in rep.text(), "and logs the forbidden %s" % name, rep)
    finally:
        rep.stop()


def hosts_name():
    """A name for this host that /etc/hosts resolves (never a DNS query), other than localhost, or None."""
    name = socket.gethostname()
    try:
        with open("/etc/hosts") as f:
            listed = any(name in line.split()[1:] for line in f if not line.lstrip().startswith("#"))
    except OSError:
        return None
    return name if listed and name != "localhost" else None


def resolver_thread(srv, strace=None):
    """With the API host given as a name, the reporter resolves it (glibc's getaddrinfo, /etc/hosts) under the
    filter too. The certificate names 127.0.0.1 and localhost only, so the patch fails on TLS (the name
    check); what counts is that the reporter lives through the resolution and retries."""
    name = hosts_name()
    if not name:
        print("note: no /etc/hosts name for this host: resolver thread not exercised")
        return
    rep = Reporter(srv, "rs", host=name, strace=strace)
    try:
        rep.send({"phase": "Running"})
        step("a patch attempted via %s (resolved under the filter)" % name, lambda: "retry in" in rep.text())
        rep.sock.close()
        rc = rep.proc.wait(15)
        check(rc == 1 and "forbidden" not in rep.text(), "the reporter survives the resolution and exits "
              "1 (the status was not delivered: the certificate does not name %s), not by SIGSYS (%s)" % (name, rc),
              rep)
    finally:
        rep.stop()


def main():
    if not STRACE and os.geteuid() != 0:
        print("SKIP: ptrace injection needs root")
        sys.exit(77)
    srv = Server("--tls-port", str(free_port()))
    srv.sa_dir = os.path.join(srv.dir, "sa")
    srv.extra += ["--serviceaccount-dir", srv.sa_dir]
    srv.state_file = os.path.join(srv.dir, "state.json")
    fake = rep = None
    try:
        srv.start()
        for pod in ("rs", "rk1", "rk2", "rk3"):
            srv.api.create(POD_PATH % "default", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod},
                                                  "spec": {"containers": [{"name": "c", "image": "x"}]}})
        srv.api.create(VMI_PATH % "default", vmi_manifest("rs"))
        fake = FakeLauncher(os.path.join(srv.dir, "control.sock"))
        rep = Reporter(srv, "rs", ["--vmi", "rs", "--control-socket", fake.path], strace=STRACE)
        flows(srv, fake, rep)
        if not STRACE:
            st = proc_status(rep.pid)
            print("note: reporter VmHWM %s after every flow" % st["VmHWM"])
            check(st["Seccomp"] == "2" and st["NoNewPrivs"] == "1", "the reporter runs under a seccomp filter "
                  "(Seccomp %s)" % st["Seccomp"], rep)
            r = inject_syscall(rep.pid, SYS_getpid)
            check(r == rep.pid, "injected getpid() is allowed (%d)" % r, rep)
            r = inject_syscall(rep.pid, SYS_socket, AF_INET, SOCK_STREAM, 0)
            check(r >= 0, "injected socket(AF_INET) is allowed (%d)" % r, rep)
            check(inject_syscall(rep.pid, SYS_close, r) == 0, "and closed", rep)
            rep.send({"phase": "Running", "n": 5})
            wait_for("a status after the injections", lambda: annotation(srv, "rs").get("n") == 5, timeout=15)
        rep.send({"phase": "Succeeded", "n": 6})
        rep.sock.close()
        rc = rep.proc.wait(15)
        check(rc == 0 and annotation(srv, "rs").get("n") == 6, "the final status delivered, exit %d" % rc, rep)
        resolver_thread(srv, STRACE and STRACE + ".resolver")
        if STRACE:
            print("strace written to %s" % STRACE)
            srv.remove()
            return
        inject_kill(srv, "rk1", SYS_listen, (0, 1), "listen")
        inject_kill(srv, "rk2", SYS_mount, (0, 0, 0, 0, 0), "mount")
        if SANITIZED:  # ASan/LSan builds allow socket() of any family for the symbolizer (sandbox.c)
            print("note: sanitized build: socket(AF_NETLINK) not injected")
        else:
            inject_kill(srv, "rk3", SYS_socket, (AF_NETLINK, SOCK_RAW, 0), "socket")
        print("PASS")
        srv.remove()
    finally:
        if rep:
            rep.stop()
        if fake:
            fake.close()
        srv.stop()


if __name__ == "__main__":
    main()
