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
from open3d.ml.torch.models import RandLANet  # noqa: E402

n = int(sys.argv[1])
repeat = int(sys.argv[2]) if len(sys.argv) > 2 else 5
out_dir = sys.argv[3] if len(sys.argv) > 3 else None
rng = np.random.default_rng(0)
# A LiDAR-like scene: ground with a third of the points spread up to 12 m (as the Rust benches).
m = int(n * 1.3)
pts = np.empty((m, 3), np.float32)
pts[:, :2] = rng.random((m, 2)) * 40.0
pts[:, 2] = np.where(np.arange(m) % 3 == 0, rng.random(m) * 12.0, rng.random(m) * 0.1)
feat = rng.random((m, 3)).astype(np.float32)
lab = rng.integers(0, 7, m).astype(np.int32)
model = RandLANet(num_classes=7, num_points=n, in_channels=6, grid_size=0.01, ignored_label_inds=[])
model.device = torch.device("cpu")
model.eval()
data = model.preprocess({"point": pts, "feat": feat, "label": lab}, {"split": "test"})
inp = model.transform(data, {"split": "test"})
b = {k: [torch.from_numpy(np.ascontiguousarray(a)).unsqueeze(0) for a in inp[k]]
     for k in ("coords", "neighbor_indices", "sub_idx", "interp_idx")}
b["features"] = torch.from_numpy(np.ascontiguousarray(inp["features"])).unsqueeze(0)
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
