#!/usr/bin/env python3
"""Runs the real `qmp` binary against a real QEMU (TCG, -S): one-shot commands, typed and dotted
arguments, transactions, HMP mode, TCP, the shell (piped and on a pty, with tab completion), --events,
and the exit codes 0 (success), 1 (QMP error) and 2 (usage/connection)."""
import json
import os
import pty
import select
import socket
import subprocess
import sys
import tempfile
import time

QMP = os.path.abspath(sys.argv[1])
failures = 0


def check(cond, what, detail=""):
    global failures
    if not cond:
        failures += 1
        print(f"FAILED: {what} {detail}", file=sys.stderr)


def run(*args, env=None, stdin=None, timeout=30):
    e = dict(os.environ)
    e.pop("QMP_SOCKET", None)
    e.update(env or {})
    p = subprocess.run([QMP, *args], input=stdin, capture_output=True, text=True, env=e, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(path, timeout=20):
    end = time.time() + timeout
    while not os.path.exists(path):
        if time.time() > end:
            raise RuntimeError(f"{path} never appeared")
        time.sleep(0.02)


def one_shot(sock, port):
    rc, out, err = run(sock, "query-status")
    check(rc == 0 and json.loads(out)["status"] == "prelaunch", "query-status", out + err)
    rc, out, _ = run("query-status", env={"QMP_SOCKET": sock})
    check(rc == 0 and "prelaunch" in out, "QMP_SOCKET default")
    rc, out, _ = run("-p", sock, "query-status")
    check(rc == 0 and out.count("\n") > 2 and json.loads(out)["running"] is False, "-p pretty", out)
    rc, out, _ = run(f"127.0.0.1:{port}", "query-status")
    check(rc == 0 and "prelaunch" in out, "TCP host:port", out)
    rc, out, err = run(sock, "no-such-command")
    check(rc == 1 and "CommandNotFound" in err and out == "", "QMP error -> exit 1", err)
    rc, out, err = run(sock, "device_add", "driver=no-such-device", "id=x")
    check(rc == 1 and "GenericError" in err, "device_add error -> exit 1", err)


def arguments(sock):
    rc, out, err = run(sock, "blockdev-add", "driver=raw", "node-name=r0", "file.driver=null-co",
                       "file.size=1048576")
    check(rc == 0 and out.strip() == "{}", "blockdev-add with dotted keys", out + err)
    rc, out, err = run(sock, "blockdev-add", '{"driver":"null-co","node-name":"n1","size":4096}')
    check(rc == 0, "JSON arguments", err)
    rc, out, err = run(sock, "transaction( block-dirty-bitmap-add node=r0 name=bm0 ; "
                             "block-dirty-bitmap-add node=r0 name=bm1 persistent=false )")
    check(rc == 0, "transaction", err)
    rc, out, err = run(sock, "query-named-block-nodes", "flat=true")
    nodes = {n["node-name"]: n for n in json.loads(out)} if rc == 0 else {}
    check(nodes.get("r0", {}).get("image", {}).get("virtual-size") == 1048576, "typed number reached QEMU", out)
    bitmaps = sorted(b["name"] for b in nodes.get("r0", {}).get("dirty-bitmaps", []))
    check(bitmaps == ["bm0", "bm1"], "transaction created both bitmaps", str(bitmaps))
    # a failing action aborts the whole transaction
    rc, out, err = run(sock, "transaction(", "block-dirty-bitmap-add", "node=r0", "name=bm9", ";",
                       "block-dirty-bitmap-add", "node=nope", "name=bmx", ")")
    check(rc == 1, "failing transaction -> exit 1", err)
    rc, out, err = run(sock, "block-dirty-bitmap-remove", "node=r0", "name:=bm9")
    check(rc == 1 and "bm9" in err, "transaction was atomic", err)


def usage_errors(sock):
    for args, what in [((), "no socket"), (("--bogus", sock, "x"), "bad option"),
                       (("-t", "abc", sock, "x"), "bad timeout"), (("/nonexistent/qmp.sock", "x"), "no such socket"),
                       ((sock, "x", "novalue"), "bad key=value"), ((sock, "x", "a=1", "a=2"), "duplicate key"),
                       ((sock,), "no command, stdin not a tty"), (("127.0.0.1:1", "x"), "connection refused")]:
        rc, out, err = run(*args, stdin="")
        check(rc == 2 and err.startswith("qmp: "), f"exit 2: {what}", f"rc={rc} err={err!r}")
    rc, out, err = run(sock, "x", "novalue")
    check("'novalue'" in err, "bad argument is named", err)
    rc, out, err = run("--help")
    check(rc == 0 and "Usage: qmp" in out and "Exit status" in out, "--help")


def hmp(sock):
    rc, out, err = run("-H", sock, "info", "status")
    check(rc == 0 and "VM status: paused (prelaunch)" in out, "-H info status", out + err)
    rc, out, err = run("-H", "-i", sock, stdin="info status\n\ninfo version\n")
    check(rc == 0 and "prelaunch" in out and "7.2" in out, "-H shell", out + err)


def piped_shell(sock):
    script = ("query-status\n# a comment\nno-such-command\nx 'unterminated\n"
              "transaction(\nblock-dirty-bitmap-add node=r0 name=bm2\nblock-dirty-bitmap-add node=r0 name=bm3\n)\n"
              "query-named-block-nodes flat=true\n")
    rc, out, err = run("-i", sock, stdin=script)
    lines = out.splitlines()
    check(rc == 0 and len(lines) == 3, "piped shell output", out + err)
    check("prelaunch" in lines[0] if lines else False, "piped shell query-status", out)
    check("bm2" in out and "bm3" in out, "multi-line transaction in the shell", out)
    check("CommandNotFound" in err and "unterminated quote" in err, "shell reports errors, goes on", err)


def pty_shell(sock, home):
    """libedit on a terminal: tab completion of command names from query-commands, history file."""
    pid, fd = pty.fork()
    if pid == 0:
        os.environ["HOME"] = home
        os.environ["TERM"] = "xterm"
        os.execv(QMP, [QMP, sock])
    out = b""

    def read_until(token, timeout=10):
        nonlocal out
        end = time.time() + timeout
        while token not in out and time.time() < end:
            if select.select([fd], [], [], 0.1)[0]:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
        return token in out

    check(read_until(b"(QEMU) "), "shell prompt on a tty", repr(out))
    # libedit may flush input typed before it switched the terminal to raw mode: type like a human
    time.sleep(0.3)
    os.write(fd, b"query-statu\t")
    read_until(b"s ", timeout=3)  # libedit redraws the line, so the completed word is not contiguous
    os.write(fd, b"\r")
    # "query-statu" is no command: only the completed "query-status" can answer "prelaunch"
    check(read_until(b"prelaunch"), "tab completion of command names", repr(out))
    time.sleep(0.3)
    os.write(fd, b"\x04")
    read_until(b"\0", timeout=20)  # drain until EOF: a sanitizer report must not block on a full pty
    _, status = os.waitpid(pid, 0)
    check(b"Sanitizer" not in out, "no sanitizer report", out.decode(errors="replace")[-3000:])
    os.close(fd)
    check(os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, "Ctrl-D exits 0", str(status))
    hist = os.path.join(home, ".qmp_history")
    check(os.path.exists(hist) and "query-status" in open(hist, errors="replace").read(), "history saved")


def events(sock, evsock):
    ev = subprocess.Popen([QMP, "--events", evsock], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(0.3)  # let it connect and negotiate: QEMU only sends events to negotiated clients
        for cmd in ("cont", "stop"):
            rc, out, err = run(sock, cmd)
            check(rc == 0, cmd, err)
        # with a command: its reply, then the events (here RESUME) as they come, until interrupted
        one = subprocess.Popen([QMP, "--events", sock, "cont"], stdout=subprocess.PIPE, text=True)
        first, second = one.stdout.readline(), one.stdout.readline()
        one.kill()
        one.communicate()
        check(first.strip() == "{}" and '"event":"RESUME"' in second, "--events with a command", first + second)
        rc, out, err = run(sock, "quit")
        check(rc == 0, "quit", err)
        out, err = ev.communicate(timeout=15)
    finally:
        ev.kill()
    names = [json.loads(line)["event"] for line in out.splitlines()]
    check(ev.returncode == 0, "--events exits 0 when QEMU quits", err)
    check(names[:3] == ["RESUME", "STOP", "RESUME"] and "SHUTDOWN" in names, "events as JSON lines", str(names))


def main():
    with tempfile.TemporaryDirectory(prefix="kvqmp-cli-") as d:
        sock, evsock, port = os.path.join(d, "qmp.sock"), os.path.join(d, "ev.sock"), free_port()
        qemu = subprocess.Popen(["qemu-system-x86_64", "-accel", "tcg", "-machine", "q35", "-m", "128M",
                                 "-nodefaults", "-no-user-config", "-display", "none", "-S",
                                 "-qmp", f"unix:{sock},server=on,wait=off",
                                 "-qmp", f"unix:{evsock},server=on,wait=off",
                                 "-qmp", f"tcp:127.0.0.1:{port},server=on,wait=off"],
                                stdin=subprocess.DEVNULL)
        try:
            wait_for(sock)
            wait_for(evsock)
            one_shot(sock, port)
            arguments(sock)
            usage_errors(sock)
            hmp(sock)
            piped_shell(sock)
            pty_shell(sock, d)
            events(sock, evsock)
            check(qemu.wait(timeout=15) == 0, "QEMU exited 0 after quit")
        finally:
            qemu.kill()
            qemu.wait()
    print(f"{failures} failures", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
