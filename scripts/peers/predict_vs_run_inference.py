"""Summary of a predict_vs_run_inference.sh log: medians and ratios (Open3D-ML median over ours).

Usage: python3 predict_vs_run_inference.py LOG
"""
import json
import statistics as st
import sys

o3d, ours = {}, {"bench2": [], "whole2": [], "whole1": []}
classes = set()
for line in open(sys.argv[1]):
    key, _, val = line.strip().partition(" ")
    if key.startswith("o3d") and val.startswith("{"):
        o3d.setdefault(key, []).append(json.loads(val)["run_inference_s"])
    elif key == "bench2" and val.startswith("{"):
        d = json.loads(val)
        ours[key].append(d["inference_s"])
        classes.add(json.dumps(d["classes"], sort_keys=True))
    elif key in ("whole2", "whole1") and val.isdigit():
        ours[key].append(int(val) / 1000)

peers = dict(o3d)
peers["o3d (both crop sizes)"] = [t for ts in o3d.values() for t in ts]
for name, ts in peers.items():
    m = st.median(ts)
    print(f"{name}: median {m:.2f} s ({min(ts):.2f}-{max(ts):.2f}, n={len(ts)})")
    for k, xs in ours.items():
        if xs:
            print(f"    {k}: median {st.median(xs):.3f} s ({min(xs):.3f}-{max(xs):.3f}, n={len(xs)})"
                  f" -> {m / st.median(xs):.1f}x")
print("bench predict class counts identical across runs:", len(classes) == 1, *classes)
