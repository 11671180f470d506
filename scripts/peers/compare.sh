#!/usr/bin/env bash
# Same-session comparisons against the peers. Usage: scripts/peers/compare.sh [VENV]
# VENV: a Python virtual environment with the peers installed (default: the current python3).
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ -n "${1:-}" ]; then . "$1/bin/activate"; fi
cargo build --release -q -p randla-cli
R=target/release/randla
echo "== KNN, 1M uniform points, k = 16, 2 threads"
OMP_NUM_THREADS=2 python3 scripts/peers/knn_bench.py 2>/dev/null | grep -v '^{' || true
for i in 1 2 3; do $R bench knn --points 1000000 --k 16 --threads 2 --json; done
echo "== RandLA-Net forward, 45,056 points, KITTI config, 6 channels, 2 threads"
out=$(mktemp -d)
THREADS=2 python3 scripts/peers/o3d_forward.py 45056 5 "$out"
$R forward --model "$out/o3d_model.pth" --input "$out/o3d_batch.safetensors" -o "$out/ours.safetensors" --force
$R bench model --sizes 1x45056 --repeat 5 --threads 2 --json
rm -rf "$out"
echo "== RandLA-Net train step (forward + backward + Adam), 45,056 points, KITTI config, 2 threads"
THREADS=2 python3 scripts/peers/o3d_train_step.py 45056 3
$R bench train-step --sizes 1x45056 --repeat 3 --threads 2 --json
