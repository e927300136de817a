#!/usr/bin/env python3
# virtctl port-forward end to end (docs/portforward.md): the real virtctl → API server (APIService proxy) →
# virt-api → virt-handler's mutual-TLS channel → a connection made inside the launcher Pod's network namespace →
# the test guest's busybox httpd (kernel argument http=8080), which serves "kvguest <hostname>".
# A masquerade VMI: a local port, two connections at once, several ports and every target form, --stdio carrying
# one HTTP request (stdin ended right after it: the answer still comes), the real ssh with it as ProxyCommand,
# refusals with exit code 1. Then a VM with the implied (bridge) binding: refused while stopped, the vm/ form once
# it runs, refused again once stopped.
# One guest at a time. Usage: test_portforward.py
import json
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_e2e import Env, _read, kernelboot_vmi_yaml, skip_without_pod_network, wait_for  # noqa: E402
from test_virtctl import VIRTCTL, Stream, VirtApi, Virtctl, free_port, start_handler_pod  # noqa: E402

POD_NIC = """\
      interfaces: [{name: default, masquerade: {}}]
  networks: [{name: default, pod: {}}]
"""
REQUEST = b"GET / HTTP/1.0\r\n\r\n"


def start_handler(env, port):
    """virt-handler as crds/ runs it, with the Secret virt-api wrote. The kubelet stand-in runs a hostNetwork Pod
    in the machine's namespace but reports the node bridge's address (the Pods' network) as its IP; virt-api, on
    the machine's loopback too, reaches it at 127.0.0.1. Its log."""
    _, log = start_handler_pod(env, port)
    path = "/api/v1/namespaces/kvlite/pods/virt-handler-e2e/status"
    wait_for("the handler Pod Running", lambda: (env.srv.api.get(path)[1].get("status") or {}).get("phase") ==
             "Running", timeout=20, interval=0.3)
    env.srv.api.merge(path, {"status": {"podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}]}})
    return log


def http_get(port, timeout=20):
    """The body of GET / on 127.0.0.1:port."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(REQUEST)
        return body(read_all(s))


def read_all(s):
    data = b""
    for chunk in iter(lambda: s.recv(65536), b""):
        data += chunk
    return data


def body(response):
    assert response.startswith(b"HTTP/1."), response[:200]
    return response.split(b"\r\n\r\n", 1)[1].decode().strip()


class Forward:
    """`virtctl port-forward ARGS...` in the background, until stop()."""

    def __init__(self, vctl, *args):
        self.proc = subprocess.Popen([VIRTCTL, "--kubeconfig", vctl.kubeconfig, "port-forward", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=vctl.environ)
        self.out, self.err = Stream(self.proc.stdout), Stream(self.proc.stderr)

    def wait_listening(self, port):
        def up():
            assert self.proc.poll() is None, "virtctl exited %d: %s" % (self.proc.returncode, self.err.data)
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()  # a tunnel nobody uses: fine
                return True
            except OSError:
                return False
        wait_for("virtctl listening on %d" % port, up, timeout=20, interval=0.2)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(2)  # SIGINT, as a user's Ctrl-C
        try:
            return self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)


def stdio(vctl, target, port, request=REQUEST, timeout=60):
    """`virtctl port-forward --stdio=true TARGET PORT` with request on stdin (which then ends): rc, stdout,
    stderr."""
    p = subprocess.run([VIRTCTL, "--kubeconfig", vctl.kubeconfig, "port-forward", "--stdio=true", target, str(port)],
                       input=request, capture_output=True, timeout=timeout, env=vctl.environ)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


def refused(vctl, args, want):
    """virtctl port-forward ARGS exits 1 at once, saying want."""
    p = subprocess.run([VIRTCTL, "--kubeconfig", vctl.kubeconfig, "port-forward", *args], capture_output=True,
                       text=True, timeout=30, env=vctl.environ, stdin=subprocess.DEVNULL)
    assert p.returncode == 1 and want in p.stderr and p.stdout == "", (args, p.returncode, p.stdout, p.stderr)


def check_masquerade(env, vctl, hlog):
    vmi, pod, _ = env.wait_running("e2e-pf")
    wait_for("the guest's page on its Pod IP", lambda: env.kubelet.in_node(
        "curl", "-s", "--max-time", "3", "http://%s:8080/" % pod["status"]["podIP"]).stdout.strip() == "kvguest e2e-pf",
        timeout=60, interval=0.5)

    # a local port, and two connections at once: the second answered while the first is still open
    local = free_port()
    fwd = Forward(vctl, "vmi/e2e-pf", "%d:8080" % local)
    try:
        fwd.wait_listening(local)
        assert http_get(local) == "kvguest e2e-pf"
        first = socket.create_connection(("127.0.0.1", local), timeout=20)
        with first, socket.create_connection(("127.0.0.1", local), timeout=20) as second:
            second.sendall(REQUEST)
            assert body(read_all(second)) == "kvguest e2e-pf"
            first.sendall(REQUEST)
            assert body(read_all(first)) == "kvguest e2e-pf"
        print("ok - virtctl port-forward vmi/e2e-pf %d:8080: the guest's page, two connections at once" % local)
    finally:
        assert fwd.stop() == 0, fwd.err.data
    log = fwd.err.data.decode()
    assert "forwarding tcp 127.0.0.1:%d to 8080" % local in log, log
    assert fwd.out.data == b"", fwd.out.data

    # several ports, the target's namespace in both forms, a local port the system picks
    a, b = free_port(), free_port()
    for target in ("vmi/e2e-pf.default", "virtualmachineinstances/e2e-pf/default", "e2e-pf"):
        fwd = Forward(vctl, target, "%d:8080" % a, "tcp/%d:8080" % b, "0:8080")
        try:
            fwd.wait_listening(a)
            fwd.wait_listening(b)
            assert http_get(a) == http_get(b) == "kvguest e2e-pf"
            picked = wait_for("the picked port in the log", lambda: [
                int(json.loads(line)["msg"].split(":")[1].split()[0]) for line in fwd.err.data.decode().splitlines()
                if line.startswith("{") and "forwarding tcp 127.0.0.1:" in line and ":%d " % a not in line and
                ":%d " % b not in line], timeout=10)[0]
            assert picked and http_get(picked) == "kvguest e2e-pf"
        finally:
            assert fwd.stop() == 0, fwd.err.data
    print("ok - several ports; vmi/NAME.NS, TYPE/NAME/NS and a bare NAME; local port 0")

    # --stdio: one HTTP request on stdin, the answer (and nothing else) on stdout; stdin ends right after the
    # request and the answer still comes (the end is passed on to the guest as a FIN)
    rc, out, err = stdio(vctl, "vmi/e2e-pf", 8080)
    assert rc == 0 and body(out) == "kvguest e2e-pf", (rc, out, err)
    print("ok - --stdio carries one HTTP request, stdout holds only the answer")
    # the real ssh with port-forward as its ProxyCommand (docs/portforward.md): the guest has no sshd, its httpd
    # answers ssh's version line, and ssh -v shows that answer as the server's banner
    proxy = "%s --kubeconfig %s port-forward --stdio=true vmi/e2e-pf.default 8080" % (VIRTCTL, vctl.kubeconfig)
    p = subprocess.run(["ssh", "-v", "-o", "ProxyCommand=" + proxy, "-o", "BatchMode=yes", "-o",
                        "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=30",
                        "root@vmi/e2e-pf.default"], capture_output=True, text=True, timeout=60, env=vctl.environ,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 255 and "banner line 0: HTTP/1." in p.stderr, (p.returncode, p.stderr[-2000:])
    # virtctl ssh runs the same (its options for ssh each one argument, as KubeVirt's --local-ssh-opts)
    p = subprocess.run([VIRTCTL, "--kubeconfig", vctl.kubeconfig, "ssh", "root@vmi/e2e-pf", "-p", "8080",
                        "-t", "-o BatchMode=yes", "-t", "-o StrictHostKeyChecking=no", "-t",
                        "-o UserKnownHostsFile=/dev/null", "-t", "-v"], capture_output=True, text=True, timeout=60,
                       env=vctl.environ, stdin=subprocess.DEVNULL)
    assert p.returncode == 255 and "banner line 0: HTTP/1." in p.stderr, (p.returncode, p.stderr[-2000:])
    print("ok - ssh -o ProxyCommand='virtctl port-forward --stdio=true ...', and virtctl ssh, reach the guest's port")
    assert "portforward 8080/tcp of vmi default/e2e-pf by system:admin: 101" in _read(vctl.vapi_log).decode()
    assert ("portforward %s tcp 10.0.2.2 8080 k6t-eth0: session opened" % pod["metadata"]["uid"]).encode() in \
        _read(hlog)

    # refusals
    refused(vctl, ["vmi/nope", "8080"], 'virtualmachineinstances.kubevirt.io "nope" not found')
    refused(vctl, ["--stdio=true", "vmi/nope", "22"], 'virtualmachineinstances.kubevirt.io "nope" not found')
    refused(vctl, ["vmi/e2e-pf", "abc"], 'strconv.Atoi: parsing "abc": invalid syntax')
    refused(vctl, ["vmi/e2e-pf", "70000"], "port 70000 is out of range")
    refused(vctl, ["vmi/e2e-pf", "8080:0"], "port 0 is out of range")
    refused(vctl, ["pod/e2e-pf", "8080"], "unsupported resource type 'pod'")
    refused(vctl, ["--stdio", "vmi/e2e-pf", "8080", "8081"], "only one port supported when forwarding to stdout")
    refused(vctl, ["vmi/e2e-pf"], "portforward requires at least 2 arg(s), received 1")
    # a port the guest does not serve: the guest's refusal, through virt-handler and virt-api
    rc, out, err = stdio(vctl, "vmi/e2e-pf", 8081)
    assert rc == 1 and out == b"" and "dialing VM: dial tcp 10.0.2.2:8081: connect: Connection refused" in err, \
        (rc, out, err)
    print("ok - refusals: unknown VMI, bad ports, bad type, --stdio with two ports, a closed guest port")
    env.kubectl("delete", "vmi", "e2e-pf", "--timeout=60s")


def halted_vm_yaml(name, kernel_args):
    """A Halted VM whose template is kernelboot_vmi_yaml's VMI without interfaces (the implied pod interface)."""
    spec = kernelboot_vmi_yaml(name, kernel_args, "      {}\n").split("spec:\n", 1)[1]
    return ("apiVersion: kubevirt.io/v1\nkind: VirtualMachine\nmetadata: {name: %s}\nspec:\n  runStrategy: Halted\n"
            "  template:\n    spec:\n%s" % (name, "".join("    " + line + "\n" for line in spec.splitlines())))


def check_vm_bridge(env, vctl, hlog):
    """A VM without interfaces: KubeVirt's implied pod interface, bound as bridge (the guest holds the Pod IP)."""
    env.kubectl("apply", "-f", "-", input=halted_vm_yaml("e2e-pf-vm", "console=ttyS0 http=8080"))
    wait_for("the VM's status", lambda: "created" in (json.loads(env.kubectl("get", "vm", "e2e-pf-vm", "-o", "json"))
                                                      .get("status") or {}), timeout=20, interval=0.3)
    not_started = 'Operation cannot be fulfilled on virtualmachine.kubevirt.io "e2e-pf-vm": VMI is not started'
    refused(vctl, ["vm/e2e-pf-vm", "8080"], not_started)
    refused(vctl, ["--stdio", "vm/e2e-pf-vm", "8080"], not_started)
    refused(vctl, ["vm/nope", "8080"], 'virtualmachines.kubevirt.io "nope" not found')
    vctl("start", "e2e-pf-vm")
    vmi, pod, _ = env.wait_running("e2e-pf-vm")
    wait_for("the guest's page on the Pod IP it holds", lambda: env.kubelet.in_node(
        "curl", "-s", "--max-time", "3", "http://%s:8080/" % pod["status"]["podIP"]).stdout.strip() ==
        "kvguest e2e-pf-vm", timeout=60, interval=0.5)
    local = free_port()
    fwd = Forward(vctl, "vm/e2e-pf-vm", "%d:8080" % local)
    try:
        fwd.wait_listening(local)
        assert http_get(local) == "kvguest e2e-pf-vm"
    finally:
        assert fwd.stop() == 0, fwd.err.data
    rc, out, err = stdio(vctl, "vm/e2e-pf-vm", 8080)
    assert rc == 0 and body(out) == "kvguest e2e-pf-vm", (rc, out, err)
    # from the Pod's own namespace to the Pod IP the guest holds, through the bridge (the launcher's rule
    # brings the answers back)
    assert ("portforward %s tcp %s 8080 k6t-eth0: session opened" % (
        pod["metadata"]["uid"], pod["status"]["podIP"])).encode() in _read(hlog)
    print("ok - vm/e2e-pf-vm (bridge binding): refused while stopped, the guest's page once started, --stdio too")
    vctl("stop", "e2e-pf-vm")
    wait_for("the VMI gone", lambda: env.vmi("e2e-pf-vm") is None, timeout=60, interval=0.5)
    wait_for("VM status says not created", lambda: not (json.loads(env.kubectl(
        "get", "vm", "e2e-pf-vm", "-o", "json")).get("status") or {}).get("created"), timeout=20, interval=0.3)
    refused(vctl, ["vm/e2e-pf-vm", "8080"], not_started)
    print("ok - refused again once stopped")


def test_portforward(env):
    port = free_port()
    # the guest boots while virt-api starts (before its webhooks exist: this VMI is not what is tested here)
    env.kubectl("apply", "-f", "-", input=kernelboot_vmi_yaml("e2e-pf", "console=ttyS0 http=8080", POD_NIC))
    vapi = VirtApi(env, "--handler-port", str(port))
    try:
        hlog = start_handler(env, port)
        vctl = Virtctl(env)
        vctl.vapi_log = os.path.join(env.srv.dir, "virt-api.log")
        check_masquerade(env, vctl, hlog)
        check_vm_bridge(env, vctl, hlog)
    finally:
        vapi.stop()


if __name__ == "__main__":
    skip_without_pod_network("kernelboot")
    t0 = time.time()
    with Env() as env:
        test_portforward(env)
    print("ok portforward (%.1f s)" % (time.time() - t0))
