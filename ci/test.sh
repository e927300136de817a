#!/usr/bin/env bash
# Sets up and runs every test: installs Debian packages, builds the test guest, builds the project twice
# (gcc plain, clang with ASan+UBSan and the libFuzzer targets) and runs `meson test` on both.
# Ends with the line "N passed, N failed, N skipped".
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

ci/deps.sh || { echo "0 passed, 1 failed"; exit 1; }
# Post-copy migration: the target QEMU runs with no capabilities, so it may only use userfaultfd when
# the node allows it to unprivileged processes (KubeVirt asks the same of its nodes; docs/cluster-live-ops.md).
sysctl -qw vm.unprivileged_userfaultfd=1 || echo "warning: cannot enable vm.unprivileged_userfaultfd" >&2
tests/guest/build.sh "$ROOT/.cache/guest" || { echo "guest build failed" >&2; echo "0 passed, 1 failed"; exit 1; }
# The crds/ images' Debian base (debootstrap from Debian's mirror, cached in .cache/images like the guest) takes
# minutes of downloads on a clean clone: it is made in the background while the other suites run, and suite
# 'images' runs last, on top of it.
crds/build-images.sh --base-only >"$ROOT/build-ci-images-base.log" 2>&1 &
base_pid=$!

passed=0 failed=0 skipped=0
json_logs=()
add_counts() { # parse meson's summary from its log
	local log=$1 ok fail skip to xpass
	ok=$(sed -n 's/^Ok: *\([0-9]*\).*/\1/p' "$log" | tail -1)
	fail=$(sed -n 's/^Fail: *\([0-9]*\).*/\1/p' "$log" | tail -1)
	to=$(sed -n 's/^Timeout: *\([0-9]*\).*/\1/p' "$log" | tail -1)
	xpass=$(sed -n 's/^Unexpected Pass: *\([0-9]*\).*/\1/p' "$log" | tail -1)
	skip=$(sed -n 's/^Skipped: *\([0-9]*\).*/\1/p' "$log" | tail -1)
	passed=$((passed + ${ok:-0}))
	failed=$((failed + ${fail:-0} + ${to:-0} + ${xpass:-0}))
	skipped=$((skipped + ${skip:-0}))
	[ -n "$ok" ] || failed=$((failed + 1)) # meson did not even run
}

run_tests() { # build dir, log tag, meson test options...
	local dir=$1 tag=$2
	shift 2
	meson test -C "$dir" --print-errorlogs --num-processes 2 "$@" ${MESON_TEST_ARGS:-} >"$dir.test-$tag.log" 2>&1
	grep -E '^ *[0-9]+/[0-9]+ ' "$dir.test-$tag.log" >&2
	grep -A40 -E '^=+ [0-9]+/[0-9]+ =+' "$dir.test-$tag.log" | grep -vE '^ *[0-9]+/[0-9]+ ' | head -400 >&2
	add_counts "$dir.test-$tag.log"
	cp "$dir/meson-logs/testlog.json" "$dir.testlog-$tag.json" 2>/dev/null && json_logs+=("$dir.testlog-$tag.json")
}

build() { # name, CC, meson options...
	local name=$1 cc=$2
	shift 2
	local dir="$ROOT/build-ci-$name"
	echo "=== $name build" >&2
	if ! { [ -d "$dir" ] && meson setup --reconfigure "$dir" "$@" >/dev/null ||
		CC=$cc meson setup "$dir" "$@" >/dev/null; } || ! ninja -C "$dir" >"$dir.ninja.log" 2>&1; then
		tail -50 "$dir.ninja.log" >&2
		failed=$((failed + 1))
		return 1
	fi
}

PLAIN="$ROOT/build-ci-plain" ASAN="$ROOT/build-ci-asan"
build plain gcc -Dwerror=true -Dguest_dir="$ROOT/.cache/guest" && plain_ok=1 || plain_ok=0
[ $plain_ok = 1 ] && run_tests "$PLAIN" main --no-suite images
# The sanitizer build skips suite 'slow' (minute-long guest and backoff tests whose code the other suites
# already run under ASan+UBSan): CI stays under its 30 minutes on 2 cores.
build asan clang -Dwerror=true -Dguest_dir="$ROOT/.cache/guest" -Db_sanitize=address,undefined \
	-Db_lundef=false -Dfuzz=true && run_tests "$ASAN" main --no-suite slow --no-suite images
echo "=== images" >&2
wait "$base_pid" || { echo "the images' base could not be made:" >&2; tail -20 "$ROOT/build-ci-images-base.log" >&2; }
[ $plain_ok = 1 ] && run_tests "$PLAIN" images --suite images

# What failed comes last, just above the count: a reader of only the end of the output sees it.
python3 ci/failures.py "${json_logs[@]}"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
