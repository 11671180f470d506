#!/usr/bin/env bash
# Accuracy of the model at several subsampling grids (`randla predict --grid-size G`) on the two
# validation tiles, over several sampling seeds: the table of RESULTS.md, "Grid".
#
#   BIN=target/release/randla scripts/grid_vs_accuracy.sh SEEDS GRID... [-- PREDICT_OPTIONS…]
#   e.g. scripts/grid_vs_accuracy.sh 8 0.25 0.3            (and again with -- --votes 2)
#
# Prints, per grid, the mean ± standard deviation over seeds 0..SEEDS-1 of OA, mIoU (4 classes),
# the mean IoU of ground, vegetation and building, and the "other" IoU (both tiles scored
# together, `randla eval … --map 3=5,4=5,64=1`). Needs python3 (standard library only).
set -euo pipefail
seeds=${1:?number of seeds}; shift
grids=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do grids+=("$1"); shift; done
[ $# -gt 0 ] && shift
BIN=${BIN:-target/release/randla}
DATA=${DATA:-data/ign-lidar-hd}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
for g in "${grids[@]}"; do
  for s in $(seq 0 $((seeds - 1))); do
    rm -rf "$OUT/pred"
    "$BIN" predict "$DATA"/test_data_77060_*.laz -o "$OUT/pred" --grid-size "$g" --seed "$s" "$@" >/dev/null 2>&1
    "$BIN" eval "$OUT/pred" "$DATA" --map 3=5,4=5,64=1 --json 2>/dev/null |
      python3 -c 'import json,sys; d=json.load(sys.stdin); c=d["per_class"]
print("'"$g"'", d["oa"], d["miou"], (c["ground"]["iou"] + c["high_vegetation"]["iou"] + c["building"]["iou"]) / 3, c["unclassified"]["iou"])'
  done
done | python3 -c "
import sys, statistics as st
rows = {}
for l in sys.stdin:
    g, *v = l.split()
    rows.setdefault(g, []).append(list(map(float, v)))
for g, r in rows.items():
    cols = list(zip(*r))
    sd = lambda c: st.stdev(c) if len(c) > 1 else 0.0
    print(f'grid {g} m, {len(r)} seeds: ' + ', '.join(
        f'{n} {st.mean(c):.4f} ± {sd(c):.4f}' for n, c in zip(['OA', 'mIoU', 'ground/veg/building', 'other'], cols)))
"
