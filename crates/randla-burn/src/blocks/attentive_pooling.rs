//! Attentive pooling: a learned score per neighbour and channel, softmax over the K neighbours,
//! the weighted sum, then a shared MLP.

use burn::module::Module;
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor};

use super::shared_mlp::{Conv1x1, SharedMlp};

/// Open3D-ML's `AttentivePooling` (`pool1`, `pool2`).
#[derive(Module, Debug)]
pub struct AttentivePooling {
    /// The score Linear `d → d`, with bias (`*.score_fn.0`).
    pub score_fn: Conv1x1,
    /// conv + BN + LeakyReLU(0.2) `d → d_out` (`*.mlp`).
    pub mlp: SharedMlp,
}

impl AttentivePooling {
    /// Fresh pooling over `d` channels, then `d → d_out`.
    pub fn new(d: usize, d_out: usize, device: &Device) -> Self {
        AttentivePooling {
            score_fn: Conv1x1::new(d, d, device),
            mlp: SharedMlp::new(d, d_out, device),
        }
    }

    /// Scores, softmax over the neighbours, weighted sum: everything before the MLP. Works on any
    /// subset of rows (the memory-efficient mode runs it chunk by chunk).
    ///
    /// Shapes: `x [B, M, K, d]` → `[B, M, d]`.
    pub fn aggregate(&self, x: Tensor<4>) -> Tensor<3> {
        let scores = softmax(self.score_fn.forward(x.clone()), 2); // [B, M, K, d], softmax over K
        (x * scores).sum_dim(2).squeeze_dim::<3>(2) // [B, M, d]
    }

    /// Shapes: `x [B, M, K, d]` → `[B, M, d_out]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<3> {
        self.mlp.forward(self.aggregate(x)) // [B, M, d_out]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    #[test]
    fn pooling_by_hand() {
        let device = Device::flex();
        // Scores = the features themselves (identity Linear, no bias).
        let pool = AttentivePooling {
            score_fn: Conv1x1::from_tensors(
                Tensor::from_floats([[1.0, 0.0], [0.0, 1.0]], &device),
                Tensor::from_floats([0.0, 0.0], &device),
            ),
            ..AttentivePooling::new(2, 3, &device)
        };
        // One point, K = 2 neighbours: channel 0 = [0, ln 3], channel 1 = [1, 1].
        let l3 = 3f32.ln();
        let x = Tensor::<4>::from_data(
            TensorData::new(vec![0.0f32, 1.0, l3, 1.0], [1, 1, 2, 2]),
            &device,
        );
        let agg = pool.aggregate(x.clone()).try_into_vec_as::<f32>().unwrap();
        // Channel 0: softmax([0, ln 3]) = [1/4, 3/4] → 0·1/4 + ln3·3/4. Channel 1: equal weights → 1.
        assert!((agg[0] - 0.75 * l3).abs() < 1e-6, "{agg:?}");
        assert!((agg[1] - 1.0).abs() < 1e-6, "{agg:?}");
        assert_eq!(pool.forward(x).dims(), [1, 1, 3]);
    }
}
