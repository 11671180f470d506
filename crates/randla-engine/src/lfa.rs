//! The fused local feature aggregation (dilated residual block) of one encoder layer.
//!
//! Per point `i` with neighbours `k`, Open3D-ML computes, on `[N, K, C]` tensors:
//! `r1 = φ1([‖p_i−p_k‖, p_i−p_k, p_i, p_k])`, `a1 = pool1([h_k, r1])`, `r2 = φ2(r1)`,
//! `a2 = pool2([x1_k, r2])` with `h = mlp1(x)`, `x1 = pool1.mlp(a1)`. Here:
//! - linearity moves work from K rows to one: φ1's pre-activation is
//!   `A_i + B_k + w_d·‖p_i − p_k‖` with `A = (W_rel + W_pi)·p + b` and `B = (W_pk − W_rel)·p`
//!   computed once per point; a score layer applied to gathered features equals gathering the
//!   scored features (`W·h[nb] = (W·h)[nb]`), so the feature half of both attention scores is a
//!   per-point product;
//! - the rest runs over tiles of points, in buffers sized to stay in cache: `r1` and `r2` for
//!   `t·K` rows, their score GEMMs, the softmax over K and the weighted sums. No `[N, K, C]`
//!   tensor exists; `r1` is recomputed in the second pass rather than stored.

use rayon::prelude::*;

use randla_model::StateDict;

use crate::error::Result;
use crate::fold::{linear, shared_mlp, split_columns};
use crate::kernels::{
    Dense, gemm_rows, gemm_rows_bias_act, leaky, par_filled, softmax_pool, transpose,
};

/// Slope of every LeakyReLU inside the block but the last.
const SLOPE: f32 = 0.2;
/// Slope of the block's output LeakyReLU (Open3D-ML's `nn.LeakyReLU()` default).
const OUT_SLOPE: f32 = 0.01;
/// Neighbours whose chains of multiply-adds the register kernels interleave.
const U: usize = 4;
/// Bytes of per-tile scratch the tile size aims at (a share of L2).
const TILE_BYTES: usize = 256 * 1024;

/// The folded weights of one dilated residual block.
#[derive(Debug, Clone)]
pub struct Lfa {
    /// `d_out` of the layer (the block outputs `2·d_out`).
    pub d_out: usize,
    /// Input width.
    #[allow(dead_code)]
    pub d_in: usize,
    mlp1: Dense,
    /// `[o/2, 3]` on `p_i`, with φ1's bias.
    pos_i: Dense,
    /// `[o/2, 3]` on `p_k`.
    pos_k: Dense,
    /// `[o/2]` weight of the distance channel.
    w_dist: Vec<f32>,
    score1_feat: Dense,
    /// The relative half of pool1's score layer, transposed, `[o/2, o]`.
    score1_rel_t: Vec<f32>,
    pool1_mlp: Dense,
    lse2: Dense,
    /// `lse2` transposed, `[o/2, o/2]`.
    lse2_t: Vec<f32>,
    score2_feat: Dense,
    /// The relative half of pool2's score layer, transposed, `[o/2, o]`.
    score2_rel_t: Vec<f32>,
    pool2_mlp: Dense,
    mlp2: Dense,
    shortcut: Dense,
}

impl Lfa {
    /// One pass on one tile ([`Lfa::pass1`] or [`Lfa::pass2`]) compiled for the widest vector
    /// unit the CPU has: AVX-512, AVX2 + FMA, or the baseline. The tile bodies are
    /// `#[inline(always)]`, so each entry point below compiles them anew with its target
    /// features. They are plain methods, not a closure handed to one generic `target_feature`
    /// function: such a closure is not always inlined into it, and then runs as baseline code
    /// (1.6–1.7× slower tile passes, seen in session 7 after an unrelated edit of this file).
    fn tile_pass(&self, first: bool, t: &Tile<'_>, s: &mut Scratch, out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU supports AVX-512F (checked just above).
                return unsafe { self.tile_pass_avx512(first, t, s, out) };
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                // SAFETY: the CPU supports AVX2 and FMA (checked just above).
                return unsafe { self.tile_pass_avx2(first, t, s, out) };
            }
        }
        self.tile_pass_body(first, t, s, out)
    }

    /// [`Lfa::tile_pass`] compiled with AVX-512F.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn tile_pass_avx512(&self, first: bool, t: &Tile<'_>, s: &mut Scratch, out: &mut [f32]) {
        self.tile_pass_body(first, t, s, out)
    }

    /// [`Lfa::tile_pass`] compiled with AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn tile_pass_avx2(&self, first: bool, t: &Tile<'_>, s: &mut Scratch, out: &mut [f32]) {
        self.tile_pass_body(first, t, s, out)
    }

    /// The body every entry point of [`Lfa::tile_pass`] compiles.
    #[inline(always)]
    fn tile_pass_body(&self, first: bool, t: &Tile<'_>, s: &mut Scratch, out: &mut [f32]) {
        if first {
            self.pass1(t, s, out)
        } else {
            self.pass2(t, s, out)
        }
    }

    /// Loads `encoder.{i}` from a state dict, folding batch norms and splitting the encodings.
    pub fn load(sd: &StateDict, i: usize) -> Result<Self> {
        let p = format!("encoder.{i}");
        let mlp1 = shared_mlp(sd, &format!("{p}.mlp1"), true)?;
        let lse1 = shared_mlp(sd, &format!("{p}.lse1.mlp"), true)?;
        let h = lse1.out;
        // lse1 input channels: 0 dist, 1..4 p_i − p_k, 4..7 p_i, 7..10 p_k.
        let (mut wi, mut wk, mut wd) = (vec![0f32; h * 3], vec![0f32; h * 3], vec![0f32; h]);
        for o in 0..h {
            let row = &lse1.w[o * 10..(o + 1) * 10];
            wd[o] = row[0];
            for d in 0..3 {
                wi[o * 3 + d] = row[1 + d] + row[4 + d];
                wk[o * 3 + d] = row[7 + d] - row[1 + d];
            }
        }
        let score1 = linear(sd, &format!("{p}.pool1.score_fn.0"))?;
        let score2 = linear(sd, &format!("{p}.pool2.score_fn.0"))?;
        let (score1_feat, score1_rel) = split_columns(&score1, h);
        let (score2_feat, score2_rel) = split_columns(&score2, h);
        let mlp2 = shared_mlp(sd, &format!("{p}.mlp2"), true)?;
        let lse2 = shared_mlp(sd, &format!("{p}.lse2.mlp"), true)?;
        Ok(Lfa {
            score1_rel_t: transpose(&score1_rel.w, score1_rel.out, score1_rel.inp),
            score2_rel_t: transpose(&score2_rel.w, score2_rel.out, score2_rel.inp),
            lse2_t: transpose(&lse2.w, lse2.out, lse2.inp),
            lse2,
            d_out: 2 * h,
            d_in: mlp1.inp,
            pos_i: Dense::new(wi, lse1.b.clone(), 3, h),
            pos_k: Dense::new(wk, vec![0.0; h], 3, h),
            w_dist: wd,
            mlp1,
            score1_feat,
            pool1_mlp: shared_mlp(sd, &format!("{p}.pool1.mlp"), true)?,
            score2_feat,
            pool2_mlp: shared_mlp(sd, &format!("{p}.pool2.mlp"), true)?,
            mlp2,
            shortcut: shared_mlp(sd, &format!("{p}.shortcut"), true)?,
        })
    }

    /// Points per tile for `k` neighbours: the scratch (`r1`, `r2`, scores) of a tile fits
    /// [`TILE_BYTES`].
    fn tile_points(&self, k: usize) -> usize {
        let per_row = (self.d_out / 2 * 2 + self.d_out) * 4;
        (TILE_BYTES / (per_row * k)).clamp(1, 256)
    }

    /// Runs the block on one crop level: `x [N, d_in]`, `xyz [N, 3]`, `nb [N, K]` → `[N, 2·d_out]`.
    pub fn forward(&self, x: &[f32], xyz: &[f32], nb: &[u32], n: usize, k: usize) -> Vec<f32> {
        let o = self.d_out;
        let hfeat = self.mlp1.apply(x, n, Some(SLOPE)); // [N, o/2]
        let pos_i = self.pos_i.apply(xyz, n, None); // [N, o/2]
        let pos_k = self.pos_k.apply(xyz, n, None); // [N, o/2]
        let g1 = self.score1_feat.apply(&hfeat, n, None); // [N, o] (score bias included)
        let t = self.tile_points(k);
        let geo = Geometry {
            xyz,
            nb,
            pos_i: &pos_i,
            pos_k: &pos_k,
            k,
        };

        // Pass 1: a1 = pool1([h_k, r1]) per point.
        let a1 = self.pass(Pass::First, &geo, &g1, &hfeat, n, t); // [N, o]
        drop(g1);
        drop(hfeat);
        let x1 = self.pool1_mlp.apply(&a1, n, Some(SLOPE)); // [N, o/2]
        drop(a1);
        let g2 = self.score2_feat.apply(&x1, n, None); // [N, o]

        // Pass 2: a2 = pool2([x1_k, r2]), r2 = φ2(r1) with r1 recomputed.
        let a2 = self.pass(Pass::Second, &geo, &g2, &x1, n, t); // [N, o]
        drop(g2);
        drop(x1);
        // pool2's MLP, mlp2, the shortcut and the output activation, block by block of rows.
        const ROWS: usize = 256;
        let d_in = self.shortcut.inp;
        par_filled(
            n * 2 * o, // [N, 2o]
            ROWS * 2 * o,
            || (vec![0f32; ROWS * o], vec![0f32; ROWS * 2 * o]),
            |(x2, sc), c, yc| {
                let rows = yc.len() / (2 * o);
                let ac = &a2[c * ROWS * o..][..rows * o];
                let xc = &x[c * ROWS * d_in..][..rows * d_in];
                self.pool2_mlp.apply_rows(ac, rows, x2, Some(SLOPE)); // [rows, o]
                self.mlp2.apply_rows(&x2[..rows * o], rows, yc, None); // [rows, 2o]
                self.shortcut.apply_rows(xc, rows, sc, None); // [rows, 2o]
                yc.iter_mut().zip(sc.iter()).for_each(|(a, b)| {
                    let t = *a + b;
                    *a = if t >= 0.0 { t } else { t * OUT_SLOPE };
                });
            },
        )
    }

    /// One pass of attentive pooling over every point, tile by tile in parallel: `gfeat [N, o]`
    /// the per-point feature half of the scores, `feat [N, o/2]` the features pooled →
    /// `[N, o]` before the pool's MLP.
    fn pass(
        &self,
        which: Pass,
        geo: &Geometry<'_>,
        gfeat: &[f32],
        feat: &[f32],
        n: usize,
        t: usize,
    ) -> Vec<f32> {
        let (o, k) = (self.d_out, geo.k);
        par_filled(
            n * o, // [N, o]
            t * o,
            // The scratch (up to 256 KiB) is made on a task's first tile that takes the tile path:
            // the register kernels need none.
            || None::<Scratch>,
            |s, c, out| {
                let tile = Tile {
                    geo,
                    first: c * t,
                    pts: out.len() / o,
                    gfeat,
                    feat,
                };
                #[cfg(target_arch = "x86_64")]
                if o == 16 && k == 16 && std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: AVX-512F is present (checked just above); o = 16 and K = 16.
                    unsafe { self.narrow16_avx512(&tile, matches!(which, Pass::First), out) };
                    return;
                }
                #[cfg(target_arch = "x86_64")]
                if k == 16 && std::arch::is_x86_feature_detected!("avx512f") {
                    let first = matches!(which, Pass::First);
                    // SAFETY: AVX-512F is present (checked just above); K = 16 and each arm's
                    // widths are the layer's (o = d_out, h = o/2).
                    unsafe {
                        match o {
                            32 => return self.wide_avx512::<16, 32, 1, 2, 4>(&tile, first, out),
                            64 => return self.wide_avx512::<32, 64, 2, 4, 4>(&tile, first, out),
                            128 => return self.wide_avx512::<64, 128, 4, 8, 2>(&tile, first, out),
                            _ => {}
                        }
                    }
                }
                let s = s.get_or_insert_with(|| Scratch::new(t * k, o));
                self.tile_pass(matches!(which, Pass::First), &tile, s, out);
            },
        )
    }

    /// Checks everything a register kernel ([`Lfa::narrow16_avx512`], [`Lfa::wide_avx512`])
    /// reads for tile `t` with `h` relative channels and `o` scores (K = 16), and returns the
    /// pass's transposed score weights: the kernels' pointer offsets stay inside what these
    /// asserts bound (point rows below `first + pts`, neighbour rows below the level's points,
    /// weight rows below `h`).
    #[cfg(target_arch = "x86_64")]
    fn register_kernel_inputs(
        &self,
        t: &Tile<'_>,
        first: bool,
        h: usize,
        o: usize,
        out: &[f32],
    ) -> &[f32] {
        const K: usize = 16;
        let g = t.geo;
        assert!(self.d_out == o && g.k == K && out.len() >= t.pts * o);
        assert!(g.nb.len() >= (t.first + t.pts) * K && g.pos_i.len() >= (t.first + t.pts) * h);
        let n_all = g.xyz.len() / 3;
        // The coordinates are gathered with i32 offsets (`neighbour_dists`).
        assert!(g.xyz.len() < i32::MAX as usize);
        assert!(g.pos_k.len() >= n_all * h && t.gfeat.len() >= n_all * o);
        assert!(t.feat.len() >= n_all * h);
        assert!(
            g.nb[t.first * K..(t.first + t.pts) * K]
                .iter()
                .all(|&v| (v as usize) < n_all)
        );
        let score_t = if first {
            &self.score1_rel_t
        } else {
            &self.score2_rel_t
        };
        assert!(score_t.len() >= h * o && self.lse2_t.len() >= h * h && self.w_dist.len() >= h);
        assert!(self.lse2.b.len() >= h);
        score_t
    }

    /// Either pass on one tile of the narrowest layer (`o = 16`, so `o/2 = 8`; K = 16), point by
    /// point in AVX-512 registers: a point's 16 relative encodings (one 8-lane vector each),
    /// their 16-channel scores (one 16-lane vector each, 8 multiply-adds from the transposed
    /// weight rows), the softmax over K and the weighted sum of `[feat_k | rel_k]` never leave
    /// the registers. The same arithmetic as [`Lfa::pass1`] / [`Lfa::pass2`] except that products
    /// are fused multiply-adds (rounding differs in the last bits).
    ///
    /// # Safety
    /// The CPU must support AVX-512F; `self.d_out == 16` and `t.geo.k == 16`.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn narrow16_avx512(&self, t: &Tile<'_>, first: bool, out: &mut [f32]) {
        use std::arch::x86_64::*;
        const H: usize = 8;
        const O: usize = 16;
        const K: usize = 16;
        let g = t.geo;
        let score_t = self.register_kernel_inputs(t, first, H, O, out);
        // SAFETY (whole body): `register_kernel_inputs`' asserts bound every pointer offset
        // below: point rows i < first + pts, neighbour rows n < the level's points, weight rows
        // c < H.
        unsafe {
            let ws: [__m512; H] =
                std::array::from_fn(|c| _mm512_loadu_ps(score_t.as_ptr().add(c * O)));
            let wl: [__m256; H] =
                std::array::from_fn(|c| _mm256_loadu_ps(self.lse2_t.as_ptr().add(c * H)));
            let bl = _mm256_loadu_ps(self.lse2.b.as_ptr());
            let wd = _mm256_loadu_ps(self.w_dist.as_ptr());
            let slope = _mm256_set1_ps(SLOPE);
            let leaky8 = |v: __m256| _mm256_max_ps(v, _mm256_mul_ps(v, slope));
            let (xyz, pos_k, gfeat, feat) = (
                g.xyz.as_ptr(),
                g.pos_k.as_ptr(),
                t.gfeat.as_ptr(),
                t.feat.as_ptr(),
            );
            let mut rel = [[0f32; H]; K];
            let mut sc = [_mm512_setzero_ps(); K];
            for p in 0..t.pts {
                let i = t.first + p;
                let nb = &g.nb[i * K..(i + 1) * K];
                let ai = _mm256_loadu_ps(g.pos_i.as_ptr().add(i * H));
                let dist = neighbour_dists(xyz, i, nb);
                let mut m = _mm512_set1_ps(f32::NEG_INFINITY);
                // Neighbours U at a time, their chains of multiply-adds interleaved (each
                // output's chain is unchanged, so are its bits).
                for j0 in (0..K).step_by(U) {
                    for u in 0..U {
                        let j = j0 + u;
                        let v = _mm256_add_ps(ai, _mm256_loadu_ps(pos_k.add(nb[j] as usize * H)));
                        let r = leaky8(_mm256_fmadd_ps(wd, _mm256_set1_ps(dist[j]), v));
                        _mm256_storeu_ps(rel[j].as_mut_ptr(), r);
                    }
                    if !first {
                        // r2 = φ2(r1): 8 × 8 product, bias, activation.
                        let mut acc = [_mm256_setzero_ps(); U];
                        for (c, w) in wl.iter().enumerate() {
                            for u in 0..U {
                                acc[u] =
                                    _mm256_fmadd_ps(_mm256_set1_ps(rel[j0 + u][c]), *w, acc[u]);
                            }
                        }
                        for u in 0..U {
                            let r = leaky8(_mm256_add_ps(acc[u], bl));
                            _mm256_storeu_ps(rel[j0 + u].as_mut_ptr(), r);
                        }
                    }
                    let mut s = [_mm512_setzero_ps(); U];
                    for (c, w) in ws.iter().enumerate() {
                        for u in 0..U {
                            s[u] = _mm512_fmadd_ps(_mm512_set1_ps(rel[j0 + u][c]), *w, s[u]);
                        }
                    }
                    for u in 0..U {
                        let j = j0 + u;
                        let s = _mm512_add_ps(s[u], _mm512_loadu_ps(gfeat.add(nb[j] as usize * O)));
                        m = _mm512_max_ps(m, s);
                        sc[j] = s;
                    }
                }
                let (mut sum, mut acc) = (_mm512_setzero_ps(), _mm512_setzero_ps());
                for j in 0..K {
                    let n = nb[j] as usize;
                    let e = exp_neg_avx512(_mm512_sub_ps(sc[j], m));
                    sum = _mm512_add_ps(sum, e);
                    // [feat_n (8) | rel_j (8)]
                    let lo = _mm512_castps256_ps512(_mm256_loadu_ps(feat.add(n * H)));
                    let hi = _mm256_loadu_ps(rel[j].as_ptr());
                    let v = _mm512_castpd_ps(_mm512_insertf64x4::<1>(
                        _mm512_castps_pd(lo),
                        _mm256_castps_pd(hi),
                    ));
                    acc = _mm512_fmadd_ps(e, v, acc);
                }
                _mm512_storeu_ps(out.as_mut_ptr().add(p * O), _mm512_div_ps(acc, sum));
            }
        }
    }

    /// [`Lfa::narrow16_avx512`] for the wider layers (`O` = 32, 64 or 128 scores, `H = O/2`
    /// relative channels; K = 16): a point's relative encodings are `VH = H/16` 16-lane vectors
    /// each, its scores `VO = O/16`, with the weight rows read from L1 (they would not fit the
    /// registers); `UN` neighbours at a time, their chains of multiply-adds interleaved and each
    /// weight row loaded once for them; the scores wait on the stack for the softmax. The same
    /// arithmetic as [`Lfa::pass1`] / [`Lfa::pass2`] except that products are fused
    /// multiply-adds (rounding differs in the last bits).
    ///
    /// # Safety
    /// The CPU must support AVX-512F; `self.d_out == O`, `O == 2·H`, `H == 16·VH`,
    /// `O == 16·VO` and `t.geo.k == 16`.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn wide_avx512<
        const H: usize,
        const O: usize,
        const VH: usize,
        const VO: usize,
        const UN: usize,
    >(
        &self,
        t: &Tile<'_>,
        first: bool,
        out: &mut [f32],
    ) {
        use std::arch::x86_64::*;
        const K: usize = 16;
        const { assert!(O == 2 * H && H == 16 * VH && O == 16 * VO && K.is_multiple_of(UN)) };
        let g = t.geo;
        let score_t = self.register_kernel_inputs(t, first, H, O, out);
        // SAFETY (whole body): `register_kernel_inputs`' asserts bound every pointer offset
        // below: point rows i < first + pts, neighbour rows n < the level's points, weight rows
        // c < H (columns below O for the scores, H for φ2).
        unsafe {
            let (ws, wl) = (score_t.as_ptr(), self.lse2_t.as_ptr());
            let bl: [__m512; VH] =
                std::array::from_fn(|v| _mm512_loadu_ps(self.lse2.b.as_ptr().add(16 * v)));
            let wd: [__m512; VH] =
                std::array::from_fn(|v| _mm512_loadu_ps(self.w_dist.as_ptr().add(16 * v)));
            let slope = _mm512_set1_ps(SLOPE);
            let leaky = |v: __m512| _mm512_max_ps(v, _mm512_mul_ps(v, slope));
            let (xyz, pos_k, gfeat, feat) = (
                g.xyz.as_ptr(),
                g.pos_k.as_ptr(),
                t.gfeat.as_ptr(),
                t.feat.as_ptr(),
            );
            let mut rel = [[0f32; H]; K];
            let mut sc = [[_mm512_setzero_ps(); VO]; K];
            for p in 0..t.pts {
                let i = t.first + p;
                let nb = &g.nb[i * K..(i + 1) * K];
                let ai: [__m512; VH] =
                    std::array::from_fn(|v| _mm512_loadu_ps(g.pos_i.as_ptr().add(i * H + 16 * v)));
                let dist = neighbour_dists(xyz, i, nb);
                let mut m = [_mm512_set1_ps(f32::NEG_INFINITY); VO];
                for j0 in (0..K).step_by(UN) {
                    for u in 0..UN {
                        let j = j0 + u;
                        let bk = pos_k.add(nb[j] as usize * H);
                        let d = _mm512_set1_ps(dist[j]);
                        for v in 0..VH {
                            let x = _mm512_add_ps(ai[v], _mm512_loadu_ps(bk.add(16 * v)));
                            let r = leaky(_mm512_fmadd_ps(wd[v], d, x));
                            _mm512_storeu_ps(rel[j].as_mut_ptr().add(16 * v), r);
                        }
                    }
                    if !first {
                        // r2 = φ2(r1): H × H product, bias, activation.
                        let acc = rows_times_weights::<H, VH, UN>(&rel[j0..j0 + UN], wl);
                        for u in 0..UN {
                            for v in 0..VH {
                                let r = leaky(_mm512_add_ps(acc[u][v], bl[v]));
                                _mm512_storeu_ps(rel[j0 + u].as_mut_ptr().add(16 * v), r);
                            }
                        }
                    }
                    let s = rows_times_weights::<H, VO, UN>(&rel[j0..j0 + UN], ws);
                    for u in 0..UN {
                        let j = j0 + u;
                        let gf = gfeat.add(nb[j] as usize * O);
                        for v in 0..VO {
                            let x = _mm512_add_ps(s[u][v], _mm512_loadu_ps(gf.add(16 * v)));
                            m[v] = _mm512_max_ps(m[v], x);
                            sc[j][v] = x;
                        }
                    }
                }
                let mut sum = [_mm512_setzero_ps(); VO];
                let mut acc = [_mm512_setzero_ps(); VO];
                for j in 0..K {
                    let n = nb[j] as usize;
                    for v in 0..VO {
                        let e = exp_neg_avx512(_mm512_sub_ps(sc[j][v], m[v]));
                        sum[v] = _mm512_add_ps(sum[v], e);
                        // [feat_n (H) | rel_j (H)]
                        let x = if v < VH {
                            _mm512_loadu_ps(feat.add(n * H + 16 * v))
                        } else {
                            _mm512_loadu_ps(rel[j].as_ptr().add(16 * (v - VH)))
                        };
                        acc[v] = _mm512_fmadd_ps(e, x, acc[v]);
                    }
                }
                let o = out.as_mut_ptr().add(p * O);
                for v in 0..VO {
                    _mm512_storeu_ps(o.add(16 * v), _mm512_div_ps(acc[v], sum[v]));
                }
            }
        }
    }

    /// Pass 1 on one tile: `out [pts, o] = pool1([h_k, r1])` before pool1's MLP.
    #[inline(always)]
    fn pass1(&self, t: &Tile<'_>, s: &mut Scratch, out: &mut [f32]) {
        let (o, h, k) = (self.d_out, self.d_out / 2, t.geo.k);
        self.encode_rel(t.geo, t.first, t.pts, &mut s.r1);
        gemm_rows(
            &s.r1,
            t.pts * k,
            h,
            &self.score1_rel_t,
            o,
            &mut s.scores,
            false,
        );
        self.attend(
            t.geo,
            t.first,
            t.pts,
            t.gfeat,
            t.feat,
            &mut s.scores,
            &s.r1,
            out,
            &mut s.tmp,
        );
    }

    /// Pass 2 on one tile: `out [pts, o] = pool2([x1_k, φ2(r1)])` before pool2's MLP.
    #[inline(always)]
    fn pass2(&self, t: &Tile<'_>, s: &mut Scratch, out: &mut [f32]) {
        let (o, h, k) = (self.d_out, self.d_out / 2, t.geo.k);
        self.encode_rel(t.geo, t.first, t.pts, &mut s.r1);
        gemm_rows_bias_act(
            &s.r1,
            t.pts * k,
            h,
            &self.lse2_t,
            h,
            &mut s.r2,
            &self.lse2.b,
            Some(SLOPE),
        );
        gemm_rows(
            &s.r2,
            t.pts * k,
            h,
            &self.score2_rel_t,
            o,
            &mut s.scores,
            false,
        );
        self.attend(
            t.geo,
            t.first,
            t.pts,
            t.gfeat,
            t.feat,
            &mut s.scores,
            &s.r2,
            out,
            &mut s.tmp,
        );
    }

    /// `r1 [pts·K, o/2]` of the points `first..first + pts`.
    #[inline(always)]
    fn encode_rel(&self, g: &Geometry<'_>, first: usize, pts: usize, r1: &mut [f32]) {
        // Each arm inlines the body with its width as a constant, so the network's layers get
        // fixed-length loops (vectorised without remainders); other widths take the general one.
        match self.d_out / 2 {
            8 => self.encode_rel_width(8, g, first, pts, r1),
            16 => self.encode_rel_width(16, g, first, pts, r1),
            32 => self.encode_rel_width(32, g, first, pts, r1),
            64 => self.encode_rel_width(64, g, first, pts, r1),
            h => self.encode_rel_width(h, g, first, pts, r1),
        }
    }

    /// [`Lfa::encode_rel`] for `h = o/2` channels.
    #[inline(always)]
    fn encode_rel_width(
        &self,
        h: usize,
        g: &Geometry<'_>,
        first: usize,
        pts: usize,
        r1: &mut [f32],
    ) {
        let wd = &self.w_dist[..h];
        for (p, rows) in r1[..pts * g.k * h].chunks_exact_mut(g.k * h).enumerate() {
            let i = first + p;
            let pi = &g.xyz[i * 3..i * 3 + 3];
            let ai = &g.pos_i[i * h..(i + 1) * h];
            for (row, &n) in rows.chunks_exact_mut(h).zip(&g.nb[i * g.k..(i + 1) * g.k]) {
                let n = n as usize;
                let pk = &g.xyz[n * 3..n * 3 + 3];
                let (dx, dy, dz) = (pi[0] - pk[0], pi[1] - pk[1], pi[2] - pk[2]);
                let dist = (dx * dx + dy * dy + dz * dz).sqrt();
                let bk = &g.pos_k[n * h..(n + 1) * h];
                for (((r, &a), &b), &w) in row.iter_mut().zip(ai).zip(bk).zip(wd) {
                    let t = a + b + w * dist;
                    *r = if t >= 0.0 { t } else { t * SLOPE };
                }
            }
        }
    }

    /// Adds the gathered feature scores and softmax-pools each point of the tile into `out`.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn attend(
        &self,
        g: &Geometry<'_>,
        first: usize,
        pts: usize,
        gfeat: &[f32],
        feat: &[f32],
        scores: &mut [f32],
        rel: &[f32],
        out: &mut [f32],
        tmp: &mut [f32],
    ) {
        let (o, h, k) = (self.d_out, self.d_out / 2, g.k);
        for p in 0..pts {
            let i = first + p;
            let nb = &g.nb[i * k..(i + 1) * k];
            let s = &mut scores[p * k * o..(p + 1) * k * o];
            for (row, &n) in s.chunks_exact_mut(o).zip(nb) {
                row.iter_mut()
                    .zip(&gfeat[n as usize * o..][..o])
                    .for_each(|(a, b)| *a += b);
            }
            softmax_pool(
                s,
                nb,
                feat,
                &rel[p * k * h..(p + 1) * k * h],
                &mut out[p * o..(p + 1) * o],
                tmp,
            );
        }
    }
}

/// Which of the block's two attentive poolings a pass runs.
#[derive(Clone, Copy)]
enum Pass {
    /// pool1 over `[h_k, r1]`.
    First,
    /// pool2 over `[x1_k, φ2(r1)]`.
    Second,
}

/// One tile of points and the per-point arrays its pass reads.
struct Tile<'a> {
    geo: &'a Geometry<'a>,
    first: usize,
    pts: usize,
    gfeat: &'a [f32],
    feat: &'a [f32],
}

struct Geometry<'a> {
    xyz: &'a [f32],
    nb: &'a [u32],
    pos_i: &'a [f32],
    pos_k: &'a [f32],
    k: usize,
}

struct Scratch {
    r1: Vec<f32>,
    r2: Vec<f32>,
    scores: Vec<f32>,
    tmp: Vec<f32>,
}

impl Scratch {
    fn new(rows: usize, o: usize) -> Self {
        Scratch {
            r1: vec![0.0; rows * o / 2],
            r2: vec![0.0; rows * o / 2],
            scores: vec![0.0; rows * o],
            tmp: vec![0.0; o],
        }
    }
}

/// Random-sample pooling: `out[j] = max_k x[sub[j, k]]` for the `m` points kept.
pub fn max_pool(x: &[f32], c: usize, sub: &[u32], m: usize, k: usize) -> Vec<f32> {
    par_filled(
        m * c,
        c * 64,
        || (),
        |_, chunk, rows| {
            for (r, row) in rows.chunks_exact_mut(c).enumerate() {
                let j = chunk * 64 + r;
                let idx = &sub[j * k..(j + 1) * k];
                row.copy_from_slice(&x[idx[0] as usize * c..][..c]);
                for &n in &idx[1..] {
                    row.iter_mut()
                        .zip(&x[n as usize * c..][..c])
                        .for_each(|(a, &b)| *a = a.max(b));
                }
            }
        },
    )
}

/// `y = act(skip·W_sᵀ + (x_coarse·W_uᵀ)[up] + b)`: a decoder layer with the upsampling gather
/// moved after the (linear) coarse half of the convolution.
pub fn decode(
    skip_w: &Dense,
    up_w: &Dense,
    skip: &[f32],
    n: usize,
    coarse: &[f32],
    m: usize,
    up: &[u32],
) -> Vec<f32> {
    let out = skip_w.out;
    let yc = up_w.apply(coarse, m, None); // [M, out]
    let mut y = skip_w.apply(skip, n, None); // [N, out]
    y.par_chunks_mut(out * 256)
        .zip(up.par_chunks(256))
        .for_each(|(rows, up)| add_upsampled(rows, up, &yc, out));
    y
}

/// The tail of a decoder layer on some rows: `rows [r, width] = LeakyReLU(rows + coarse[up])`,
/// with `coarse [M, width]` the coarse half of the layer's product (`up` holds `r` indices).
pub(crate) fn add_upsampled(rows: &mut [f32], up: &[u32], coarse: &[f32], width: usize) {
    for (row, &src) in rows.chunks_exact_mut(width).zip(up) {
        row.iter_mut()
            .zip(&coarse[src as usize * width..][..width])
            .for_each(|(a, b)| *a += b);
        leaky(row, SLOPE);
    }
}

/// `UN` rows of `H` values times a row-major `[H, 16·V]` weight matrix `w`: per row, `V` vectors
/// of 16 sums, each a chain of fused multiply-adds over the `H` inputs in order; the rows'
/// chains interleaved and each weight row loaded once for all of them (the register kernels'
/// score and φ2 products).
///
/// # Safety
/// The CPU must support AVX-512F; `w` holds `H·16·V` values; `rows` holds at least `UN` rows.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
#[inline]
unsafe fn rows_times_weights<const H: usize, const V: usize, const UN: usize>(
    rows: &[[f32; H]],
    w: *const f32,
) -> [[std::arch::x86_64::__m512; V]; UN] {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); V]; UN];
    for c in 0..H {
        // SAFETY: row c of `w` has 16·V values (the caller's contract).
        let wc: [__m512; V] =
            std::array::from_fn(|v| unsafe { _mm512_loadu_ps(w.add(c * 16 * V + 16 * v)) });
        for u in 0..UN {
            let b = _mm512_set1_ps(rows[u][c]);
            for v in 0..V {
                acc[u][v] = _mm512_fmadd_ps(b, wc[v], acc[u][v]);
            }
        }
    }
    acc
}

/// The distances from point `i` of `xyz` (`[N, 3]`) to its 16 neighbours `nb`: the neighbours'
/// coordinates gathered, the squares by the scalar expression (`(dx·dx + dy·dy) + dz·dz`, each
/// step rounded, no fused multiply-add: the same values), then their square roots (correctly
/// rounded, as the scalar ones).
///
/// # Safety
/// The CPU must support AVX-512F; `xyz` must hold point `i` and every point of `nb`, and
/// `3 · N` must fit an `i32` (the gathers' offsets).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
#[inline]
unsafe fn neighbour_dists(xyz: *const f32, i: usize, nb: &[u32]) -> [f32; 16] {
    use std::arch::x86_64::*;
    debug_assert!(nb.len() == 16);
    let mut dist = [0f32; 16];
    // SAFETY: 16 indices from `nb` (16 entries); point i and every neighbour are inside `xyz`,
    // whose `3 · N` offsets fit an i32 (the caller's contract).
    unsafe {
        let at = _mm512_mullo_epi32(_mm512_loadu_si512(nb.as_ptr().cast()), _mm512_set1_epi32(3));
        let d = |c: usize| {
            let p = _mm512_set1_ps(*xyz.add(3 * i + c));
            _mm512_sub_ps(p, _mm512_i32gather_ps::<4>(at, xyz.add(c)))
        };
        let (dx, dy, dz) = (d(0), d(1), d(2));
        let sq = _mm512_add_ps(
            _mm512_add_ps(_mm512_mul_ps(dx, dx), _mm512_mul_ps(dy, dy)),
            _mm512_mul_ps(dz, dz),
        );
        _mm512_storeu_ps(dist.as_mut_ptr(), _mm512_sqrt_ps(sq));
    }
    dist
}

/// [`crate::kernels::exp_neg`] on 16 lanes (same range reduction and polynomial, fused
/// multiply-adds; the power of two applied with `vscalefps`).
///
/// # Safety
/// The CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn exp_neg_avx512(x: std::arch::x86_64::__m512) -> std::arch::x86_64::__m512 {
    use crate::kernels::{EXP_LN2, EXP_POLY, EXP_ROUND};
    use std::arch::x86_64::*;
    let x = _mm512_max_ps(x, _mm512_set1_ps(-87.0));
    let t = _mm512_fmadd_ps(
        x,
        _mm512_set1_ps(std::f32::consts::LOG2_E),
        _mm512_set1_ps(EXP_ROUND),
    );
    let n = _mm512_sub_ps(t, _mm512_set1_ps(EXP_ROUND));
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(EXP_LN2[0]), x);
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(EXP_LN2[1]), r);
    let r2 = _mm512_mul_ps(r, r);
    let mut p = _mm512_set1_ps(EXP_POLY[0]);
    for &c in &EXP_POLY[1..] {
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
    }
    let p = _mm512_add_ps(_mm512_fmadd_ps(p, r2, r), _mm512_set1_ps(1.0));
    // p · 2^n in one instruction: n is an integer in [-126, 0], so this is exactly the scalar
    // path's product with the float built from n's bits.
    _mm512_scalef_ps(p, n)
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn register_kernels_equal_the_tile_passes() {
        use super::{Geometry, Lfa, Scratch, Tile};
        use rand::{RngExt, SeedableRng};
        use randla_model::{RandLaNetConfig, StateDict};
        if !std::arch::is_x86_feature_detected!("avx512f") {
            return; // the kernels under test do not run on this CPU either
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let (n, k) = (300, 16);
        for o in [16, 32, 64, 128] {
            let cfg = RandLaNetConfig {
                num_layers: 1,
                dim_output: vec![o],
                sub_sampling_ratio: vec![4],
                num_neighbors: k,
                in_channels: 3,
                ..Default::default()
            };
            let lfa = Lfa::load(&StateDict::random(&cfg, o as u64), 0).unwrap();
            let h = o / 2;
            let xyz: Vec<f32> = (0..n * 3).map(|_| rng.random::<f32>() * 4.0).collect();
            let nb: Vec<u32> = (0..n * k)
                .map(|i| {
                    if i % k == 0 {
                        (i / k) as u32
                    } else {
                        rng.random_range(0..n as u32)
                    }
                })
                .collect();
            let pos_i = lfa.pos_i.apply(&xyz, n, None);
            let pos_k = lfa.pos_k.apply(&xyz, n, None);
            // Feature scores of a few units, so that the softmax is far from uniform.
            let gfeat: Vec<f32> = (0..n * o)
                .map(|_| rng.random::<f32>() * 8.0 - 4.0)
                .collect();
            let feat: Vec<f32> = (0..n * h)
                .map(|_| rng.random::<f32>() * 2.0 - 1.0)
                .collect();
            let geo = Geometry {
                xyz: &xyz,
                nb: &nb,
                pos_i: &pos_i,
                pos_k: &pos_k,
                k,
            };
            for first in [true, false] {
                let tile = Tile {
                    geo: &geo,
                    first: 0,
                    pts: n,
                    gfeat: &gfeat,
                    feat: &feat,
                };
                let (mut want, mut got) = (vec![0f32; n * o], vec![0f32; n * o]);
                let mut scratch = Scratch::new(n * k, o);
                if first {
                    lfa.pass1(&tile, &mut scratch, &mut want);
                } else {
                    lfa.pass2(&tile, &mut scratch, &mut want);
                }
                // SAFETY: AVX-512F is present (checked above); K = 16 and o is the kernel's.
                unsafe {
                    match o {
                        16 => lfa.narrow16_avx512(&tile, first, &mut got),
                        32 => lfa.wide_avx512::<16, 32, 1, 2, 4>(&tile, first, &mut got),
                        64 => lfa.wide_avx512::<32, 64, 2, 4, 4>(&tile, first, &mut got),
                        _ => lfa.wide_avx512::<64, 128, 4, 8, 2>(&tile, first, &mut got),
                    }
                }
                let max = want.iter().fold(0f32, |a, v| a.max(v.abs()));
                let diff = want
                    .iter()
                    .zip(&got)
                    .fold(0f32, |a, (w, g)| a.max((w - g).abs()));
                assert!(
                    diff <= 1e-5 * max,
                    "o = {o}, first = {first}: max |Δ| {diff} of {max}"
                );
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn vector_exp_matches_the_scalar_one() {
        use std::arch::x86_64::*;
        if !std::arch::is_x86_feature_detected!("avx512f") {
            return; // the kernel that uses it does not run on this CPU either
        }
        let xs: Vec<f32> = (0..=4096).map(|i| -90.0 * i as f32 / 4096.0).collect();
        for chunk in xs.chunks_exact(16) {
            let mut got = [0f32; 16];
            // SAFETY: AVX-512F is present (checked above); 16 lanes in, 16 out.
            unsafe {
                let v = super::exp_neg_avx512(_mm512_loadu_ps(chunk.as_ptr()));
                _mm512_storeu_ps(got.as_mut_ptr(), v);
            }
            for (&x, &g) in chunk.iter().zip(&got) {
                let want = crate::kernels::exp_neg(x);
                assert!(
                    (g - want).abs() <= 4.0 * f32::EPSILON * want.max(f32::MIN_POSITIVE),
                    "exp({x}): {g} vs {want}"
                );
            }
        }
    }
}
