"""What this host lets a test do, found by trying it in a throwaway namespace (nothing on the host changes).

    why = hostcaps.missing("root", "netns", "tun")
    if why: print(f"SKIP: {why}"); sys.exit(77)

A test that needs a namespace, a device node or nftables asks here instead of assuming the machine it was
written on: being root is not enough in a container without CAP_SYS_ADMIN or without /dev/net/tun."""
import os
import shutil
import subprocess


def _run(*argv):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return str(e)
    return None if r.returncode == 0 else (r.stderr.strip().splitlines() or ["exit %d" % r.returncode])[-1]


def _can(what, *argv):
    err = _run(*argv)
    return f"{what}: {err}" if err else None


def _in_netns(what, *cmd):
    return _can(f"{what} in a network namespace fails", "unshare", "--net", "--", *cmd)


def _tun():
    try:
        os.close(os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC))
    except OSError as e:
        return f"/dev/net/tun: {e.strerror} (tap devices for the guest NIC)"
    return None


def _nftables():
    if not shutil.which("nft"):
        return None  # the launcher uses libnftables; without the CLI there is nothing cheap to try
    return _in_netns("nftables", "nft", "add", "table", "inet", "kvprobe")


PROBES = {
    "root": lambda: None if os.geteuid() == 0 else "needs root",
    "ip": lambda: None if shutil.which("ip") else "missing ip (iproute2)",
    "netns": lambda: _can("cannot make a network namespace", "unshare", "--net", "true"),
    "mountns": lambda: _can("cannot make a mount namespace", "unshare", "--mount", "true"),
    "veth": lambda: _in_netns("veth", "ip", "link", "add", "kvprobe0", "type", "veth", "peer", "name", "kvprobe1"),
    "bridge": lambda: _in_netns("bridge", "ip", "link", "add", "kvprobe0", "type", "bridge"),
    "tun": _tun,
    "nftables": _nftables,
}


def missing(*needs):
    """The first of needs (keys of PROBES, tried in that order) this host cannot give, as a one-line reason;
    None when it gives them all."""
    for need in needs:
        why = PROBES[need]()
        if why:
            return why
    return None
