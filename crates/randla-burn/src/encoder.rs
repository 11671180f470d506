//! The encoder: one dilated residual block per level, each followed by random-sample max pooling.

use burn::module::Module;
use burn::tensor::{Device, Tensor};

use crate::batch::LayerTensors;
use crate::blocks::DilatedResidualBlock;
use crate::gather::{max_pool, max_pool_chunked};

/// Open3D-ML's `encoder` list.
#[derive(Module, Debug)]
pub struct Encoder {
    /// One block per level (`encoder.i`).
    pub blocks: Vec<DilatedResidualBlock>,
}

impl Encoder {
    /// Fresh blocks for input widths `d_in[i]` and `d_out[i]`.
    pub fn new(d_in: &[usize], d_out: &[usize], device: &Device) -> Self {
        Encoder {
            blocks: d_in
                .iter()
                .zip(d_out)
                .map(|(&i, &o)| DilatedResidualBlock::new(i, o, device))
                .collect(),
        }
    }

    /// Runs every level. `chunk_rows[i]` (if any) is the chunk size of level `i`'s local feature
    /// aggregation and pooling in the memory-efficient mode.
    ///
    /// Returns the last pooled features `[B, N_L, 2·d_out[L-1]]` and the skip list
    /// `[full-resolution block-0 output [B, N_0, 2·d_out[0]], pooled level 0 [B, N_1, ..], …,
    /// pooled level L-1 [B, N_L, ..]]` (Open3D-ML's order).
    ///
    /// Shapes: `x [B, N_0, dim_features]`.
    pub fn forward(
        &self,
        mut x: Tensor<3>,
        layers: &[LayerTensors],
        chunk_rows: &[Option<usize>],
    ) -> (Tensor<3>, Vec<Tensor<3>>) {
        let mut skips = Vec::with_capacity(self.blocks.len() + 1);
        for (i, (block, layer)) in self.blocks.iter().zip(layers).enumerate() {
            let chunk = chunk_rows.get(i).copied().flatten();
            let f = block.forward(x, layer.coords.clone(), layer.neighbors.clone(), chunk); // [B, N_i, 2·o_i]
            if i == 0 {
                skips.push(f.clone());
            }
            let pooled = match chunk {
                Some(rows) => max_pool_chunked(f, layer.sub_idx.clone(), rows),
                None => max_pool(f, layer.sub_idx.clone()),
            }; // [B, N_{i+1}, 2·o_i]
            skips.push(pooled.clone());
            x = pooled;
        }
        (x, skips)
    }
}
