"""Compares whole-cloud predictions of the same files (issue 7): agreement between runs, and each
run's overall accuracy and mIoU against the files' own classification.

Usage: python compare_predictions.py MODEL_DIR --truth IN.laz... --run NAME PRED... [--run NAME PRED...]
  --truth: the input LAS/LAZ files; their classification codes are the reference.
  --run NAME PRED...: one prediction per truth file, same order, either a LAS/LAZ written by
    `randla predict` (codes, mapped back to class indices through MODEL_DIR/config.toml's
    [classes] codes) or a .npy of per-point class indices (o3d_run_inference.py's output).
Truth codes map to class indices the same way; points whose truth code is in no class are left
out of accuracy and mIoU (agreement counts every point). A predicted code in no class is an error.
mIoU: the mean over classes present in the truth or the prediction. Agreement: the fraction of
points where a run predicts the same class as the first run.
Prints a table, then one JSON line with every number.
"""
import argparse
import json
import tomllib
from pathlib import Path

import laspy
import numpy as np


def code_map(model_dir):
    cfg = tomllib.loads((Path(model_dir) / "config.toml").read_text())
    lut = np.full(65536, -1, np.int16)
    for i, codes in enumerate(cfg["classes"]["codes"]):
        for c in codes:
            lut[c] = i
    return lut, cfg["classes"]["names"], cfg["model"]["num_classes"]


def load_pred(path, lut):
    if path.endswith(".npy"):
        return np.load(path).astype(np.int16)
    cls = lut[np.asarray(laspy.read(path).classification, np.int64)]
    if (cls < 0).any():
        raise SystemExit(f"{path}: {int((cls < 0).sum())} points carry a code in no class")
    return cls


def scores(pred, truth, nc):
    ok = truth >= 0
    p, t = pred[ok], truth[ok]
    cm = np.bincount(t.astype(np.int64) * nc + p, minlength=nc * nc).reshape(nc, nc)
    inter = np.diag(cm).astype(np.float64)
    union = cm.sum(0) + cm.sum(1) - np.diag(cm)
    iou = [float(inter[c] / union[c]) if union[c] else None for c in range(nc)]
    present = [v for v in iou if v is not None]
    return {"oa": float(inter.sum() / max(cm.sum(), 1)), "miou": float(np.mean(present)), "iou": iou, "scored": int(ok.sum())}, cm


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir")
    ap.add_argument("--truth", nargs="+", required=True)
    ap.add_argument("--run", nargs="+", action="append", required=True, metavar=("NAME", "PRED"))
    a = ap.parse_args()
    lut, names, nc = code_map(a.model_dir)
    truths = [lut[np.asarray(laspy.read(f).classification, np.int64)] for f in a.truth]
    runs = {}
    for r in a.run:
        name, preds = r[0], r[1:]
        if len(preds) != len(a.truth):
            raise SystemExit(f"run {name}: {len(preds)} predictions for {len(a.truth)} truth files")
        runs[name] = [load_pred(p, lut) for p in preds]
        for p, t, f in zip(runs[name], truths, preds):
            if len(p) != len(t):
                raise SystemExit(f"{f}: {len(p)} points, its truth file has {len(t)}")
    first = next(iter(runs))
    out = {"classes": names, "runs": {}}
    labels = [Path(f).name.split(".")[0] for f in a.truth] + ["all"]
    print(f"{'run':<16} {'file':<34} {'agree':>7} {'OA':>7} {'mIoU':>7}  IoU per class ({', '.join(names)})")
    for name, preds in runs.items():
        rows = {}
        parts = [(p, t, q) for p, t, q in zip(preds, truths, runs[first])]
        parts.append(tuple(np.concatenate(x) for x in zip(*parts)))
        for lab, (p, t, q) in zip(labels, parts):
            s, _ = scores(p, t, nc)
            s["agreement_with_" + first] = float((p == q).mean())
            s["points"] = int(len(p))
            rows[lab] = s
            iou = ", ".join("-" if v is None else f"{v:.3f}" for v in s["iou"])
            print(f"{name:<16} {lab:<34} {s['agreement_with_' + first]:7.4f} {s['oa']:7.4f} {s['miou']:7.4f}  {iou}")
        out["runs"][name] = rows
    print(json.dumps(out))


if __name__ == "__main__":
    main()
