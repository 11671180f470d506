//! The network input on the device: [`randla_model::Batch`] turned into tensors, with the batch
//! offset folded into every index so that gathers are flat `select`s.

use burn::tensor::{Device, Int, Tensor, TensorData};
use randla_model::{Batch, RandLaNetConfig};

use crate::error::{Error, Result};

/// One encoder level's geometry and indices.
#[derive(Debug, Clone)]
pub struct LayerTensors {
    /// `[B, N_l, 3]` coordinates.
    pub coords: Tensor<3>,
    /// `[B, N_l, K]` neighbours, flat rows of the level's `[B·N_l, C]` features.
    pub neighbors: Tensor<3, Int>,
    /// `[B, N_{l+1}, K]` pooling neighbourhoods, flat rows of level `l`.
    pub sub_idx: Tensor<3, Int>,
    /// `[B, N_l]` nearest level-`l + 1` point, flat rows of level `l + 1`.
    pub interp_idx: Tensor<2, Int>,
}

/// A batch of crops on the device, ready for [`crate::RandLaNet::forward`].
#[derive(Debug, Clone)]
pub struct BatchTensors {
    /// Crops, B.
    pub batch_size: usize,
    /// Input channels, C.
    pub channels: usize,
    /// Neighbours per point, K.
    pub k: usize,
    /// `N_0 … N_L`.
    pub sizes: Vec<usize>,
    /// `[B, N_0, C]` input features.
    pub features: Tensor<3>,
    /// Per encoder level.
    pub layers: Vec<LayerTensors>,
}

impl BatchTensors {
    /// Checks `batch` against `config` (shapes, index ranges, finite values) and uploads it.
    pub fn from_batch(batch: &Batch, config: &RandLaNetConfig, device: &Device) -> Result<Self> {
        batch.validate(config)?;
        let b = batch.batch_size;
        let k = batch.k;
        let s = &batch.sizes;
        let features = Tensor::from_data(
            TensorData::new(batch.features.clone(), [b, s[0], batch.channels]),
            device,
        );
        // Local index `i` of crop `bi` at a level of `n` points becomes the flat row `bi·n + i`.
        let flat = |idx: &[u32], rows_per_crop: usize, n_src: usize| -> Vec<i64> {
            idx.iter()
                .enumerate()
                .map(|(j, &i)| (j / rows_per_crop.max(1) * n_src) as i64 + i as i64)
                .collect()
        };
        let mut layers = Vec::with_capacity(batch.num_layers());
        for l in 0..batch.num_layers() {
            let (n, next) = (s[l], s[l + 1]);
            let coords =
                Tensor::from_data(TensorData::new(batch.coords[l].clone(), [b, n, 3]), device);
            let neighbors = Tensor::from_data(
                TensorData::new(flat(&batch.neighbors[l], n * k, n), [b, n, k]),
                device,
            );
            let sub_idx = Tensor::from_data(
                TensorData::new(flat(&batch.sub_idx[l], next * k, n), [b, next, k]),
                device,
            );
            let interp_idx = Tensor::from_data(
                TensorData::new(flat(&batch.interp_idx[l], n, next), [b, n]),
                device,
            );
            layers.push(LayerTensors {
                coords,
                neighbors,
                sub_idx,
                interp_idx,
            });
        }
        Ok(BatchTensors {
            batch_size: b,
            channels: batch.channels,
            k,
            sizes: s.clone(),
            features,
            layers,
        })
    }

    /// Number of encoder levels, L.
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// Points per crop, N_0.
    pub fn num_points(&self) -> usize {
        self.sizes[0]
    }

    /// Checks that this batch fits a network built for `config` (the tensors themselves were
    /// checked when the batch was built).
    pub fn check(&self, config: &RandLaNetConfig) -> Result<()> {
        if self.channels != config.in_channels {
            return Err(Error::batch(
                "features",
                format!(
                    "{} channels per point, the model takes in_channels = {}",
                    self.channels, config.in_channels
                ),
            ));
        }
        if self.k != config.num_neighbors {
            return Err(Error::batch(
                "neighbor_indices.0",
                format!(
                    "K = {}, the model has num_neighbors = {}",
                    self.k, config.num_neighbors
                ),
            ));
        }
        if self.layers.len() != config.num_layers || self.sizes.len() != config.num_layers + 1 {
            return Err(Error::batch(
                format!(
                    "neighbor_indices.{}",
                    self.layers.len().min(config.num_layers)
                ),
                format!(
                    "the batch has {} layers, the model has num_layers = {}",
                    self.layers.len(),
                    config.num_layers
                ),
            ));
        }
        Ok(())
    }
}
