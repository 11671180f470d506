//! The fused training step: RandLA-Net's forward in training mode (batch statistics, dropout),
//! the class-weighted cross-entropy, a hand-written backward pass and Adam, on plain arrays with
//! the fused engine's kernels, instead of burn's autodiff.
//!
//! Same network, same names and same mathematics as `randla-burn` in training mode (checked
//! against burn's autodiff gradients in `tests/fused_gradients.rs`), with three differences of
//! method:
//! - the batch is one set of rows: crop `b`'s level-`l` points are rows `b·N_l …`, its indices
//!   offset accordingly (batch norms take statistics over every crop, as in the reference);
//! - the feature half of each attention score layer runs per point, not per neighbour
//!   (`W·h[nb] = (W·h)[nb]`), forward and backward; no concatenated `[E, C]` input exists;
//! - scatter-adds (the backward of every gather) run sequentially and parallel sums add their
//!   blocks' partial sums in block order, so results are deterministic.
//!
//! Dropout masks come from the trainer's own seeded generator (not burn's).

mod attention;
mod block;
mod ops;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use randla_model::{Batch, RandLaNetConfig, StateDict};

use crate::adam::Adam;
use crate::error::{Error, Result};
use block::{Block, Tape};
use ops::{Kind, Layer, Saved, gather, scatter_add};

/// LeakyReLU slope of `bn0`, `mlp`, the decoder and the head.
const SLOPE: f32 = 0.2;
/// Open3D-ML's dropout before the last layer of the head.
pub const HEAD_DROPOUT: f32 = 0.5;

/// RandLA-Net's weights with their gradients and Adam state, trained by the fused step.
#[derive(Debug, Clone)]
pub struct FusedTrainer {
    config: RandLaNetConfig,
    base: StateDict,
    fc0: Layer,
    blocks: Vec<Block>,
    mlp: Layer,
    decoder: Vec<Layer>,
    head: [Layer; 3],
    /// Dropout probability before the last head layer ([`HEAD_DROPOUT`] by default).
    pub dropout: f32,
    /// Batch-norm running-average momentum (PyTorch convention; Open3D-ML's 0.01 by default).
    pub bn_momentum: f32,
    rng: ChaCha8Rng,
}

/// The batch as one set of rows per level, indices offset per crop.
struct Rows {
    n: Vec<usize>,
    nb: Vec<Vec<u32>>,
    sub: Vec<Vec<u32>>,
    up: Vec<Vec<u32>>,
}

impl Rows {
    fn new(batch: &Batch) -> Self {
        let (bs, k, l) = (batch.batch_size, batch.k, batch.num_layers());
        let s = &batch.sizes;
        let offset = |v: &[u32], per: usize, base: usize| -> Vec<u32> {
            v.iter()
                .enumerate()
                .map(|(j, &i)| i + ((j / per) * base) as u32)
                .collect()
        };
        Rows {
            n: s.iter().map(|&n| n * bs).collect(),
            nb: (0..l)
                .map(|i| offset(&batch.neighbors[i], s[i] * k, s[i]))
                .collect(),
            sub: (0..l)
                .map(|i| offset(&batch.sub_idx[i], s[i + 1] * k, s[i]))
                .collect(),
            up: (0..l)
                .map(|i| offset(&batch.interp_idx[i], s[i], s[i + 1]))
                .collect(),
        }
    }
}

impl FusedTrainer {
    /// Loads `weights` (checked against `config`); `seed` seeds the dropout masks.
    pub fn new(config: &RandLaNetConfig, weights: &StateDict, seed: u64) -> Result<Self> {
        config
            .validate()
            .map_err(|e| Error::Training(format!("fused trainer: {e}")))?;
        weights
            .check(config)
            .map_err(|e| Error::Training(format!("fused trainer: {e}")))?;
        let smlp = |name: &str, kind: Kind, act: Option<f32>, bn: bool| {
            let bn_name = format!("{name}.batch_norm");
            Layer::load(weights, name, kind, bn.then_some(bn_name.as_str()), act)
        };
        Ok(FusedTrainer {
            config: config.clone(),
            base: weights.clone(),
            fc0: Layer::load(weights, "fc0", Kind::Linear, Some("bn0"), Some(SLOPE))?,
            blocks: (0..config.num_layers)
                .map(|i| Block::load(weights, i))
                .collect::<Result<_>>()?,
            mlp: smlp("mlp", Kind::Conv, Some(SLOPE), true)?,
            decoder: (0..config.num_layers)
                .map(|j| {
                    smlp(
                        &format!("decoder.{j}"),
                        Kind::ConvTransposed,
                        Some(SLOPE),
                        true,
                    )
                })
                .collect::<Result<_>>()?,
            head: [
                smlp("fc1.0", Kind::Conv, Some(SLOPE), true)?,
                smlp("fc1.1", Kind::Conv, Some(SLOPE), true)?,
                smlp("fc1.3", Kind::Conv, None, false)?,
            ],
            dropout: HEAD_DROPOUT,
            bn_momentum: ops::BN_MOMENTUM,
            rng: ChaCha8Rng::seed_from_u64(seed),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &RandLaNetConfig {
        &self.config
    }

    /// Restarts the dropout masks' generator from `seed`.
    pub fn reseed(&mut self, seed: u64) {
        self.rng = ChaCha8Rng::seed_from_u64(seed);
    }

    fn layers_mut(&mut self) -> Vec<&mut Layer> {
        let mut v: Vec<&mut Layer> = vec![&mut self.fc0];
        for b in &mut self.blocks {
            v.extend(b.layers_mut());
        }
        v.push(&mut self.mlp);
        v.extend(self.decoder.iter_mut());
        v.extend(self.head.iter_mut());
        v
    }

    fn layers(&self) -> Vec<&Layer> {
        let mut v: Vec<&Layer> = vec![&self.fc0];
        for b in &self.blocks {
            v.extend(b.layers());
        }
        v.push(&self.mlp);
        v.extend(self.decoder.iter());
        v.extend(self.head.iter());
        v
    }

    /// The weights and running statistics now, under Open3D-ML's names.
    pub fn state_dict(&self) -> StateDict {
        let mut sd = self.base.clone();
        for l in self.layers() {
            l.store(&mut sd);
        }
        sd
    }

    /// The gradients of the last [`FusedTrainer::loss_and_gradients`], under the names and in the
    /// shapes of the weights they belong to (trainable tensors only).
    pub fn gradients(&self) -> StateDict {
        let mut sd = StateDict::new();
        for l in self.layers() {
            l.store_grads(&mut sd);
        }
        sd
    }

    /// Forward in training mode, class-weighted cross-entropy (labels ≥ the class count are
    /// ignored; the loss is `Σ w_y·(−log p_y) / #valid`, as [`crate::weighted_cross_entropy`]),
    /// and the backward pass: the gradients are replaced by this batch's. Returns the loss.
    ///
    /// `labels`: B·N training classes in the batch's point order.
    pub fn loss_and_gradients(
        &mut self,
        batch: &Batch,
        labels: &[u32],
        class_weights: &[f32],
    ) -> Result<f64> {
        batch
            .validate(&self.config)
            .map_err(|e| Error::Training(format!("fused trainer: {e}")))?;
        let classes = self.config.num_classes;
        let rows = Rows::new(batch);
        let r0 = rows.n[0];
        if labels.len() != r0 || class_weights.len() != classes {
            return Err(Error::Training(format!(
                "{} labels and {} class weights for {r0} points and {classes} classes",
                labels.len(),
                class_weights.len()
            )));
        }
        for l in self.layers_mut() {
            for t in l.tensors_mut() {
                t.grad.fill(0.0);
            }
        }
        let k = batch.k;
        let mom = self.bn_momentum;
        let layers = self.config.num_layers;

        // ---- forward ----
        let (x0, s_fc0) = self.fc0.forward(&batch.features, r0, mom); // [R0, 8]
        let mut inputs: Vec<Vec<f32>> = vec![x0]; // encoder inputs x_l, [R_l, d_in]
        let mut tapes: Vec<Tape> = Vec::with_capacity(layers);
        let mut argmax: Vec<Vec<u32>> = Vec::with_capacity(layers);
        let mut y0: Vec<f32> = Vec::new(); // skip of level 0, [R0, 2·o_0]
        for l in 0..layers {
            let (y, tape) = self.blocks[l].forward(
                &inputs[l],
                &batch.coords[l],
                &rows.nb[l],
                rows.n[l],
                k,
                mom,
            ); // [R_l, 2o]
            tapes.push(tape);
            let c = 2 * self.blocks[l].d_out;
            let (pooled, am) = max_pool(&y, c, &rows.sub[l], rows.n[l + 1], k); // [R_{l+1}, 2o]
            argmax.push(am);
            if l == 0 {
                y0 = y;
            }
            inputs.push(pooled);
        }
        let (mut x, s_mlp) = self.mlp.forward(&inputs[layers], rows.n[layers], mom); // [R_L, C]
        let mut dec_in: Vec<Vec<f32>> = Vec::with_capacity(layers);
        let mut dec_saved: Vec<Saved> = Vec::with_capacity(layers);
        let mut dec_up_width: Vec<usize> = Vec::with_capacity(layers); // channels upsampled
        for j in 0..layers {
            let level = layers - 1 - j;
            let skip: &[f32] = if level == 0 { &y0 } else { &inputs[level] };
            let n = rows.n[level];
            let cs = skip.len() / n;
            let cu = x.len() / rows.n[level + 1];
            let up = gather(&x, &rows.up[level], cu); // [R_level, cu]
            let mut cat = vec![0f32; n * (cs + cu)]; // [R_level, cs + cu]
            cat.par_chunks_mut(cs + cu)
                .zip(skip.par_chunks(cs).zip(up.par_chunks(cu)))
                .for_each(|(row, (s, u))| {
                    row[..cs].copy_from_slice(s);
                    row[cs..].copy_from_slice(u);
                });
            let (y, saved) = self.decoder[j].forward(&cat, n, mom); // [R_level, out]
            dec_in.push(cat);
            dec_saved.push(saved);
            dec_up_width.push(cu);
            x = y;
        }
        let (h0, s_h0) = self.head[0].forward(&x, r0, mom); // [R0, 64]
        let (h1, s_h1) = self.head[1].forward(&h0, r0, mom); // [R0, 32]
        let keep = 1.0 - self.dropout;
        let mask: Vec<f32> = (0..h1.len())
            .map(|_| {
                if self.dropout <= 0.0 || self.rng.random::<f32>() >= self.dropout {
                    1.0 / keep
                } else {
                    0.0
                }
            })
            .collect();
        let h1d: Vec<f32> = h1.iter().zip(&mask).map(|(a, m)| a * m).collect();
        let (logits, s_h2) = self.head[2].forward(&h1d, r0, mom); // [R0, classes]

        // ---- loss ----
        let valid = labels.iter().filter(|&&l| (l as usize) < classes).count();
        let mut dlogits = vec![0f32; r0 * classes];
        let mut loss = 0f64;
        if valid > 0 {
            for (i, &l) in labels.iter().enumerate() {
                if (l as usize) >= classes {
                    continue;
                }
                let z = &logits[i * classes..(i + 1) * classes];
                let m = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let s: f32 = z.iter().map(|v| (v - m).exp()).sum();
                let lse = m + s.ln();
                let w = class_weights[l as usize] / valid as f32;
                loss += (w * (lse - z[l as usize])) as f64;
                let d = &mut dlogits[i * classes..(i + 1) * classes];
                for c in 0..classes {
                    d[c] = w * (z[c] - lse).exp();
                }
                d[l as usize] -= w;
            }
        }
        if !loss.is_finite() {
            return Err(Error::Training(format!("the loss is {loss}")));
        }

        // ---- backward ----
        let mut dh1 = self.head[2]
            .backward(&mut dlogits, &h1d, r0, &s_h2, true)
            .expect("dx asked");
        dh1.iter_mut().zip(&mask).for_each(|(d, m)| *d *= m);
        let mut dh0 = self.head[1]
            .backward(&mut dh1, &h0, r0, &s_h1, true)
            .expect("dx asked");
        let mut dx = self.head[0]
            .backward(&mut dh0, &x, r0, &s_h0, true)
            .expect("dx asked");
        // Gradients of the skips (encoder outputs) from the decoder: index l = level.
        let mut dskip: Vec<Vec<f32>> = vec![Vec::new(); layers];
        for j in (0..layers).rev() {
            let level = layers - 1 - j;
            let n = rows.n[level];
            let cat = dec_in.pop().expect("one input per decoder layer");
            let cu = dec_up_width.pop().expect("one width per decoder layer");
            let saved = dec_saved.pop().expect("one tape per decoder layer");
            let dcat = self.decoder[j]
                .backward(&mut dx, &cat, n, &saved, true)
                .expect("dx asked"); // [R_level, cs + cu]
            let cs = dcat.len() / n - cu;
            let mut ds = vec![0f32; n * cs];
            let mut du = vec![0f32; n * cu];
            for ((row, s), u) in dcat
                .chunks_exact(cs + cu)
                .zip(ds.chunks_exact_mut(cs))
                .zip(du.chunks_exact_mut(cu))
            {
                s.copy_from_slice(&row[..cs]);
                u.copy_from_slice(&row[cs..]);
            }
            dskip[level] = ds;
            let mut dbelow = vec![0f32; rows.n[level + 1] * cu];
            scatter_add(&mut dbelow, &du, &rows.up[level], cu);
            dx = dbelow;
        }
        let mut dp = self
            .mlp
            .backward(&mut dx, &inputs[layers], rows.n[layers], &s_mlp, true)
            .expect("dx asked"); // gradient of inputs[layers]
        for l in (0..layers).rev() {
            let c = 2 * self.blocks[l].d_out;
            // inputs[l + 1] is pooled_l: its gradient is dp, plus the decoder's skip at level l + 1.
            if l + 1 < layers {
                dp.par_iter_mut()
                    .zip(&dskip[l + 1])
                    .for_each(|(a, b)| *a += b);
            }
            let mut dy = if l == 0 {
                std::mem::take(&mut dskip[0])
            } else {
                vec![0f32; rows.n[l] * c]
            };
            for (j, &src) in argmax[l].iter().enumerate() {
                dy[src as usize] += dp[j];
            }
            let tape = tapes.pop().expect("one tape per block");
            let x_in = &inputs[l];
            dp = self.blocks[l].backward(&mut dy, x_in, &rows.nb[l], rows.n[l], k, tape);
        }
        self.fc0
            .backward(&mut dp, &batch.features, r0, &s_fc0, false);
        Ok(loss)
    }

    /// One training step: [`FusedTrainer::loss_and_gradients`], then one step of `adam` (its
    /// moments keyed by state-dict name) with learning rate `lr`. A non-finite loss is an error
    /// and leaves the weights as they were.
    pub fn step(
        &mut self,
        adam: &mut Adam,
        batch: &Batch,
        labels: &[u32],
        class_weights: &[f32],
        lr: f64,
    ) -> Result<f64> {
        let loss = self.loss_and_gradients(batch, labels, class_weights)?;
        adam.begin_step();
        for l in self.layers_mut() {
            for p in l.tensors_mut() {
                adam.update(&p.name, &mut p.value, &p.grad, lr)?;
            }
            l.refresh();
        }
        Ok(loss)
    }
}

/// Random-sample pooling with the winners kept: `out[j, c] = max_k x[sub[j, k], c]` and the
/// flat index (`row·c + c`) of each maximum (the first one on ties).
fn max_pool(x: &[f32], c: usize, sub: &[u32], m: usize, k: usize) -> (Vec<f32>, Vec<u32>) {
    let mut out = vec![0f32; m * c];
    let mut arg = vec![0u32; m * c];
    out.par_chunks_mut(c)
        .zip(arg.par_chunks_mut(c))
        .enumerate()
        .for_each(|(j, (row, am))| {
            let idx = &sub[j * k..(j + 1) * k];
            let first = idx[0] as usize;
            row.copy_from_slice(&x[first * c..][..c]);
            for (ch, a) in am.iter_mut().enumerate() {
                *a = (first * c + ch) as u32;
            }
            for &n in &idx[1..] {
                let src = &x[n as usize * c..][..c];
                for ch in 0..c {
                    if src[ch] > row[ch] {
                        row[ch] = src[ch];
                        am[ch] = (n as usize * c + ch) as u32;
                    }
                }
            }
        });
    (out, arg)
}
