#!/usr/bin/env bash
# Runs every libFuzzer target of a -Dfuzz=true build for a long while and prints, per target, the
# executions, coverage and crashes as a markdown table (the one in docs/fuzzing.md). A crash does not end
# the target's run: the input is kept as an artifact and fuzzing restarts until the time is used up.
#
#   scripts/fuzz-long.sh [-t SECONDS] [-j JOBS] [-o OUTDIR] BUILD_DIR [TARGET...]
#
# -t  seconds per target (default 300)     -j  targets run in parallel (default 1)
# -o  work dir (default BUILD_DIR/fuzz-long): OUTDIR/<target>/{corpus,artifacts,log}
# Seeds come from tests/fuzz/corpus/<target>/ and are never written to; new inputs stay in OUTDIR.
set -euo pipefail

seconds=300 jobs=1 out=
while getopts "t:j:o:h" opt; do
	case $opt in
	t) seconds=$OPTARG ;;
	j) jobs=$OPTARG ;;
	o) out=$OPTARG ;;
	*) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; [ "$opt" = h ] && exit 0 || exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || { echo "fuzz-long.sh: BUILD_DIR is required (try -h)" >&2; exit 2; }
build=$(cd "$1" && pwd)
shift
src=$(cd "$(dirname "$0")/.." && pwd)
out=${out:-$build/fuzz-long}
# as in meson's test_env: a sanitizer report is a crash, not a warning to scroll past
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
	while IFS= read -r t; do targets+=("$t"); done < <(find "$build" -path "$out" -prune -o -type f -perm -u+x \
		-name 'fuzz-*' -print | grep -v '\.p/' | sort)
fi
[ ${#targets[@]} -gt 0 ] || { echo "fuzz-long.sh: no fuzz-* executables in $build (configure with -Dfuzz=true)" >&2; exit 2; }

# One target: restart after each crash until the time is used up; write a summary line.
run_target() {
	local exe=$1 name dir start now left runs=0 crashes=0 execs=0 cov=0 rc n c
	name=$(basename "$exe")
	[ -x "$exe" ] || exe=$(find "$build" -type f -name "$name" -perm -u+x | grep -v '\.p/' | head -1)
	dir="$out/$name"
	mkdir -p "$dir/corpus" "$dir/artifacts"
	local seeds=()
	[ -d "$src/tests/fuzz/corpus/$name" ] && seeds=("$src/tests/fuzz/corpus/$name")
	: >"$dir/log"
	start=$(date +%s)
	while :; do
		now=$(date +%s)
		left=$((seconds - (now - start)))
		[ "$left" -gt 0 ] && [ "$runs" -lt 50 ] || break
		runs=$((runs + 1))
		rc=0
		"$exe" -max_total_time="$left" -timeout=10 -rss_limit_mb=2560 -print_final_stats=1 \
			-artifact_prefix="$dir/artifacts/" "$dir/corpus" "${seeds[@]}" \
			>"$dir/run.log" 2>&1 || rc=$?
		cat "$dir/run.log" >>"$dir/log"
		n=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$dir/run.log" | tail -1 | awk '{print $2}' || true)
		c=$(grep -oE '(DONE|NEW|REDUCE|pulse|INITED) +cov: [0-9]+' "$dir/run.log" | tail -1 | awk '{print $NF}' || true)
		execs=$((execs + ${n:-0}))
		cov=${c:-$cov}
		[ "$rc" -eq 0 ] || crashes=$((crashes + 1))
	done
	printf '| %s | %d | %d | %s | %d | %d | %s |\n' "$name" "$seconds" "$execs" "$((execs / (seconds > 0 ? seconds : 1)))" \
		"$cov" "$crashes" "$(ls "$dir/artifacts" | head -3 | tr '\n' ' ')" >"$dir/summary"
}

echo "fuzz-long.sh: ${#targets[@]} targets, ${seconds}s each, $jobs at a time, work dir $out" >&2
pids=()
for t in "${targets[@]}"; do
	run_target "$t" &
	pids+=($!)
	while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
done
wait
echo "| target | seconds | executions | exec/s | coverage (edges) | crashes | artifacts |"
echo "|---|---|---|---|---|---|---|"
for t in "${targets[@]}"; do cat "$out/$(basename "$t")/summary"; done
