#!/usr/bin/env bash
# Root-cause accuracy on the development suite of ../shared/eval (56 generated
# scenarios with labelled faults): generate the suite once into a cache, replay
# every scenario through the detector with score.py, keep score.py's full table
# and print its breakdowns and final summary line.
#
# usage: scripts/eval_dev.sh [DETECTOR]        (default bin/detector)
#
# With SUITE_KIND=holdout it does the same for the holdout suite
# (scripts/holdout_suite.py: the same generator, other targets, magnitudes,
# seeds and rates), a check that what helps on the development suite
# generalizes.
#
# Environment (all optional):
#   SUITE_KIND dev or holdout                 (default dev)
#   EVAL_DIR   gen.py and score.py            (default ../shared/eval, relative to the repository)
#   DEV_SUITE  the generated suite, ~3 GB     (default ${XDG_CACHE_HOME:-$HOME/.cache}/causeway/KIND-suite);
#              generated only when missing or incomplete
#   DEV_JOBS   generator processes            (default 2)
#   DEV_PRED   the detector's outputs         (default bin/eval-KIND-pred, emptied first)
#   DEV_TABLE  score.py's full output         (default bin/eval-KIND.txt)
#   DEV_LOG    score.py's and the detector's stderr (default bin/eval-KIND.log)
#   SUMMARY    if set, also write "LABEL<TAB>SUMMARY LINE" to this file (make eval uses it)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

detector=${1:-bin/detector}
eval_dir=${EVAL_DIR:-../shared/eval}
kind=${SUITE_KIND:-dev}
suite=${DEV_SUITE:-${XDG_CACHE_HOME:-$HOME/.cache}/causeway/$kind-suite}
jobs=${DEV_JOBS:-2}
pred=${DEV_PRED:-bin/eval-$kind-pred}
table=${DEV_TABLE:-bin/eval-$kind.txt}
log=${DEV_LOG:-bin/eval-$kind.log}

die() { echo "eval_dev: $*" >&2; exit 1; }

for f in gen.py score.py; do
	[ -f "$eval_dir/$f" ] || die "$eval_dir/$f not found: the development suite's generator and scorer are expected in ../shared/eval next to the repository (set EVAL_DIR)"
done
[ -x "$detector" ] || die "detector $detector not found or not executable (make build)"
detector=$(cd "$(dirname "$detector")" && pwd)/$(basename "$detector")

# The scenarios the suite holds, one name a line, and how to write it.
case $kind in
dev)
	expected=$(python3 "$eval_dir/gen.py" --list | sed -n '/^Development suite scenarios/,$s/^  \([^ ][^ ]*\)$/\1/p')
	label="dev suite"
	generate() { python3 "$eval_dir/gen.py" --suite dev --out "$suite" --jobs "$jobs" --quiet; }
	;;
holdout)
	expected=$(python3 scripts/holdout_suite.py --list)
	label="holdout suite"
	generate() { python3 scripts/holdout_suite.py --out "$suite" --jobs "$jobs" --eval-dir "$eval_dir"; }
	;;
*) die "SUITE_KIND=$kind: dev or holdout" ;;
esac
n=$(printf '%s\n' "$expected" | grep -c .) || true
[ "$n" -gt 0 ] || die "no $kind suite scenarios are defined"

# The marker holds the checksum of the generator that wrote the suite: a changed
# generator regenerates it. A suite without the marker (made by hand with
# gen.py) is used when it is complete.
marker=$suite/.causeway-complete
if [ "$kind" = dev ]; then
	gen_sum=$(sha256sum "$eval_dir/gen.py" | cut -d' ' -f1)
else
	gen_sum=$(cat "$eval_dir/gen.py" scripts/holdout_suite.py | sha256sum | cut -d' ' -f1)
fi

complete() {
	# gen.py writes index.json after the last scenario, and each
	# scenario's labels.json after its traces.jsonl.
	[ -f "$suite/index.json" ] || return 1
	if [ -f "$marker" ] && [ "$(cat "$marker")" != "$gen_sum" ]; then
		echo "eval_dev: the generator changed since $suite was generated" >&2
		return 1
	fi
	local s
	while IFS= read -r s; do
		[ -s "$suite/$s/labels.json" ] && [ -s "$suite/$s/traces.jsonl" ] || return 1
	done <<<"$expected"
}

if ! complete; then
	echo "eval_dev: generating the $label ($n scenarios, 2-3 GB) into $suite"
	mkdir -p "$suite"
	# An interrupted generation must not look complete next time.
	rm -f "$suite/index.json" "$marker"
	t0=$SECONDS
	generate
	complete || die "gen.py finished but $suite is incomplete"
	echo "$gen_sum" >"$marker"
	echo "eval_dev: generated in $((SECONDS - t0))s"
fi

mkdir -p "$(dirname "$table")" "$(dirname "$log")" "$pred"
rm -f "$pred"/*.json
echo "eval_dev: replaying $n scenarios of $suite (table: $table, log: $log)"
t0=$SECONDS
if ! python3 "$eval_dir/score.py" --suite "$suite" --pred "$pred" \
	--run "$detector replay --input {input} --format otlp_json --out {out}" >"$table" 2>"$log"; then
	tail -n 20 "$log" >&2
	die "score.py failed (full log: $log)"
fi
echo "eval_dev: scored in $((SECONDS - t0))s"

# Everything after the per-scenario table: run times, breakdowns by fault type
# and topology, the edge line, and the summary line last.
awk 'seen; /^$/ { seen = 1 }' "$table"
line=$(tail -n 1 "$table")
case $line in
AC@1=*) ;;
*) die "the last line of $table is not a summary line: $line" ;;
esac
if [ -n "${SUMMARY:-}" ]; then
	printf '%s (%s, %d scenarios)\t%s\n' "$label" "$eval_dir" "$n" "$line" >"$SUMMARY"
fi
