//! The numeric kernels: dense layers on a register-blocked AVX-512 or AVX2/FMA product (the same
//! bits either way), a vectorisable `exp`,
//! and the softmax-over-K attentive pooling.

use rayon::prelude::*;

/// Rows handed to one task by the row-parallel dense layers.
const ROWS_PER_TASK: usize = 512;

/// A vector of `len` values written chunk by chunk in parallel: chunk `i` (values
/// `i·chunk .. (i + 1)·chunk`) is set to `T::default()` and handed to `fill(state, i, chunk)` on
/// the thread that fills it, `state` coming from `init` as in rayon's `for_each_init`.
///
/// The result equals `vec![T::default(); len]` followed by
/// `par_chunks_mut(chunk).enumerate().for_each_init(init, ..)`, without first zeroing the whole
/// vector on one thread: each chunk is zeroed in cache just before it is written (the up-front
/// `memset`s of the engine's outputs were 5 % of a small run's CPU time, mostly serial).
pub fn par_filled<T, S, I, F>(len: usize, chunk: usize, init: I, fill: F) -> Vec<T>
where
    T: Copy + Default + Send,
    I: Fn() -> S + Sync + Send,
    F: Fn(&mut S, usize, &mut [T]) + Sync + Send,
{
    let mut v: Vec<T> = Vec::with_capacity(len);
    v.spare_capacity_mut()[..len]
        .par_chunks_mut(chunk.max(1))
        .enumerate()
        .for_each_init(init, |state, (i, c)| {
            for x in c.iter_mut() {
                x.write(T::default());
            }
            // SAFETY: every element of `c` was initialised just above, and `MaybeUninit<T>`
            // has the layout of `T`.
            let c = unsafe { &mut *(c as *mut [std::mem::MaybeUninit<T>] as *mut [T]) };
            fill(state, i, c);
        });
    // SAFETY: the chunks cover `0..len` and each was initialised above (a panic in `fill`
    // unwinds before this line, leaving the length 0).
    unsafe { v.set_len(len) };
    v
}

/// A 1×1 convolution / linear layer with its batch norm folded in: `y = x · wᵀ + b`.
#[derive(Debug, Clone)]
pub struct Dense {
    /// `[out, inp]` row-major.
    pub w: Vec<f32>,
    /// `[out]`.
    pub b: Vec<f32>,
    /// Input width.
    pub inp: usize,
    /// Output width.
    pub out: usize,
    /// `w` transposed, `[inp, out]` (what the row kernel reads).
    wt: Vec<f32>,
}

impl Dense {
    /// A layer from its `[out, inp]` weights and `[out]` bias.
    pub fn new(w: Vec<f32>, b: Vec<f32>, inp: usize, out: usize) -> Self {
        assert_eq!(w.len(), inp * out);
        assert_eq!(b.len(), out);
        let wt = transpose(&w, out, inp);
        Dense { w, b, inp, out, wt }
    }

    /// Scales row `o` of the weights by `s[o]` and replaces the bias (batch-norm folding).
    pub fn fold(&mut self, s: &[f32], b: Vec<f32>) {
        for o in 0..self.out {
            self.w[o * self.inp..(o + 1) * self.inp]
                .iter_mut()
                .for_each(|w| *w *= s[o]);
        }
        self.b = b;
        self.wt = transpose(&self.w, self.out, self.inp);
    }

    /// `y[n, out] = act(x[n, inp] · wᵀ + b)`, parallel over rows. `slope` is the LeakyReLU
    /// negative slope (`None`: no activation).
    pub fn apply(&self, x: &[f32], n: usize, slope: Option<f32>) -> Vec<f32> {
        assert_eq!(x.len(), n * self.inp);
        par_filled(
            n * self.out,
            ROWS_PER_TASK * self.out,
            || (),
            |_, c, yc| {
                let rows = yc.len() / self.out;
                let xc = &x[c * ROWS_PER_TASK * self.inp..][..rows * self.inp];
                self.apply_rows(xc, rows, yc, slope);
            },
        )
    }

    /// Single-threaded [`Dense::apply`] into `y`.
    #[inline]
    pub fn apply_rows(&self, x: &[f32], rows: usize, y: &mut [f32], slope: Option<f32>) {
        gemm_rows_bias_act(x, rows, self.inp, &self.wt, self.out, y, &self.b, slope);
    }
}

/// `row = act(row + b)`.
#[inline(always)]
pub fn add_bias_act(row: &mut [f32], b: &[f32], slope: Option<f32>) {
    match slope {
        Some(s) => row.iter_mut().zip(b).for_each(|(v, b)| {
            let t = *v + b;
            *v = if t >= 0.0 { t } else { t * s };
        }),
        None => row.iter_mut().zip(b).for_each(|(v, b)| *v += b),
    }
}

/// LeakyReLU in place.
#[inline(always)]
pub fn leaky(v: &mut [f32], slope: f32) {
    v.iter_mut()
        .for_each(|x| *x = if *x >= 0.0 { *x } else { *x * slope });
}

/// 1.5 · 2^23: adding it to a float below 2^22 in magnitude rounds it to an integer.
pub(crate) const EXP_ROUND: f32 = 12_582_912.0;
/// ln 2 split in two for the range reduction (Cephes): a short high part and the rest.
pub(crate) const EXP_LN2: [f32; 2] = [0.693_359_4, -2.121_944_4e-4];
/// Cephes' `expf` polynomial on the reduced argument, highest power first.
pub(crate) const EXP_POLY: [f32; 6] = [
    1.987_569_1e-4,
    1.398_199_9e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    1.666_666_5e-1,
    0.5,
];

/// `e^x` for `x <= 0` (softmax arguments), to about 2 ulp, branch-free so that it vectorises.
/// Cephes' `expf` polynomial after a round-to-nearest range reduction done with adds only.
#[inline(always)]
pub fn exp_neg(x: f32) -> f32 {
    let x = x.max(-87.0);
    let t = x * std::f32::consts::LOG2_E + EXP_ROUND;
    let n = t - EXP_ROUND;
    let r = x - n * EXP_LN2[0] - n * EXP_LN2[1];
    let r2 = r * r;
    let p = EXP_POLY[1..].iter().fold(EXP_POLY[0], |p, &c| p * r + c);
    let p = p * r2 + r + 1.0;
    // n is an integer in [-126, 0]: its float bits minus EXP_ROUND's bits give it as an integer.
    let ni = (t.to_bits() as i32) - (EXP_ROUND.to_bits() as i32);
    p * f32::from_bits(((ni + 127) << 23) as u32)
}

/// Attentive pooling of one point: softmax over the K rows of `scores` (per channel), then the
/// weighted sum of the values `[feat[nb[k]] (half channels), rel[k] (half channels)]`.
///
/// `scores` `[K, c]` is overwritten; `feat` is `[N, c/2]`; `rel` `[K, c/2]`; `out` `[c]`;
/// `tmp` `[c]` scratch. On return `scores` holds the unnormalised weights `exp(s − max_K s)` and
/// `tmp` their per-channel sums (the training step derives the softmax weights from them).
#[inline(always)]
pub fn softmax_pool(
    scores: &mut [f32],
    nb: &[u32],
    feat: &[f32],
    rel: &[f32],
    out: &mut [f32],
    tmp: &mut [f32],
) {
    // The network's widths get loops of a length known at compile time (fully vectorised, no
    // remainder handling); any other width takes the same code with a run-time length.
    match out.len() {
        16 => softmax_pool_fixed::<16, 8>(scores, nb, feat, rel, out, tmp),
        32 => softmax_pool_fixed::<32, 16>(scores, nb, feat, rel, out, tmp),
        64 => softmax_pool_fixed::<64, 32>(scores, nb, feat, rel, out, tmp),
        128 => softmax_pool_fixed::<128, 64>(scores, nb, feat, rel, out, tmp),
        256 => softmax_pool_fixed::<256, 128>(scores, nb, feat, rel, out, tmp),
        c => softmax_pool_any(c, scores, nb, feat, rel, out, tmp),
    }
}

/// [`softmax_pool`] for `C` channels (`H = C / 2`).
#[inline(always)]
fn softmax_pool_fixed<const C: usize, const H: usize>(
    scores: &mut [f32],
    nb: &[u32],
    feat: &[f32],
    rel: &[f32],
    out: &mut [f32],
    tmp: &mut [f32],
) {
    debug_assert_eq!(2 * H, C);
    let k = nb.len();
    let scores = &mut scores[..k * C];
    let out: &mut [f32; C] = out.try_into().expect("C channels");
    let tmp: &mut [f32; C] = (&mut tmp[..C]).try_into().expect("C channels");
    let mut m = [f32::NEG_INFINITY; C];
    for row in scores.chunks_exact(C) {
        for c in 0..C {
            m[c] = m[c].max(row[c]);
        }
    }
    let mut sum = [0f32; C];
    let mut acc = [0f32; C];
    for (j, (row, &n)) in scores.chunks_exact_mut(C).zip(nb).enumerate() {
        let f: &[f32; H] = feat[n as usize * H..][..H].try_into().expect("H channels");
        let r: &[f32; H] = rel[j * H..][..H].try_into().expect("H channels");
        for c in 0..C {
            let e = exp_neg(row[c] - m[c]);
            row[c] = e;
            sum[c] += e;
        }
        for c in 0..H {
            acc[c] += row[c] * f[c];
            acc[H + c] += row[H + c] * r[c];
        }
    }
    for c in 0..C {
        out[c] = acc[c] / sum[c];
    }
    *tmp = sum;
}

/// [`softmax_pool`] for any width.
#[inline(always)]
fn softmax_pool_any(
    c: usize,
    scores: &mut [f32],
    nb: &[u32],
    feat: &[f32],
    rel: &[f32],
    out: &mut [f32],
    tmp: &mut [f32],
) {
    let h = c / 2;
    let k = nb.len();
    tmp.copy_from_slice(&scores[..c]);
    for row in scores[c..k * c].chunks_exact(c) {
        tmp.iter_mut().zip(row).for_each(|(m, &s)| *m = m.max(s));
    }
    for row in scores[..k * c].chunks_exact_mut(c) {
        row.iter_mut()
            .zip(tmp.iter())
            .for_each(|(s, &m)| *s = exp_neg(*s - m));
    }
    // tmp becomes the per-channel sum of the weights.
    tmp.copy_from_slice(&scores[..c]);
    for row in scores[c..k * c].chunks_exact(c) {
        tmp.iter_mut().zip(row).for_each(|(t, &e)| *t += e);
    }
    out.fill(0.0);
    for (j, (row, &n)) in scores.chunks_exact(c).zip(nb).enumerate() {
        let f = &feat[n as usize * h..][..h];
        let r = &rel[j * h..][..h];
        let (lo, hi) = out.split_at_mut(h);
        lo.iter_mut()
            .zip(&row[..h])
            .zip(f)
            .for_each(|((o, &e), &v)| *o += e * v);
        hi.iter_mut()
            .zip(&row[h..])
            .zip(r)
            .for_each(|((o, &e), &v)| *o += e * v);
    }
    out.iter_mut().zip(tmp.iter()).for_each(|(o, &s)| *o /= s);
}

/// `c[m, n] = a[m, kd] · wt[kd, n]` (`+= ` when `accumulate`), with `wt` the transposed weight
/// (`[in, out]` row-major): the narrow, many-row products of the tiles, where a general SGEMM's
/// packing costs more than the arithmetic. An AVX-512 micro-kernel (8 rows × 32 columns of
/// accumulators, weights streamed from L1/L2) for 16 columns or more where the CPU has AVX-512F,
/// else an AVX2/FMA one (4 × 16), which gives the same bits; plain loops elsewhere.
#[inline]
pub fn gemm_rows(
    a: &[f32],
    m: usize,
    kd: usize,
    wt: &[f32],
    n: usize,
    c: &mut [f32],
    accumulate: bool,
) {
    assert!(a.len() >= m * kd && wt.len() >= kd * n && c.len() >= m * n);
    gemm_strided(a, (kd, 1), m, kd, wt, n, c, accumulate);
}

/// `c[m, n] = act(a[m, kd] · wt[kd, n] + b)` (`slope`: the LeakyReLU negative slope, `None`: no
/// activation): [`gemm_rows`] then [`add_bias_act`] on every row, with the same bits; on CPUs with
/// AVX-512 the bias and activation are applied to the accumulators before they are stored,
/// saving a pass over `c`.
#[inline]
pub fn gemm_rows_bias_act(
    a: &[f32],
    m: usize,
    kd: usize,
    wt: &[f32],
    n: usize,
    c: &mut [f32],
    b: &[f32],
    slope: Option<f32>,
) {
    assert!(a.len() >= m * kd && wt.len() >= kd * n && c.len() >= m * n && b.len() >= n);
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") && n >= 16 {
        // SAFETY: AVX-512F is present (checked above); the slice lengths were asserted above.
        unsafe { gemm_avx512(a, (kd, 1), m, kd, wt, n, c, false, Some((b, slope))) };
        return;
    }
    gemm_strided(a, (kd, 1), m, kd, wt, n, c, false);
    for row in c[..m * n].chunks_exact_mut(n) {
        add_bias_act(row, b, slope);
    }
}

/// `c[m, n] = aᵀ · wt` (`+=` when `accumulate`) for `a [kd, m]` row-major: the weight gradient
/// `dzᵀ·x` of a layer, reducing over the `kd` rows without transposing `a` first. Same kernel as
/// [`gemm_rows`], reading `a` down its columns.
#[inline]
pub fn gemm_at(
    a: &[f32],
    kd: usize,
    m: usize,
    wt: &[f32],
    n: usize,
    c: &mut [f32],
    accumulate: bool,
) {
    assert!(a.len() >= m * kd && wt.len() >= kd * n && c.len() >= m * n);
    gemm_strided(a, (1, m), m, kd, wt, n, c, accumulate);
}

/// `c[m, n] = A · wt` with `A[r, p] = a[r·stride.0 + p·stride.1]`; the caller checked that every
/// such index is inside `a`.
#[allow(clippy::too_many_arguments)]
#[inline]
fn gemm_strided(
    a: &[f32],
    stride: (usize, usize),
    m: usize,
    kd: usize,
    wt: &[f32],
    n: usize,
    c: &mut [f32],
    accumulate: bool,
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") && n >= 16 {
        // SAFETY: AVX-512F (which implies AVX2 and FMA) is present (checked above); the slice
        // lengths were asserted by the callers and the kernel reads and writes only inside them.
        unsafe { gemm_avx512(a, stride, m, kd, wt, n, c, accumulate, None) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: AVX2 and FMA are present (checked above); the slice lengths were asserted by
        // the callers and the kernel reads and writes only inside them.
        unsafe { gemm_avx2(a, stride, m, kd, wt, n, 0, c, accumulate) };
        return;
    }
    gemm_scalar(a, stride, m, kd, wt, n, c, accumulate);
}

/// The AVX-512 kernel of [`gemm_strided`] (and of [`gemm_rows_bias_act`], with `epilogue` the
/// bias and activation): 32 columns at a time (4 rows × 2 vectors of
/// accumulators), then 16, then the last `n mod 16` columns by [`gemm_avx2`]. Every output is
/// the same chain of fused multiply-adds over `p = 0 .. kd` as in [`gemm_avx2`], so the two give
/// the same bits; on CPUs with two 512-bit FMA units this does twice the work per cycle (1.85×
/// in a register-only loop on the Xeon of BENCHMARKS.md session 10).
///
/// # Safety
/// The CPU must support AVX-512F; as [`gemm_avx2`] otherwise.
#[allow(clippy::too_many_arguments)]
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn gemm_avx512(
    a: &[f32],
    (rs, cs): (usize, usize),
    m: usize,
    kd: usize,
    wt: &[f32],
    n: usize,
    c: &mut [f32],
    accumulate: bool,
    epilogue: Option<(&[f32], Option<f32>)>,
) {
    use std::arch::x86_64::*;
    debug_assert!(!(accumulate && epilogue.is_some()));
    let n16 = n / 16 * 16;
    let (ap, wp, cp) = (a.as_ptr(), wt.as_ptr(), c.as_mut_ptr());
    // SAFETY (whole body): as in `gemm_avx2`: offsets of `ap` are r·rs + p·cs with r < m and
    // p < kd, of `wp` below kd·n and of `cp` below m·n (columns j + 16 <= n16 <= n); the bias
    // (when given) holds n values (asserted by the caller).
    unsafe {
        // Output (r, j..j + 16) = v: added to what is there, or with the bias and activation of
        // `add_bias_act` (the same operations: `t = v + b`, then `t >= 0 ? t : t·slope`).
        let store = |r: usize, j: usize, v: __m512| {
            let dst = cp.add(r * n + j);
            if accumulate {
                _mm512_storeu_ps(dst, _mm512_add_ps(_mm512_loadu_ps(dst), v));
            } else if let Some((b, slope)) = epilogue {
                let t = _mm512_add_ps(v, _mm512_loadu_ps(b.as_ptr().add(j)));
                let t = match slope {
                    Some(s) => {
                        let neg = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(t, _mm512_setzero_ps());
                        _mm512_mask_blend_ps(neg, _mm512_mul_ps(t, _mm512_set1_ps(s)), t)
                    }
                    None => t,
                };
                _mm512_storeu_ps(dst, t);
            } else {
                _mm512_storeu_ps(dst, v);
            }
        };
        // Bands of 8 rows, then 4, then single rows.
        let mut r = 0;
        while r + 8 <= m {
            row_band::<8>(ap, (rs, cs), r, kd, wp, n, n16, &store);
            r += 8;
        }
        while r + 4 <= m {
            row_band::<4>(ap, (rs, cs), r, kd, wp, n, n16, &store);
            r += 4;
        }
        while r < m {
            row_band::<1>(ap, (rs, cs), r, kd, wp, n, n16, &store);
            r += 1;
        }
    }
    if n16 < n {
        // SAFETY: AVX2 and FMA come with AVX-512F; the rest as for this function.
        unsafe { gemm_avx2(a, (rs, cs), m, kd, wt, n, n16, c, accumulate) };
        if let Some((b, slope)) = epilogue {
            for row in c[..m * n].chunks_exact_mut(n) {
                add_bias_act(&mut row[n16..], &b[n16..n], slope);
            }
        }
    }
}

/// Plain-loop `gemm_strided`, for CPUs without AVX2 and FMA.
#[allow(clippy::too_many_arguments)]
fn gemm_scalar(
    a: &[f32],
    (rs, cs): (usize, usize),
    m: usize,
    kd: usize,
    wt: &[f32],
    n: usize,
    c: &mut [f32],
    accumulate: bool,
) {
    let mut acc = vec![0f32; n];
    for r in 0..m {
        acc.fill(0.0);
        for p in 0..kd {
            let x = a[r * rs + p * cs];
            acc.iter_mut()
                .zip(&wt[p * n..(p + 1) * n])
                .for_each(|(o, w)| *o += x * w);
        }
        let out = &mut c[r * n..(r + 1) * n];
        if accumulate {
            out.iter_mut().zip(&acc).for_each(|(o, v)| *o += v);
        } else {
            out.copy_from_slice(&acc);
        }
    }
}

/// Columns `0..n16` of rows `r..r + R` of [`gemm_avx512`]: 32 columns at a time (16 for a single
/// row), then 16, each output handed to `store(row, column, value)`.
///
/// # Safety
/// As [`rows_block`] for every block of these rows and columns.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
#[inline]
unsafe fn row_band<const R: usize>(
    ap: *const f32,
    stride: (usize, usize),
    r: usize,
    kd: usize,
    wp: *const f32,
    n: usize,
    n16: usize,
    store: &impl Fn(usize, usize, std::arch::x86_64::__m512),
) {
    let mut j = 0;
    if R > 1 {
        while j + 32 <= n16 {
            // SAFETY: the caller's contract.
            let acc = unsafe { rows_block::<R, 2>(ap, stride, r, kd, wp, n, j) };
            for q in 0..R {
                store(r + q, j, acc[q][0]);
                store(r + q, j + 16, acc[q][1]);
            }
            j += 32;
        }
    }
    while j + 16 <= n16 {
        // SAFETY: the caller's contract.
        let acc = unsafe { rows_block::<R, 1>(ap, stride, r, kd, wp, n, j) };
        for q in 0..R {
            store(r + q, j, acc[q][0]);
        }
        j += 16;
    }
}

/// The products of rows `r..r + R` of `A` (`A[r, p] = a[r·rs + p·cs]`) with columns
/// `j..j + 16·V` of `wt [kd, n]`: each output one chain of fused multiply-adds over `p = 0..kd`
/// in order, the rows' chains interleaved and each weight vector loaded once for all of them.
///
/// # Safety
/// The CPU must support AVX-512F; every `(r + q)·rs + p·cs` (q < R, p < kd) is inside `a`, and
/// `p·n + j + 16·V <= kd·n` inside `wt`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
#[inline]
unsafe fn rows_block<const R: usize, const V: usize>(
    ap: *const f32,
    (rs, cs): (usize, usize),
    r: usize,
    kd: usize,
    wp: *const f32,
    n: usize,
    j: usize,
) -> [[std::arch::x86_64::__m512; V]; R] {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); V]; R];
    for p in 0..kd {
        // SAFETY: the caller's contract.
        let w: [__m512; V] =
            std::array::from_fn(|v| unsafe { _mm512_loadu_ps(wp.add(p * n + j + 16 * v)) });
        for q in 0..R {
            // SAFETY: the caller's contract.
            let x = _mm512_set1_ps(unsafe { *ap.add((r + q) * rs + p * cs) });
            for v in 0..V {
                acc[q][v] = _mm512_fmadd_ps(x, w[v], acc[q][v]);
            }
        }
    }
    acc
}

/// The AVX2 + FMA kernel of [`gemm_strided`] on columns `from..n`: eight columns at a time,
/// then the last `(n − from) mod 8` four at a time.
///
/// # Safety
/// The CPU must support AVX2 and FMA, `a` must hold every `r·stride.0 + p·stride.1` (r < m,
/// p < kd), and `wt`, `c` must hold `kd·n`, `m·n` values.
#[allow(clippy::too_many_arguments)]
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gemm_avx2(
    a: &[f32],
    (rs, cs): (usize, usize),
    m: usize,
    kd: usize,
    wt: &[f32],
    n: usize,
    from: usize,
    c: &mut [f32],
    accumulate: bool,
) {
    use std::arch::x86_64::*;
    let n8 = from + (n - from) / 8 * 8;
    let (ap, wp, cp) = (a.as_ptr(), wt.as_ptr(), c.as_mut_ptr());
    // SAFETY (whole body): every offset of `ap` below is r·rs + p·cs with r < m and p < kd
    // (inside `a` by the contract), < kd·n for `wp` and < m·n for `cp`: columns j + 8 <= n8 <= n
    // (the last n − n8 columns are `gemm_tail_avx2`'s).
    unsafe {
        let store = |dst: *mut f32, v: __m256| {
            if accumulate {
                _mm256_storeu_ps(dst, _mm256_add_ps(_mm256_loadu_ps(dst), v));
            } else {
                _mm256_storeu_ps(dst, v);
            }
        };
        let mut r = 0;
        while r + 4 <= m {
            let mut j = from;
            while j + 16 <= n8 {
                let mut acc = [_mm256_setzero_ps(); 8];
                for p in 0..kd {
                    let w0 = _mm256_loadu_ps(wp.add(p * n + j));
                    let w1 = _mm256_loadu_ps(wp.add(p * n + j + 8));
                    for q in 0..4 {
                        let x = _mm256_set1_ps(*ap.add((r + q) * rs + p * cs));
                        acc[2 * q] = _mm256_fmadd_ps(x, w0, acc[2 * q]);
                        acc[2 * q + 1] = _mm256_fmadd_ps(x, w1, acc[2 * q + 1]);
                    }
                }
                for q in 0..4 {
                    store(cp.add((r + q) * n + j), acc[2 * q]);
                    store(cp.add((r + q) * n + j + 8), acc[2 * q + 1]);
                }
                j += 16;
            }
            while j + 8 <= n8 {
                let mut acc = [_mm256_setzero_ps(); 4];
                for p in 0..kd {
                    let w0 = _mm256_loadu_ps(wp.add(p * n + j));
                    for q in 0..4 {
                        let x = _mm256_set1_ps(*ap.add((r + q) * rs + p * cs));
                        acc[q] = _mm256_fmadd_ps(x, w0, acc[q]);
                    }
                }
                for q in 0..4 {
                    store(cp.add((r + q) * n + j), acc[q]);
                }
                j += 8;
            }
            r += 4;
        }
        while r < m {
            let mut j = from;
            while j + 8 <= n8 {
                let mut acc = _mm256_setzero_ps();
                for p in 0..kd {
                    let x = _mm256_set1_ps(*ap.add(r * rs + p * cs));
                    acc = _mm256_fmadd_ps(x, _mm256_loadu_ps(wp.add(p * n + j)), acc);
                }
                store(cp.add(r * n + j), acc);
                j += 8;
            }
            r += 1;
        }
    }
    if n8 < n {
        // SAFETY: as for this function; the tail reads and writes columns n8..n only.
        unsafe { gemm_tail_avx2(a, (rs, cs), m, kd, wt, n, n8, c, accumulate) };
    }
}

/// The last `n − from < 8` columns of [`gemm_avx2`] (a head of 4, 7 or 13 classes), four at a
/// time in 128-bit vectors. A last group of fewer than four reads its weights from a zero-padded
/// copy and writes its lanes one by one (masked stores are microcoded and slow on AMD). Kept out
/// of line: inlined, it slowed the main loops' code by half.
///
/// # Safety
/// As [`gemm_avx2`].
#[allow(clippy::too_many_arguments)]
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline(never)]
unsafe fn gemm_tail_avx2(
    a: &[f32],
    (rs, cs): (usize, usize),
    m: usize,
    kd: usize,
    wt: &[f32],
    n: usize,
    from: usize,
    c: &mut [f32],
    accumulate: bool,
) {
    use std::arch::x86_64::*;
    let (ap, wp, cp) = (a.as_ptr(), wt.as_ptr(), c.as_mut_ptr());
    // SAFETY (whole body): offsets of `ap` are r·rs + p·cs with r < m, p < kd; those of `wp` and
    // `cp` stay in columns j.. < n of rows p < kd and r < m (fewer than four go through `pad`).
    unsafe {
        let mut j = from;
        while j < n {
            let lanes = (n - j).min(4);
            let pad: Vec<f32> = if lanes < 4 {
                (0..kd)
                    .flat_map(|p| (0..4).map(move |q| (p, q)))
                    .map(|(p, q)| if q < lanes { wt[p * n + j + q] } else { 0.0 })
                    .collect()
            } else {
                Vec::new()
            };
            let w_at = |p: usize| {
                if lanes < 4 {
                    _mm_loadu_ps(pad.as_ptr().add(p * 4))
                } else {
                    _mm_loadu_ps(wp.add(p * n + j))
                }
            };
            let store4 = |dst: *mut f32, v: __m128| {
                if lanes < 4 {
                    let mut t = [0f32; 4];
                    _mm_storeu_ps(t.as_mut_ptr(), v);
                    for (q, &t) in t.iter().enumerate().take(lanes) {
                        let d = dst.add(q);
                        *d = if accumulate { *d + t } else { t };
                    }
                } else if accumulate {
                    _mm_storeu_ps(dst, _mm_add_ps(_mm_loadu_ps(dst), v));
                } else {
                    _mm_storeu_ps(dst, v);
                }
            };
            let mut r = 0;
            while r + 4 <= m {
                let mut acc = [_mm_setzero_ps(); 4];
                for p in 0..kd {
                    let w = w_at(p);
                    for (q, acc) in acc.iter_mut().enumerate() {
                        *acc = _mm_fmadd_ps(_mm_set1_ps(*ap.add((r + q) * rs + p * cs)), w, *acc);
                    }
                }
                for (q, &acc) in acc.iter().enumerate() {
                    store4(cp.add((r + q) * n + j), acc);
                }
                r += 4;
            }
            while r < m {
                let mut acc = _mm_setzero_ps();
                for p in 0..kd {
                    let x = _mm_set1_ps(*ap.add(r * rs + p * cs));
                    acc = _mm_fmadd_ps(x, w_at(p), acc);
                }
                store4(cp.add(r * n + j), acc);
                r += 1;
            }
            j += lanes;
        }
    }
}

/// The transpose of a row-major `[rows, cols]` matrix.
pub fn transpose(w: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0f32; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = w[r * cols + c];
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_accurate_on_the_softmax_range() {
        let mut worst = 0f64;
        for i in 0..200_000 {
            let x = -(i as f32) * 0.0004;
            let want = (x as f64).exp();
            let got = exp_neg(x) as f64;
            worst = worst.max((got - want).abs() / want);
        }
        assert!(worst < 5e-7, "relative error {worst}");
        assert!(exp_neg(-200.0) < 1e-37);
        assert_eq!(exp_neg(0.0), 1.0);
    }

    /// Runs `product(a, wt, c, accumulate)` from `c` filled with `init`, for `a = sin(i·fa)`
    /// (`m·kd` values) and `wt = cos(i·fw)` (`[kd, n]`), and checks every `c[i, j]` against the
    /// naive `Σ_p a_at(a, i, p)·wt[p, j]` (`+ init` when accumulating) to `tol`.
    #[allow(clippy::too_many_arguments)]
    fn assert_product(
        (m, kd, n): (usize, usize, usize),
        (fa, fw): (f32, f32),
        init: f32,
        tol: f32,
        a_at: impl Fn(&[f32], usize, usize) -> f32,
        product: impl Fn(&[f32], &[f32], &mut [f32], bool),
    ) {
        let a: Vec<f32> = (0..m * kd).map(|i| (i as f32 * fa).sin()).collect();
        let wt: Vec<f32> = (0..kd * n).map(|i| (i as f32 * fw).cos()).collect();
        for accumulate in [false, true] {
            let mut c = vec![init; m * n];
            product(&a, &wt, &mut c, accumulate);
            for i in 0..m {
                for j in 0..n {
                    let want: f32 = (0..kd).map(|p| a_at(&a, i, p) * wt[p * n + j]).sum::<f32>()
                        + if accumulate { init } else { 0.0 };
                    assert!(
                        (c[i * n + j] - want).abs() < tol,
                        "m{m} k{kd} n{n} at ({i},{j}), accumulate {accumulate}"
                    );
                }
            }
        }
    }

    #[test]
    fn gemm_rows_matches_naive_for_every_shape() {
        for (m, kd, n) in [
            (1, 1, 1),
            (5, 3, 8),
            (7, 10, 16),
            (9, 32, 64),
            (13, 8, 24),
            (4, 5, 7),
            (6, 16, 40),
            (9, 6, 4),
            (6, 32, 12),
            (9, 32, 13),
            (5, 32, 19),
            (7, 4, 3),
            (3, 2, 2),
            (17, 16, 48),
            (24, 7, 33),
            (11, 9, 100),
        ] {
            assert_product(
                (m, kd, n),
                (0.37, 0.11),
                1.0,
                1e-4,
                |a, i, p| a[i * kd + p],
                |a, wt, c, acc| gemm_rows(a, m, kd, wt, n, c, acc),
            );
            // The plain loops of CPUs without AVX2, run here too.
            assert_product(
                (m, kd, n),
                (0.37, 0.11),
                1.0,
                1e-4,
                |a, i, p| a[i * kd + p],
                |a, wt, c, acc| gemm_scalar(a, (kd, 1), m, kd, wt, n, c, acc),
            );
        }
    }

    /// The AVX-512 kernel (taken for 16 columns or more where the CPU has AVX-512F) gives the
    /// AVX2 kernel's bits: each output is the same chain of fused multiply-adds. So the engine's
    /// outputs do not depend on which of the two a CPU runs.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx512_and_avx2_products_are_bit_identical() {
        if !(std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma"))
        {
            return;
        }
        for (m, kd, n) in [
            (1, 3, 16),
            (9, 32, 64),
            (17, 16, 48),
            (24, 7, 33),
            (13, 64, 130),
            (4, 1, 31),
        ] {
            let a: Vec<f32> = (0..m * kd).map(|i| (i as f32 * 0.37).sin()).collect();
            let wt: Vec<f32> = (0..kd * n).map(|i| (i as f32 * 0.11).cos()).collect();
            for (stride, name) in [((kd, 1), "rows"), ((1, m), "transposed")] {
                for accumulate in [false, true] {
                    let init: Vec<f32> = (0..m * n).map(|i| (i as f32 * 0.05).sin()).collect();
                    let (mut got, mut want) = (init.clone(), init);
                    gemm_strided(&a, stride, m, kd, &wt, n, &mut got, accumulate);
                    // SAFETY: AVX2 and FMA were detected above; the shapes match the slices.
                    unsafe { gemm_avx2(&a, stride, m, kd, &wt, n, 0, &mut want, accumulate) };
                    let (g, w): (Vec<u32>, Vec<u32>) = (
                        got.iter().map(|v| v.to_bits()).collect(),
                        want.iter().map(|v| v.to_bits()).collect(),
                    );
                    assert_eq!(g, w, "{m}×{kd}×{n} {name}, accumulate {accumulate}");
                }
            }
        }
    }

    /// The bias and activation applied in the product kernel give the bits of the product
    /// followed by [`add_bias_act`], with and without an activation, tail columns included.
    #[test]
    fn bias_and_activation_in_the_kernel_equal_a_separate_pass() {
        for (m, kd, n) in [
            (1, 3, 16),
            (9, 32, 64),
            (17, 16, 48),
            (24, 7, 33),
            (13, 64, 130),
            (5, 8, 8),
            (6, 4, 3),
        ] {
            let a: Vec<f32> = (0..m * kd).map(|i| (i as f32 * 0.37).sin()).collect();
            let wt: Vec<f32> = (0..kd * n).map(|i| (i as f32 * 0.11).cos()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.7).sin()).collect();
            for slope in [Some(0.2), Some(0.01), None] {
                let mut want = vec![0f32; m * n];
                gemm_rows(&a, m, kd, &wt, n, &mut want, false);
                for row in want.chunks_exact_mut(n) {
                    add_bias_act(row, &b, slope);
                }
                let mut got = vec![f32::NAN; m * n];
                gemm_rows_bias_act(&a, m, kd, &wt, n, &mut got, &b, slope);
                let (g, w): (Vec<u32>, Vec<u32>) = (
                    got.iter().map(|v| v.to_bits()).collect(),
                    want.iter().map(|v| v.to_bits()).collect(),
                );
                assert_eq!(g, w, "{m}×{kd}×{n}, slope {slope:?}");
                assert!(want.iter().any(|&v| v < 0.0) && want.iter().any(|&v| v > 0.0));
            }
        }
    }

    #[test]
    fn gemm_at_is_the_transposed_product() {
        for (kd, m, n) in [
            (1, 1, 1),
            (37, 6, 10),
            (300, 16, 8),
            (9, 64, 32),
            (5, 3, 17),
            (7, 9, 13),
        ] {
            assert_product(
                (m, kd, n),
                (0.29, 0.13),
                0.5,
                1e-3,
                |a, i, p| a[p * m + i],
                |a, wt, c, acc| gemm_at(a, kd, m, wt, n, c, acc),
            );
        }
    }

    #[test]
    fn par_filled_equals_zeroing_then_filling() {
        for (len, chunk) in [(0, 4), (1, 4), (10, 3), (1000, 64), (1000, 1000), (999, 1)] {
            // The fill writes every other value only: the rest must read as zeros.
            let fill = |c: usize, out: &mut [u32]| {
                for (j, v) in out.iter_mut().enumerate().step_by(2) {
                    *v = (c * chunk + j) as u32 + 1;
                }
            };
            let mut want = vec![0u32; len];
            want.chunks_mut(chunk)
                .enumerate()
                .for_each(|(c, out)| fill(c, out));
            let got = par_filled(len, chunk, || (), |_, c, out| fill(c, out));
            assert_eq!(got, want, "len {len}, chunk {chunk}");
        }
    }

    #[test]
    fn fixed_width_softmax_pool_equals_the_general_one() {
        let mut seed = 0x1234_5678u32;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            (seed % 2000) as f32 / 250.0 - 4.0
        };
        for c in [16, 32, 64, 128, 256] {
            let (h, k, points) = (c / 2, 16, 40);
            let scores: Vec<f32> = (0..k * c).map(|_| next()).collect();
            let feat: Vec<f32> = (0..points * h).map(|_| next()).collect();
            let rel: Vec<f32> = (0..k * h).map(|_| next()).collect();
            let nb: Vec<u32> = (0..k as u32).map(|j| (j * 7 + 3) % points as u32).collect();
            let (mut s1, mut s2) = (scores.clone(), scores);
            let (mut o1, mut o2, mut t1, mut t2) =
                (vec![0.0; c], vec![0.0; c], vec![0.0; c], vec![0.0; c]);
            softmax_pool(&mut s1, &nb, &feat, &rel, &mut o1, &mut t1);
            softmax_pool_any(c, &mut s2, &nb, &feat, &rel, &mut o2, &mut t2);
            assert_eq!((s1, o1, t1), (s2, o2, t2), "c = {c}");
        }
    }

    #[test]
    fn softmax_pool_hand_computed() {
        // K = 2 neighbours, c = 2 channels (1 feature + 1 relative).
        let mut scores = vec![0.0, 1.0, (2f32).ln(), 1.0];
        let feat = vec![10.0, 40.0, 70.0];
        let rel = vec![3.0, 6.0];
        let (mut out, mut tmp) = (vec![0.0; 2], vec![0.0; 2]);
        softmax_pool(&mut scores, &[2, 0], &feat, &rel, &mut out, &mut tmp);
        // Channel 0: weights 1/3, 2/3 over feat[2] = 70, feat[0] = 10 → 30.
        assert!((out[0] - 30.0).abs() < 1e-4, "{out:?}");
        // Channel 1: equal weights over 3 and 6 → 4.5.
        assert!((out[1] - 4.5).abs() < 1e-5, "{out:?}");
    }
}
