//! Attentive pooling in training, forward and backward, without the concatenated `[E, C]`
//! input: the values of edge `e = (i, k)` are `v_e = [feat[nb_e], rel_e]` and its scores
//! `s_e = W·v_e + b = (feat·W_fᵀ + b)[nb_e] + rel_e·W_rᵀ`, so the feature half of the score layer
//! runs once per point and its gradient is gathered per point too.
//!
//! Forward: `w_e = softmax_K(s_e)` per channel, `a_i = Σ_k w_e ⊙ v_e`.
//! Backward, with `da_i` given: `dv_e = w_e ⊙ da_i`,
//! `ds_e = w_e ⊙ da_i ⊙ (v_e − a_i)` (the softmax Jacobian, since `Σ_k w_e ⊙ v_e = a_i`).

use rayon::prelude::*;

use randla_engine::kernels::{gemm_rows, softmax_pool, transpose};

use super::ops::{Layer, add_weight_grad, scatter_add};

/// Points per parallel task.
const POINTS_PER_TASK: usize = 64;

/// The two column halves of a score layer `[o, o]`: feature half and relative half, each
/// `[o, o/2]`.
fn halves(score: &Layer) -> (Vec<f32>, Vec<f32>) {
    let (o, h) = (score.out, score.inp / 2);
    let (mut f, mut r) = (Vec::with_capacity(o * h), Vec::with_capacity(o * h));
    for row in score.w.value.chunks_exact(score.inp) {
        f.extend_from_slice(&row[..h]);
        r.extend_from_slice(&row[h..]);
    }
    (f, r)
}

/// Forward: `feat [R, o/2]`, `rel [E, o/2]`, `nb [E]` (E = R·K) → (`w [E, o]` softmax weights,
/// `a [R, o]` pooled values).
pub fn forward(
    score: &Layer,
    feat: &[f32],
    rel: &[f32],
    nb: &[u32],
    rows: usize,
    k: usize,
) -> (Vec<f32>, Vec<f32>) {
    let (o, h) = (score.out, score.inp / 2);
    let (wf, wr) = halves(score);
    let (wft, wrt) = (transpose(&wf, o, h), transpose(&wr, o, h));
    // g = feat·W_fᵀ + b, per point. [R, o]
    let mut g = vec![0f32; rows * o];
    g.par_chunks_mut(POINTS_PER_TASK * 16 * o)
        .zip(feat.par_chunks(POINTS_PER_TASK * 16 * h))
        .for_each(|(gc, fc)| {
            let r = gc.len() / o;
            gemm_rows(fc, r, h, &wft, o, gc, false);
            for row in gc.chunks_exact_mut(o) {
                row.iter_mut()
                    .zip(&score.b.value)
                    .for_each(|(v, b)| *v += b);
            }
        });
    let mut w = vec![0f32; rows * k * o]; // [E, o]
    let mut a = vec![0f32; rows * o]; // [R, o]
    w.par_chunks_mut(POINTS_PER_TASK * k * o)
        .zip(a.par_chunks_mut(POINTS_PER_TASK * o))
        .enumerate()
        .for_each(|(t, (wc, ac))| {
            let pts = ac.len() / o;
            let e0 = t * POINTS_PER_TASK * k;
            let relc = &rel[e0 * h..(e0 + pts * k) * h];
            gemm_rows(relc, pts * k, h, &wrt, o, wc, false);
            let mut sum = vec![0f32; o];
            for p in 0..pts {
                let s = &mut wc[p * k * o..(p + 1) * k * o];
                let nbs = &nb[e0 + p * k..e0 + (p + 1) * k];
                for (row, &n) in s.chunks_exact_mut(o).zip(nbs) {
                    row.iter_mut()
                        .zip(&g[n as usize * o..][..o])
                        .for_each(|(v, b)| *v += b);
                }
                // The engine's pooling leaves exp(s − max) in `s` and the per-channel sums in
                // `sum`; the backward pass wants the softmax weights themselves.
                let rel_p = &relc[p * k * h..(p + 1) * k * h];
                softmax_pool(s, nbs, feat, rel_p, &mut ac[p * o..(p + 1) * o], &mut sum);
                for row in s.chunks_exact_mut(o) {
                    row.iter_mut().zip(&sum).for_each(|(v, &t)| *v /= t);
                }
            }
        });
    (w, a)
}

/// Backward: given `da [R, o]`, the forward's inputs and outputs (`w` is consumed: it becomes
/// the score gradient), accumulates the score layer's gradients and returns
/// (`dfeat [R, o/2]`, `drel [E, o/2]`).
#[allow(clippy::too_many_arguments)]
pub fn backward(
    score: &mut Layer,
    da: &[f32],
    mut w: Vec<f32>,
    a: &[f32],
    feat: &[f32],
    rel: &[f32],
    nb: &[u32],
    rows: usize,
    k: usize,
) -> (Vec<f32>, Vec<f32>) {
    let (o, h) = (score.out, score.inp / 2);
    let e = rows * k;
    let mut dfeat_e = vec![0f32; e * h]; // [E, o/2]: value gradient of the gathered features
    let mut drel = vec![0f32; e * h]; // [E, o/2]
    w.par_chunks_mut(POINTS_PER_TASK * k * o)
        .zip(dfeat_e.par_chunks_mut(POINTS_PER_TASK * k * h))
        .zip(drel.par_chunks_mut(POINTS_PER_TASK * k * h))
        .enumerate()
        .for_each(|(t, ((wc, dfc), drc))| {
            let pts = wc.len() / (k * o);
            let p0 = t * POINTS_PER_TASK;
            for p in 0..pts {
                let i = p0 + p;
                let (dai, ai) = (&da[i * o..(i + 1) * o], &a[i * o..(i + 1) * o]);
                for j in 0..k {
                    let ei = i * k + j;
                    let n = nb[ei] as usize;
                    let wrow = &mut wc[(p * k + j) * o..][..o];
                    let f = &feat[n * h..][..h];
                    let r = &rel[ei * h..][..h];
                    let (df, dr) = (
                        &mut dfc[(p * k + j) * h..][..h],
                        &mut drc[(p * k + j) * h..][..h],
                    );
                    for c in 0..h {
                        let wd = wrow[c] * dai[c];
                        df[c] = wd;
                        wrow[c] = wd * (f[c] - ai[c]);
                    }
                    for c in 0..h {
                        let wd = wrow[h + c] * dai[h + c];
                        dr[c] = wd;
                        wrow[h + c] = wd * (r[c] - ai[h + c]);
                    }
                }
            }
        });
    let ds = w; // [E, o]
    let (wf, wr) = halves(score);
    // Relative half: dW_r += dsᵀ·rel, drel += ds·W_r.
    let mut gwr = vec![0f32; o * h];
    add_weight_grad(&mut gwr, &ds, rel, e, o, h);
    drel.par_chunks_mut(POINTS_PER_TASK * k * h)
        .zip(ds.par_chunks(POINTS_PER_TASK * k * o))
        .for_each(|(dc, sc)| {
            let r = dc.len() / h;
            gemm_rows(sc, r, o, &wr, h, dc, true);
        });
    // Feature half, per point: dg = Σ_{e: nb_e = n} ds_e.
    let mut dg = vec![0f32; rows * o];
    scatter_add(&mut dg, &ds, nb, o);
    drop(ds);
    let mut gwf = vec![0f32; o * h];
    add_weight_grad(&mut gwf, &dg, feat, rows, o, h);
    for row in dg.chunks_exact(o) {
        score.b.grad.iter_mut().zip(row).for_each(|(g, v)| *g += v);
    }
    let mut dfeat = vec![0f32; rows * h];
    dfeat
        .par_chunks_mut(POINTS_PER_TASK * 16 * h)
        .zip(dg.par_chunks(POINTS_PER_TASK * 16 * o))
        .for_each(|(dc, gc)| {
            let r = dc.len() / h;
            gemm_rows(gc, r, o, &wf, h, dc, false);
        });
    scatter_add(&mut dfeat, &dfeat_e, nb, h);
    for (oi, (gf, gr)) in gwf.chunks_exact(h).zip(gwr.chunks_exact(h)).enumerate() {
        let row = &mut score.w.grad[oi * o..(oi + 1) * o];
        row[..h].iter_mut().zip(gf).for_each(|(g, v)| *g += v);
        row[h..].iter_mut().zip(gr).for_each(|(g, v)| *g += v);
    }
    (dfeat, drel)
}
