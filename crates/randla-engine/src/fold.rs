//! Loading layers from a state dict, with each batch norm folded into the 1×1 convolution or
//! linear layer before it: `γ·(Wx + b − μ)/√(σ² + ε) + β = (sW)x + s(b − μ) + β`, `s = γ/√(σ² + ε)`.

use randla_model::StateDict;

use crate::error::Result;
use crate::kernels::Dense;

/// Open3D-ML's batch-norm epsilon.
pub const BN_EPS: f32 = 1e-6;

fn get(sd: &StateDict, name: &str) -> Result<Vec<f32>> {
    Ok(sd.get(name)?.data.clone())
}

/// Folds the batch norm stored under `bn` into `d`.
fn fold_bn(sd: &StateDict, d: &mut Dense, bn: &str) -> Result<()> {
    let gamma = get(sd, &format!("{bn}.weight"))?;
    let beta = get(sd, &format!("{bn}.bias"))?;
    let mean = get(sd, &format!("{bn}.running_mean"))?;
    let var = get(sd, &format!("{bn}.running_var"))?;
    let s: Vec<f32> = (0..d.out)
        .map(|o| gamma[o] / (var[o] + BN_EPS).sqrt())
        .collect();
    let b = (0..d.out)
        .map(|o| s[o] * (d.b[o] - mean[o]) + beta[o])
        .collect();
    d.fold(&s, b);
    Ok(())
}

/// A `SharedMLP` (`{prefix}.conv` 1×1 Conv2d `[out, in, 1, 1]`, with `{prefix}.batch_norm` when `bn`).
pub fn shared_mlp(sd: &StateDict, prefix: &str, bn: bool) -> Result<Dense> {
    let w = sd.get(&format!("{prefix}.conv.weight"))?;
    let (out, inp) = (w.shape[0], w.shape[1]);
    let mut d = Dense::new(
        w.data.clone(),
        get(sd, &format!("{prefix}.conv.bias"))?,
        inp,
        out,
    );
    if bn {
        fold_bn(sd, &mut d, &format!("{prefix}.batch_norm"))?;
    }
    Ok(d)
}

/// A decoder layer: 1×1 ConvTranspose2d (`[in, out, 1, 1]`, transposed here) + batch norm.
pub fn transposed_mlp(sd: &StateDict, prefix: &str) -> Result<Dense> {
    let w = sd.get(&format!("{prefix}.conv.weight"))?;
    let (inp, out) = (w.shape[0], w.shape[1]);
    let mut wt = vec![0f32; out * inp];
    for i in 0..inp {
        for o in 0..out {
            wt[o * inp + i] = w.data[i * out + o];
        }
    }
    let mut d = Dense::new(wt, get(sd, &format!("{prefix}.conv.bias"))?, inp, out);
    fold_bn(sd, &mut d, &format!("{prefix}.batch_norm"))?;
    Ok(d)
}

/// `fc0` (Linear `[8, in]`) with `bn0` folded.
pub fn fc0(sd: &StateDict) -> Result<Dense> {
    let w = sd.get("fc0.weight")?;
    let (out, inp) = (w.shape[0], w.shape[1]);
    let mut d = Dense::new(w.data.clone(), get(sd, "fc0.bias")?, inp, out);
    fold_bn(sd, &mut d, "bn0")?;
    Ok(d)
}

/// A plain Linear layer (`{prefix}.weight [out, in]`, `{prefix}.bias`).
pub fn linear(sd: &StateDict, prefix: &str) -> Result<Dense> {
    let w = sd.get(&format!("{prefix}.weight"))?;
    Ok(Dense::new(
        w.data.clone(),
        get(sd, &format!("{prefix}.bias"))?,
        w.shape[1],
        w.shape[0],
    ))
}

/// Splits a dense layer's input columns at `at`: `(w[:, ..at], w[:, at..])`, biases on the first.
pub fn split_columns(d: &Dense, at: usize) -> (Dense, Dense) {
    let (mut a, mut b) = (
        Vec::with_capacity(d.out * at),
        Vec::with_capacity(d.out * (d.inp - at)),
    );
    for row in d.w.chunks_exact(d.inp) {
        a.extend_from_slice(&row[..at]);
        b.extend_from_slice(&row[at..]);
    }
    (
        Dense::new(a, d.b.clone(), at, d.out),
        Dense::new(b, vec![0.0; d.out], d.inp - at, d.out),
    )
}
