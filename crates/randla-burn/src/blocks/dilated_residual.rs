//! The dilated residual block: `mlp1`, two rounds of local spatial encoding + attentive pooling
//! (the local feature aggregation, LFA), `mlp2` plus a `shortcut`, LeakyReLU(0.01).

use burn::module::Module;
use burn::tensor::activation::leaky_relu;
use burn::tensor::{Device, Int, Tensor};

use super::attentive_pooling::AttentivePooling;
use super::local_spatial_encoding::{ENCODING_CHANNELS, LocalSpatialEncoding};
use super::shared_mlp::{RESIDUAL_SLOPE, SharedMlp};
use crate::gather::gather_neighbors;

/// Open3D-ML's `LocalFeatureAggregation` (`encoder.i`), for `d_in` input channels and
/// `d_out = dim_output[i]`; it outputs `2·d_out` channels.
#[derive(Module, Debug)]
pub struct DilatedResidualBlock {
    /// conv + BN + LReLU(0.2), `d_in → d_out/2`.
    pub mlp1: SharedMlp,
    /// First LocSE, `10 → d_out/2`.
    pub lse1: LocalSpatialEncoding,
    /// First attentive pooling, `d_out → d_out/2`.
    pub pool1: AttentivePooling,
    /// Second LocSE, re-encoding `lse1`'s output, `d_out/2 → d_out/2`.
    pub lse2: LocalSpatialEncoding,
    /// Second attentive pooling, `d_out → d_out`.
    pub pool2: AttentivePooling,
    /// conv + BN, no activation, `d_out → 2·d_out`.
    pub mlp2: SharedMlp,
    /// conv + BN, no activation, `d_in → 2·d_out`.
    pub shortcut: SharedMlp,
}

/// Bytes one query row of one crop costs in the local feature aggregation of a block with
/// `d_out` channels and `k` neighbours: the 10-channel encoding plus about six `[K, d_out]`-wide
/// intermediates (encoded geometry, gathered features, their concatenation, scores, softmax,
/// weighted values) in f32.
pub fn lfa_bytes_per_row(k: usize, d_out: usize) -> usize {
    k * (ENCODING_CHANNELS + 6 * d_out) * 4
}

impl DilatedResidualBlock {
    /// A freshly initialised block.
    pub fn new(d_in: usize, d_out: usize, device: &Device) -> Self {
        let h = d_out / 2;
        DilatedResidualBlock {
            mlp1: SharedMlp::new(d_in, h, device),
            lse1: LocalSpatialEncoding::new(ENCODING_CHANNELS, h, device),
            pool1: AttentivePooling::new(d_out, h, device),
            lse2: LocalSpatialEncoding::new(h, h, device),
            pool2: AttentivePooling::new(d_out, d_out, device),
            mlp2: SharedMlp::new_linear(d_out, 2 * d_out, device),
            shortcut: SharedMlp::new_linear(d_in, 2 * d_out, device),
        }
    }

    /// `d_out` of the block (it outputs twice as many channels).
    pub fn d_out(&self) -> usize {
        self.pool2.mlp.d_out()
    }

    /// The block, with the local feature aggregation over all rows at once
    /// (`chunk_rows = None`) or over chunks of `chunk_rows` rows (the memory-efficient mode).
    ///
    /// Shapes: `x [B, N, d_in]`, `coords [B, N, 3]`, `neighbors [B, N, K]` (flat rows) →
    /// `[B, N, 2·d_out]`.
    pub fn forward(
        &self,
        x: Tensor<3>,
        coords: Tensor<3>,
        neighbors: Tensor<3, Int>,
        chunk_rows: Option<usize>,
    ) -> Tensor<3> {
        let n = coords.dims()[1];
        let h = self.mlp1.forward(x.clone()); // [B, N, d_out/2]
        let agg = match chunk_rows {
            Some(rows) if rows < n => self.aggregate_chunked(h, coords, neighbors, rows),
            _ => self.aggregate(h, coords, neighbors),
        }; // [B, N, d_out]
        let f = self.mlp2.forward(agg); // [B, N, 2·d_out]
        let s = self.shortcut.forward(x); // [B, N, 2·d_out]
        leaky_relu(f + s, RESIDUAL_SLOPE) // [B, N, 2·d_out]
    }

    /// The local feature aggregation, all rows at once.
    ///
    /// Shapes: `h [B, N, d_out/2]`, `coords [B, N, 3]`, `neighbors [B, N, K]` → `[B, N, d_out]`.
    pub fn aggregate(
        &self,
        h: Tensor<3>,
        coords: Tensor<3>,
        neighbors: Tensor<3, Int>,
    ) -> Tensor<3> {
        let p_k = gather_neighbors(coords.clone(), neighbors.clone()); // [B, N, K, 3]
        let geometry = LocalSpatialEncoding::encode(coords, p_k); // [B, N, K, 10]
        let f_nb = gather_neighbors(h, neighbors.clone()); // [B, N, K, d_out/2]
        let (cat1, r1) = self.lse1.forward(geometry, f_nb); // [B, N, K, d_out], [B, N, K, d_out/2]
        let p1 = self.pool1.forward(cat1); // [B, N, d_out/2]
        let f_nb2 = gather_neighbors(p1, neighbors); // [B, N, K, d_out/2]
        let (cat2, _) = self.lse2.forward(r1, f_nb2); // [B, N, K, d_out]
        self.pool2.forward(cat2) // [B, N, d_out]
    }

    /// The local feature aggregation over chunks of `rows` query rows. Everything `[.., K, ..]`
    /// is built per chunk and dropped after its last use; only `[B, N, C]` tensors span the whole
    /// cloud. Two passes: the first pooling needs every row's result before the second gather
    /// (which reads the pooled features of arbitrary neighbours), so the second pass recomputes
    /// the chunk's geometry encoding (a 10-channel matmul) instead of keeping it.
    ///
    /// Equal to [`Self::aggregate`] when the batch norms use running statistics (evaluation);
    /// in training mode the batch norms inside the neighbourhoods would see per-chunk statistics,
    /// which is why [`crate::RandLaNet::forward_with`] refuses that combination.
    ///
    /// Shapes: as [`Self::aggregate`].
    pub fn aggregate_chunked(
        &self,
        h: Tensor<3>,
        coords: Tensor<3>,
        neighbors: Tensor<3, Int>,
        rows: usize,
    ) -> Tensor<3> {
        let n = coords.dims()[1];
        let rows = rows.max(1);
        let chunks: Vec<(usize, usize)> = (0..n)
            .step_by(rows)
            .map(|r0| (r0, rows.min(n - r0)))
            .collect();
        let geometry = |r0: usize, len: usize| -> (Tensor<3, Int>, Tensor<4>) {
            let nb = neighbors.clone().narrow(1, r0, len); // [B, len, K]
            let p_k = gather_neighbors(coords.clone(), nb.clone()); // [B, len, K, 3]
            let center = coords.clone().narrow(1, r0, len); // [B, len, 3]
            (nb, LocalSpatialEncoding::encode(center, p_k)) // [B, len, K, 10]
        };
        // Pass 1: first LocSE + attention, chunk by chunk.
        let agg1: Vec<Tensor<3>> = chunks
            .iter()
            .map(|&(r0, len)| {
                let (nb, geo) = geometry(r0, len);
                let f_nb = gather_neighbors(h.clone(), nb); // [B, len, K, d_out/2]
                let (cat1, _) = self.lse1.forward(geo, f_nb); // [B, len, K, d_out]
                self.pool1.aggregate(cat1) // [B, len, d_out]
            })
            .collect();
        let p1 = self.pool1.mlp.forward(Tensor::cat(agg1, 1)); // [B, N, d_out/2]
        // Pass 2: second LocSE (re-encoding the first) + attention.
        let agg2: Vec<Tensor<3>> = chunks
            .iter()
            .map(|&(r0, len)| {
                let (nb, geo) = geometry(r0, len);
                let r1 = self.lse1.mlp.forward(geo); // [B, len, K, d_out/2]
                let f_nb2 = gather_neighbors(p1.clone(), nb); // [B, len, K, d_out/2]
                let (cat2, _) = self.lse2.forward(r1, f_nb2); // [B, len, K, d_out]
                self.pool2.aggregate(cat2) // [B, len, d_out]
            })
            .collect();
        self.pool2.mlp.forward(Tensor::cat(agg2, 1)) // [B, N, d_out]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Distribution, TensorData};

    fn inputs(device: &Device, b: usize, n: usize, k: usize) -> (Tensor<3>, Tensor<3, Int>) {
        let coords = Tensor::<3>::random([b, n, 3], Distribution::Default, device);
        // Flat neighbour rows: a deterministic scramble inside each crop.
        let idx: Vec<i64> = (0..b * n * k)
            .map(|j| ((j / (n * k)) * n + (j * 7 + j / k * 3) % n) as i64)
            .collect();
        (
            coords,
            Tensor::from_data(TensorData::new(idx, [b, n, k]), device),
        )
    }

    #[test]
    fn shapes() {
        let device = Device::flex();
        let block = DilatedResidualBlock::new(8, 16, &device);
        let (coords, nb) = inputs(&device, 2, 20, 4);
        let x = Tensor::<3>::random([2, 20, 8], Distribution::Default, &device);
        assert_eq!(block.forward(x, coords, nb, None).dims(), [2, 20, 32]);
        assert_eq!(block.d_out(), 16);
    }

    #[test]
    fn chunked_equals_standard() {
        let device = Device::flex();
        let block = DilatedResidualBlock::new(6, 8, &device);
        let (coords, nb) = inputs(&device, 2, 23, 5);
        let x = Tensor::<3>::random([2, 23, 6], Distribution::Default, &device);
        let a = block
            .forward(x.clone(), coords.clone(), nb.clone(), None)
            .try_into_vec_as::<f32>()
            .unwrap();
        for rows in [1, 4, 22] {
            let b = block
                .forward(x.clone(), coords.clone(), nb.clone(), Some(rows))
                .try_into_vec_as::<f32>()
                .unwrap();
            let d = a
                .iter()
                .zip(&b)
                .map(|(p, q)| (p - q).abs())
                .fold(0.0f32, f32::max);
            assert!(d < 1e-6, "rows {rows}: max |Δ| {d}");
        }
    }
}
