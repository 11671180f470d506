//! # randla-burn: RandLA-Net in burn
//!
//! Open3D-ML's PyTorch `RandLANet`, op by op, on burn 0.22's Flex CPU backend (CUDA and wgpu
//! behind the `cuda` and `wgpu` features), loadable from Open3D-ML checkpoints by parameter name,
//! trainable under burn's autodiff.
//!
//! - [`RandLaNet`]: the network (`new`, `from_state_dict`, `to_state_dict`, `forward`,
//!   `forward_with` + [`ForwardOptions`] for the memory-efficient chunked mode);
//! - [`BatchTensors`]: a [`randla_model::Batch`] on the device;
//! - [`blocks`]: shared MLP, batch norm (PyTorch semantics), local spatial encoding, attentive
//!   pooling, dilated residual block, head; [`encoder`], [`decoder`], [`gather`].
//!
//! Tensors are channels-last throughout (`[B, N, C]`, neighbourhoods `[B, N, K, C]`).
//!
//! ```
//! use burn::tensor::Device;
//! use randla_burn::RandLaNet;
//! use randla_model::{RandLaNetConfig, StateDict};
//!
//! let config = RandLaNetConfig {
//!     num_layers: 2, dim_output: vec![8, 16], sub_sampling_ratio: vec![4, 4], num_classes: 3,
//!     ..RandLaNetConfig::default()
//! };
//! let weights = StateDict::random(&config, 0);
//! let net = RandLaNet::from_state_dict(&config, &weights, &Device::flex()).unwrap();
//! assert_eq!(net.to_state_dict().unwrap().len(), config.parameter_shapes().len());
//! ```

pub mod batch;
pub mod blocks;
pub mod decoder;
pub mod encoder;
pub mod error;
pub mod gather;
pub mod randlanet;
pub mod weights;

pub use batch::{BatchTensors, LayerTensors};
pub use burn;
pub use error::{Error, Result};
pub use randlanet::{DEFAULT_LFA_BUDGET, ForwardOptions, RandLaNet};

/// The default CPU device: burn's Flex backend.
pub fn cpu_device() -> burn::tensor::Device {
    burn::tensor::Device::flex()
}

/// CUDA GPU number `index` (feature `cuda`; building it downloads LLVM through `cubecl-llvm`).
#[cfg(feature = "cuda")]
pub fn cuda_device(index: usize) -> burn::tensor::Device {
    burn::tensor::Device::cuda(index)
}

/// The default wgpu adapter, on whichever graphics API the platform provides (feature `wgpu`).
#[cfg(feature = "wgpu")]
pub fn wgpu_device() -> burn::tensor::Device {
    burn::tensor::Device::wgpu(Default::default())
}
