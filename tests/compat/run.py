#!/usr/bin/env python3
"""Real-world compatibility: run `virt-launcher --dry-run` on every manifest of tests/compat/corpus (written by
KubeVirt's authors, see SOURCES) and classify each one: accepted, refused for hardware this host lacks,
refused by KubeVirt's own schema (a value of the wrong JSON type, e.g. a number where KubeVirt's CRD says
string, or a field KubeVirt's API does not have, which kubectl's default strict field validation refuses:
the API server refuses such a manifest at apply time, so KubeVirt never admits it either; reported apart
and left out of the acceptance figure's denominator), or refused otherwise, with the JSON path and
reason of every refusal.

Images and claims map to the test guest: a containerDisk volume V resolves through --image-root to the
guest's containerdisk (a containerDisk.path gets the guest disk at that path), a persistentVolumeClaim or
ephemeral or dataVolume volume V is a sparse raw disk.img under --pvc-root (a DataVolume's claim, as CDI
fills it), a kernelBoot container gets the guest's kernel and initrd at its kernelPath and initrdPath, a
hostDisk path moves under the temp dir,
a cloud-init secretRef gets a Secret directory under --secret-root. A VirtualMachine goes to
virt-launcher as it is, with the file's instancetypes and preferences: the launcher runs its spec.template
expanded as KubeVirt's VM controller creates the VMI from it; a user-guide snippet without
apiVersion/kind is a VirtualMachineInstance, as the guide presents it.

usage: run.py VIRT_LAUNCHER [--corpus DIR] [--json] [--min-accepted N | --ratchet FILE] [--verbose]
Exit 0, or 1 when a refusal names no JSON path or fewer than the ratchet's manifests are accepted."""
import argparse
import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "kube-api"))
import yamlite  # noqa: E402

# Refusals for hardware these machines lack (KubeVirt would schedule them onto a node that has it).
# The launcher says "... which this host lacks"; the path list covers refusals worded otherwise.
HARDWARE_PATHS = re.compile(
    r"^spec\.domain\.(devices\.(gpus|hostDevices)|launchSecurity)|"
    r"^spec\.domain\.devices\.interfaces\[\d+\]\.sriov|^spec\.resourceClaims")
HARDWARE_REASON = "host lacks"
# A type mismatch against KubeVirt's CRD schema (jfield.c's wording): the Kubernetes API server's structural
# schema validation refuses such a manifest before KubeVirt sees it.
# KubeVirt's admission with its default configuration (hook sidecars without the Sidecar feature gate).
# A field KubeVirt's API does not have (the launcher says "is not a KubeVirt field"): kubectl's default
# --validate=strict makes the API server refuse it ("strict decoding error: unknown field"), so `kubectl
# apply -f` of the manifest fails as well.
SCHEMA_REASON = re.compile(r"^expected an? (string|integer|number|boolean|object|list|array), "
                           r"got (string|number|true|false|an object|a list|null)\b|^is not a KubeVirt field\b|"
                           r"^the Sidecar feature gate is not enabled\b")


def guest_dir():
    g = os.environ.get("KV_GUEST_DIR") or ""
    return g if os.path.isfile(os.path.join(g, "containerdisk", "disk", "disk.qcow2")) else None


IT_KINDS = ("VirtualMachineInstancetype", "VirtualMachineClusterInstancetype", "VirtualMachinePreference",
            "VirtualMachineClusterPreference")


def load_docs(path):
    with open(path) as f:
        return [d for d in yamlite.load_all(f.read()) if d]


def corpus_instancetypes(corpus):
    """Every instancetype and preference of the corpus: applied together, as the docs apply
    examples/csmall.yaml with examples/vm-cirros-csmall.yaml."""
    return [d for f in sorted(os.listdir(corpus)) if f.endswith((".yaml", ".yml", ".json"))
            for d in load_docs(os.path.join(corpus, f)) if d.get("kind") in IT_KINDS]


def runs_of(path, extra):
    """What a corpus file runs: one list of documents per VM or VMI in it, each with the corpus's
    instancetypes and preferences beside it (virt-launcher expands a VM itself, as KubeVirt's VM controller
    does, with the bundled common instancetypes as the fallback)."""
    docs = load_docs(path)
    out = []
    for d in docs:
        kind = d.get("kind", "VirtualMachineInstance")
        if kind == "VirtualMachineInstance":
            d.setdefault("apiVersion", "kubevirt.io/v1")
            d["kind"] = kind
        if kind in ("VirtualMachine", "VirtualMachineInstance"):
            out.append([d] + extra)
    return out


def spec_of(doc):
    """The VMI spec a document runs (a VM: its template's)."""
    if doc.get("kind") == "VirtualMachine":
        return (doc.get("spec", {}).get("template") or {}).get("spec") or {}
    return doc.get("spec", {})


def place(src, dest):
    """A guest file at dest inside an image directory (a hard link where it can be: no copy)."""
    if not os.path.exists(dest):
        os.link(src, dest) if os.stat(src).st_dev == os.stat(os.path.dirname(dest)).st_dev \
            else shutil.copyfile(src, dest)


def map_volumes(spec, root, guest):
    """Lay out images, claims, secrets and configMap/secret/... keys for the VMI's volumes under root; rewrite
    hostDisk paths."""
    for sub in ("img", "pvc", "secrets", "host"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    gdisk = os.path.join(guest, "containerdisk", "disk", "disk.qcow2")
    for vol in spec.get("volumes", []) or []:
        name = vol.get("name", "")
        if not isinstance(name, str) or "/" in name or name in ("", ".", ".."):
            continue
        if "containerDisk" in vol:
            in_image = (vol["containerDisk"] or {}).get("path") or "disk/disk.qcow2"
            dest = os.path.join(root, "img", name, in_image.lstrip("/"))
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            place(gdisk, dest)
        if "persistentVolumeClaim" in vol or "ephemeral" in vol or "dataVolume" in vol:
            d = os.path.join(root, "pvc", name)
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, "disk.img"), "wb") as f:
                f.truncate(64 << 20)
        if "hostDisk" in vol and isinstance(vol["hostDisk"].get("path"), str):
            vol["hostDisk"]["path"] = os.path.join(root, "host") + "/" + vol["hostDisk"]["path"].lstrip("/")
            os.makedirs(os.path.dirname(vol["hostDisk"]["path"]), exist_ok=True)
        data = [k for k in ("configMap", "secret", "serviceAccount", "downwardAPI", "sysprep") if k in vol]
        if data:  # the keys as the kubelet mounts them: one file each
            d = os.path.join(root, "secrets", name)
            os.makedirs(d, exist_ok=True)
            key = "autounattend.xml" if data[0] == "sysprep" else "key"
            with open(os.path.join(d, key), "w") as f:
                f.write("value\n")
        for ci in ("cloudInitNoCloud", "cloudInitConfigDrive"):
            if ci in vol:
                d = os.path.join(root, "secrets", name)
                os.makedirs(d, exist_ok=True)
                for key in ("userdata", "networkdata"):
                    with open(os.path.join(d, key), "w") as f:
                        f.write("#cloud-config\n" if key == "userdata" else "version: 2\n")
    kb = (spec.get("domain", {}).get("firmware") or {}).get("kernelBoot")
    gboot = os.path.join(guest, "kernelboot", "boot")
    if kb and os.path.isdir(gboot):  # the guest's kernel and initrd at the paths the image names
        c = kb.get("container") or {}
        for key, src in (("kernelPath", "vmlinuz"), ("initrdPath", "initrd.img")):
            if isinstance(c.get(key), str) and c[key].strip("/"):
                dest = os.path.join(root, "img", "kernelboot", c[key].lstrip("/"))
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                place(os.path.join(gboot, src), dest)


def classify(launcher, docs, root):
    run = os.path.join(root, "run")
    p = subprocess.run([launcher, "--dry-run", "--vmi", "-", "--run-dir", run,
                        "--image-root", os.path.join(root, "img"), "--pvc-root", os.path.join(root, "pvc"),
                        "--secret-root", os.path.join(root, "secrets"), "--accel", "tcg"],
                       input="".join("---\n" + json.dumps(d) + "\n" for d in docs), capture_output=True, text=True, timeout=60)
    if p.returncode == 0:
        json.loads(p.stdout)  # the argv: a JSON array
        return "accepted", None, None
    msg = None
    for line in p.stderr.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("level") == "error":
            msg = rec.get("msg", "")
    msg = msg or p.stderr.strip()[-300:]
    # "invalid manifest: stdin: PATH: reason", "prepare volumes: PATH: reason", ...: the first
    # "PATH: " after the launcher's context prefixes
    m = re.search(r"(?:^|: )((?:spec|metadata|apiVersion|kind)[A-Za-z0-9_.\[\]/-]*): (.*)$", msg, re.S)
    path, reason = (m.group(1), m.group(2)) if m else (None, msg)
    hw = path and (HARDWARE_PATHS.match(path) or HARDWARE_REASON in reason)
    if path and not hw and SCHEMA_REASON.match(reason):
        return "schema", path, reason
    return ("hardware" if hw else "refused"), path, reason


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("launcher")
    ap.add_argument("--corpus", default=os.path.join(HERE, "corpus"))
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--min-accepted", type=int)
    ap.add_argument("--ratchet", help="file whose first number is the least accepted count")
    ap.add_argument("--verbose", action="store_true")
    a = ap.parse_args()
    guest = guest_dir()
    if not guest:
        print("SKIP: no test guest (KV_GUEST_DIR) to map images to")
        return 77
    extra = corpus_instancetypes(a.corpus)
    runs = [(f if i == 0 else f"{f}#{i}", docs) for f in sorted(os.listdir(a.corpus))
            if f.endswith((".yaml", ".yml", ".json"))
            for i, docs in enumerate(runs_of(os.path.join(a.corpus, f), extra))]

    def one(run):
        name, docs = run
        root = tempfile.mkdtemp(prefix="kvlite-compat-")
        try:
            map_volumes(spec_of(docs[0]), root, guest)
            cls, path, reason = classify(a.launcher, docs, root)
        finally:
            shutil.rmtree(root, ignore_errors=True)
        return {"file": name, "class": cls, "path": path, "reason": reason}

    # each dry run mostly waits on qemu-img and file I/O: a few at once keep the test short
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(one, runs))
    n = len(results)
    count = {c: sum(r["class"] == c for r in results) for c in ("accepted", "hardware", "refused", "schema")}
    admitted = n - count["schema"]  # what KubeVirt's API server would admit at all
    if a.json:
        print(json.dumps({"total": n, **count, "results": results}, indent=1))
    else:
        for r in results:
            detail = "" if r["class"] == "accepted" else f"  {r['path'] or '(no path)'}: {r['reason']}"
            print(f"{r['class']:9} {r['file']}{detail}")
        print(f"accepted {count['accepted']}/{admitted} ({100.0 * count['accepted'] / max(admitted, 1):.0f}%), "
              f"refused for missing hardware {count['hardware']}, refused otherwise {count['refused']}; "
              f"refused by KubeVirt's own schema or admission (not counted) {count['schema']}")
    failed = False
    for r in results:
        if r["class"] != "accepted" and not r["path"]:
            print(f"FAIL {r['file']}: the refusal names no JSON path: {r['reason']}", file=sys.stderr)
            failed = True
    least = a.min_accepted
    if a.ratchet:
        with open(a.ratchet) as f:
            least = int(re.search(r"^\s*(\d+)", f.read(), re.M).group(1))
    if least is not None and count["accepted"] < least:
        print(f"FAIL: {count['accepted']} manifests accepted, the ratchet says at least {least}", file=sys.stderr)
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
