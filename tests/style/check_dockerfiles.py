#!/usr/bin/env python3
"""Every crds/Dockerfile.* runtime stage installs what its binaries link: for each binary the final stage
copies from the build stage, every shared library the built binary NEEDs (readelf -d) must come from a Debian
package the stage installs, or one those depend on (their Depends, followed through dpkg's database here), or
libc6. A binary that gains a library (gnutls in virt-handler, say) with no matching package in its image
fails here rather than at the container's first start.
usage: check_dockerfiles.py SOURCE_ROOT BUILD_ROOT   (exit 77 when dpkg or readelf is missing)"""
import os
import re
import shutil
import subprocess
import sys

BASE = {"libc6", "libgcc-s1"}  # in debian:12-slim itself


def final_stage(path):
    with open(path) as f:
        text = f.read().replace("\\\n", " ")
    stage = re.split(r"^FROM ", text, flags=re.M)[-1]
    pkgs = set()
    for m in re.finditer(r'pkgs="([^"]*)"', stage):  # RUN pkgs="..." && apt-get install ... $pkgs
        pkgs |= set(m.group(1).split())
    bins = re.findall(r"^(?:COPY --from=\S+|RUN install -D)\s+\S*?/usr/bin/(\S+)\s", stage, re.M)
    bins += re.findall(r"^COPY --from=\S+ /out/usr/bin/(\S+) ", stage, re.M)
    return pkgs, sorted(set(bins))


_DEPENDS = {}


def depends_db():
    """package → the names in its Depends and Pre-Depends, for every package installed here (one dpkg-query)."""
    if not _DEPENDS:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Package}\t${Depends},${Pre-Depends}\n"],
                             capture_output=True, text=True).stdout
        for line in out.splitlines():
            pkg, _, deps = line.partition("\t")
            names = {d.strip().split(" ")[0].split(":")[0] for alt in deps.split(",") for d in alt.split("|")}
            _DEPENDS.setdefault(pkg, set()).update(n for n in names if n)
    return _DEPENDS


def closure(pkgs):
    """The packages and everything they depend on, as installed here."""
    db, seen, todo = depends_db(), set(), list(pkgs)
    while todo:
        p = todo.pop()
        if p not in seen:
            seen.add(p)
            todo.extend(db.get(p, ()))
    return seen


def lib_packages(sonames):
    """soname → the Debian package shipping it (None when unknown), through the dynamic linker's cache and one
    dpkg -S over every candidate path."""
    cache = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    paths = {}
    for so in sonames:
        m = re.search(r"^\s*%s \(libc6,x86-64\) => (\S+)" % re.escape(so), cache, re.M)
        if m:
            real = os.path.realpath(m.group(1))
            paths[so] = [m.group(1), real, real.replace("/usr/lib/", "/lib/"), m.group(1).replace("/usr/lib/", "/lib/")]
    every = sorted({p for ps in paths.values() for p in ps})
    out = subprocess.run(["dpkg", "-S"] + every, capture_output=True, text=True).stdout if every else ""
    owner = {}
    for line in out.splitlines():
        pkg, _, path = line.partition(": ")
        owner[path.strip()] = pkg.split(",")[0].split(":")[0]
    return {so: next((owner[p] for p in paths.get(so, []) if p in owner), None) for so in sonames}


BINARIES = {"virt-api": "virt-api", "virt-handler": "handler", "virt-controller": "controller",
            "virt-launcher": "launcher/supervisor", "virt-launcher-reporter": "reporter", "kvmcheck": "kvmcheck",
            "kvlite-importer": "importer"}


def binary_path(build, name):
    path = os.path.join(build, BINARIES.get(name, "."), name)
    return path if os.access(path, os.X_OK) else None


def main():
    src, build = sys.argv[1], sys.argv[2]
    if not shutil.which("dpkg-query") or not shutil.which("readelf"):
        print("SKIP: needs dpkg and readelf")
        return 77
    crds = os.path.join(src, "crds")
    bad = 0
    for df in sorted(f for f in os.listdir(crds) if f.startswith("Dockerfile.")):
        pkgs, bins = final_stage(os.path.join(crds, df))
        have = closure(pkgs) | BASE
        assert bins, "%s: no binary copied into the final stage" % df
        for b in bins:
            path = binary_path(build, b)
            if not path:
                print("%s: %s not built here, not checked" % (df, b))
                continue
            needed = re.findall(r"\(NEEDED\).*\[(.*)\]", subprocess.run(["readelf", "-d", path], capture_output=True,
                                                                          text=True).stdout)
            owners = lib_packages(needed)
            for so in needed:
                pkg = owners[so]
                if pkg is None or pkg not in have:
                    print("FAIL %s: %s needs %s (package %s), which the image does not install" % (df, b, so, pkg))
                    bad += 1
            print("ok %s: %s's %d libraries are in the image" % (df, b, len(needed)))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
