//! A naive, op-by-op transcription of Open3D-ML's RandLANet forward (eval mode), used as an
//! independent oracle: no folding, no linearity tricks, explicit `[N, K, C]` intermediates.
#![allow(dead_code)]

use randla_model::{Batch, RandLaNetConfig, StateDict};

pub struct Naive<'a> {
    pub sd: &'a StateDict,
    pub cfg: &'a RandLaNetConfig,
}

fn lrelu(v: f32, s: f32) -> f32 {
    if v >= 0.0 { v } else { v * s }
}

impl Naive<'_> {
    fn p(&self, name: &str) -> &[f32] {
        &self.sd.get(name).unwrap().data
    }

    /// Conv 1×1 (+ BN) (+ act) on rows of width `inp`.
    pub fn conv(
        &self,
        prefix: &str,
        x: &[f32],
        inp: usize,
        bn: bool,
        slope: Option<f32>,
    ) -> Vec<f32> {
        let w = self.p(&format!("{prefix}.conv.weight"));
        let b = self.p(&format!("{prefix}.conv.bias"));
        let out = b.len();
        let rows = x.len() / inp;
        let mut y = vec![0f32; rows * out];
        for r in 0..rows {
            for o in 0..out {
                let mut acc = b[o];
                for i in 0..inp {
                    acc += w[o * inp + i] * x[r * inp + i];
                }
                if bn {
                    acc = self.bn(&format!("{prefix}.batch_norm"), o, acc);
                }
                y[r * out + o] = slope.map_or(acc, |s| lrelu(acc, s));
            }
        }
        y
    }

    fn bn(&self, prefix: &str, c: usize, v: f32) -> f32 {
        let g = self.p(&format!("{prefix}.weight"))[c];
        let b = self.p(&format!("{prefix}.bias"))[c];
        let m = self.p(&format!("{prefix}.running_mean"))[c];
        let var = self.p(&format!("{prefix}.running_var"))[c];
        (v - m) / (var + 1e-6).sqrt() * g + b
    }

    fn pool(&self, prefix: &str, x: &[f32], n: usize, k: usize, d: usize) -> Vec<f32> {
        let w = self.p(&format!("{prefix}.score_fn.0.weight"));
        let b = self.p(&format!("{prefix}.score_fn.0.bias"));
        let mut agg = vec![0f32; n * d];
        for i in 0..n {
            let rows = &x[i * k * d..(i + 1) * k * d];
            let mut s = vec![0f32; k * d];
            for j in 0..k {
                for o in 0..d {
                    let mut acc = b[o];
                    for c in 0..d {
                        acc += w[o * d + c] * rows[j * d + c];
                    }
                    s[j * d + o] = acc;
                }
            }
            for c in 0..d {
                let m = (0..k)
                    .map(|j| s[j * d + c])
                    .fold(f32::NEG_INFINITY, f32::max);
                let e: Vec<f32> = (0..k).map(|j| (s[j * d + c] - m).exp()).collect();
                let sum: f32 = e.iter().sum();
                agg[i * d + c] = (0..k).map(|j| e[j] / sum * rows[j * d + c]).sum();
            }
        }
        self.conv(&format!("{prefix}.mlp"), &agg, d, true, Some(0.2))
    }

    pub fn lfa(
        &self,
        i: usize,
        x: &[f32],
        d_in: usize,
        xyz: &[f32],
        nb: &[u32],
        n: usize,
        k: usize,
    ) -> Vec<f32> {
        let o = self.cfg.dim_output[i];
        let h = o / 2;
        let p = format!("encoder.{i}");
        let hf = self.conv(&format!("{p}.mlp1"), x, d_in, true, Some(0.2));
        let mut rel = vec![0f32; n * k * 10];
        for a in 0..n {
            for j in 0..k {
                let b = nb[a * k + j] as usize;
                let r = &mut rel[(a * k + j) * 10..(a * k + j + 1) * 10];
                let d = [
                    xyz[a * 3] - xyz[b * 3],
                    xyz[a * 3 + 1] - xyz[b * 3 + 1],
                    xyz[a * 3 + 2] - xyz[b * 3 + 2],
                ];
                r[0] = (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt();
                r[1..4].copy_from_slice(&d);
                r[4..7].copy_from_slice(&xyz[a * 3..a * 3 + 3]);
                r[7..10].copy_from_slice(&xyz[b * 3..b * 3 + 3]);
            }
        }
        let r1 = self.conv(&format!("{p}.lse1.mlp"), &rel, 10, true, Some(0.2)); // [N·K, h]
        let cat = |f: &[f32], r: &[f32]| {
            let mut c = vec![0f32; n * k * o];
            for a in 0..n {
                for j in 0..k {
                    let b = nb[a * k + j] as usize;
                    let row = &mut c[(a * k + j) * o..(a * k + j + 1) * o];
                    row[..h].copy_from_slice(&f[b * h..(b + 1) * h]);
                    row[h..].copy_from_slice(&r[(a * k + j) * h..(a * k + j + 1) * h]);
                }
            }
            c
        };
        let x1 = self.pool(&format!("{p}.pool1"), &cat(&hf, &r1), n, k, o); // [N, h]
        let r2 = self.conv(&format!("{p}.lse2.mlp"), &r1, h, true, Some(0.2));
        let x2 = self.pool(&format!("{p}.pool2"), &cat(&x1, &r2), n, k, o); // [N, o]
        let m2 = self.conv(&format!("{p}.mlp2"), &x2, o, true, None);
        let sc = self.conv(&format!("{p}.shortcut"), x, d_in, true, None);
        m2.iter()
            .zip(&sc)
            .map(|(a, b)| lrelu(a + b, 0.01))
            .collect()
    }

    /// Logits `[N, classes]` of crop `b` of the batch.
    pub fn forward(&self, batch: &Batch, bi: usize) -> Vec<f32> {
        let cfg = self.cfg;
        let (n0, c, k) = (batch.sizes[0], batch.channels, batch.k);
        let feat = &batch.features[bi * n0 * c..(bi + 1) * n0 * c];
        let w = self.p("fc0.weight");
        let b = self.p("fc0.bias");
        let f = cfg.dim_features;
        let mut x = vec![0f32; n0 * f];
        for r in 0..n0 {
            for o in 0..f {
                let mut acc = b[o];
                for i in 0..c {
                    acc += w[o * c + i] * feat[r * c + i];
                }
                x[r * f + o] = lrelu(self.bn("bn0", o, acc), 0.2);
            }
        }
        let mut d = f;
        let mut skips = Vec::new();
        for l in 0..cfg.num_layers {
            let (n, next) = (batch.sizes[l], batch.sizes[l + 1]);
            let xyz = &batch.coords[l][bi * n * 3..(bi + 1) * n * 3];
            let nb = &batch.neighbors[l][bi * n * k..(bi + 1) * n * k];
            let y = self.lfa(l, &x, d, xyz, nb, n, k);
            d = 2 * cfg.dim_output[l];
            let sub = &batch.sub_idx[l][bi * next * k..(bi + 1) * next * k];
            let mut pooled = vec![f32::NEG_INFINITY; next * d];
            for j in 0..next {
                for q in 0..k {
                    let s = sub[j * k + q] as usize;
                    for ch in 0..d {
                        pooled[j * d + ch] = pooled[j * d + ch].max(y[s * d + ch]);
                    }
                }
            }
            if l == 0 {
                skips.push((y, d));
            }
            skips.push((pooled.clone(), d));
            x = pooled;
        }
        x = self.conv("mlp", &x, d, true, Some(0.2));
        for j in 0..cfg.num_layers {
            let l = cfg.num_layers - 1 - j;
            let n = batch.sizes[l];
            let up = &batch.interp_idx[l][bi * n..(bi + 1) * n];
            let (skip, sd) = &skips[skips.len() - j - 2];
            let inp = sd + d;
            let mut cat = vec![0f32; n * inp];
            for r in 0..n {
                cat[r * inp..r * inp + sd].copy_from_slice(&skip[r * sd..(r + 1) * sd]);
                let u = up[r] as usize;
                cat[r * inp + sd..(r + 1) * inp].copy_from_slice(&x[u * d..(u + 1) * d]);
            }
            // ConvTranspose2d weight [in, out, 1, 1].
            let wt = self.p(&format!("decoder.{j}.conv.weight"));
            let bt = self.p(&format!("decoder.{j}.conv.bias"));
            let out = bt.len();
            let mut y = vec![0f32; n * out];
            for r in 0..n {
                for o in 0..out {
                    let mut acc = bt[o];
                    for i in 0..inp {
                        acc += wt[i * out + o] * cat[r * inp + i];
                    }
                    y[r * out + o] = lrelu(
                        self.bn(
                            format!("decoder.{j}.conv")
                                .replace(".conv", ".batch_norm")
                                .as_str(),
                            o,
                            acc,
                        ),
                        0.2,
                    );
                }
            }
            x = y;
            d = out;
        }
        let h = self.conv("fc1.0", &x, d, true, Some(0.2));
        let h = self.conv("fc1.1", &h, 64, true, Some(0.2));
        self.conv("fc1.3", &h, 32, false, None)
    }
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> (f32, f32) {
    assert_eq!(a.len(), b.len());
    let m = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    (
        a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())),
        m,
    )
}
