"""Open3D-ML's RandLANet forward (eval, no_grad) on one crop, timed in this process, for the
same-session ratios in BENCHMARKS.md. Optionally writes the crop's batch and the model's weights so
that `randla` can run the very same input and its logits can be compared.

Setup: see shared/reference/peers/README.md (torch 2.13 + open3d-cpu 0.20 in a venv).
Usage: THREADS=2 python o3d_forward.py N [REPEAT] [OUT_DIR]
Prints one JSON object: points, threads, median_s, min_s, peak_rss_bytes, params.
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

n = int(sys.argv[1])
repeat = int(sys.argv[2]) if len(sys.argv) > 2 else 5
out_dir = sys.argv[3] if len(sys.argv) > 3 else None
model, b = model_and_batch(n, "test")
model.eval()
times = []
with torch.no_grad():
    logits = model(b)
    for _ in range(repeat):
        t = time.perf_counter()
        logits = model(b)
        times.append(time.perf_counter() - t)
if out_dir:
    from safetensors.numpy import save_file
    t = {"features": b["features"].numpy(), "logits": np.ascontiguousarray(logits.numpy())}
    for i in range(len(b["coords"])):
        t[f"coords.{i}"] = b["coords"][i].numpy()
        for k in ("neighbor_indices", "sub_idx", "interp_idx"):
            t[f"{k}.{i}"] = b[k][i].numpy().astype(np.int64)
    save_file({k: np.ascontiguousarray(v) for k, v in t.items()}, f"{out_dir}/o3d_batch.safetensors")
    torch.save({"model_state_dict": model.state_dict()}, f"{out_dir}/o3d_model.pth")
print(json.dumps({
    "points": int(b["features"].shape[1]), "threads": torch.get_num_threads(),
    "median_s": float(np.median(times)), "min_s": float(min(times)),
    "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    "params": int(sum(p.numel() for p in model.parameters())),
}))
