//! Index gathers shared by every block: neighbour gathers, random-sample max pooling and 1-NN
//! upsampling.
//!
//! Index tensors are *flat*: the batch offset is folded in when the batch is built
//! ([`crate::BatchTensors`]), so a gather is one `select` over the `[B·N, C]` rows of the source
//! instead of a per-batch loop or an index tensor expanded over the channels.

use burn::tensor::{Int, Tensor};

/// Gathers, for every query row and neighbour slot, the source row named by `idx`.
///
/// Shapes: `x [B, N, C]`, `idx [B, M, K]` (flat row indices in `0..B·N`) → `[B, M, K, C]`.
pub fn gather_neighbors(x: Tensor<3>, idx: Tensor<3, Int>) -> Tensor<4> {
    let [b, n, c] = x.dims();
    let [_, m, k] = idx.dims();
    let rows: Tensor<2> = x.reshape([b * n, c]); // [B·N, C]
    rows.select(0, idx.reshape([b * m * k])) // [B·M·K, C]
        .reshape([b, m, k, c]) // [B, M, K, C]
}

/// Gathers one source row per query row (1-NN upsampling).
///
/// Shapes: `x [B, N, C]`, `idx [B, M]` (flat row indices in `0..B·N`) → `[B, M, C]`.
pub fn gather_rows(x: Tensor<3>, idx: Tensor<2, Int>) -> Tensor<3> {
    let [b, n, c] = x.dims();
    let [_, m] = idx.dims();
    let rows: Tensor<2> = x.reshape([b * n, c]); // [B·N, C]
    rows.select(0, idx.reshape([b * m])).reshape([b, m, c]) // [B, M, C]
}

/// Random-sample pooling: the maximum over each sampled point's K neighbours.
///
/// Shapes: `x [B, N, C]`, `sub_idx [B, M, K]` (flat rows of `x`) → `[B, M, C]`.
pub fn max_pool(x: Tensor<3>, sub_idx: Tensor<3, Int>) -> Tensor<3> {
    let [b, _, c] = x.dims();
    let [_, m, _] = sub_idx.dims();
    gather_neighbors(x, sub_idx) // [B, M, K, C]
        .max_dim(2) // [B, M, 1, C]
        .reshape([b, m, c]) // [B, M, C]
}

/// [`max_pool`] over chunks of `rows` query rows, so that no `[B, M, K, C]` tensor for all M
/// exists at once. Same result.
pub fn max_pool_chunked(x: Tensor<3>, sub_idx: Tensor<3, Int>, rows: usize) -> Tensor<3> {
    let [_, m, _] = sub_idx.dims();
    let rows = rows.max(1);
    if rows >= m {
        return max_pool(x, sub_idx);
    }
    let parts: Vec<Tensor<3>> = (0..m)
        .step_by(rows)
        .map(|r0| {
            let len = rows.min(m - r0);
            max_pool(x.clone(), sub_idx.clone().narrow(1, r0, len)) // [B, len, C]
        })
        .collect();
    Tensor::cat(parts, 1) // [B, M, C]
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    fn x(device: &Device) -> Tensor<3> {
        // [2, 3, 2]: batch b, point p holds [10b + p, -(10b + p)].
        let v: Vec<f32> = (0..2)
            .flat_map(|b| (0..3).flat_map(move |p| [(10 * b + p) as f32, -((10 * b + p) as f32)]))
            .collect();
        Tensor::from_data(TensorData::new(v, [2, 3, 2]), device)
    }

    #[test]
    fn gathers_use_flat_indices() {
        let device = Device::flex();
        // Batch 1's local indices are offset by N = 3.
        let idx = Tensor::<3, Int>::from_data(
            TensorData::new(vec![2i64, 0, 1, 1, 5, 3, 4, 4], [2, 2, 2]),
            &device,
        );
        let g = gather_neighbors(x(&device), idx.clone());
        assert_eq!(g.dims(), [2, 2, 2, 2]);
        let v = g.try_into_vec_as::<f32>().unwrap();
        assert_eq!(&v[..4], &[2.0, -2.0, 0.0, 0.0]);
        assert_eq!(&v[8..12], &[12.0, -12.0, 10.0, -10.0]);
        let p = max_pool(x(&device), idx.clone())
            .try_into_vec_as::<f32>()
            .unwrap();
        // max over neighbours, per channel: [max(2,0), max(-2,0)], [1,-1], [12,-10], [11,-11]
        assert_eq!(p, vec![2.0, 0.0, 1.0, -1.0, 12.0, -10.0, 11.0, -11.0]);
        let pc = max_pool_chunked(x(&device), idx, 1)
            .try_into_vec_as::<f32>()
            .unwrap();
        assert_eq!(pc, p);
        let up = Tensor::<2, Int>::from_data(
            TensorData::new(vec![1i64, 1, 0, 3, 5, 5], [2, 3]),
            &device,
        );
        let u = gather_rows(x(&device), up)
            .try_into_vec_as::<f32>()
            .unwrap();
        assert_eq!(&u[..2], &[1.0, -1.0]);
        assert_eq!(&u[6..8], &[10.0, -10.0]);
    }
}
