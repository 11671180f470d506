//! The training-mode layers of the fused step: a shared MLP (1×1 convolution or linear layer,
//! batch norm with batch statistics, LeakyReLU) with its hand-written backward pass, and the
//! row-parallel reductions both need. Every array is row-major `[rows, channels]`.

use rayon::prelude::*;

use randla_engine::kernels::{gemm_at, gemm_rows, transpose};
use randla_model::{Param, StateDict};

use crate::error::{Error, Result};

/// Open3D-ML's batch-norm epsilon.
pub const BN_EPS: f32 = 1e-6;
/// Open3D-ML's batch-norm momentum (PyTorch convention: `new = (1 − m)·old + m·batch`).
pub const BN_MOMENTUM: f32 = 0.01;
/// Rows per parallel task of the reductions.
const ROWS_PER_TASK: usize = 1024;

/// How a layer's weights are stored in the state dict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `{name}.conv.weight [out, in, 1, 1]`, `{name}.conv.bias`.
    Conv,
    /// `{name}.conv.weight [in, out, 1, 1]` (ConvTranspose2d), `{name}.conv.bias`.
    ConvTransposed,
    /// `{name}.weight [out, in]`, `{name}.bias`.
    Linear,
}

/// One trainable tensor: its state-dict name, values and gradient.
#[derive(Debug, Clone)]
pub struct Tensor {
    /// State-dict name.
    pub name: String,
    /// Values (weights are kept `[out, in]` whatever the stored layout).
    pub value: Vec<f32>,
    /// Gradient accumulated by the backward pass.
    pub grad: Vec<f32>,
}

impl Tensor {
    fn new(name: String, value: Vec<f32>) -> Self {
        let grad = vec![0.0; value.len()];
        Tensor { name, value, grad }
    }
}

/// A batch norm's parameters and running statistics.
#[derive(Debug, Clone)]
pub struct Bn {
    prefix: String,
    /// γ.
    pub gamma: Tensor,
    /// β.
    pub beta: Tensor,
    /// Running mean.
    pub mean: Vec<f32>,
    /// Running (unbiased) variance.
    pub var: Vec<f32>,
}

/// What the backward pass of a [`Layer`] needs from its forward pass (besides the input).
#[derive(Debug, Default)]
pub struct Saved {
    /// The normalised pre-activation `x̂ = (z − μ)/σ`, `[rows, out]` (batch-norm layers).
    xhat: Vec<f32>,
    /// `1/σ` per channel.
    inv_std: Vec<f32>,
}

/// A 1×1 convolution or linear layer, optionally followed by a batch norm (trained with batch
/// statistics) and then a LeakyReLU (only after a batch norm, as everywhere in the network).
#[derive(Debug, Clone)]
pub struct Layer {
    kind: Kind,
    /// Input width.
    pub inp: usize,
    /// Output width.
    pub out: usize,
    /// `[out, in]`.
    pub w: Tensor,
    /// `[out]`.
    pub b: Tensor,
    /// The batch norm after the convolution.
    pub bn: Option<Bn>,
    /// LeakyReLU slope (`None`: no activation).
    pub act: Option<f32>,
    /// `w` transposed, `[in, out]`, refreshed by [`Layer::refresh`].
    wt: Vec<f32>,
}

fn param(sd: &StateDict, name: &str) -> Result<Vec<f32>> {
    Ok(sd
        .get(name)
        .map_err(|e| Error::Training(format!("fused trainer: {e}")))?
        .data
        .clone())
}

impl Layer {
    /// Loads `name` from a state dict; `bn` is the batch norm's prefix.
    pub fn load(
        sd: &StateDict,
        name: &str,
        kind: Kind,
        bn: Option<&str>,
        act: Option<f32>,
    ) -> Result<Self> {
        if act.is_some() && bn.is_none() {
            // The backward pass reads the activation's side off the normalised values.
            return Err(Error::Training(format!(
                "fused trainer: {name}: an activation needs a batch norm before it"
            )));
        }
        let (wn, bname) = match kind {
            Kind::Linear => (format!("{name}.weight"), format!("{name}.bias")),
            _ => (format!("{name}.conv.weight"), format!("{name}.conv.bias")),
        };
        let shape = sd
            .get(&wn)
            .map_err(|e| Error::Training(format!("fused trainer: {e}")))?
            .shape
            .clone();
        let raw = param(sd, &wn)?;
        let (inp, out, w) = match kind {
            Kind::ConvTransposed => (shape[0], shape[1], transpose(&raw, shape[0], shape[1])),
            _ => (shape[1], shape[0], raw),
        };
        let bn = match bn {
            Some(p) => Some(Bn {
                prefix: p.to_string(),
                gamma: Tensor::new(format!("{p}.weight"), param(sd, &format!("{p}.weight"))?),
                beta: Tensor::new(format!("{p}.bias"), param(sd, &format!("{p}.bias"))?),
                mean: param(sd, &format!("{p}.running_mean"))?,
                var: param(sd, &format!("{p}.running_var"))?,
            }),
            None => None,
        };
        let mut l = Layer {
            kind,
            inp,
            out,
            w: Tensor::new(wn, w),
            b: Tensor::new(bname.clone(), param(sd, &bname)?),
            bn,
            act,
            wt: Vec::new(),
        };
        l.refresh();
        Ok(l)
    }

    /// Recomputes the transposed weights after the values changed.
    pub fn refresh(&mut self) {
        self.wt = transpose(&self.w.value, self.out, self.inp);
    }

    /// `[out, in]` weights (values or gradients) in the layout the state dict stores them.
    fn stored_weight(&self, w: &[f32]) -> Param {
        match self.kind {
            Kind::ConvTransposed => Param::new(
                vec![self.inp, self.out, 1, 1],
                transpose(w, self.out, self.inp),
            ),
            Kind::Conv => Param::new(vec![self.out, self.inp, 1, 1], w.to_vec()),
            Kind::Linear => Param::new(vec![self.out, self.inp], w.to_vec()),
        }
    }

    /// Writes the layer's values (`grads` false) or gradients (`grads` true) into `sd` under
    /// their state-dict names and layouts; the running statistics go with the values.
    fn store_into(&self, sd: &mut StateDict, grads: bool) {
        let pick = |t: &Tensor| {
            if grads {
                t.grad.clone()
            } else {
                t.value.clone()
            }
        };
        let vector = |d: Vec<f32>| Param::new(vec![self.out], d);
        let w = if grads { &self.w.grad } else { &self.w.value };
        sd.insert(self.w.name.clone(), self.stored_weight(w));
        sd.insert(self.b.name.clone(), vector(pick(&self.b)));
        if let Some(bn) = &self.bn {
            sd.insert(bn.gamma.name.clone(), vector(pick(&bn.gamma)));
            sd.insert(bn.beta.name.clone(), vector(pick(&bn.beta)));
            if !grads {
                sd.insert(
                    format!("{}.running_mean", bn.prefix),
                    vector(bn.mean.clone()),
                );
                sd.insert(format!("{}.running_var", bn.prefix), vector(bn.var.clone()));
            }
        }
    }

    /// Writes the layer's tensors and running statistics (in their stored layouts) into `sd`.
    pub fn store(&self, sd: &mut StateDict) {
        self.store_into(sd, false);
    }

    /// Writes the layer's gradients (in the stored layouts of their weights) into `sd`.
    pub fn store_grads(&self, sd: &mut StateDict) {
        self.store_into(sd, true);
    }

    /// The layer's trainable tensors.
    pub fn tensors_mut(&mut self) -> Vec<&mut Tensor> {
        let mut v = vec![&mut self.w, &mut self.b];
        if let Some(bn) = &mut self.bn {
            v.push(&mut bn.gamma);
            v.push(&mut bn.beta);
        }
        v
    }

    /// `z = x·wᵀ + b` without normalisation or activation: `x [rows, in]` → `[rows, out]`.
    pub fn linear(&self, x: &[f32], rows: usize) -> Vec<f32> {
        debug_assert_eq!(x.len(), rows * self.inp);
        let (inp, out) = (self.inp, self.out);
        let mut z = vec![0f32; rows * out];
        z.par_chunks_mut(ROWS_PER_TASK * out)
            .zip(x.par_chunks(ROWS_PER_TASK * inp))
            .for_each(|(zc, xc)| {
                let r = zc.len() / out;
                gemm_rows(xc, r, inp, &self.wt, out, zc, false);
                for row in zc.chunks_exact_mut(out) {
                    row.iter_mut().zip(&self.b.value).for_each(|(v, b)| *v += b);
                }
            });
        z
    }

    /// Training forward: `x [rows, in]` → `[rows, out]`, batch statistics over the rows (and the
    /// running statistics updated with momentum `mom`); returns what the backward pass needs.
    pub fn forward(&mut self, x: &[f32], rows: usize, mom: f32) -> (Vec<f32>, Saved) {
        let z = self.linear(x, rows); // [rows, out]
        let out = self.out;
        let Some(bn) = &mut self.bn else {
            return (z, Saved::default()); // no activation without a batch norm (checked at load)
        };
        let m = rows as f64;
        let mean: Vec<f64> = col_sums(&z, out).iter().map(|s| s / m).collect();
        let sq = col_sums_centered(&z, out, &mean);
        let var: Vec<f64> = sq.iter().map(|s| s / m).collect();
        let inv_std: Vec<f32> = var
            .iter()
            .map(|&v| 1.0 / ((v as f32) + BN_EPS).sqrt())
            .collect();
        let unbias = if rows > 1 { m / (m - 1.0) } else { 1.0 };
        for o in 0..out {
            bn.mean[o] = (1.0 - mom) * bn.mean[o] + mom * mean[o] as f32;
            bn.var[o] = (1.0 - mom) * bn.var[o] + mom * (var[o] * unbias) as f32;
        }
        let mean32: Vec<f32> = mean.iter().map(|&v| v as f32).collect();
        let (g, b) = (&bn.gamma.value, &bn.beta.value);
        let act = self.act;
        let mut xhat = z;
        let mut y = vec![0f32; rows * out];
        y.par_chunks_mut(ROWS_PER_TASK * out)
            .zip(xhat.par_chunks_mut(ROWS_PER_TASK * out))
            .for_each(|(yc, hc)| {
                for (yr, hr) in yc.chunks_exact_mut(out).zip(hc.chunks_exact_mut(out)) {
                    for o in 0..out {
                        let h = (hr[o] - mean32[o]) * inv_std[o];
                        hr[o] = h;
                        let t = g[o] * h + b[o];
                        yr[o] = match act {
                            Some(s) if t < 0.0 => t * s,
                            _ => t,
                        };
                    }
                }
            });
        (y, Saved { xhat, inv_std })
    }

    /// Backward pass: `dy [rows, out]` (overwritten), the forward input `x [rows, in]` and what
    /// the forward saved → the layer's gradients accumulated, and `dx [rows, in]` when asked.
    pub fn backward(
        &mut self,
        dy: &mut [f32],
        x: &[f32],
        rows: usize,
        saved: &Saved,
        want_dx: bool,
    ) -> Option<Vec<f32>> {
        let out = self.out;
        if let Some(bn) = &mut self.bn {
            let (g, b) = (&bn.gamma.value, &bn.beta.value);
            if let Some(s) = self.act {
                dy.par_chunks_mut(ROWS_PER_TASK * out)
                    .zip(saved.xhat.par_chunks(ROWS_PER_TASK * out))
                    .for_each(|(dc, hc)| {
                        for (dr, hr) in dc.chunks_exact_mut(out).zip(hc.chunks_exact(out)) {
                            for o in 0..out {
                                if g[o] * hr[o] + b[o] < 0.0 {
                                    dr[o] *= s;
                                }
                            }
                        }
                    });
            }
            // Σ dy and Σ dy·x̂ per channel.
            let sums = col_sums2(dy, &saved.xhat, out);
            let m = rows as f32;
            for o in 0..out {
                bn.beta.grad[o] += sums[o].0 as f32;
                bn.gamma.grad[o] += sums[o].1 as f32;
            }
            let mdy: Vec<f32> = sums.iter().map(|s| s.0 as f32 / m).collect();
            let mdyh: Vec<f32> = sums.iter().map(|s| s.1 as f32 / m).collect();
            let scale: Vec<f32> = (0..out).map(|o| g[o] * saved.inv_std[o]).collect();
            dy.par_chunks_mut(ROWS_PER_TASK * out)
                .zip(saved.xhat.par_chunks(ROWS_PER_TASK * out))
                .for_each(|(dc, hc)| {
                    for (dr, hr) in dc.chunks_exact_mut(out).zip(hc.chunks_exact(out)) {
                        for o in 0..out {
                            dr[o] = scale[o] * (dr[o] - mdy[o] - hr[o] * mdyh[o]);
                        }
                    }
                });
        }
        // dz = dy now.
        let db = col_sums(dy, out);
        for o in 0..out {
            self.b.grad[o] += db[o] as f32;
        }
        add_weight_grad(&mut self.w.grad, dy, x, rows, out, self.inp);
        want_dx.then(|| {
            let inp = self.inp;
            let mut dx = vec![0f32; rows * inp];
            dx.par_chunks_mut(ROWS_PER_TASK * inp)
                .zip(dy.par_chunks(ROWS_PER_TASK * out))
                .for_each(|(xc, dc)| {
                    let r = xc.len() / inp;
                    gemm_rows(dc, r, out, &self.w.value, inp, xc, false);
                });
            dx
        })
    }
}

/// The element-wise sum of `parts` (blocks' partial sums, computed in parallel) from `zero`,
/// the blocks added in block order: the result does not depend on how rayon split the work
/// (its `reduce` associates as the work was stolen, so the sums changed from run to run).
fn sum_in_block_order<T: Send>(
    parts: impl IndexedParallelIterator<Item = Vec<T>>,
    zero: Vec<T>,
    add: impl Fn(&mut T, T),
) -> Vec<T> {
    parts
        .collect::<Vec<_>>()
        .into_iter()
        .fold(zero, |mut x, y| {
            x.iter_mut().zip(y).for_each(|(a, b)| add(a, b));
            x
        })
}

/// Per-column sums of `[rows, c]` (f32 within a block of rows, f64 across blocks, added in
/// block order).
fn col_sums(a: &[f32], c: usize) -> Vec<f64> {
    let parts = a.par_chunks(ROWS_PER_TASK * c).map(|chunk| {
        let mut part = vec![0f32; c];
        for row in chunk.chunks_exact(c) {
            part.iter_mut().zip(row).for_each(|(p, &v)| *p += v);
        }
        part.iter().map(|&p| p as f64).collect::<Vec<f64>>()
    });
    sum_in_block_order(parts, vec![0f64; c], |a, b| *a += b)
}

/// Per-column `Σ (v − mean)²` of `[rows, c]`, in f64.
fn col_sums_centered(a: &[f32], c: usize, mean: &[f64]) -> Vec<f64> {
    let m32: Vec<f32> = mean.iter().map(|&m| m as f32).collect();
    let parts = a.par_chunks(ROWS_PER_TASK * c).map(|chunk| {
        let mut part = vec![0f32; c];
        for row in chunk.chunks_exact(c) {
            part.iter_mut()
                .zip(row)
                .zip(&m32)
                .for_each(|((p, &v), &m)| {
                    let d = v - m;
                    *p += d * d
                });
        }
        part.iter().map(|&p| p as f64).collect::<Vec<f64>>()
    });
    sum_in_block_order(parts, vec![0f64; c], |a, b| *a += b)
}

/// Per-column `(Σ a, Σ a·b)` of two `[rows, c]` arrays, in f64.
fn col_sums2(a: &[f32], b: &[f32], c: usize) -> Vec<(f64, f64)> {
    let parts = a
        .par_chunks(ROWS_PER_TASK * c)
        .zip(b.par_chunks(ROWS_PER_TASK * c))
        .map(|(ca, cb)| {
            let (mut s, mut p) = (vec![0f32; c], vec![0f32; c]);
            for (ra, rb) in ca.chunks_exact(c).zip(cb.chunks_exact(c)) {
                for o in 0..c {
                    s[o] += ra[o];
                    p[o] += ra[o] * rb[o];
                }
            }
            s.iter()
                .zip(&p)
                .map(|(&a, &b)| (a as f64, b as f64))
                .collect::<Vec<_>>()
        });
    sum_in_block_order(parts, vec![(0f64, 0f64); c], |a, b| {
        a.0 += b.0;
        a.1 += b.1
    })
}

/// `gw [out, in] += dzᵀ · x` over `rows` rows, parallel over row blocks (each block's product
/// through the register-blocked kernel, reading `dz` down its columns).
pub fn add_weight_grad(gw: &mut [f32], dz: &[f32], x: &[f32], rows: usize, out: usize, inp: usize) {
    debug_assert!(dz.len() >= rows * out && x.len() >= rows * inp);
    let parts = dz[..rows * out]
        .par_chunks(ROWS_PER_TASK * out)
        .zip(x[..rows * inp].par_chunks(ROWS_PER_TASK * inp))
        .map(|(dc, xc)| {
            let r = dc.len() / out;
            let mut part = vec![0f32; out * inp];
            gemm_at(dc, r, out, xc, inp, &mut part, false);
            part
        });
    let sum = sum_in_block_order(parts, vec![0f32; out * inp], |a, b| *a += b);
    gw.iter_mut().zip(sum).for_each(|(g, s)| *g += s);
}

/// `dst[idx[e]] += src[e]` for every row `e` of `src [E, c]` (sequential: deterministic).
pub fn scatter_add(dst: &mut [f32], src: &[f32], idx: &[u32], c: usize) {
    for (row, &i) in src.chunks_exact(c).zip(idx) {
        dst[i as usize * c..][..c]
            .iter_mut()
            .zip(row)
            .for_each(|(d, s)| *d += s);
    }
}

/// `x[idx] [len(idx), c]`.
pub fn gather(x: &[f32], idx: &[u32], c: usize) -> Vec<f32> {
    let mut y = vec![0f32; idx.len() * c];
    y.par_chunks_mut(ROWS_PER_TASK * c)
        .zip(idx.par_chunks(ROWS_PER_TASK))
        .for_each(|(yc, ic)| {
            for (row, &i) in yc.chunks_exact_mut(c).zip(ic) {
                row.copy_from_slice(&x[i as usize * c..][..c]);
            }
        });
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(inp: usize, out: usize, bn: bool, act: Option<f32>) -> Layer {
        let mut sd = StateDict::new();
        let w: Vec<f32> = (0..inp * out)
            .map(|i| ((i * 37 % 17) as f32 - 8.0) * 0.05)
            .collect();
        sd.insert("l.conv.weight", Param::new(vec![out, inp, 1, 1], w));
        sd.insert(
            "l.conv.bias",
            Param::new(vec![out], (0..out).map(|i| i as f32 * 0.01).collect()),
        );
        for (n, v) in [
            ("weight", 1.3f32),
            ("bias", 0.2),
            ("running_mean", 0.0),
            ("running_var", 1.0),
        ] {
            sd.insert(
                format!("l.batch_norm.{n}"),
                Param::new(vec![out], vec![v; out]),
            );
        }
        Layer::load(&sd, "l", Kind::Conv, bn.then_some("l.batch_norm"), act).unwrap()
    }

    /// The loss `Σ y ⊙ c` for fixed random `c`.
    fn loss(l: &mut Layer, x: &[f32], rows: usize, c: &[f32]) -> f64 {
        let (y, _) = l.clone().forward(x, rows, BN_MOMENTUM);
        y.iter()
            .zip(c)
            .map(|(a, b)| (*a as f64) * (*b as f64))
            .sum()
    }

    #[test]
    fn gradients_match_finite_differences() {
        let (rows, inp, out) = (37, 5, 6);
        let x: Vec<f32> = (0..rows * inp).map(|i| ((i as f32) * 0.61).sin()).collect();
        let c: Vec<f32> = (0..rows * out).map(|i| ((i as f32) * 0.23).cos()).collect();
        for (bn, act) in [(true, Some(0.2)), (true, None), (false, None)] {
            let mut l = layer(inp, out, bn, act);
            let (_, saved) = l.clone().forward(&x, rows, BN_MOMENTUM);
            let mut dy = c.clone();
            let dx = l.backward(&mut dy, &x, rows, &saved, true).unwrap();
            let h = 1e-3f32;
            // Input gradient.
            for i in [0, 7, 100, rows * inp - 1] {
                let (mut xp, mut xm) = (x.clone(), x.clone());
                xp[i] += h;
                xm[i] -= h;
                let fd =
                    (loss(&mut l, &xp, rows, &c) - loss(&mut l, &xm, rows, &c)) / (2.0 * h as f64);
                assert!(
                    (fd - dx[i] as f64).abs() < 2e-3 * (1.0 + fd.abs()),
                    "bn {bn} dx[{i}]: {fd} vs {}",
                    dx[i]
                );
            }
            // Weight gradient.
            for i in [0, 3, inp * out - 1] {
                let mut lp = l.clone();
                lp.w.value[i] += h;
                lp.refresh();
                let mut lm = l.clone();
                lm.w.value[i] -= h;
                lm.refresh();
                let fd =
                    (loss(&mut lp, &x, rows, &c) - loss(&mut lm, &x, rows, &c)) / (2.0 * h as f64);
                assert!(
                    (fd - l.w.grad[i] as f64).abs() < 2e-3 * (1.0 + fd.abs()),
                    "bn {bn} dw[{i}]: {fd} vs {}",
                    l.w.grad[i]
                );
            }
            if bn {
                let bnl = l.bn.as_ref().unwrap();
                let mut lp = l.clone();
                lp.bn.as_mut().unwrap().gamma.value[2] += h;
                let mut lm = l.clone();
                lm.bn.as_mut().unwrap().gamma.value[2] -= h;
                let fd =
                    (loss(&mut lp, &x, rows, &c) - loss(&mut lm, &x, rows, &c)) / (2.0 * h as f64);
                assert!((fd - bnl.gamma.grad[2] as f64).abs() < 2e-3 * (1.0 + fd.abs()));
            }
        }
    }

    #[test]
    fn an_activation_without_batch_norm_is_refused() {
        let mut sd = StateDict::new();
        sd.insert("l.conv.weight", Param::new(vec![2, 3, 1, 1], vec![0.1; 6]));
        sd.insert("l.conv.bias", Param::new(vec![2], vec![0.0; 2]));
        assert!(Layer::load(&sd, "l", Kind::Conv, None, None).is_ok());
        let e = Layer::load(&sd, "l", Kind::Conv, None, Some(0.2)).unwrap_err();
        assert!(
            e.to_string()
                .contains("l: an activation needs a batch norm"),
            "{e}"
        );
    }

    #[test]
    fn running_statistics_follow_pytorch() {
        // One channel, values 1, 2, 3, 6: mean 3, unbiased variance 14/3.
        let mut l = layer(1, 1, true, None);
        l.w.value = vec![1.0];
        l.b.value = vec![0.0];
        l.refresh();
        l.forward(&[1.0, 2.0, 3.0, 6.0], 4, BN_MOMENTUM);
        let bn = l.bn.as_ref().unwrap();
        assert!((bn.mean[0] - 0.03).abs() < 1e-7);
        assert!((bn.var[0] - (0.99 + 0.01 * 14.0 / 3.0)).abs() < 1e-6);
    }
}
