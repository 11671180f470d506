//! 1×1 convolutions and Open3D-ML's `SharedMLP` (1×1 conv → batch norm → LeakyReLU).
//!
//! Tensors are channels-last (`[.., C]`), so a 1×1 convolution (and a `Linear`) is a matmul over
//! the last axis with a weight stored `[in, out]`. The mapping from Open3D-ML's layouts
//! (`Conv2d [out, in, 1, 1]`, `ConvTranspose2d [in, out, 1, 1]`, `Linear [out, in]`) lives in
//! [`crate::weights`].

use burn::module::{Module, Param};
use burn::tensor::activation::leaky_relu;
use burn::tensor::{Device, Distribution, Tensor};

use super::batch_norm::BatchNorm;

/// Negative slope of the LeakyReLU after every conv + BN pair of Open3D-ML's RandLA-Net.
pub const LEAKY_SLOPE: f64 = 0.2;
/// Negative slope of the LeakyReLU closing a dilated residual block (`nn.LeakyReLU()`).
pub const RESIDUAL_SLOPE: f64 = 0.01;

/// A 1×1 convolution or linear layer over the last axis: `y = x·W + b`.
#[derive(Module, Debug)]
pub struct Conv1x1 {
    /// `W`, `[in, out]`.
    pub weight: Param<Tensor<2>>,
    /// `b`, `[out]`.
    pub bias: Param<Tensor<1>>,
}

impl Conv1x1 {
    /// A layer initialised as PyTorch initialises `Conv2d`/`Linear`: uniform in ±1/√fan_in.
    pub fn new(d_in: usize, d_out: usize, device: &Device) -> Self {
        let bound = 1.0 / (d_in.max(1) as f64).sqrt();
        let dist = Distribution::Uniform(-bound, bound);
        Conv1x1 {
            weight: Param::from_tensor(Tensor::random([d_in, d_out], dist, device)),
            bias: Param::from_tensor(Tensor::random([d_out], dist, device)),
        }
    }

    /// A layer from its weight `[in, out]` and bias `[out]`.
    pub fn from_tensors(weight: Tensor<2>, bias: Tensor<1>) -> Self {
        Conv1x1 {
            weight: Param::from_tensor(weight),
            bias: Param::from_tensor(bias),
        }
    }

    /// Input channels.
    pub fn d_in(&self) -> usize {
        self.weight.dims()[0]
    }

    /// Output channels.
    pub fn d_out(&self) -> usize {
        self.weight.dims()[1]
    }

    /// Shapes: `x [.., in]` → `[.., out]`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        burn::tensor::module::linear(x, self.weight.val(), Some(self.bias.val())) // [.., out]
    }
}

/// Open3D-ML's `SharedMLP`: 1×1 conv (with bias), optional batch norm, optional LeakyReLU.
#[derive(Module, Debug)]
pub struct SharedMlp {
    /// The 1×1 convolution (`*.conv`).
    pub conv: Conv1x1,
    /// The batch norm (`*.batch_norm`), absent for the head's last layer.
    pub batch_norm: Option<BatchNorm>,
    /// LeakyReLU negative slope; `None` for no activation.
    pub negative_slope: Option<f64>,
}

impl SharedMlp {
    /// conv(`d_in → d_out`) + BN + LeakyReLU(0.2), PyTorch-default initialisation.
    pub fn new(d_in: usize, d_out: usize, device: &Device) -> Self {
        SharedMlp {
            conv: Conv1x1::new(d_in, d_out, device),
            batch_norm: Some(BatchNorm::new(d_out, device)),
            negative_slope: Some(LEAKY_SLOPE),
        }
    }

    /// conv + BN without activation (`mlp2`, `shortcut`).
    pub fn new_linear(d_in: usize, d_out: usize, device: &Device) -> Self {
        SharedMlp {
            negative_slope: None,
            ..Self::new(d_in, d_out, device)
        }
    }

    /// conv only (the head's classifier `fc1.3`).
    pub fn new_conv_only(d_in: usize, d_out: usize, device: &Device) -> Self {
        SharedMlp {
            conv: Conv1x1::new(d_in, d_out, device),
            batch_norm: None,
            negative_slope: None,
        }
    }

    /// Input channels.
    pub fn d_in(&self) -> usize {
        self.conv.d_in()
    }

    /// Output channels.
    pub fn d_out(&self) -> usize {
        self.conv.d_out()
    }

    /// Shapes: `x [.., in]` → `[.., out]`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let mut y = self.conv.forward(x); // [.., out]
        if let Some(bn) = &self.batch_norm {
            y = bn.forward(y); // [.., out]
        }
        match self.negative_slope {
            Some(s) => leaky_relu(y, s), // [.., out]
            None => y,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    #[test]
    fn conv_is_a_matmul_over_the_last_axis() {
        let device = Device::flex();
        let conv = Conv1x1::from_tensors(
            Tensor::from_floats([[1.0, 0.0, 2.0], [0.0, 1.0, -1.0]], &device), // [2, 3]
            Tensor::from_floats([0.5, 0.0, 1.0], &device),
        );
        let x = Tensor::<4>::from_data(
            TensorData::new(vec![1.0f32, 2.0, -1.0, 3.0], [1, 2, 1, 2]),
            &device,
        );
        let y = conv.forward(x);
        assert_eq!(y.dims(), [1, 2, 1, 3]);
        assert_eq!(
            y.try_into_vec_as::<f32>().unwrap(),
            vec![1.5, 2.0, 1.0, -0.5, 3.0, -4.0]
        );
    }

    #[test]
    fn shared_mlp_shapes_and_activation() {
        let device = Device::flex();
        let mlp = SharedMlp::new(5, 7, &device);
        let y = mlp.forward(Tensor::<4>::random(
            [2, 3, 4, 5],
            Distribution::Default,
            &device,
        ));
        assert_eq!(y.dims(), [2, 3, 4, 7]);
        let head = SharedMlp::new_conv_only(7, 3, &device);
        assert_eq!(head.forward(y).dims(), [2, 3, 4, 3]);
        // Negative inputs are scaled by 0.2 (BN is the identity with fresh statistics, up to eps).
        let id = SharedMlp {
            conv: Conv1x1::from_tensors(
                Tensor::from_floats([[1.0]], &device),
                Tensor::from_floats([0.0], &device),
            ),
            ..SharedMlp::new(1, 1, &device)
        };
        let y = id
            .forward(Tensor::<1>::from_floats([-1.0], &device))
            .try_into_vec_as::<f32>()
            .unwrap();
        assert!((y[0] + 0.2).abs() < 1e-5, "{y:?}");
    }
}
