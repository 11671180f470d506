//! Stratified random sampling orders: a shuffled crop reordered so that every prefix (every
//! random-sampling level of the network) is spread evenly over space.
//!
//! RandLA-Net samples a level by keeping the first `N/r` points of a shuffled crop. A plain
//! shuffle leaves holes and clumps at every level, and a single inference pass inherits them.
//! Here the points are ranked along a Morton (Z-order) curve and sorted by the bit-reversed rank:
//! the first `N/2^j` points are then every `2^j`-th point along the curve, so each prefix covers
//! the crop as evenly as the curve does. The order stays random: ties on the curve keep the
//! shuffled order, and a random mask XORed into the reversed rank picks which residue class
//! along the curve comes first.

use crate::knn::morton_order;

/// Reorders `points` (already shuffled) so that each prefix is spread evenly over space; returns
/// the new order as indices into `points`. `mask` randomises which points lead.
///
/// ```
/// use randla_geom::sampling::stratified_order;
/// // A 4 × 4 grid: the first four points fall one in each 2 × 2 quadrant.
/// let pts: Vec<[f32; 3]> = (0..16).map(|i| [(i % 4) as f32, (i / 4) as f32, 0.0]).collect();
/// let order = stratified_order(&pts, 0);
/// let mut quadrants: Vec<u32> = order[..4]
///     .iter()
///     .map(|&i| (pts[i as usize][0] as u32 / 2) + 2 * (pts[i as usize][1] as u32 / 2))
///     .collect();
/// quadrants.sort();
/// assert_eq!(quadrants, [0, 1, 2, 3]);
/// ```
pub fn stratified_order(points: &[[f32; 3]], mask: u32) -> Vec<u32> {
    stratified_order_with_curve(points, mask).0
}

/// [`stratified_order`], and the Morton order it was made from, in the new numbering: the second
/// vector lists the positions of the reordered points along the Morton curve (what
/// [`morton_order`] of the reordered points gives, up to points with equal Morton keys), so a
/// caller that wants the crop in a spatially coherent order does not sort it again.
pub fn stratified_order_with_curve(points: &[[f32; 3]], mask: u32) -> (Vec<u32>, Vec<u32>) {
    let n = points.len();
    if n < 2 {
        return ((0..n as u32).collect(), (0..n as u32).collect());
    }
    let curve = morton_order(points);
    let bits = usize::BITS - (n - 1).leading_zeros();
    let shift = 32 - bits;
    // The keys (bit-reversed rank XOR mask) are distinct and below 2^bits < 2n: place each
    // point at its key and read the slots in order, which sorts by key in O(n).
    const EMPTY: u32 = u32::MAX;
    let key = |rank: usize| (((rank as u32).reverse_bits() >> shift) ^ (mask >> shift)) as usize;
    let mut slots = vec![EMPTY; 1usize << bits];
    for (rank, &i) in curve.iter().enumerate() {
        slots[key(rank)] = i;
    }
    // A slot's position in the new order: the filled slots before it.
    let mut at = vec![0u32; slots.len()];
    let mut filled = 0u32;
    for (a, &i) in at.iter_mut().zip(&slots) {
        *a = filled;
        filled += u32::from(i != EMPTY);
    }
    let along_curve = (0..n).map(|rank| at[key(rank)]).collect();
    (
        slots.into_iter().filter(|&i| i != EMPTY).collect(),
        along_curve,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 64 × 64 grid in a scrambled order.
    fn grid() -> Vec<[f32; 3]> {
        (0..4096)
            .map(|i| {
                let j = (i * 2731) % 4096;
                [(j % 64) as f32, (j / 64) as f32, 1.0]
            })
            .collect()
    }

    /// How many of the first `m` points of `order` fall in each `b × b` block.
    fn block_counts(pts: &[[f32; 3]], order: &[u32], m: usize, b: usize) -> Vec<usize> {
        let per = 64 / b;
        let mut c = vec![0; per * per];
        for &i in &order[..m] {
            let p = pts[i as usize];
            c[(p[0] as usize / b) + per * (p[1] as usize / b)] += 1;
        }
        c
    }

    #[test]
    fn the_curve_comes_back_in_the_new_numbering() {
        let pts = grid();
        for mask in [0, 0x1234_5678] {
            let (order, along) = stratified_order_with_curve(&pts, mask);
            assert_eq!(order, stratified_order(&pts, mask));
            let reordered: Vec<[f32; 3]> = order.iter().map(|&i| pts[i as usize]).collect();
            // The grid's Morton keys are distinct, so the curve is unique.
            assert_eq!(along, morton_order(&reordered));
        }
    }

    #[test]
    fn every_level_covers_every_block_once() {
        let pts = grid();
        for mask in [0, 0xdead_beef, u32::MAX] {
            let order = stratified_order(&pts, mask);
            let mut seen = order.clone();
            seen.sort();
            assert_eq!(seen, (0..4096).collect::<Vec<u32>>(), "a permutation");
            // Levels of a ratio-4 pyramid: 1024, 256, 64, 16 points.
            for (m, b) in [(1024, 2), (256, 4), (64, 8), (16, 16)] {
                assert!(
                    block_counts(&pts, &order, m, b).iter().all(|&c| c == 1),
                    "mask {mask:x}: the first {m} points miss or double a {b}×{b} block"
                );
            }
        }
        // A plain shuffle does not (the scrambled input order itself).
        let plain: Vec<u32> = (0..4096).collect();
        assert!(block_counts(&pts, &plain, 256, 4).iter().any(|&c| c != 1));
    }

    #[test]
    fn masks_change_the_leaders_and_small_inputs_pass_through() {
        let pts = grid();
        assert_ne!(
            stratified_order(&pts, 0)[..16],
            stratified_order(&pts, 0x8000_0000)[..16]
        );
        assert_eq!(stratified_order(&pts[..1], 7), vec![0]);
        assert!(stratified_order(&[], 7).is_empty());
    }
}
