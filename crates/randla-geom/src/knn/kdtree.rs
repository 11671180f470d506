//! A bucketed KD-tree for exact KNN over `f32` coordinates.
//!
//! Build: median splits along the widest dimension of each node, down to buckets of at most
//! [`LEAF_SIZE`] points; the points are copied into tree order (struct-of-arrays) so a bucket is
//! scanned from contiguous memory. The shape of the tree depends on the number of points only, so
//! the node array is laid out in pre-order and the two halves of a split are built in parallel into
//! disjoint slices.
//!
//! Query: depth-first, nearer child first, with nanoflann's incremental box distance. Every
//! bound is computed from actual point coordinates with the same `f32` expression as the point
//! distance, and IEEE rounding is monotone, so a pruned subtree can never hold a point that would
//! have entered the result: the search is exact, ties included (smaller index wins).
//! Queries run in parallel chunks, in a spatially coherent order (tree order for the tree's own
//! points, Morton order otherwise); results come back in input order.

use std::collections::HashMap;

use rayon::prelude::*;

use super::{Neighbours, SharedOut, bounds, bounds_of, check_query};
use crate::error::{Result, check_finite, check_permutation};

/// Maximum number of points in a leaf bucket. 64 rather than 32: on real crops (IGN LiDAR HD at
/// 0.25 m, a 72,438-point tile) a k = 16 query scans 6.6 buckets of 32 and walks 30 nodes; with
/// 64 the self-KNN takes 7–10 % less time and the build 10 % less (uniform 3D points: equal).
pub const LEAF_SIZE: usize = 64;
/// Below this many points a subtree is built on the current thread.
const PAR_BUILD_MIN: usize = 32 * 1024;
/// Queries handed to one rayon task.
const QUERY_CHUNK: usize = 512;
const LEAF: u8 = 3;

#[derive(Clone, Copy, Debug, Default)]
struct Node {
    /// Internal: the largest coordinate of the left child along `dim`.
    lo: f32,
    /// Internal: the smallest coordinate of the right child along `dim`.
    hi: f32,
    /// Internal: index of the right child (the left child is the next node). Leaf: first slot.
    a: u32,
    /// Leaf: one past the last slot.
    b: u32,
    /// Split dimension, or [`LEAF`].
    dim: u8,
}

/// An immutable KD-tree over a point cloud, for exact k-nearest-neighbour queries.
///
/// ```
/// use randla_geom::knn::KdTree;
/// let pts = [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [5.0, 0.0, 0.0]];
/// let tree = KdTree::build(&pts).unwrap();
/// let nn = tree.knn(&[[0.9, 0.0, 0.0]], 2).unwrap();
/// assert_eq!(nn.row(0), &[1, 0]);
/// ```
#[derive(Debug, Clone)]
pub struct KdTree {
    xs: Vec<f32>,
    ys: Vec<f32>,
    zs: Vec<f32>,
    /// Slot (tree order) → index of the point in the input cloud.
    ids: Vec<u32>,
    nodes: Vec<Node>,
    min: [f32; 3],
    max: [f32; 3],
}

/// Number of nodes of the subtree over `len` points (the shape depends on `len` only).
fn count_nodes(len: usize, memo: &mut HashMap<usize, usize>) -> usize {
    if len <= LEAF_SIZE {
        return 1;
    }
    if let Some(&c) = memo.get(&len) {
        return c;
    }
    let c = 1 + count_nodes(len / 2, memo) + count_nodes(len - len / 2, memo);
    memo.insert(len, c);
    c
}

/// A point being placed by the build: its coordinates inline, so that the partitions compare and
/// move contiguous values instead of looking each index up in the cloud.
#[derive(Clone, Copy)]
struct Item {
    p: [f32; 3],
    id: u32,
}

struct BuildCtx {
    counts: HashMap<usize, usize>,
}

impl BuildCtx {
    fn count(&self, len: usize) -> usize {
        if len <= LEAF_SIZE {
            1
        } else {
            self.counts[&len]
        }
    }

    /// Builds the subtree over `items` (the slots `base..base + items.len()`) into `nodes`, whose
    /// first element has absolute index `node_base`.
    fn build(&self, items: &mut [Item], base: usize, nodes: &mut [Node], node_base: usize) {
        let len = items.len();
        if len <= LEAF_SIZE {
            nodes[0] = Node {
                a: base as u32,
                b: (base + len) as u32,
                dim: LEAF,
                ..Node::default()
            };
            return;
        }
        let (lo, hi) = bounds_of(items.iter().map(|it| it.p));
        let ext = [hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]];
        let dim = if ext[0] >= ext[1] && ext[0] >= ext[2] {
            0
        } else if ext[1] >= ext[2] {
            1
        } else {
            2
        };
        let mid = len / 2;
        // By coordinate (in `total_cmp`'s order) then id, as one u64 key.
        items.select_nth_unstable_by_key(mid, |it| {
            let b = it.p[dim].to_bits();
            let ord = if b >> 31 == 1 { !b } else { b | 1 << 31 };
            (u64::from(ord) << 32) | u64::from(it.id)
        });
        let split_hi = items[mid].p[dim];
        let split_lo = bounds_of(items[..mid].iter().map(|it| it.p)).1[dim];
        let n_left = self.count(mid);
        let (head, rest) = nodes.split_at_mut(1);
        let (left_nodes, right_nodes) = rest.split_at_mut(n_left);
        head[0] = Node {
            lo: split_lo,
            hi: split_hi,
            a: (node_base + 1 + n_left) as u32,
            b: 0,
            dim: dim as u8,
        };
        let (left, right) = items.split_at_mut(mid);
        if len >= PAR_BUILD_MIN {
            rayon::join(
                || self.build(left, base, left_nodes, node_base + 1),
                || self.build(right, base + mid, right_nodes, node_base + 1 + n_left),
            );
        } else {
            self.build(left, base, left_nodes, node_base + 1);
            self.build(right, base + mid, right_nodes, node_base + 1 + n_left);
        }
    }
}

/// The k best candidates of one query, sorted ascending by (squared distance, index). Empty
/// slots hold (+inf, u32::MAX), which every real candidate beats.
trait Candidates {
    fn reset(&mut self);
    fn worst(&self) -> f32;
    fn offer(&mut self, d: f32, id: u32);
    fn indices(&self) -> &[u32];
    fn sq_dists(&self) -> &[f32];

    /// Offers the points of one bucket.
    #[inline(always)]
    fn scan_leaf(&mut self, q: [f32; 3], bucket: Bucket<'_>) {
        let Bucket { xs, ys, zs, ids } = bucket;
        let mut ds = [0f32; LEAF_SIZE];
        let m = xs.len();
        for j in 0..m {
            let dx = q[0] - xs[j];
            let dy = q[1] - ys[j];
            let dz = q[2] - zs[j];
            ds[j] = dx * dx + dy * dy + dz * dz;
        }
        // The bucket's points within the current bound, as a bit mask built without
        // branches; only those are offered (the bound only shrinks while offering, so the
        // mask is a superset and `offer` re-checks).
        let w = self.worst();
        let mut mask = 0u64;
        for (j, &d) in ds.iter().enumerate() {
            mask |= u64::from(d <= w) << j;
        }
        mask &= u64::MAX.checked_shr((64 - m) as u32).unwrap_or(0);
        while mask != 0 {
            let j = mask.trailing_zeros() as usize;
            self.offer(ds[j], ids[j]);
            mask &= mask - 1;
        }
    }
}

/// The points of one bucket (at most [`LEAF_SIZE`]), struct-of-arrays in tree order: four slices
/// of one length.
#[derive(Clone, Copy)]
struct Bucket<'a> {
    xs: &'a [f32],
    ys: &'a [f32],
    zs: &'a [f32],
    ids: &'a [u32],
}

/// Inserts (d, id) into the sorted arrays if it beats the last slot.
#[inline(always)]
fn insert_sorted(ds: &mut [f32], is: &mut [u32], d: f32, id: u32) {
    let k = ds.len();
    let (w, wi) = (ds[k - 1], is[k - 1]);
    if d > w || (d == w && id >= wi) {
        return;
    }
    let mut j = k - 1;
    while j > 0 && (d < ds[j - 1] || (d == ds[j - 1] && id < is[j - 1])) {
        ds[j] = ds[j - 1];
        is[j] = is[j - 1];
        j -= 1;
    }
    ds[j] = d;
    is[j] = id;
}

/// Candidates for a `k` known at compile time (the common 1 and 16).
struct Fixed<const K: usize> {
    d: [f32; K],
    i: [u32; K],
}

impl<const K: usize> Fixed<K> {
    fn new() -> Self {
        Fixed {
            d: [f32::INFINITY; K],
            i: [u32::MAX; K],
        }
    }
}

impl<const K: usize> Candidates for Fixed<K> {
    fn reset(&mut self) {
        self.d = [f32::INFINITY; K];
        self.i = [u32::MAX; K];
    }
    #[inline(always)]
    fn worst(&self) -> f32 {
        self.d[K - 1]
    }
    #[inline(always)]
    fn offer(&mut self, d: f32, id: u32) {
        insert_sorted(&mut self.d, &mut self.i, d, id);
    }
    fn indices(&self) -> &[u32] {
        &self.i
    }
    fn sq_dists(&self) -> &[f32] {
        &self.d
    }
}

/// Candidates for k = 16 on CPUs with AVX-512: the sorted 16 distances and indices are one
/// register each, so an insertion is a handful of branch-free vector instructions (the scalar
/// insertion sort's shifting loop was a third of the search time), and a bucket's distances are
/// computed 16 at a time. Same expression (no fused multiply-add), same order, same ties as
/// [`Fixed<16>`].
#[cfg(target_arch = "x86_64")]
struct Avx512K16(Fixed<16>);

#[cfg(target_arch = "x86_64")]
impl Avx512K16 {
    /// `None` when the CPU lacks AVX-512F.
    fn new() -> Option<Self> {
        std::arch::is_x86_feature_detected!("avx512f").then(|| Avx512K16(Fixed::new()))
    }
}

#[cfg(target_arch = "x86_64")]
impl Candidates for Avx512K16 {
    fn reset(&mut self) {
        self.0.reset();
    }
    #[inline(always)]
    fn worst(&self) -> f32 {
        self.0.worst()
    }
    #[inline(always)]
    fn offer(&mut self, d: f32, id: u32) {
        self.0.offer(d, id);
    }
    fn indices(&self) -> &[u32] {
        self.0.indices()
    }
    fn sq_dists(&self) -> &[f32] {
        self.0.sq_dists()
    }
    #[inline(always)]
    fn scan_leaf(&mut self, q: [f32; 3], bucket: Bucket<'_>) {
        // SAFETY: an `Avx512K16` exists only where AVX-512F was detected (`Avx512K16::new`),
        // and a `Bucket` is only made (in `descend`) from one leaf's slot range of the tree's
        // four arrays, so its slices share one length, at most LEAF_SIZE.
        unsafe { scan_leaf_avx512(&mut self.0, q, bucket) }
    }
}

/// [`Candidates::scan_leaf`] for [`Avx512K16`].
///
/// # Safety
/// The CPU must support AVX-512F; the bucket's slices have one length, at most [`LEAF_SIZE`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn scan_leaf_avx512(best: &mut Fixed<16>, q: [f32; 3], bucket: Bucket<'_>) {
    use std::arch::x86_64::*;
    let Bucket { xs, ys, zs, ids } = bucket;
    const _: () = assert!(LEAF_SIZE <= 64);
    let m = xs.len();
    debug_assert!(m <= LEAF_SIZE && ys.len() == m && zs.len() == m && ids.len() == m);
    let mut from = 0;
    if best.i[0] == u32::MAX && m >= 1 {
        // An empty list (the search's first bucket, which offers all its points): its first
        // 32 points are placed by rank, not inserted one after another; the rest are inserted
        // below. No point has index u32::MAX (a tree holds fewer), so the list is empty exactly
        // when its first index is.
        from = m.min(32);
        let head = Bucket {
            xs: &xs[..from],
            ys: &ys[..from],
            zs: &zs[..from],
            ids: &ids[..from],
        };
        // SAFETY: AVX-512F is enabled here; the slices have length `from` ≤ 32.
        unsafe { fill_empty_avx512(best, q, head) };
        if from == m {
            return;
        }
    }
    let (qx, qy, qz) = (
        _mm512_set1_ps(q[0]),
        _mm512_set1_ps(q[1]),
        _mm512_set1_ps(q[2]),
    );
    // SAFETY: 16 lanes of 4 bytes from arrays of 16.
    let (mut bd, mut bi) = unsafe {
        (
            _mm512_loadu_ps(best.d.as_ptr()),
            _mm512_loadu_si512(best.i.as_ptr().cast()),
        )
    };
    // Lane j of `prev` is j − 1 (lane 0 keeps 0): the sorted lists shifted up by one.
    let prev = _mm512_set_epi32(14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 0);
    let last = _mm512_set1_epi32(15);
    for base in (from..m).step_by(16) {
        let valid: __mmask16 = if m - base >= 16 {
            0xffff
        } else {
            (1u16 << (m - base)) - 1
        };
        // SAFETY: masked-off lanes are not read; the valid ones, `base..m`, lie inside the
        // slices (all of length `m`).
        let (px, py, pz, ix) = unsafe {
            (
                _mm512_maskz_loadu_ps(valid, xs.as_ptr().add(base)),
                _mm512_maskz_loadu_ps(valid, ys.as_ptr().add(base)),
                _mm512_maskz_loadu_ps(valid, zs.as_ptr().add(base)),
                _mm512_maskz_loadu_epi32(valid, ids.as_ptr().add(base).cast()),
            )
        };
        let (dx, dy, dz) = (
            _mm512_sub_ps(qx, px),
            _mm512_sub_ps(qy, py),
            _mm512_sub_ps(qz, pz),
        );
        // Exactly the scalar expression: ((dx·dx + dy·dy) + dz·dz), rounded after every step.
        let d = _mm512_add_ps(
            _mm512_add_ps(_mm512_mul_ps(dx, dx), _mm512_mul_ps(dy, dy)),
            _mm512_mul_ps(dz, dz),
        );
        let worst = _mm512_permutexvar_ps(last, bd);
        let mut mask = _mm512_mask_cmp_ps_mask::<_CMP_LE_OQ>(valid, d, worst);
        while mask != 0 {
            let j = _mm512_set1_epi32(mask.trailing_zeros() as i32);
            let (dv, iv) = (_mm512_permutexvar_ps(j, d), _mm512_permutexvar_epi32(j, ix));
            // Slots that stay ahead of the candidate: smaller distance, or equal and smaller
            // index. The list is sorted, so they are a prefix and the candidate goes at its end
            // (position 16, i.e. nowhere, when it beats no slot).
            let ahead = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(bd, dv)
                | (_mm512_cmp_ps_mask::<_CMP_EQ_OQ>(bd, dv) & _mm512_cmplt_epu32_mask(bi, iv));
            let behind = !ahead;
            let at = behind & !(behind << 1);
            bd = _mm512_mask_permutexvar_ps(bd, behind, prev, bd);
            bi = _mm512_mask_permutexvar_epi32(bi, behind, prev, bi);
            bd = _mm512_mask_mov_ps(bd, at, dv);
            bi = _mm512_mask_mov_epi32(bi, at, iv);
            mask &= mask - 1;
        }
    }
    // SAFETY: 16 lanes of 4 bytes into arrays of 16.
    unsafe {
        _mm512_storeu_ps(best.d.as_mut_ptr(), bd);
        _mm512_storeu_si512(best.i.as_mut_ptr().cast(), bi);
    }
}

/// Fills an empty k = 16 list with the 16 first of a bucket's points in (distance, index) order.
///
/// Each candidate is one `u64` key, `distance bits << 32 | index`: distances are non-negative,
/// so their bit patterns order like the values, and the key order is the list's order, ties
/// included. A candidate's rank is the number of smaller keys (all keys differ: the indices do);
/// the 16 lowest ranks are scattered to their slots. The comparisons are independent of one
/// another, where inserting the candidates one by one is a chain of dependent ones.
///
/// # Safety
/// The CPU must support AVX-512F; the bucket's slices have one length, at most 32.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn fill_empty_avx512(best: &mut Fixed<16>, q: [f32; 3], bucket: Bucket<'_>) {
    use std::arch::x86_64::*;
    let Bucket { xs, ys, zs, ids } = bucket;
    const EMPTY: u64 = ((f32::INFINITY.to_bits() as u64) << 32) | u32::MAX as u64;
    let m = xs.len();
    let mut keys = [u64::MAX; 32];
    for j in 0..m {
        let dx = q[0] - xs[j];
        let dy = q[1] - ys[j];
        let dz = q[2] - zs[j];
        let d = dx * dx + dy * dy + dz * dz;
        keys[j] = (u64::from(d.to_bits()) << 32) | u64::from(ids[j]);
    }
    let groups = m.div_ceil(8);
    // SAFETY: `groups` ≤ 4 loads of 8 lanes from an array of 32.
    let kv: [__m512i; 4] =
        std::array::from_fn(|g| unsafe { _mm512_loadu_si512(keys.as_ptr().add(8 * g).cast()) });
    let one = _mm512_set1_epi64(1);
    let mut rank = [_mm512_setzero_si512(); 4];
    for &key in &keys[..m] {
        let b = _mm512_set1_epi64(key as i64);
        for g in 0..groups {
            let smaller = _mm512_cmplt_epu64_mask(b, kv[g]);
            rank[g] = _mm512_mask_add_epi64(rank[g], smaller, rank[g], one);
        }
    }
    let mut out = [EMPTY; 16];
    let sixteen = _mm512_set1_epi64(16);
    for g in 0..groups {
        let valid: __mmask8 = if m - 8 * g >= 8 {
            0xff
        } else {
            (1u8 << (m - 8 * g)) - 1
        };
        let kept = valid & _mm512_cmplt_epu64_mask(rank[g], sixteen);
        // SAFETY: only lanes with a rank below 16 are written, each to its own slot of `out`.
        unsafe {
            _mm512_mask_i64scatter_epi64::<8>(out.as_mut_ptr().cast(), kept, rank[g], kv[g]);
        }
    }
    for (s, &key) in out.iter().enumerate() {
        best.d[s] = f32::from_bits((key >> 32) as u32);
        best.i[s] = key as u32;
    }
}

/// Candidates for any `k`.
struct Dynamic {
    d: Vec<f32>,
    i: Vec<u32>,
}

impl Candidates for Dynamic {
    fn reset(&mut self) {
        self.d.fill(f32::INFINITY);
        self.i.fill(u32::MAX);
    }
    #[inline(always)]
    fn worst(&self) -> f32 {
        self.d[self.d.len() - 1]
    }
    #[inline(always)]
    fn offer(&mut self, d: f32, id: u32) {
        insert_sorted(&mut self.d, &mut self.i, d, id);
    }
    fn indices(&self) -> &[u32] {
        &self.i
    }
    fn sq_dists(&self) -> &[f32] {
        &self.d
    }
}

impl KdTree {
    /// Builds the tree over `points` (coordinates must be finite).
    pub fn build(points: &[[f32; 3]]) -> Result<Self> {
        if points.is_empty() {
            return Err(crate::Error::Empty {
                what: "point cloud",
            });
        }
        if points.len() >= u32::MAX as usize {
            return Err(crate::Error::InvalidParameter {
                name: "points",
                value: points.len().to_string(),
                reason: "at most 2^32 - 2 points per tree",
            });
        }
        check_finite(points)?;
        let mut memo = HashMap::new();
        let n_nodes = count_nodes(points.len(), &mut memo);
        let ctx = BuildCtx { counts: memo };
        let mut items: Vec<Item> = points
            .par_iter()
            .enumerate()
            .map(|(i, &p)| Item { p, id: i as u32 })
            .collect();
        let mut nodes = vec![Node::default(); n_nodes];
        ctx.build(&mut items, 0, &mut nodes, 0);
        let (min, max) = bounds(points);
        let xs = items.par_iter().map(|it| it.p[0]).collect();
        let ys = items.par_iter().map(|it| it.p[1]).collect();
        let zs = items.par_iter().map(|it| it.p[2]).collect();
        let ids = items.par_iter().map(|it| it.id).collect();
        Ok(KdTree {
            xs,
            ys,
            zs,
            ids,
            nodes,
            min,
            max,
        })
    }

    /// Number of points in the tree.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Always false: a tree holds at least one point.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The tree's points in tree order, as indices into the input cloud: a spatially coherent
    /// permutation (neighbouring positions are near in space).
    pub fn spatial_order(&self) -> &[u32] {
        &self.ids
    }

    /// Bytes held by the tree.
    pub fn heap_bytes(&self) -> usize {
        self.ids.len() * 16 + self.nodes.len() * std::mem::size_of::<Node>()
    }

    /// The k nearest neighbours of every point of the tree itself (each point is its own first
    /// neighbour unless duplicates with smaller indices exist). Row `i` belongs to input point `i`.
    pub fn knn_self(&self, k: usize) -> Result<Neighbours> {
        check_query(self.len(), k, "point cloud")?;
        let (indices, distances) = self.run(self.len(), k, true, &self.ids, |slot| {
            [self.xs[slot], self.ys[slot], self.zs[slot]]
        });
        Ok(Neighbours {
            k,
            indices,
            distances: distances.unwrap_or_default(),
        })
    }

    /// Like [`KdTree::knn_self`], indices only (no distances are computed or stored).
    pub fn knn_self_indices(&self, k: usize) -> Result<Vec<u32>> {
        check_query(self.len(), k, "point cloud")?;
        let (indices, _) = self.run(self.len(), k, false, &self.ids, |slot| {
            [self.xs[slot], self.ys[slot], self.zs[slot]]
        });
        Ok(indices)
    }

    /// The k nearest tree points of each query. Row `i` belongs to `queries[i]`.
    pub fn knn(&self, queries: &[[f32; 3]], k: usize) -> Result<Neighbours> {
        let (indices, distances) = self.knn_general(queries, k, true)?;
        Ok(Neighbours {
            k,
            indices,
            distances: distances.unwrap_or_default(),
        })
    }

    /// Like [`KdTree::knn`], indices only.
    pub fn knn_indices(&self, queries: &[[f32; 3]], k: usize) -> Result<Vec<u32>> {
        Ok(self.knn_general(queries, k, false)?.0)
    }

    /// Like [`KdTree::knn_indices`], with the caller's processing order: `order` is a permutation
    /// of `0..queries.len()` that lists nearby queries next to each other (a tree's
    /// [`KdTree::spatial_order`] over the queries, say). Results are still in input order.
    pub fn knn_indices_ordered(
        &self,
        queries: &[[f32; 3]],
        order: &[u32],
        k: usize,
    ) -> Result<Vec<u32>> {
        check_query(self.len(), k, "point cloud")?;
        check_finite(queries)?;
        if order.len() != queries.len() {
            return Err(crate::Error::LengthMismatch {
                what: "query order",
                expected: queries.len(),
                actual: order.len(),
            });
        }
        check_permutation(order, "query order", "must be a permutation of 0..queries")?;
        Ok(self
            .run(queries.len(), k, false, order, |i| {
                queries[order[i] as usize]
            })
            .0)
    }

    fn knn_general(
        &self,
        queries: &[[f32; 3]],
        k: usize,
        want_dist: bool,
    ) -> Result<(Vec<u32>, Option<Vec<f32>>)> {
        check_query(self.len(), k, "point cloud")?;
        check_finite(queries)?;
        let order = morton_order(queries);
        Ok(self.run(queries.len(), k, want_dist, &order, |i| {
            queries[order[i] as usize]
        }))
    }

    /// Runs `n` queries; the query at processing position `i` is `query(i)` and its result goes
    /// to output row `order[i]`. `order` must be a permutation of `0..n`. Distances, when wanted,
    /// come back Euclidean.
    fn run(
        &self,
        n: usize,
        k: usize,
        want_dist: bool,
        order: &[u32],
        query: impl Fn(usize) -> [f32; 3] + Sync,
    ) -> (Vec<u32>, Option<Vec<f32>>) {
        debug_assert_eq!(order.len(), n);
        let mut idx = vec![0u32; n * k];
        let mut dist = if want_dist {
            vec![0f32; n * k]
        } else {
            Vec::new()
        };
        let out = (SharedOut(idx.as_mut_ptr()), SharedOut(dist.as_mut_ptr()));
        match k {
            1 => self.run_with(n, want_dist, order, &query, &out, Fixed::<1>::new),
            8 => self.run_with(n, want_dist, order, &query, &out, Fixed::<8>::new),
            #[cfg(target_arch = "x86_64")]
            16 if Avx512K16::new().is_some() => {
                self.run_with(n, want_dist, order, &query, &out, || {
                    Avx512K16::new().expect("AVX-512F was detected")
                })
            }
            16 => self.run_with(n, want_dist, order, &query, &out, Fixed::<16>::new),
            32 => self.run_with(n, want_dist, order, &query, &out, Fixed::<32>::new),
            _ => self.run_with(n, want_dist, order, &query, &out, || Dynamic {
                d: vec![f32::INFINITY; k],
                i: vec![u32::MAX; k],
            }),
        }
        (idx, want_dist.then_some(dist))
    }

    fn run_with<C: Candidates>(
        &self,
        n: usize,
        want_dist: bool,
        order: &[u32],
        query: &(impl Fn(usize) -> [f32; 3] + Sync),
        out: &(SharedOut<u32>, SharedOut<f32>),
        make: impl Fn() -> C + Sync,
    ) {
        (0..n.div_ceil(QUERY_CHUNK)).into_par_iter().for_each(|c| {
            let mut best = make();
            for pos in c * QUERY_CHUNK..((c + 1) * QUERY_CHUNK).min(n) {
                best.reset();
                self.search(query(pos), &mut best);
                let row = order[pos] as usize;
                assert!(row < n);
                let k = best.indices().len();
                // SAFETY: `order` is a permutation of `0..n` (by construction in the callers, or
                // checked by `check_permutation`), so every row `row * k .. row * k + k` lies
                // inside the `n * k` buffers and is written by exactly one task; the buffers
                // outlive this parallel loop and are not read until it ends.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        best.indices().as_ptr(),
                        out.0.get().add(row * k),
                        k,
                    );
                    if want_dist {
                        let d = out.1.get().add(row * k);
                        for (j, sq) in best.sq_dists().iter().enumerate() {
                            *d.add(j) = sq.sqrt();
                        }
                    }
                }
            }
        });
    }

    /// Fills `best` with the k nearest points to `q`.
    #[inline]
    fn search<C: Candidates>(&self, q: [f32; 3], best: &mut C) {
        let mut dists = [0f32; 3];
        for d in 0..3 {
            if q[d] < self.min[d] {
                let t = q[d] - self.min[d];
                dists[d] = t * t;
            } else if q[d] > self.max[d] {
                let t = q[d] - self.max[d];
                dists[d] = t * t;
            }
        }
        self.descend(0, q, &mut dists, best);
    }

    fn descend<C: Candidates>(&self, node: usize, q: [f32; 3], dists: &mut [f32; 3], best: &mut C) {
        let n = self.nodes[node];
        if n.dim == LEAF {
            let (s, e) = (n.a as usize, n.b as usize);
            best.scan_leaf(
                q,
                Bucket {
                    xs: &self.xs[s..e],
                    ys: &self.ys[s..e],
                    zs: &self.zs[s..e],
                    ids: &self.ids[s..e],
                },
            );
            return;
        }
        let dim = n.dim as usize;
        let v = q[dim];
        let diff_lo = v - n.lo;
        let diff_hi = v - n.hi;
        let (near, far, cut) = if diff_lo + diff_hi < 0.0 {
            (node + 1, n.a as usize, diff_hi * diff_hi)
        } else {
            (
                n.a as usize,
                node + 1,
                if diff_lo > 0.0 {
                    diff_lo * diff_lo
                } else {
                    0.0
                },
            )
        };
        self.descend(near, q, dists, best);
        let saved = dists[dim];
        dists[dim] = cut.max(saved);
        let lower = dists[0] + dists[1] + dists[2];
        if lower <= best.worst() {
            self.descend(far, q, dists, best);
        }
        dists[dim] = saved;
    }
}

/// A permutation of `0..points.len()` in Morton (Z-curve) order of the points.
pub fn morton_order(points: &[[f32; 3]]) -> Vec<u32> {
    if points.is_empty() {
        return Vec::new();
    }
    let (min, max) = bounds(points);
    let ext = (0..3)
        .map(|d| max[d] - min[d])
        .fold(0f32, f32::max)
        .max(f32::MIN_POSITIVE);
    let scale = ((1u32 << 21) - 1) as f32 / ext;
    let mut keyed: Vec<(u64, u32)> = points
        .par_iter()
        .enumerate()
        .map(|(i, p)| {
            let q = |d: usize| (((p[d] - min[d]) * scale) as u32).min((1 << 21) - 1);
            (
                spread3(q(0)) | (spread3(q(1)) << 1) | (spread3(q(2)) << 2),
                i as u32,
            )
        })
        .collect();
    keyed.par_sort_unstable();
    keyed.into_iter().map(|(_, i)| i).collect()
}

/// Spreads the low 21 bits of `v` so that there are two zero bits between each.
fn spread3(v: u32) -> u64 {
    let mut x = v as u64 & 0x1f_ffff;
    x = (x | (x << 32)) & 0x1f00000000ffff;
    x = (x | (x << 16)) & 0x1f0000ff0000ff;
    x = (x | (x << 8)) & 0x100f00f00f00f00f;
    x = (x | (x << 4)) & 0x10c30c30c30c30c3;
    x = (x | (x << 2)) & 0x1249249249249249;
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knn::brute;

    fn cloud(n: usize, seed: u64) -> Vec<[f32; 3]> {
        // A small xorshift keeps this module free of dev-dependency generics.
        let mut s = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32
        };
        (0..n)
            .map(|_| [next() * 10.0, next() * 10.0, next() * 2.0])
            .collect()
    }

    #[test]
    fn node_count_matches_built_shape() {
        for n in [1, 12, 13, 100, 1000, 4097] {
            let mut memo = HashMap::new();
            let c = count_nodes(n, &mut memo);
            let tree = KdTree::build(&cloud(n, 3)).unwrap();
            assert_eq!(tree.nodes.len(), c);
            let leaves: usize = tree
                .nodes
                .iter()
                .filter(|n| n.dim == LEAF)
                .map(|n| (n.b - n.a) as usize)
                .sum();
            assert_eq!(leaves, n, "every point sits in exactly one leaf");
        }
    }

    #[test]
    fn self_knn_equals_brute_force() {
        let pts = cloud(3000, 7);
        let tree = KdTree::build(&pts).unwrap();
        let got = tree.knn_self(16).unwrap();
        let want = brute::knn(&pts, &pts, 16).unwrap();
        assert_eq!(got, want);
        assert_eq!(tree.knn_self_indices(16).unwrap(), want.indices);
        // Every candidate list (k = 1, 8, 32 fixed, others dynamic), with buckets of 33 to
        // LEAF_SIZE points: the scalar scan's masks cover whole buckets.
        let queries = cloud(300, 9);
        for k in [1, 5, 8, 32, 40] {
            assert_eq!(
                tree.knn(&queries, k).unwrap(),
                brute::knn(&pts, &queries, k).unwrap(),
                "k = {k}"
            );
        }
    }

    #[test]
    fn duplicates_break_ties_by_index() {
        let mut pts = cloud(200, 11);
        let dup = pts[5];
        for i in [50, 7, 120, 3] {
            pts[i] = dup;
        }
        let tree = KdTree::build(&pts).unwrap();
        let got = tree.knn(&[dup], 5).unwrap();
        assert_eq!(&got.row(0)[..5], &[3, 5, 7, 50, 120]);
        assert_eq!(got, brute::knn(&pts, &[dup], 5).unwrap());
    }

    /// An integer lattice (many equal distances) with duplicated points.
    fn lattice_with_duplicates() -> Vec<[f32; 3]> {
        let mut pts: Vec<[f32; 3]> = (0..12)
            .flat_map(|x| {
                (0..12).flat_map(move |y| (0..3).map(move |z| [x as f32, y as f32, z as f32]))
            })
            .collect();
        pts.extend_from_within(100..160);
        pts
    }

    #[test]
    fn k16_ties_and_duplicates_equal_brute_force() {
        let pts = lattice_with_duplicates();
        let tree = KdTree::build(&pts).unwrap();
        assert_eq!(
            tree.knn_self(16).unwrap(),
            brute::knn(&pts, &pts, 16).unwrap()
        );
        let queries: Vec<[f32; 3]> = cloud(400, 13)
            .into_iter()
            .map(|p| [p[0] * 1.3 - 1.0, p[1] * 1.3 - 1.0, p[2] * 1.5])
            .collect();
        assert_eq!(
            tree.knn(&queries, 16).unwrap(),
            brute::knn(&pts, &queries, 16).unwrap()
        );
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx512_candidates_equal_the_scalar_ones() {
        let Some(mut fast) = Avx512K16::new() else {
            eprintln!("skipped: this CPU has no AVX-512F");
            return;
        };
        let mut slow = Fixed::<16>::new();
        for pts in [lattice_with_duplicates(), cloud(5000, 21)] {
            let tree = KdTree::build(&pts).unwrap();
            for q in pts.iter().chain(&cloud(300, 23)) {
                fast.reset();
                slow.reset();
                tree.search(*q, &mut fast);
                tree.search(*q, &mut slow);
                assert_eq!(fast.indices(), slow.indices(), "query {q:?}");
                assert_eq!(fast.sq_dists(), slow.sq_dists(), "query {q:?}");
            }
        }
    }

    #[test]
    fn morton_order_is_a_permutation() {
        let pts = cloud(1000, 5);
        let mut o = morton_order(&pts);
        o.sort_unstable();
        assert!(o.iter().enumerate().all(|(i, &v)| i as u32 == v));
    }
}
