#!/usr/bin/env python3
"""Prints each test that did not pass in the meson test logs (testlog.json files) given as arguments, with the
last lines of its output.

CI ends with this list, just above its "N passed, N failed" line, so that a reader of only the end of the
output sees what failed and why."""
import json
import os
import sys

TAIL = 25


def main(logs):
    for path in logs:
        try:
            lines = open(path, encoding="utf-8", errors="replace")
        except OSError:
            continue
        for line in lines:
            t = json.loads(line)
            if t.get("result") in ("OK", "SKIP", "EXPECTEDFAIL"):
                continue
            print(f"--- {os.path.basename(path)}: {t.get('name')} {t.get('result')} after {t.get('duration', 0):.1f}s")
            out = (t.get("stdout") or "") + (t.get("stderr") or "")
            for l in out.splitlines()[-TAIL:]:
                print("    " + l)


if __name__ == "__main__":
    main(sys.argv[1:])
