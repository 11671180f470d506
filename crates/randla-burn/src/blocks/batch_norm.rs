//! Batch normalisation over the last (channel) axis with PyTorch's `BatchNorm2d` semantics.
//!
//! burn's own `BatchNorm` normalises axis 1 and feeds its running variance with the *biased*
//! batch variance; PyTorch (and so Open3D-ML's checkpoints) feeds it the *unbiased* one. This
//! layer follows PyTorch: in training mode it normalises with the biased batch variance and
//! updates `running_var ← (1 − m)·running_var + m·var·M/(M − 1)` (M = values per channel), with
//! `m = 0.01` for Open3D-ML's RandLA-Net (`momentum=0.01` in PyTorch's convention, `new =
//! 0.99·old + 0.01·batch`).

use burn::module::{Flag, Module, Param, RunningState};
use burn::tensor::{Device, Tensor};

/// Batch normalisation of channels-last tensors (`[.., C]`), PyTorch semantics.
///
/// Training behaviour (batch statistics, running-average updates) happens when the input lives
/// on an autodiff device *and* the `training` flag is enabled, as for burn's own layers;
/// [`Module::valid`] gives the evaluation snapshot.
#[derive(Module, Debug)]
pub struct BatchNorm {
    /// γ, `[C]` (`*.batch_norm.weight`).
    pub gamma: Param<Tensor<1>>,
    /// β, `[C]` (`*.batch_norm.bias`).
    pub beta: Param<Tensor<1>>,
    /// Running mean, `[C]`.
    pub running_mean: RunningState<Tensor<1>>,
    /// Running (unbiased) variance, `[C]`.
    pub running_var: RunningState<Tensor<1>>,
    /// Training batches seen, `[1]` (PyTorch's `num_batches_tracked`; informative only).
    pub num_batches_tracked: RunningState<Tensor<1>>,
    /// Whether training behaviour is enabled for this layer.
    pub training: Param<Flag>,
    /// Weight of the batch statistic in the running averages (PyTorch convention).
    pub momentum: f64,
    /// Added to the variance before the square root.
    pub epsilon: f64,
}

/// Open3D-ML's batch-norm epsilon.
pub const EPSILON: f64 = 1e-6;
/// Open3D-ML's batch-norm momentum, PyTorch convention.
pub const MOMENTUM: f64 = 0.01;

impl BatchNorm {
    /// A fresh layer over `channels` channels: γ = 1, β = 0, running mean 0, running variance 1.
    pub fn new(channels: usize, device: &Device) -> Self {
        Self::from_tensors(
            Tensor::ones([channels], device),
            Tensor::zeros([channels], device),
            Tensor::zeros([channels], device),
            Tensor::ones([channels], device),
            0.0,
        )
    }

    /// A layer from its four tensors (all `[C]`) and its batch counter.
    pub fn from_tensors(
        gamma: Tensor<1>,
        beta: Tensor<1>,
        running_mean: Tensor<1>,
        running_var: Tensor<1>,
        num_batches_tracked: f32,
    ) -> Self {
        let device = gamma.device();
        BatchNorm {
            gamma: Param::from_tensor(gamma),
            beta: Param::from_tensor(beta),
            running_mean: RunningState::new(running_mean),
            running_var: RunningState::new(running_var),
            num_batches_tracked: RunningState::new(Tensor::from_floats(
                [num_batches_tracked],
                &device,
            )),
            training: Param::from_bool(true),
            momentum: MOMENTUM,
            epsilon: EPSILON,
        }
    }

    /// Number of channels, C.
    pub fn channels(&self) -> usize {
        self.gamma.dims()[0]
    }

    /// True when a forward on `device` uses batch statistics.
    pub fn is_training_on(&self, device: &Device) -> bool {
        device.is_autodiff() && self.training.is_enabled()
    }

    /// Normalises `x` over its last axis.
    ///
    /// Shapes: `x [.., C]` → `[.., C]`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let dims = x.dims();
        let c = dims[D - 1];
        let rows = dims.iter().product::<usize>() / c.max(1);
        let flat: Tensor<2> = x.reshape([rows, c]); // [M, C]: axis 1 is the channel axis burn expects
        let device = flat.device();
        let out = if self.is_training_on(&device) {
            let r = burn::tensor::module::batch_norm_train(
                flat,
                self.gamma.val(),
                self.beta.val(),
                self.epsilon,
            );
            let m = self.momentum;
            let unbiased = if rows > 1 {
                rows as f64 / (rows as f64 - 1.0)
            } else {
                1.0
            };
            let mean = self.running_mean.value_sync().to_device(&device);
            let var = self.running_var.value_sync().to_device(&device);
            let count = self.num_batches_tracked.value_sync().to_device(&device);
            self.running_mean.update(
                mean.mul_scalar(1.0 - m)
                    .add(r.mean.detach().mul_scalar(m))
                    .detach(),
            );
            self.running_var.update(
                var.mul_scalar(1.0 - m)
                    .add(r.variance.detach().mul_scalar(m * unbiased))
                    .detach(),
            );
            self.num_batches_tracked
                .update(count.add_scalar(1.0).detach());
            r.output
        } else {
            let mean = self.running_mean.value().to_device(&device);
            let var = self.running_var.value().to_device(&device);
            burn::tensor::module::batch_norm(
                flat,
                self.gamma.val(),
                self.beta.val(),
                mean,
                var,
                self.epsilon,
            )
        };
        out.reshape(dims) // [.., C]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    #[test]
    fn eval_uses_running_statistics() {
        let device = Device::flex();
        let bn = BatchNorm::from_tensors(
            Tensor::from_floats([2.0, 1.0], &device),
            Tensor::from_floats([0.5, -1.0], &device),
            Tensor::from_floats([1.0, 0.0], &device),
            Tensor::from_floats([4.0, 1.0], &device),
            0.0,
        );
        let x = Tensor::<3>::from_floats([[[3.0, 2.0]], [[1.0, -2.0]]], &device); // [2, 1, 2]
        let y = bn.forward(x).try_into_vec_as::<f32>().unwrap();
        let s0 = (4.0f32 + 1e-6).sqrt();
        let s1 = (1.0f32 + 1e-6).sqrt();
        let want = [2.0 * 2.0 / s0 + 0.5, 2.0 / s1 - 1.0, 0.5, -2.0 / s1 - 1.0];
        for (a, b) in y.iter().zip(want) {
            assert!((a - b).abs() < 1e-5, "{y:?} vs {want:?}");
        }
    }

    #[test]
    fn training_updates_running_stats_like_pytorch() {
        let device = Device::flex().autodiff();
        let bn = BatchNorm::new(1, &device);
        // Values 1, 2, 3, 6: mean 3, biased var 3.5, unbiased var 14/3.
        let x = Tensor::<2>::from_data(
            TensorData::new(vec![1.0f32, 2.0, 3.0, 6.0], [4, 1]),
            &device,
        );
        let y = bn.forward(x).try_into_vec_as::<f32>().unwrap();
        let sd = (3.5f32 + 1e-6).sqrt();
        assert!((y[0] - (-2.0 / sd)).abs() < 1e-5, "{y:?}");
        let mean = bn
            .running_mean
            .value_sync()
            .try_into_vec_as::<f32>()
            .unwrap()[0];
        let var = bn
            .running_var
            .value_sync()
            .try_into_vec_as::<f32>()
            .unwrap()[0];
        let n = bn
            .num_batches_tracked
            .value_sync()
            .try_into_vec_as::<f32>()
            .unwrap()[0];
        assert!((mean - 0.03).abs() < 1e-6, "{mean}");
        assert!((var - (0.99 + 0.01 * 14.0 / 3.0)).abs() < 1e-6, "{var}");
        assert_eq!(n, 1.0);
        // The evaluation snapshot leaves the statistics alone.
        let frozen = bn.valid();
        let x = Tensor::<2>::from_data(
            TensorData::new(vec![10.0f32, 20.0], [2, 1]),
            &Device::flex(),
        );
        frozen.forward(x);
        let mean2 = frozen
            .running_mean
            .value_sync()
            .try_into_vec_as::<f32>()
            .unwrap()[0];
        assert!((mean2 - 0.03).abs() < 1e-6);
    }
}
