#!/usr/bin/env python3
"""Runs one libFuzzer target for a short while as a test: TARGET SEED_DIR WORK_DIR.
New inputs go to WORK_DIR (never into the source tree); a crash leaves its input there as crash-*."""
import os
import sys

target, seeds, work = sys.argv[1:4]
os.makedirs(work, exist_ok=True)
args = [target, f"-max_total_time={os.environ.get('FUZZ_SECONDS', '6')}", "-timeout=10", "-rss_limit_mb=2560",
        # libFuzzer exits 77 on a crash by default, which meson reads as "skipped": make it a failure.
        "-error_exitcode=1", "-timeout_exitcode=1",
        "-print_final_stats=1", f"-artifact_prefix={work}/", work]
if os.path.isdir(seeds):
    args.append(seeds)
os.execv(target, args)
