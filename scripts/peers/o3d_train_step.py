"""Open3D-ML's RandLANet train step (training mode: batch statistics and dropout; forward,
cross-entropy, backward, Adam lr 1e-2) on one crop, timed in this process, for the same-session
ratios in BENCHMARKS.md ("Train step (issue 5)").

Derived from the team's shared/reference/peers/o3dml_randlanet_bench.py (its train-step part:
same model arguments, loss, optimiser and step), made to take the point count, to use the
LiDAR-like crop of o3d_forward.py (o3d_crop.py), to run a warm-up step and to print one JSON object.

Setup: see shared/reference/peers/README.md (torch 2.13 + open3d-cpu 0.20 in a venv).
Usage: THREADS=2 python o3d_train_step.py N [REPEAT]
Prints one JSON object: points, threads, median_s, min_s, step_s, losses,
peak_rss_bytes (the process peak, ru_maxrss), rss_before_train_bytes, params.
"""
import json
import os
import resource
import sys
import time

import numpy as np
import torch

torch.set_num_threads(int(os.environ.get("THREADS", "2")))
from o3d_crop import model_and_batch  # noqa: E402


def peak_rss_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


n = int(sys.argv[1])
repeat = int(sys.argv[2]) if len(sys.argv) > 2 else 3
model, b = model_and_batch(n, "train")
rss_before = peak_rss_bytes()
model.train()
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
lossf = torch.nn.CrossEntropyLoss()


def step():
    out = model(b)  # (B, N, C)
    loss = lossf(out.reshape(-1, out.shape[-1]), b["labels"].reshape(-1))
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()


losses = [step()]  # warm-up
times = []
for _ in range(repeat):
    t = time.perf_counter()
    losses.append(step())
    times.append(time.perf_counter() - t)
print(json.dumps({
    "points": int(b["features"].shape[1]), "threads": torch.get_num_threads(),
    "median_s": float(np.median(times)), "min_s": float(min(times)),
    "step_s": [round(x, 3) for x in times], "losses": [round(x, 4) for x in losses],
    "peak_rss_bytes": peak_rss_bytes(), "rss_before_train_bytes": rss_before,
    "params": int(sum(p.numel() for p in model.parameters())),
}))
