#!/usr/bin/env bash
# Same-session speed ratio of `randla predict` against Open3D-ML's `run_inference` (issue 7), on
# the two validation tiles, with the shipped model's weights loaded into Open3D-ML.
# Each round: Open3D-ML with 8,192-point crops (the model's) and 45,056-point crops (the issue's
# anchor), then ours: `randla bench predict --votes 2` three times (the span run_inference is timed
# on: files read and model built before, nothing written), the whole `randla predict --votes 2`
# process three times and one vote twice (millisecond timer). Prints one line per run; summarise
# with predict_vs_run_inference.py LOG.
# Usage: VENV=/tmp/o3dvenv BIN=target/release/randla OUT=/tmp/o3dcmp ROUNDS=3 \
#        scripts/peers/predict_vs_run_inference.sh > LOG
set -u
cd "$(dirname "$0")/../.."
. "${VENV:?the Open3D-ML venv of shared/reference/peers/README.md}/bin/activate"
B=${BIN:-target/release/randla}; R=${OUT:-/tmp/o3dcmp}
F="data/ign-lidar-hd/test_data_77060_627760_LA93_IGN69.laz data/ign-lidar-hd/test_data_77060_627755_LA93_IGN69.laz"
mkdir -p "$R"
ms() { local s e; s=$(date +%s%N); "$@" >/dev/null 2>&1; e=$(date +%s%N); echo $(((e - s) / 1000000)); }
for r in $(seq "${ROUNDS:-3}"); do
    echo "round $r $(date +%T) load $(cut -d' ' -f1 /proc/loadavg)"
    for n in 8192 45056; do
        echo "o3d$n $(NUM_POINTS=$n python scripts/peers/o3d_run_inference.py models/default "$R/o3d${n}_" $F 2>/dev/null | tail -1)"
    done
    for _ in 1 2 3; do echo "bench2 $($B bench predict $F --votes 2 --json 2>/dev/null)"; done
    for _ in 1 2 3; do echo "whole2 $(ms $B predict $F -o "$R/ours2" --votes 2 --force)"; done
    for _ in 1 2; do echo "whole1 $(ms $B predict $F -o "$R/ours1" --force)"; done
done
