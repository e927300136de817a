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
    for m in re.finditer(r"apt-get install ([^&\n]*)", stage):
        pkgs |= {w for w in m.group(1).split() if not w.startswith("-")}
    bins = re.findall(r"^(?:COPY --from=\S+|RUN install -D)\s+\S*?/usr/bin/(\S+)\s", stage, re.M)
    bins += re.findall(r"^COPY --from=\S+ /out/usr/bin/(\S+) ", stage, re.M)
    return pkgs, sorted(set(bins))


def closure(pkgs):
    """The packages and everything they depend on, as installed here."""
    seen, todo = set(), list(pkgs)
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        out = subprocess.run(["dpkg-query", "-W", "-f=${Depends},${Pre-Depends}", p], capture_output=True,
                             text=True).stdout
        for alt in out.split(","):
            for dep in alt.split("|"):
                name = dep.strip().split(" ")[0].split(":")[0]
                if name:
                    todo.append(name)
    return seen


def lib_package(soname):
    """The Debian package shipping a library, through the dynamic linker's cache."""
    out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    m = re.search(r"^\s*%s \(libc6,x86-64\) => (\S+)" % re.escape(soname), out, re.M)
    if not m:
        return None
    for path in (m.group(1), os.path.realpath(m.group(1)), os.path.realpath(m.group(1)).replace("/usr/lib", "/lib")):
        p = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True)
        if p.returncode == 0:
            return p.stdout.split(":")[0]
    return None


def binary_path(build, name):
    for root, _, files in os.walk(build):
        if name in files and os.access(os.path.join(root, name), os.X_OK) and "meson-" not in root:
            return os.path.join(root, name)
    return None


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
            for so in needed:
                pkg = lib_package(so)
                if pkg is None or pkg.split(":")[0] not in have:
                    print("FAIL %s: %s needs %s (package %s), which the image does not install" % (df, b, so, pkg))
                    bad += 1
            print("ok %s: %s's %d libraries are in the image" % (df, b, len(needed)))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
