#!/usr/bin/env python3
"""Every C source and header of the project is formatted as the checked-in .clang-format says.
usage: check_format.py SOURCE_ROOT   (exit 77 when clang-format is not installed)"""
import os
import shutil
import subprocess
import sys

root = sys.argv[1]
tool = shutil.which("clang-format")
if not tool:
    print("SKIP: clang-format is not installed (ci/deps.sh installs it)")
    sys.exit(77)
files = []
for top, dirs, names in os.walk(root):
    dirs[:] = [d for d in dirs if not d.startswith((".", "build"))]
    files += [os.path.join(top, n) for n in names if n.endswith((".c", ".h"))]
files.sort()
bad = []
for i in range(0, len(files), 50):
    p = subprocess.run([tool, "--dry-run", "--Werror", *files[i:i + 50]], capture_output=True, text=True)
    if p.returncode != 0:
        bad += sorted({line.split(":", 1)[0] for line in p.stderr.splitlines() if ": error:" in line})
for f in bad:
    print("not formatted: %s  (clang-format -i %s)" % (os.path.relpath(f, root), os.path.relpath(f, root)))
print("%d files checked, %d not formatted" % (len(files), len(bad)))
sys.exit(1 if bad else 0)
