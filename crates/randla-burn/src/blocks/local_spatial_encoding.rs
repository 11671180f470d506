//! Local spatial encoding (LocSE): the 10-channel relative position encoding of every
//! neighbourhood and its shared MLP, concatenated after the gathered neighbour features.

use burn::module::Module;
use burn::tensor::{Device, Tensor};

use super::shared_mlp::SharedMlp;

/// Channels of the relative position encoding: `[‖p_i − p_k‖, p_i − p_k, p_i, p_k]`.
pub const ENCODING_CHANNELS: usize = 10;

/// Open3D-ML's `LocalSpatialEncoding` (`lse1`, `lse2`): one shared MLP over the geometry.
///
/// `lse1` encodes the raw 10-channel encoding (`10 → d_out/2`); `lse2` re-encodes `lse1`'s output
/// (`d_out/2 → d_out/2`), as Open3D-ML (and the TensorFlow original) do.
#[derive(Module, Debug)]
pub struct LocalSpatialEncoding {
    /// conv + BN + LeakyReLU(0.2) (`*.mlp`).
    pub mlp: SharedMlp,
}

impl LocalSpatialEncoding {
    /// A fresh encoding MLP `d_in → d_out`.
    pub fn new(d_in: usize, d_out: usize, device: &Device) -> Self {
        LocalSpatialEncoding {
            mlp: SharedMlp::new(d_in, d_out, device),
        }
    }

    /// The relative position encoding of every (point, neighbour) pair.
    ///
    /// Shapes: `center [B, M, 3]`, `neighbors [B, M, K, 3]` → `[B, M, K, 10]`, channels
    /// `[dist, p_i − p_k (3), p_i (3), p_k (3)]` (Euclidean distance, not squared).
    pub fn encode(center: Tensor<3>, neighbors: Tensor<4>) -> Tensor<4> {
        let [b, m, k, _] = neighbors.dims();
        let tile: Tensor<4> = center.unsqueeze_dim::<4>(2).expand([b, m, k, 3]); // [B, M, K, 3]
        let rel = tile.clone() - neighbors.clone(); // [B, M, K, 3]
        let dist = rel.clone().square().sum_dim(3).sqrt(); // [B, M, K, 1]
        Tensor::cat(vec![dist, rel, tile, neighbors], 3) // [B, M, K, 10]
    }

    /// Encodes `geometry` and appends it after the gathered neighbour features.
    ///
    /// Shapes: `geometry [B, M, K, d_in]`, `neighbor_features [B, M, K, C]` →
    /// (`[B, M, K, C + d_out]` concatenation, `[B, M, K, d_out]` encoding for reuse).
    pub fn forward(
        &self,
        geometry: Tensor<4>,
        neighbor_features: Tensor<4>,
    ) -> (Tensor<4>, Tensor<4>) {
        let encoded = self.mlp.forward(geometry); // [B, M, K, d_out]
        (
            Tensor::cat(vec![neighbor_features, encoded.clone()], 3),
            encoded,
        ) // [B, M, K, C + d_out]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    #[test]
    fn encoding_by_hand() {
        let device = Device::flex();
        let center = Tensor::<3>::from_floats([[[1.0, 2.0, 3.0]]], &device); // [1, 1, 3]
        let nb = Tensor::<4>::from_data(
            TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0, 6.0, 3.0], [1, 1, 2, 3]),
            &device,
        );
        let e = LocalSpatialEncoding::encode(center, nb);
        assert_eq!(e.dims(), [1, 1, 2, 10]);
        let v = e.try_into_vec_as::<f32>().unwrap();
        // Self-neighbour: distance 0, offset 0.
        assert_eq!(
            &v[..10],
            &[0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 1.0, 2.0, 3.0]
        );
        // p_i − p_k = (−3, −4, 0), distance 5.
        assert_eq!(
            &v[10..],
            &[5.0, -3.0, -4.0, 0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 3.0]
        );
    }

    #[test]
    fn forward_shapes() {
        let device = Device::flex();
        let lse = LocalSpatialEncoding::new(10, 8, &device);
        let geo = Tensor::<4>::zeros([2, 5, 4, 10], &device);
        let feats = Tensor::<4>::ones([2, 5, 4, 8], &device);
        let (cat, enc) = lse.forward(geo, feats);
        assert_eq!(cat.dims(), [2, 5, 4, 16]);
        assert_eq!(enc.dims(), [2, 5, 4, 8]);
        // Features come first.
        let v = cat.try_into_vec_as::<f32>().unwrap();
        assert!(v[..8].iter().all(|&x| x == 1.0));
    }
}
