//! The dilated residual block in training: `mlp1`, two rounds of local spatial encoding +
//! attentive pooling, `mlp2` + `shortcut`, LeakyReLU(0.01), forward and backward.

use rayon::prelude::*;

use randla_model::StateDict;

use super::attention;
use super::ops::{Kind, Layer, Saved};
use crate::error::Result;

/// LeakyReLU slope inside the block.
const SLOPE: f32 = 0.2;
/// Slope of the block's output LeakyReLU.
const OUT_SLOPE: f32 = 0.01;

/// The layers of `encoder.{i}`.
#[derive(Debug, Clone)]
pub struct Block {
    /// `d_out` of the layer (the block outputs `2·d_out`).
    pub d_out: usize,
    mlp1: Layer,
    lse1: Layer,
    score1: Layer,
    pool1: Layer,
    lse2: Layer,
    score2: Layer,
    pool2: Layer,
    mlp2: Layer,
    shortcut: Layer,
}

/// What the backward pass of a block needs from its forward pass.
#[derive(Debug)]
pub struct Tape {
    h: Vec<f32>,
    s_mlp1: Saved,
    geo: Vec<f32>,
    r1: Vec<f32>,
    s_lse1: Saved,
    w1: Vec<f32>,
    a1: Vec<f32>,
    p1: Vec<f32>,
    s_pool1: Saved,
    r2: Vec<f32>,
    s_lse2: Saved,
    w2: Vec<f32>,
    a2: Vec<f32>,
    p2: Vec<f32>,
    s_pool2: Saved,
    s_mlp2: Saved,
    s_short: Saved,
    y: Vec<f32>,
}

/// `[E, 10]` relative position encoding: `‖p_i − p_k‖, p_i − p_k, p_i, p_k`.
fn encode(xyz: &[f32], nb: &[u32], k: usize) -> Vec<f32> {
    let mut geo = vec![0f32; nb.len() * 10];
    geo.par_chunks_mut(k * 10).enumerate().for_each(|(i, g)| {
        let pi = &xyz[i * 3..i * 3 + 3];
        for (j, row) in g.chunks_exact_mut(10).enumerate() {
            let n = nb[i * k + j] as usize;
            let pk = &xyz[n * 3..n * 3 + 3];
            let d = [pi[0] - pk[0], pi[1] - pk[1], pi[2] - pk[2]];
            row[0] = (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt();
            row[1..4].copy_from_slice(&d);
            row[4..7].copy_from_slice(pi);
            row[7..10].copy_from_slice(pk);
        }
    });
    geo
}

impl Block {
    /// Loads `encoder.{i}`.
    pub fn load(sd: &StateDict, i: usize) -> Result<Self> {
        let p = format!("encoder.{i}");
        let smlp = |name: &str, act: Option<f32>| {
            Layer::load(
                sd,
                &format!("{p}.{name}"),
                Kind::Conv,
                Some(&format!("{p}.{name}.batch_norm")),
                act,
            )
        };
        let lin = |name: &str| Layer::load(sd, &format!("{p}.{name}"), Kind::Linear, None, None);
        let pool2 = smlp("pool2.mlp", Some(SLOPE))?;
        Ok(Block {
            d_out: pool2.out,
            mlp1: smlp("mlp1", Some(SLOPE))?,
            lse1: smlp("lse1.mlp", Some(SLOPE))?,
            score1: lin("pool1.score_fn.0")?,
            pool1: smlp("pool1.mlp", Some(SLOPE))?,
            lse2: smlp("lse2.mlp", Some(SLOPE))?,
            score2: lin("pool2.score_fn.0")?,
            pool2,
            mlp2: smlp("mlp2", None)?,
            shortcut: smlp("shortcut", None)?,
        })
    }

    /// Every layer of the block.
    pub fn layers_mut(&mut self) -> [&mut Layer; 9] {
        [
            &mut self.mlp1,
            &mut self.lse1,
            &mut self.score1,
            &mut self.pool1,
            &mut self.lse2,
            &mut self.score2,
            &mut self.pool2,
            &mut self.mlp2,
            &mut self.shortcut,
        ]
    }

    /// Every layer of the block.
    pub fn layers(&self) -> [&Layer; 9] {
        [
            &self.mlp1,
            &self.lse1,
            &self.score1,
            &self.pool1,
            &self.lse2,
            &self.score2,
            &self.pool2,
            &self.mlp2,
            &self.shortcut,
        ]
    }

    /// Training forward: `x [R, d_in]`, `xyz [R, 3]`, `nb [R, K]` (row indices) → `[R, 2·d_out]`;
    /// `mom` is the batch norms' running-average momentum.
    pub fn forward(
        &mut self,
        x: &[f32],
        xyz: &[f32],
        nb: &[u32],
        rows: usize,
        k: usize,
        mom: f32,
    ) -> (Vec<f32>, Tape) {
        let e = rows * k;
        let (h, s_mlp1) = self.mlp1.forward(x, rows, mom); // [R, o/2]
        let geo = encode(xyz, nb, k); // [E, 10]
        let (r1, s_lse1) = self.lse1.forward(&geo, e, mom); // [E, o/2]
        let (w1, a1) = attention::forward(&self.score1, &h, &r1, nb, rows, k); // [E, o], [R, o]
        let (p1, s_pool1) = self.pool1.forward(&a1, rows, mom); // [R, o/2]
        let (r2, s_lse2) = self.lse2.forward(&r1, e, mom); // [E, o/2]
        let (w2, a2) = attention::forward(&self.score2, &p1, &r2, nb, rows, k); // [E, o], [R, o]
        let (p2, s_pool2) = self.pool2.forward(&a2, rows, mom); // [R, o]
        let (mut y, s_mlp2) = self.mlp2.forward(&p2, rows, mom); // [R, 2o]
        let (sc, s_short) = self.shortcut.forward(x, rows, mom); // [R, 2o]
        y.par_iter_mut().zip(&sc).for_each(|(a, b)| {
            let t = *a + b;
            *a = if t >= 0.0 { t } else { t * OUT_SLOPE };
        });
        let tape = Tape {
            h,
            s_mlp1,
            geo,
            r1,
            s_lse1,
            w1,
            a1,
            p1,
            s_pool1,
            r2,
            s_lse2,
            w2,
            a2,
            p2,
            s_pool2,
            s_mlp2,
            s_short,
            y: y.clone(),
        };
        (y, tape)
    }

    /// Backward: `dy [R, 2·d_out]` (overwritten), the block's input `x`, its tape →
    /// gradients accumulated, `dx [R, d_in]` returned.
    pub fn backward(
        &mut self,
        dy: &mut [f32],
        x: &[f32],
        nb: &[u32],
        rows: usize,
        k: usize,
        tape: Tape,
    ) -> Vec<f32> {
        let e = rows * k;
        dy.par_iter_mut().zip(&tape.y).for_each(|(d, &y)| {
            if y < 0.0 {
                *d *= OUT_SLOPE
            }
        });
        let mut dsc = dy.to_vec();
        let mut dx = self
            .shortcut
            .backward(&mut dsc, x, rows, &tape.s_short, true)
            .expect("dx asked");
        drop(dsc);
        let mut dp2 = self
            .mlp2
            .backward(dy, &tape.p2, rows, &tape.s_mlp2, true)
            .expect("dx asked"); // [R, o]
        let da2 = self
            .pool2
            .backward(&mut dp2, &tape.a2, rows, &tape.s_pool2, true)
            .expect("dx asked"); // [R, o]
        drop(dp2);
        let (mut dp1, mut dr2) = attention::backward(
            &mut self.score2,
            &da2,
            tape.w2,
            &tape.a2,
            &tape.p1,
            &tape.r2,
            nb,
            rows,
            k,
        );
        let mut dr1 = self
            .lse2
            .backward(&mut dr2, &tape.r1, e, &tape.s_lse2, true)
            .expect("dx asked"); // [E, o/2]
        drop(dr2);
        let da1 = self
            .pool1
            .backward(&mut dp1, &tape.a1, rows, &tape.s_pool1, true)
            .expect("dx asked"); // [R, o]
        let (mut dh, dr1b) = attention::backward(
            &mut self.score1,
            &da1,
            tape.w1,
            &tape.a1,
            &tape.h,
            &tape.r1,
            nb,
            rows,
            k,
        );
        dr1.par_iter_mut().zip(&dr1b).for_each(|(a, b)| *a += b);
        drop(dr1b);
        self.lse1
            .backward(&mut dr1, &tape.geo, e, &tape.s_lse1, false);
        let dx1 = self
            .mlp1
            .backward(&mut dh, x, rows, &tape.s_mlp1, true)
            .expect("dx asked");
        dx.par_iter_mut().zip(&dx1).for_each(|(a, b)| *a += b);
        dx
    }
}
