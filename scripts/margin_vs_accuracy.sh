#!/usr/bin/env bash
# Paired accuracy of a tile margin against the default one, on the two validation tiles cut into
# small tiles (so that margins matter), over several sampling seeds.
#
#   BIN=target/release/randla scripts/margin_vs_accuracy.sh TILE_POINTS MARGIN_M SEEDS
#
# Prints the mean and standard error of OA(margin) − OA(default) and of the mIoU difference over
# tile × seed pairs, and the default's mean OA and mIoU. Needs python3 (standard library only).
set -euo pipefail
tp=${1:?tile points}; margin=${2:?margin in metres}; seeds=${3:?number of seeds}
BIN=${BIN:-target/release/randla}
DATA=${DATA:-../shared/data/ign-lidar-hd}
TILES="test_data_77060_627760_LA93_IGN69 test_data_77060_627755_LA93_IGN69"
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
inputs=()
for t in $TILES; do inputs+=("$DATA/$t.laz"); done
scores() { # FILE TRUTH -> "oa miou"
  "$BIN" eval "$1" "$2" --map 3=5,4=5,64=1 --json |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["oa"], d["miou"])'
}
for s in $(seq 0 $((seeds - 1))); do
  "$BIN" predict "${inputs[@]}" -o "$OUT/a" --force --tile-points "$tp" --margin "$margin" --seed "$s" >/dev/null 2>&1
  "$BIN" predict "${inputs[@]}" -o "$OUT/b" --force --tile-points "$tp" --seed "$s" >/dev/null 2>&1
  for t in $TILES; do
    echo "$(scores "$OUT/a/$t.laz" "$DATA/$t.laz") $(scores "$OUT/b/$t.laz" "$DATA/$t.laz")"
  done
done | python3 -c "
import sys, statistics as st
r = [tuple(map(float, l.split())) for l in sys.stdin]
d_oa = [a - c for a, b, c, e in r]
d_mi = [b - e for a, b, c, e in r]
se = lambda x: st.stdev(x) / len(x) ** 0.5
print(f'tiles of $tp points, margin $margin m against the default: {len(r)} pairs, '
      f'OA {st.mean(d_oa):+.4f} ± {se(d_oa):.4f}, mIoU {st.mean(d_mi):+.4f} ± {se(d_mi):.4f}; '
      f'default OA {st.mean(c for a, b, c, e in r):.4f}, mIoU {st.mean(e for a, b, c, e in r):.4f}')
"
