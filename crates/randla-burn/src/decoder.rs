//! The decoder: 1-NN upsampling, concatenation with the encoder's skip features, and a 1×1
//! transposed convolution (+ BN + LeakyReLU(0.2)) per level.

use burn::module::Module;
use burn::tensor::{Device, Tensor};

use crate::batch::LayerTensors;
use crate::blocks::SharedMlp;
use crate::gather::gather_rows;

/// Open3D-ML's `decoder` list (`ConvTranspose2d` 1×1 layers, stored here as `[in, out]`
/// matmuls, which is exactly their layout).
#[derive(Module, Debug)]
pub struct Decoder {
    /// One layer per level (`decoder.j`), `skip + previous → skip` channels.
    pub layers: Vec<SharedMlp>,
}

impl Decoder {
    /// Fresh layers with `(in, out)` widths.
    pub fn new(dims: &[(usize, usize)], device: &Device) -> Self {
        Decoder {
            layers: dims
                .iter()
                .map(|&(i, o)| SharedMlp::new(i, o, device))
                .collect(),
        }
    }

    /// Decodes from the bottleneck back to full resolution.
    ///
    /// Shapes: `x [B, N_L, C_L]`, `skips` as returned by [`crate::encoder::Encoder::forward`]
    /// → `[B, N_0, 2·d_out[0]]`.
    pub fn forward(
        &self,
        mut x: Tensor<3>,
        mut skips: Vec<Tensor<3>>,
        layers: &[LayerTensors],
    ) -> Tensor<3> {
        let l = self.layers.len();
        // Decoder layer j reads skip [-j-2] and upsamples with interp_idx[L-1-j].
        skips.truncate(l); // the last entry is the bottleneck input itself
        for (j, layer) in self.layers.iter().enumerate() {
            let level = l - 1 - j;
            let up = gather_rows(x, layers[level].interp_idx.clone()); // [B, N_level, C]
            let skip = skips.pop().expect("one skip per decoder layer"); // [B, N_level, C_skip]
            x = layer.forward(Tensor::cat(vec![skip, up], 2)); // [B, N_level, C_skip]
        }
        x
    }
}
