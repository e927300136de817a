#!/usr/bin/env python3
"""Regenerates the seed corpora tests/fuzz/corpus/<target>/ from the project's own test data (golden
manifests, controller goldens, the watch-stream and kubeconfig cases, control requests, DHCP packets).
Run it after adding test data; the output is deterministic and checked in. fuzz-qmp-parser's corpus
belongs to qmp/ and is left alone."""
import base64
import glob
import hashlib
import json
import os
import struct
import sys

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
OUT = os.path.join(SRC, "tests", "fuzz", "corpus")
sys.path.insert(0, os.path.join(SRC, "tests", "kube-api"))
import yamlite  # noqa: E402  (the stdlib-only YAML subset loader of the API test server)


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def core_manifests():
    for path in sorted(glob.glob(os.path.join(SRC, "launcher", "core", "testdata", "*.yaml")) +
                       glob.glob(os.path.join(SRC, "launcher", "core", "testdata", "bad", "*.yaml")) +
                       glob.glob(os.path.join(SRC, "examples", "vmi-*.yaml"))):
        with open(path, "rb") as f:
            yield os.path.relpath(path, SRC).replace("/", "_"), f.read()


def seeds_vmi():
    for name, text in core_manifests():
        put("fuzz-vmi", name, text)


def as_json_objects():
    for name, text in core_manifests():
        try:
            doc = yamlite.load(text.decode())
        except Exception:
            continue  # the bad ones: YAML the subset loader refuses
        if isinstance(doc, dict):
            yield name, doc


def seeds_netspec():
    for name, doc in as_json_objects():
        put("fuzz-netspec", name + ".json", json.dumps(doc.get("spec", {})))


def seeds_kubeobject():
    golden = os.path.join(SRC, "controller", "tests", "golden")
    status = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "conflict",
              "reason": "Conflict", "code": 409}
    for vpath in sorted(glob.glob(os.path.join(golden, "*.vmi.json"))):
        base = os.path.basename(vpath)[:-len(".vmi.json")]
        with open(vpath, "rb") as f:
            vmi_text = f.read()
        put("fuzz-kubeobject", base + ".vmi.json", vmi_text)
        ppath = os.path.join(golden, base + ".pod.json")
        if os.path.exists(ppath):
            vmi = json.loads(vmi_text)
            with open(ppath) as f:
                pod = json.load(f)
            pod.setdefault("status", {}).update({"phase": "Running", "podIP": "10.1.2.3"})
            pod["spec"]["nodeName"] = "node01"
            pod["metadata"].setdefault("annotations", {})["kvlite.io/launcher-status"] = json.dumps(
                {"phase": "Running", "accel": "tcg",
                 "conditions": [{"type": "SoftwareEmulation", "status": "True"}]})
            put("fuzz-kubeobject", base + ".triple.json", json.dumps([vmi, pod, status]))
    for name, doc in as_json_objects():
        put("fuzz-kubeobject", name + ".json", json.dumps(doc))
    put("fuzz-kubeobject", "status-410.json", json.dumps(dict(status, reason="Expired", code=410)))


KUBECONFIG = """apiVersion: v1
kind: Config
current-context: c
clusters:
- name: k
  cluster:
%s
users:
- name: u
  user:
%s
contexts:
- name: c
  context: {cluster: k, user: u, namespace: ns1}
"""


def seeds_kubeconfig():
    b64 = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").decode()
    cases = {
        "http": ("    server: http://127.0.0.1:8080", "    {}"),
        "token": ("    server: https://[::1]:6443\n    certificate-authority-data: " + b64, "    token: abc"),
        "tokenfile": ("    server: https://h:6443\n    certificate-authority: ca.crt", "    tokenFile: tok"),
        "clientcert": ("    server: https://h:6443\n    insecure-skip-tls-verify: true",
                       "    client-certificate-data: %s\n    client-key-data: %s" % (b64, b64)),
        "basic": ("    server: https://h:6443", "    username: a\n    password: b"),
        "exec": ("    server: https://h:6443", "    exec: {command: x}"),
    }
    for name, (cluster, user) in cases.items():
        put("fuzz-kubeconfig", name + ".yaml", KUBECONFIG % (cluster, user))
    put("fuzz-kubeconfig", "json.json", json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "t",
        "clusters": [{"name": "t", "cluster": {"server": "http://127.0.0.1:1"}}],
        "users": [{"name": "t", "user": {}}],
        "contexts": [{"name": "t", "context": {"cluster": "t", "user": "t"}}]}))


def seeds_watchstream():
    events = [
        {"type": "ADDED", "object": {"kind": "Pod", "metadata": {"name": "a", "namespace": "default",
                                                                 "uid": "u1", "resourceVersion": "5"}}},
        {"type": "MODIFIED", "object": {"metadata": {"name": "b", "namespace": "x", "uid": "u2",
                                                     "managedFields": [{}], "labels": {"k": "v"}}}},
        {"type": "DELETED", "object": {"metadata": {"name": "a", "namespace": "default", "uid": "u1"}}},
        {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "9"}}},
        {"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired"}},
    ]
    lines = [json.dumps(e) for e in events]
    # the first byte picks the chunk size
    put("fuzz-watchstream", "events", b"\x07" + "\n".join(lines).encode() + b"\n")
    put("fuzz-watchstream", "crlf-blank", b"\x00" + "\r\n\n".join(lines).encode() + b"\r\n")
    put("fuzz-watchstream", "garbage", b"\x03" + lines[0].encode() + b"\n{not json\n" + lines[1].encode() + b"\n")


def seeds_control():
    reqs = [
        {"cmd": "help"}, {"cmd": "status", "id": 1}, {"cmd": "pause", "id": "p"}, {"cmd": "unpause", "id": [1]},
        {"cmd": "shutdown"}, {"cmd": "nonsense"}, {"cmd": 5}, {"cmd": "status", "args": []},
        {"cmd": "status", "args": {"x": 1}},
    ]
    body = "".join(json.dumps(r) + "\n" for r in reqs)
    put("fuzz-control", "all-commands", b"\x10" + body.encode())
    put("fuzz-control", "not-objects", b"\x02" + b"[]\n\"x\"\nnull\n{\n\n")
    put("fuzz-control", "console", b"\x40" + b'{"cmd":"status","id":1}\n{"cmd":"console"}\nls\r\n\x1d')
    put("fuzz-control", "split", b"\x00" + b'{"cmd":"pa' + b'use","id":{"a":[1,2]}}\n')


def dhcp_packet(msg_type, mac, options=b""):
    hdr = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", 1, 1, 6, 0, 0x1234abcd, 0, 0x8000, b"\0" * 4, b"\0" * 4,
                      b"\0" * 4, b"\0" * 4, mac + b"\0" * 10, b"\0" * 64, b"\0" * 128)
    opts = b"\x63\x82\x53\x63" + bytes([53, 1, msg_type]) + options + b"\xff"
    return hdr + opts


def seeds_dhcp():
    mac = bytes([0x02, 0x00, 0x00, 0x00, 0x00, 0x01])
    put("fuzz-dhcp", "discover", dhcp_packet(1, mac, bytes([55, 4, 1, 3, 6, 15])))
    put("fuzz-dhcp", "request", dhcp_packet(3, mac, bytes([50, 4, 10, 0, 2, 2, 54, 4, 10, 0, 2, 1, 12, 2]) + b"vm"))
    put("fuzz-dhcp", "release", dhcp_packet(7, mac))
    put("fuzz-dhcp", "overload", dhcp_packet(1, mac, bytes([52, 1, 3])))


def seeds_dhcp6():
    client = bytes([0, 1, 0, 10, 0, 3, 0, 1, 0x52, 0x54, 0, 1, 2, 3])
    ia_na = bytes([0, 3, 0, 12, 0, 0, 0, 7] + [0] * 8)
    server = bytes([0, 2, 0, 10, 0, 3, 0, 1, 0x52, 0x54, 0, 1, 2, 3])
    put("fuzz-dhcp6", "solicit", bytes([1, 0xab, 0xcd, 0xef]) + client + ia_na)
    put("fuzz-dhcp6", "solicit-rapid", bytes([1, 0xab, 0xcd, 0xef]) + client + ia_na + bytes([0, 14, 0, 0]))
    put("fuzz-dhcp6", "request", bytes([3, 0xab, 0xcd, 0xef]) + client + server + ia_na)
    put("fuzz-dhcp6", "info-request", bytes([11, 1, 2, 3]))
    put("fuzz-dhcp6", "router-solicit", bytes([133, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0x52, 0x54, 0, 1, 2, 3]))


def main():
    for fn in (seeds_vmi, seeds_netspec, seeds_kubeobject, seeds_kubeconfig, seeds_watchstream, seeds_control,
               seeds_dhcp, seeds_dhcp6):
        fn()
    for d in sorted(os.listdir(OUT)):
        files = os.listdir(os.path.join(OUT, d))
        digest = hashlib.sha256(b"".join(sorted(f.encode() for f in files))).hexdigest()[:8]
        print("%-20s %3d seeds (%s)" % (d, len(files), digest))


if __name__ == "__main__":
    main()
