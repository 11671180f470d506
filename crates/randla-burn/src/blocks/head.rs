//! The classification head: `fc1.0`, `fc1.1` (conv + BN + LeakyReLU(0.2)), dropout(0.5) in
//! training, `fc1.3` (conv with bias) → logits.

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig};
use burn::tensor::{Device, Tensor};

use super::shared_mlp::SharedMlp;

/// Dropout probability before the classifier.
pub const HEAD_DROPOUT: f64 = 0.5;

/// Open3D-ML's `fc1` sequential.
#[derive(Module, Debug)]
pub struct Head {
    /// `fc1.0`: `d_in → 64`.
    pub fc1_0: SharedMlp,
    /// `fc1.1`: `64 → 32`.
    pub fc1_1: SharedMlp,
    /// `fc1.2`: dropout, active only in training.
    pub dropout: Dropout,
    /// `fc1.3`: `32 → classes`, no BN, no activation.
    pub fc1_3: SharedMlp,
}

impl Head {
    /// A fresh head for `d_in` channels and `classes` classes.
    pub fn new(d_in: usize, classes: usize, device: &Device) -> Self {
        Head {
            fc1_0: SharedMlp::new(d_in, 64, device),
            fc1_1: SharedMlp::new(64, 32, device),
            dropout: DropoutConfig::new(HEAD_DROPOUT).init(),
            fc1_3: SharedMlp::new_conv_only(32, classes, device),
        }
    }

    /// Shapes: `x [B, N, d_in]` → logits `[B, N, classes]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let x = self.fc1_0.forward(x); // [B, N, 64]
        let x = self.fc1_1.forward(x); // [B, N, 32]
        let x = self.dropout.forward(x); // [B, N, 32]
        self.fc1_3.forward(x) // [B, N, classes]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    #[test]
    fn shapes() {
        let device = Device::flex();
        let head = Head::new(32, 7, &device);
        let y = head.forward(Tensor::random([2, 9, 32], Distribution::Default, &device));
        assert_eq!(y.dims(), [2, 9, 7]);
    }
}
