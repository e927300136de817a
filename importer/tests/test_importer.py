#!/usr/bin/env python3
"""kvlite-importer against real parts: three Debian docker-registry instances on loopback (one with TLS
and htpasswd auth), images built with buildah from a Dockerfile or written as OCI layouts and pushed with
skopeo, python's http.server for http sources, qemu-img to check the results.
Usage: test_importer.py KVLITE_IMPORTER"""
import gzip
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from regfixtures import Registry, free_port, make_tls, run  # noqa: E402,F401
import regfixtures  # noqa: E402
import authhttp  # noqa: E402

IMPORTER = os.path.abspath(sys.argv[1])
GUEST = os.environ.get("KV_GUEST_DIR", "")
SRC = os.path.join(GUEST, "disk.qcow2")
failures = []


def skip(why):
    print(f"SKIP: {why}")
    sys.exit(77)


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def oci_layout(root, name, entries):
    """Writes an OCI layout with one tar+gzip layer built from entries [(tarinfo, fileobj-or-None)]."""
    d = os.path.join(root, "oci-" + name)
    blobs = os.path.join(d, "blobs", "sha256")
    os.makedirs(blobs)
    raw = io.BytesIO()
    with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as t:
        for info, f in entries:
            t.addfile(info, f)
    layer = raw.getvalue()

    def put(data):
        dg = hashlib.sha256(data).hexdigest()
        with open(os.path.join(blobs, dg), "wb") as f:
            f.write(data)
        return {"digest": "sha256:" + dg, "size": len(data)}

    diff_id = "sha256:" + hashlib.sha256(gzip.decompress(layer)).hexdigest()
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **put(config)},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                       **put(layer)}]}).encode()
    with open(os.path.join(d, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                                      **put(manifest), "annotations": {
                                                          "org.opencontainers.image.ref.name": "1"}}]}, f)
    with open(os.path.join(d, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    return d


def tar_file(name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, io.BytesIO(data)


def tar_link(name, target, kind=tarfile.SYMTYPE):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


def push_oci(layout, reg, repo, creds=None):
    args = ["skopeo", "copy", "--quiet", "--dest-tls-verify=false"]
    if creds:
        args += ["--dest-creds", creds]
    run(*args, f"oci:{layout}:1", f"docker://{reg.addr}/{repo}:1")


def build_with_buildah(root, regs, creds):
    regfixtures.build_with_buildah(root, SRC, regs, creds)


def write_config(root, name, mirrors):
    path = os.path.join(root, name + ".json")
    with open(path, "w") as f:
        json.dump({"connectTimeoutSeconds": 2, "lowSpeedTimeoutSeconds": 5,
                   "registries": [{"prefix": "vms.example", "mirrors": mirrors}]}, f)
    return path


def importer(*args, dest, timeout=120):
    p = subprocess.run([IMPORTER, *args, "--dest", dest], capture_output=True, text=True, timeout=timeout)
    lines = [json.loads(l) for l in p.stdout.splitlines() if l.strip()]
    result = lines[-1] if lines else {}
    return p.returncode, result, lines, p.stderr


def fresh_dest(root, name):
    d = os.path.join(root, "dest-" + name)
    os.makedirs(d)
    return d


def disk_ok(dest, what):
    img = os.path.join(dest, "disk.img")
    if not os.path.exists(img):
        check(False, f"{what}: disk.img exists")
        return
    info = json.loads(run("qemu-img", "info", "--output=json", img).stdout)
    check(info["format"] == "raw", f"{what}: disk.img is raw")
    cmp = subprocess.run(["qemu-img", "compare", "-q", SRC, img])
    check(cmp.returncode == 0, f"{what}: qemu-img compare with the source: identical")
    st = os.stat(img)
    check(st.st_blocks * 512 < st.st_size, f"{what}: sparse ({st.st_blocks * 512} of {st.st_size} bytes allocated)")
    check(sorted(os.listdir(dest)) == ["disk.img"], f"{what}: only disk.img in dest ({os.listdir(dest)})")


def write_files(folder, files):
    os.makedirs(folder)
    for name, value in files.items():
        with open(os.path.join(folder, name), "w") as f:
            f.write(value)
    return folder


def test_http_auth(root, www, ca, crt, key):
    """An https server (authhttp.AuthServer, its certificate signed by a test CA) that serves a gz-compressed
    qcow2 only with basic auth kv:s3cret, an extraHeaders header and two secretExtraHeaders headers: the importer
    given CDI's layouts (the Secret's accessKeyId/secretKey files, the ConfigMap's CA under a key with any name,
    one header per file of a header Secret) imports it; each missing or wrong part is refused by the server
    (401/403) or by the TLS check, exit 3 naming the cause, nothing written."""
    with open(SRC, "rb") as f, gzip.open(os.path.join(www, "disk.qcow2.gz"), "wb", compresslevel=1) as g:
        shutil.copyfileobj(f, g)
    need = {"X-Api-Token": "t0k3n", "X-Secret-Token": "s3cr3t-hdr", "X-Second-Secret": "two"}
    srv = authhttp.AuthServer(www, 0, "kv", "s3cret", need, tls=(crt, key))
    try:
        url = srv.url("disk.qcow2.gz")
        auth = write_files(os.path.join(root, "http-auth"), {"accessKeyId": "kv\n", "secretKey": "s3cret\n"})
        bad = write_files(os.path.join(root, "http-bad"), {"accessKeyId": "kv", "secretKey": "wrong"})
        empty = write_files(os.path.join(root, "http-empty"), {"accessKeyId": "kv", "secretKey": ""})
        with open(ca) as f:  # kubectl create configmap --from-file=ca-bundle: a key without .crt/.pem
            certs = write_files(os.path.join(root, "http-certs"), {"ca-bundle": f.read()})
        hdrs = write_files(os.path.join(root, "http-hdrs"), {"one": "X-Secret-Token: s3cr3t-hdr\n",
                                                             "two": "X-Second-Secret: two"})
        creds = lambda d: ["--username-file", os.path.join(d, "accessKeyId"), "--password-file",
                           os.path.join(d, "secretKey")]
        full = {"creds": creds(auth), "ca": ["--cert-dir", certs], "hdr": ["--header", "X-Api-Token: t0k3n"],
                "secret": ["--header-dir", hdrs]}

        def attempt(name, **change):
            args = [a for k, v in dict(full, **change).items() for a in v]
            dest = fresh_dest(root, "auth-" + name)
            rc, res, _, _ = importer("--http-url", url, *args, dest=dest)
            return rc, res, dest

        rc, res, dest = attempt("ok")
        check(rc == 0, f"https with secretRef, certConfigMap, extraHeaders, secretExtraHeaders: exit 0 ({rc}, {res})")
        disk_ok(dest, "https with credentials")
        got = srv.served("disk.qcow2.gz")
        check(bool(got) and all(r[3].get(k) == v for r in got for k, v in need.items()),
              f"https with credentials: the server saw every header on the download ({[r[:3] for r in srv.requests]})")
        refused = {"bad password": ({"creds": creds(bad)}, "HTTP 401 Unauthorized"),
                   "empty secretKey (no basic auth)": ({"creds": creds(empty)}, "HTTP 401 Unauthorized"),
                   "no extraHeaders": ({"hdr": []}, "HTTP 403 Forbidden"),
                   "no secretExtraHeaders": ({"secret": []}, "HTTP 403 Forbidden"),
                   "no certConfigMap": ({"ca": []}, "certificate")}
        for name, (change, why) in refused.items():
            before = len(srv.requests)
            rc, res, dest = attempt(name.split()[1], **change)
            check(rc == 3 and why in res.get("reason", "") and os.listdir(dest) == [],
                  f"https {name}: exit 3, \"{why}\", nothing written ({rc}, {res.get('reason')})")
            check(not srv.served("disk.qcow2.gz")[len(got):] and (why == "certificate") == (len(srv.requests) == before),
                  f"https {name}: the server served nothing")
            if "empty" in name:
                check(all("Authorization" not in r[3] for r in srv.requests[before:]),
                      f"https {name}: no Authorization header sent, as CDI")
    finally:
        srv.stop()


def main():
    if not os.path.exists(SRC):
        skip(f"test guest disk {SRC} missing (tests/guest/build.sh)")
    for tool in ("docker-registry", "skopeo", "qemu-img", "openssl", "htpasswd"):
        if not shutil.which(tool):
            skip(f"{tool} is not installed (ci/deps.sh installs it)")
    root = tempfile.mkdtemp(prefix="kv-importer-")
    regs = []
    http = None
    try:
        ca, crt, key = make_tls(root)
        htp = os.path.join(root, "htpasswd")
        with open(htp, "w") as f:
            f.write(run("htpasswd", "-Bbn", "kv", "s3cret").stdout)
        r1, r2 = Registry(root, "r1"), Registry(root, "r2")
        r3 = Registry(root, "r3", tls=(crt, key), htpasswd=htp)
        regs = [r1, r2, r3]
        if shutil.which("buildah"):
            build_with_buildah(root, regs, "kv:s3cret")
        else:
            with open(SRC, "rb") as f:
                layout = oci_layout(root, "guest", [tar_file("disk/disk.qcow2", f.read())])
            for r in regs:
                push_oci(layout, r, "vms/guest", "kv:s3cret" if r.tls else None)
        mirror3 = {"location": r3.addr, "caFile": ca, "username": "kv", "password": "s3cret"}
        cfg_all = write_config(root, "all", [{"location": r1.addr, "plainHTTP": True},
                                             {"location": r2.addr, "plainHTTP": True}, mirror3])
        ref = "docker://vms.example/vms/guest:1"

        # 1. Import from the first registry.
        dest = fresh_dest(root, "basic")
        rc, res, lines, err = importer("--registry-url", ref, "--registry-config", cfg_all, dest=dest)
        check(rc == 0, f"import: exit 0 (got {rc}: {res.get('reason')})")
        disk_ok(dest, "import")
        check(res.get("registry", {}).get("servedBy") == [r1.addr], f"import: served by r1 ({res.get('registry')})")
        check(res.get("registry", {}).get("digest", "").startswith("sha256:"), "import: digest pinned")
        check(any(l.get("progress") == "100.00%" for l in lines), "import: progress reaches 100.00%")

        # 2. TLS + htpasswd registry alone, then with a wrong password.
        dest = fresh_dest(root, "tls")
        rc, res, _, _ = importer("--registry-url", ref, "--registry-config",
                                 write_config(root, "tls", [mirror3]), dest=dest)
        check(rc == 0, f"tls+auth: exit 0 (got {rc}: {res.get('reason')})")
        disk_ok(dest, "tls+auth")
        dest = fresh_dest(root, "badpw")
        rc, res, _, _ = importer("--registry-url", ref, "--registry-config",
                                 write_config(root, "badpw", [{**mirror3, "password": "wrong"}]), dest=dest)
        check(rc == 3 and "HTTP 401" in json.dumps(res), f"wrong password: exit 3 with HTTP 401 ({rc}, {res})")
        check(os.listdir(dest) == [], "wrong password: dest left empty")

        # 2b. A DataVolume's own secretRef and certConfigMap (CDI's: files accessKeyId/secretKey, *.crt/*.pem in a
        #     folder) for the registry its reference names, without any registry configuration; never sent to a
        #     mirror on another host; a certificate folder without certificates is a usage error.
        auth, certs = os.path.join(root, "dv-secret"), os.path.join(root, "dv-certs")
        os.makedirs(auth)
        os.makedirs(certs)
        for name, value in (("accessKeyId", "kv\n"), ("secretKey", "s3cret\n")):
            with open(os.path.join(auth, name), "w") as f:
                f.write(value)
        shutil.copy(ca, os.path.join(certs, "ca.crt"))
        with open(os.path.join(certs, "README"), "w") as f:
            f.write("not a certificate: ignored\n")
        dv_auth = ["--username-file", os.path.join(auth, "accessKeyId"), "--password-file",
                   os.path.join(auth, "secretKey"), "--cert-dir", certs]
        dest = fresh_dest(root, "dvauth")
        rc, res, _, _ = importer("--registry-url", f"docker://{r3.addr}/vms/guest:1", *dv_auth, dest=dest)
        check(rc == 0, f"secretRef+certConfigMap: exit 0 from the TLS+htpasswd registry (got {rc}: {res.get('reason')})")
        disk_ok(dest, "secretRef+certConfigMap")
        dest = fresh_dest(root, "dvauth-nocert")
        rc, res, _, _ = importer("--registry-url", f"docker://{r3.addr}/vms/guest:1", "--username-file",
                                 os.path.join(auth, "accessKeyId"), "--password-file", os.path.join(auth, "secretKey"),
                                 dest=dest)
        check(rc == 3 and "certificate" in json.dumps(res).lower(),
              f"secretRef without the CA: exit 3, certificate not verified ({rc}, {res.get('reason')})")
        dest = fresh_dest(root, "dvauth-mirror")
        rc, res, _, _ = importer("--registry-url", ref, "--registry-config",
                                 write_config(root, "noauth", [{"location": r3.addr, "caFile": ca}]), *dv_auth,
                                 dest=dest)
        check(rc == 3 and "HTTP 401" in json.dumps(res),
              f"secretRef not sent to a mirror on another host: exit 3 with HTTP 401 ({rc}, {res.get('reason')})")
        empty = os.path.join(root, "no-certs")
        os.makedirs(empty)
        rc, res, _, err = importer("--registry-url", f"docker://{r3.addr}/vms/guest:1", "--cert-dir", empty,
                                   dest=fresh_dest(root, "dvauth-empty"))
        check(rc == 2 and "no .crt or .pem" in err, f"--cert-dir without certificates: exit 2 ({rc}, {err[-200:]})")

        # 3. First registry stopped: the second serves, the report names both.
        r1.stop()
        dest = fresh_dest(root, "failover")
        t0 = time.time()
        rc, res, _, _ = importer("--registry-url", ref, "--registry-config", cfg_all, dest=dest)
        rep = res.get("registry", {})
        check(rc == 0, f"r1 stopped: exit 0 (got {rc}: {res.get('reason')}) in {time.time() - t0:.2f}s")
        disk_ok(dest, "r1 stopped")
        check(rep.get("servedBy") == [r2.addr] and rep.get("resolvedBy") == r2.addr, f"r1 stopped: r2 served ({rep})")
        check(any(f["registry"] == r1.addr for f in rep.get("failed", [])), "r1 stopped: report names r1 as failed")

        # 4. r1 killed in the middle of the layer: the same blob continues from r2.
        r1.start()
        dest = fresh_dest(root, "midpull")
        p = subprocess.Popen([IMPORTER, "--registry-url", ref, "--registry-config", cfg_all, "--dest", dest,
                              "--max-rate", "4M"], stdout=subprocess.PIPE, text=True)
        killed_at = None
        lines = []
        for line in p.stdout:
            obj = json.loads(line)
            lines.append(obj)
            if killed_at is None and obj.get("bytes", 0) > 2_000_000:
                killed_at = obj["bytes"]
                r1.stop(signal.SIGKILL)
        rc = p.wait(120)
        res = lines[-1] if lines else {}
        rep = res.get("registry", {})
        check(killed_at is not None, f"mid-pull: r1 killed after {killed_at} bytes")
        check(rc == 0, f"mid-pull: exit 0 (got {rc}: {res.get('reason')})")
        disk_ok(dest, "mid-pull")
        check(rep.get("servedBy") == [r1.addr, r2.addr], f"mid-pull: served by r1 then r2 ({rep.get('servedBy')})")
        blob_fail = [f for f in rep.get("failed", []) if f["registry"] == r1.addr and f["what"].startswith("blob")]
        check(bool(blob_fail), f"mid-pull: the blob failure on r1 is reported ({rep.get('failed')})")

        # 5. Every registry down.
        r1.start()
        r1.stop()
        r2.stop()
        dead = free_port()
        dest = fresh_dest(root, "alldown")
        rc, res, _, err = importer("--registry-url", ref, "--registry-config",
                                   write_config(root, "down", [{"location": r1.addr, "plainHTTP": True},
                                                               {"location": r2.addr, "plainHTTP": True},
                                                               {"location": f"127.0.0.1:{dead}", "plainHTTP": True}]),
                                   dest=dest)
        check(rc == 3, f"all down: exit 3 (got {rc})")
        check("no registry" in res.get("reason", "") and len(res.get("registry", {}).get("failed", [])) == 3,
              f"all down: clear reason, 3 failures ({res})")
        check(os.listdir(dest) == [], "all down: dest left empty")
        r2.start()

        # 6. Bad images (pushed to r2): nothing is written outside dest, the error is clear.
        outside = os.path.join(root, "outside")
        os.makedirs(outside)
        with open(SRC, "rb") as f:
            qcow = f.read()
        bad = {
            "nodisk": ([tar_file("etc/hostname", b"x\n")], "no disk file"),
            "twodisks": ([tar_file("disk/a.qcow2", qcow), tar_file("disk/b.img", b"\0" * 4096)], "more than one"),
            "dotdot": ([tar_file("disk/../../outside/evil", b"x")], "\"..\""),
            "absolute": ([tar_file("/outside/evil", b"x")], "absolute"),
            "symlink": ([tar_link("disk/disk.img", "../../../../outside/evil")], "symlink"),
            "symlink-out": ([tar_link("escape", "../../../outside"), tar_file("disk/disk.qcow2", qcow)], "symlink"),
            "hardlink": ([tar_link("disk/disk.img", "../../outside/evil", tarfile.LNKTYPE)], "hard link"),
        }
        cfg_r2 = write_config(root, "r2", [{"location": r2.addr, "plainHTTP": True}])
        for name, (entries, msg) in bad.items():
            push_oci(oci_layout(root, name, entries), r2, "vms/" + name)
            dest = fresh_dest(root, name)
            rc, res, _, _ = importer("--registry-url", f"docker://vms.example/vms/{name}:1",
                                     "--registry-config", cfg_r2, dest=dest)
            check(rc == 4 and msg in res.get("reason", ""), f"bad image {name}: exit 4, \"{msg}\" ({rc}, {res.get('reason')})")
            check(os.listdir(dest) == [] and os.listdir(outside) == [], f"bad image {name}: nothing written")

        # 6b. A kernelBoot container's kernel and initrd (--container-files): written at their paths in the image
        #     (a later layer's copy wins), nothing else; a missing file or a link at a wanted path is refused.
        kernel, initrd = os.urandom(5000), os.urandom(3000)
        push_oci(oci_layout(root, "kernel", [tar_file("boot/vmlinuz", b"old"), tar_file("./boot/vmlinuz", kernel),
                                             tar_file("boot/initrd.img", initrd), tar_file("etc/motd", b"x")]),
                 r2, "vms/kernel")
        kref = "docker://vms.example/vms/kernel:1"
        dest = fresh_dest(root, "kernel")
        rc, res, _, _ = importer("--container-files", kref, "--file", "/boot/vmlinuz", "--file", "/boot/initrd.img",
                                 "--registry-config", cfg_r2, dest=dest)
        got = {}
        for dirpath, _, names in os.walk(dest):
            for n in names:
                with open(os.path.join(dirpath, n), "rb") as f:
                    got[os.path.relpath(os.path.join(dirpath, n), dest)] = f.read()
        check(rc == 0 and got == {"boot/vmlinuz": kernel, "boot/initrd.img": initrd},
              f"kernelBoot files: exit 0, exactly the kernel and initrd at their paths ({rc}, {sorted(got)})")
        check(res.get("registry", {}).get("servedBy") == [r2.addr], f"kernelBoot files: registry report ({res})")
        dest = fresh_dest(root, "kernel-missing")
        rc, res, _, _ = importer("--container-files", kref, "--file", "/boot/vmlinuz", "--file", "/boot/nope",
                                 "--registry-config", cfg_r2, dest=dest)
        check(rc == 4 and "no regular file /boot/nope" in res.get("reason", ""),
              f"kernelBoot file missing: exit 4 ({rc}, {res.get('reason')})")
        push_oci(oci_layout(root, "kernel-link", [tar_link("boot/vmlinuz", "../../../outside/evil")]), r2,
                 "vms/kernel-link")
        dest = fresh_dest(root, "kernel-link")
        rc, res, _, _ = importer("--container-files", "docker://vms.example/vms/kernel-link:1", "--file",
                                 "/boot/vmlinuz", "--registry-config", cfg_r2, dest=dest)
        check(rc == 4 and "symlink" in res.get("reason", "") and os.listdir(dest) == [] and os.listdir(outside) == [],
              f"kernelBoot file a symlink: exit 4, nothing written ({rc}, {res.get('reason')})")

        # 7. Claim too small.
        dest = fresh_dest(root, "small")
        rc, res, _, _ = importer("--registry-url", ref, "--registry-config", cfg_r2, "--size", "16Mi", dest=dest)
        check(rc == 5 and "claim" in res.get("reason", ""), f"claim too small: exit 5 ({rc}, {res.get('reason')})")
        check(os.listdir(dest) == [], "claim too small: dest left empty")

        # 8. HTTP source: plain and xz-compressed, checksum right and wrong.
        www = os.path.join(root, "www")
        os.makedirs(www)
        shutil.copy(SRC, os.path.join(www, "disk.qcow2"))
        run("xz", "-k", "-1", os.path.join(www, "disk.qcow2"))
        port = free_port()
        http = subprocess.Popen([sys.executable, "-m", "http.server", "-b", "127.0.0.1", "-d", www, str(port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        with open(os.path.join(www, "disk.qcow2.xz"), "rb") as f:
            xz_sum = hashlib.sha256(f.read()).hexdigest()
        dest = fresh_dest(root, "http")
        rc, res, _, _ = importer("--http-url", f"http://127.0.0.1:{port}/disk.qcow2.xz", "--checksum",
                                 "sha256:" + xz_sum, "--header", "X-Test: 1", dest=dest)
        check(rc == 0, f"http xz + checksum: exit 0 ({rc}, {res.get('reason')})")
        disk_ok(dest, "http xz")
        dest = fresh_dest(root, "http-badsum")
        rc, res, _, _ = importer("--http-url", f"http://127.0.0.1:{port}/disk.qcow2", "--checksum",
                                 "sha256:" + "0" * 64, dest=dest)
        check(rc == 4 and "checksum mismatch" in res.get("reason", ""), f"http wrong checksum: exit 4 ({rc}, {res})")
        check(os.listdir(dest) == [], "http wrong checksum: dest left empty")
        dest = fresh_dest(root, "http-404")
        rc, res, _, _ = importer("--http-url", f"http://127.0.0.1:{port}/nope", dest=dest)
        check(rc == 3 and "404" in res.get("reason", ""), f"http 404: exit 3 ({rc}, {res})")

        # 8b. CDI's http source with credentials (test_http_auth).
        test_http_auth(root, www, ca, crt, key)

        # 9. Blank and usage.
        dest = fresh_dest(root, "blank")
        rc, _, _, _ = importer("--blank", "64Mi", dest=dest)
        st = os.stat(os.path.join(dest, "disk.img")) if rc == 0 else None
        check(rc == 0 and st.st_size == 64 << 20 and st.st_blocks == 0, "blank 64Mi: sparse 64 MiB disk.img")
        # 10. Clone another claim's disk (--pvc-source): the same bytes, holes kept; a missing or too big source.
        src = dest
        with open(os.path.join(src, "disk.img"), "r+b") as f:
            f.seek(5 << 20)
            f.write(b"CLONED DATA")
        dest = fresh_dest(root, "clone")
        rc, res, _, _ = importer("--pvc-source", src, "--size", "64Mi", dest=dest)
        img = os.path.join(dest, "disk.img")
        st = os.stat(img) if rc == 0 else None
        same = rc == 0 and open(img, "rb").read() == open(os.path.join(src, "disk.img"), "rb").read()
        check(rc == 0 and res.get("disk") == img and same and st.st_size == 64 << 20 and st.st_blocks <= 1024,
              f"pvc-source: identical sparse copy ({rc}, {res}, blocks {st.st_blocks if st else None})")
        check(sorted(os.listdir(dest)) == ["disk.img"], "pvc-source: no temporary file left")
        dest = fresh_dest(root, "clone-missing")
        rc, res, _, _ = importer("--pvc-source", fresh_dest(root, "clone-empty"), dest=dest)
        check(rc == 1 and "No such file" in res.get("reason", "") and os.listdir(dest) == [],
              f"pvc-source without disk.img: exit 1, dest empty ({rc}, {res})")
        dest = fresh_dest(root, "clone-small")
        rc, res, _, _ = importer("--pvc-source", src, "--size", "1Mi", dest=dest)
        check(rc == 5 and os.listdir(dest) == [], f"pvc-source larger than the claim: exit 5 ({rc}, {res})")
        # --pvc-source-file: another file of the source claim (a running VM's backup next to its disk.img)
        os.link(os.path.join(src, "disk.img"), os.path.join(src, "disk.img.vmsnapshot-u1"))
        dest = fresh_dest(root, "clone-file")
        rc, res, _, _ = importer("--pvc-source", src, "--pvc-source-file", "disk.img.vmsnapshot-u1", dest=dest)
        img = os.path.join(dest, "disk.img")
        same = rc == 0 and open(img, "rb").read() == open(os.path.join(src, "disk.img"), "rb").read()
        check(same and sorted(os.listdir(dest)) == ["disk.img"], f"pvc-source-file: the named file copied ({rc}, {res})")
        dest = fresh_dest(root, "clone-file-bad")
        rc, res, _, _ = importer("--pvc-source", src, "--pvc-source-file", "../x", dest=dest)
        check(rc != 0 and "file name" in res.get("reason", "") and os.listdir(dest) == [],
              f"pvc-source-file with a path: refused ({rc}, {res})")
        # --dest-file: a hostDisk's image written back, byte for byte (a qcow2 magic in a raw disk stays
        # as it is), beside the directory's other files
        with open(os.path.join(src, "disk.img"), "r+b") as f:
            f.write(b"QFI\xfb")
        dest = fresh_dest(root, "host-dir")
        for name, data in (("vm.img", b"OLD"), ("other.img", b"KEEP")):
            with open(os.path.join(dest, name), "wb") as f:
                f.write(data)
        rc, res, _, _ = importer("--pvc-source", src, "--dest-file", "vm.img", dest=dest)
        img = os.path.join(dest, "vm.img")
        same = rc == 0 and open(img, "rb").read() == open(os.path.join(src, "disk.img"), "rb").read()
        st = os.stat(img) if rc == 0 else None
        check(same and res.get("disk") == img and st.st_blocks <= 1024 and sorted(os.listdir(dest)) == [
            "other.img", "vm.img"] and open(os.path.join(dest, "other.img"), "rb").read() == b"KEEP",
              f"dest-file: DEST/NAME an identical sparse copy, nothing else touched ({rc}, {res})")
        rc, res, _, _ = importer("--pvc-source", src, "--dest-file", "../vm.img", dest=dest)
        check(rc != 0 and "file name" in res.get("reason", "") and open(img, "rb").read(4) == b"QFI\xfb",
              f"dest-file with a path: refused ({rc}, {res})")
        rc = subprocess.run([IMPORTER, "--blank", "1Mi", "--dest-file", "x", "--dest", dest],
                            capture_output=True).returncode
        check(rc == 2, f"--dest-file without --pvc-source: exit 2 (got {rc})")
        rc = subprocess.run([IMPORTER], capture_output=True).returncode
        check(rc == 2, f"no arguments: exit 2 (got {rc})")
        rc = subprocess.run([IMPORTER, "--blank", "1Mi", "--pvc-source", src, "--dest", dest],
                            capture_output=True).returncode
        check(rc == 2, f"two sources: exit 2 (got {rc})")
        rc, res, _, _ = importer("--registry-url", "ftp://x/y", dest=fresh_dest(root, "badref"))
        check(rc == 4 and "docker://" in res.get("reason", ""), f"bad reference: exit 4 ({rc}, {res})")
    finally:
        for r in regs:
            r.stop()
        if http:
            http.terminate()
            http.wait()
        shutil.rmtree(root, ignore_errors=True)
    if failures:
        print(f"{len(failures)} check(s) failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
