"""Open3D-ML's whole-cloud inference (RandLANet + SemanticSegmentation.run_inference) with OUR model:
the architecture from MODEL_DIR/config.toml, the weights from MODEL_DIR/weights.safetensors, the
input features of its [input] section. The peer of `randla predict` for issue 7 (BENCHMARKS.md,
"Whole-cloud prediction (issue 7)"); compare the outputs with compare_predictions.py.

Usage: python o3d_run_inference.py MODEL_DIR OUT_PREFIX FILE...
  Each LAS/LAZ FILE runs through its own run_inference call (what a user does: one call per file),
  and its per-point predicted class indices (0..num_classes-1, int16, the file's point order) go to
  OUT_PREFIX<file stem>.npy. Prints one JSON line: points, files, grid_size, num_points,
  run_inference_s (the sum over files; reading the files and building the model are outside it),
  per_file_s, points_per_s, threads, recenter, peak_rss_mb (the whole process's, like
  /usr/bin/time's maximum resident set size).
Environment: NUM_POINTS (crop size; default the config's num_points), THREADS (torch threads,
  default 2), SEED (default 0), RECENTER (see below; default "ours").
Setup: torch 2.13 + open3d-cpu 0.20 + laspy/lazrs + safetensors (shared/reference/peers/README.md).

Weights: weights.safetensors holds Open3D-ML's own state_dict names and shapes (all 270 entries,
BatchNorm running statistics and num_batches_tracked included), so they load with
`load_state_dict(strict=True)` and no renaming; num_batches_tracked is stored as f32 and is cast.

Input convention (the one change to Open3D-ML, RECENTER=ours): our network was trained on crops
whose xyz are recentred to (bounding-box centre x, bounding-box centre y, minimum z) of the crop
(crates/randla-predict/src/lib.rs `run_crop`, crates/randla-train/src/sampler.rs). Open3D-ML 0.20's
RandLANet.transform instead keeps the sampler's points in the frame of the data handed to it (its
`augment` config may recentre x/y (or x/y/z) by the crop's mean; the default config does not recentre at
all). To give Open3D-ML the same model (weights + input convention), this script wraps
`model.transform`: for the duration of each call it wraps the point sampler that run_inference
installed (`model.trans_point_sampler`, the SemSegSpatiallyRegularSampler's min-possibility
sampler) so that the crop's points it returns are translated by -(bbox cx, bbox cy, min z). The
sampler itself (crop choice, possibility update, which uses the untranslated points), the KNN
pyramid, the network and the 0.95/0.05 voting are Open3D-ML's, untouched. The translated points
are what transform then uses both as the first three feature channels and as the coordinates of
the KNN pyramid — as ours does: the network's local spatial encoding reads absolute coordinates,
and KNN is translation-invariant, so the neighbourhoods are the ones Open3D-ML would have found.
  RECENTER=none: Open3D-ML's transform as shipped, default config (no recentring): the crop's
    points in the frame handed to run_inference, here the file's xyz minus its minimum corner
    (as shared/reference/peers/peer_run_inference.py does).
  RECENTER=mean: Open3D-ML's own `augment: {recenter: {dim: [0, 1]}}` (its dataset ymls'
    setting): x and y minus the crop's mean, z as in RECENTER=none.
In every mode the cloud handed to run_inference is the file's xyz minus its minimum corner (f64,
then f32), features = attribute / scale per [input], labels zeros (Open3D-ML's logged accuracy is
meaningless; compare_predictions.py scores the outputs).
"""
import json
import os
import random
import resource
import sys
import time
import tomllib
from pathlib import Path

import laspy
import numpy as np
import torch

torch.set_num_threads(int(os.environ.get("THREADS", "2")))
from open3d.ml.torch.models import RandLANet  # noqa: E402
from open3d.ml.torch.pipelines import SemanticSegmentation  # noqa: E402
from safetensors.numpy import load_file  # noqa: E402


def build_model(model_dir, num_points, recenter, seed):
    cfg = tomllib.loads((Path(model_dir) / "config.toml").read_text())
    m = cfg["model"]
    kwargs = {k: m[k] for k in ("num_neighbors", "num_layers", "num_classes", "sub_sampling_ratio", "in_channels",
                                 "dim_features", "dim_output", "grid_size", "ignored_label_inds") if k in m}
    augment = {"recenter": {"dim": [0, 1]}} if recenter == "mean" else {}
    model = RandLANet(num_points=num_points, augment=augment, seed=seed, **kwargs)
    w = load_file(str(Path(model_dir) / "weights.safetensors"))
    sd = model.state_dict()
    state = {k: torch.from_numpy(v).to(sd[k].dtype) if k in sd else torch.from_numpy(v) for k, v in w.items()}
    model.load_state_dict(state, strict=True)
    if recenter == "ours":
        wrap_transform(model)
    return model, cfg


def wrap_transform(model):
    """Recentres each crop to (bbox cx, bbox cy, min z), leaving sampler, KNN and voting alone."""
    orig_transform = model.transform

    def transform(data, attr, min_possibility_idx=None):
        sampler = model.trans_point_sampler

        def recentred_sampler(*args, **kw):
            pc, idxs, center_point = sampler(*args, **kw)
            lo, hi = pc.min(0), pc.max(0)
            c = np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, lo[2]], dtype=pc.dtype)
            return pc - c, idxs, center_point

        model.trans_point_sampler = recentred_sampler
        try:
            return orig_transform(data, attr, min_possibility_idx)
        finally:
            model.trans_point_sampler = sampler

    model.transform = transform


def read_las(path, inp):
    las = laspy.read(path)
    xyz = np.vstack([las.x, las.y, las.z]).T
    xyz = (xyz - xyz.min(0)).astype(np.float32)
    cols = [np.asarray(las[name], np.float32) / np.float32(s) for name, s in zip(inp["features"], inp["scale"])]
    feat = np.stack(cols, 1).astype(np.float32) if cols else None
    return xyz, feat


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    model_dir, out_prefix, files = sys.argv[1], sys.argv[2], sys.argv[3:]
    recenter = os.environ.get("RECENTER", "ours")
    if recenter not in ("ours", "none", "mean"):
        sys.exit(f"RECENTER must be ours, none or mean, not {recenter!r}")
    seed = int(os.environ.get("SEED", "0"))
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    cfg0 = tomllib.loads((Path(model_dir) / "config.toml").read_text())
    num_points = int(os.environ.get("NUM_POINTS", cfg0["model"]["num_points"]))
    model, cfg = build_model(model_dir, num_points, recenter, seed)
    inp = cfg.get("input", {"features": [], "scale": []})
    pipe = SemanticSegmentation(model=model, dataset=None, device="cpu", num_workers=0)
    total_pts, per_file = 0, []
    for f in files:
        xyz, feat = read_las(f, inp)
        data = {"point": xyz, "feat": feat, "label": np.zeros(len(xyz), np.int32)}
        t = time.perf_counter()
        r = pipe.run_inference(data)
        dt = time.perf_counter() - t
        pred = np.asarray(r["predict_labels"]).astype(np.int16)
        assert len(pred) == len(xyz), (len(pred), len(xyz))
        np.save(f"{out_prefix}{Path(f).name.split('.')[0]}.npy", pred)
        total_pts += len(xyz)
        per_file.append(round(dt, 3))
    s = sum(per_file)
    print(json.dumps({
        "points": total_pts, "files": len(files), "grid_size": cfg["model"]["grid_size"], "num_points": num_points,
        "run_inference_s": round(s, 3), "per_file_s": per_file, "points_per_s": round(total_pts / s),
        "threads": torch.get_num_threads(), "recenter": recenter,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}), flush=True)


if __name__ == "__main__":
    main()
