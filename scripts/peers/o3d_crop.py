"""The crop o3d_forward.py and o3d_train_step.py run Open3D-ML's RandLANet on: a LiDAR-like scene
(ground with a third of the points spread up to 12 m, as the Rust benches), 7 random classes,
through the model's own preprocess + transform, as a batch of one."""
import numpy as np
import torch
from open3d.ml.torch.models import RandLANet


def model_and_batch(n, split):
    """A 7-class RandLANet (6 input channels, num_points n) and its batch for one crop of n points.
    `split` "test" gives no labels, "train" adds b["labels"] (int64)."""
    rng = np.random.default_rng(0)
    m = int(n * 1.3)
    pts = np.empty((m, 3), np.float32)
    pts[:, :2] = rng.random((m, 2)) * 40.0
    pts[:, 2] = np.where(np.arange(m) % 3 == 0, rng.random(m) * 12.0, rng.random(m) * 0.1)
    feat = rng.random((m, 3)).astype(np.float32)
    lab = rng.integers(0, 7, m).astype(np.int32)
    model = RandLANet(num_classes=7, num_points=n, in_channels=6, grid_size=0.01, ignored_label_inds=[])
    model.device = torch.device("cpu")
    data = model.preprocess({"point": pts, "feat": feat, "label": lab}, {"split": split})
    inp = model.transform(data, {"split": split})
    b = {k: [torch.from_numpy(np.ascontiguousarray(a)).unsqueeze(0) for a in inp[k]]
         for k in ("coords", "neighbor_indices", "sub_idx", "interp_idx")}
    b["features"] = torch.from_numpy(np.ascontiguousarray(inp["features"])).unsqueeze(0)
    if split != "test":
        b["labels"] = torch.from_numpy(np.ascontiguousarray(inp["labels"])).unsqueeze(0).long()
    return model, b
