//! # randla-engine: fused CPU inference for RandLA-Net
//!
//! The network is small (1.2–5 M parameters); an op-by-op CPU forward spends its time writing and
//! reading `[N, K, C]` tensors. This engine:
//! - folds every batch norm into the 1×1 convolution before it when the weights are loaded;
//! - uses linearity to do per point what the reference does per neighbour (the point-only parts
//!   of the relative position encoding; the feature half of the attention scores, since
//!   `W·h[nb] = (W·h)[nb]`; the upsampled half of each decoder convolution on the coarse level);
//! - runs each local feature aggregation over tiles of points whose scratch stays in cache —
//!   encoding, score GEMM, softmax over K, weighted sums — without materialising any
//!   `[N, K, C]` tensor, in parallel over tiles (rayon); with K = 16 on CPUs with AVX-512 each
//!   point's encodings, scores and softmax stay in registers instead;
//! - multiplies with register-blocked AVX-512 or AVX2/FMA product kernels that give the same bits
//!   (runtime-detected; plain loops elsewhere).
//!
//! Same weights as Open3D-ML (loaded through [`randla_model::StateDict`]), same outputs: the
//! parity fixture made by Open3D-ML itself is reproduced to 1e-4 relative (see `tests/`).
//!
//! ```
//! use randla_engine::FusedEngine;
//! use randla_geom::{Pyramid, PyramidConfig};
//! use randla_model::{RandLaNetConfig, StateDict};
//! let config = RandLaNetConfig { num_layers: 2, dim_output: vec![8, 16], sub_sampling_ratio: vec![4, 4], num_classes: 3, num_neighbors: 4, ..Default::default() };
//! let engine = FusedEngine::new(&config, &StateDict::random(&config, 0)).unwrap();
//! let pts: Vec<[f32; 3]> = (0..64).map(|i| [(i % 8) as f32, (i / 8) as f32, 0.0]).collect();
//! let pyramid = Pyramid::build(&pts, &config.pyramid_config()).unwrap();
//! let features: Vec<f32> = pts.iter().flatten().copied().collect();
//! let logits = engine.forward_crop(&features, &pyramid).unwrap();
//! assert_eq!(logits.len(), 64 * 3);
//! ```

pub mod error;
mod fold;
pub mod kernels;
mod lfa;
mod network;

pub use error::{Error, Result};
pub use network::{FusedEngine, SharedLevel0, Stage};
