#!/usr/bin/env bash
# Same-minutes A/B of two `randla` builds on one whole-file prediction (issue 7's 10 M-point LAS):
# runs alternate A B, B A, A B, … (so neither build always follows the other) and each writes a
# fresh output (the previous one is removed before the run, outside its timing: on this machine
# replacing a 385 MB output with --force is sometimes 0.1–0.5 s slower, alternately from one run
# to the next). Prints one line per run: the file's own time and its stages.
# Usage: scripts/ab_predict.sh BIN_A BIN_B ROUNDS [INPUT [predict options…]]
#   e.g. scripts/ab_predict.sh /tmp/randla_old target/release/randla 4 /tmp/big10m.las
#   (/tmp/big10m.las: python3 scripts/bench/make_big_las.py /tmp/big10m.las)
set -euo pipefail
A=${1:?BIN_A}; B=${2:?BIN_B}; R=${3:?ROUNDS}
IN=${4:-/tmp/big10m.las}
shift $(( $# < 4 ? $# : 4 ))
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
run() {
    local bin=$1; shift
    rm -rf "$OUT/pred"
    "$bin" predict "$IN" -o "$OUT/pred" --force "$@" 2>&1 | grep -E "points/s \[" |
        sed "s|.*in \([0-9.]* s\) = .*read \([0-9.]*\) s[^,]*, subsample \([0-9.]*\) s, neighbours \([0-9.]*\) s, network \([0-9.]*\) s.*write \([0-9.]*\) s.*|$(basename "$bin") \1 read \2 subsample \3 neighbours \4 network \5 write \6|"
}
for i in $(seq "$R"); do
    if [ $((i % 2)) = 1 ]; then run "$A" "$@"; run "$B" "$@"; else run "$B" "$@"; run "$A" "$@"; fi
done
