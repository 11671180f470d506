//! Open3D-ML `state_dict` ↔ network, parameter by parameter, by name.
//!
//! Layouts: `Conv2d` weights `[out, in, 1, 1]` and `Linear` weights `[out, in]` are transposed to
//! our `[in, out]`; `ConvTranspose2d` weights `[in, out, 1, 1]` already are `[in, out]`. Nothing
//! is folded: every batch norm keeps its four tensors (this is the op-by-op reference path).

use burn::tensor::{Device, Tensor, TensorData};
use randla_model::{Param as StateParam, RandLaNetConfig, StateDict};

use crate::blocks::head::HEAD_DROPOUT;
use crate::blocks::shared_mlp::LEAKY_SLOPE;
use crate::blocks::{
    AttentivePooling, BatchNorm, Conv1x1, DilatedResidualBlock, Head, LocalSpatialEncoding,
    SharedMlp,
};
use crate::decoder::Decoder;
use crate::encoder::Encoder;
use crate::error::{Error, Result};
use crate::randlanet::{ForwardOptions, RandLaNet};

/// How a stored weight is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// `Conv2d [out, in, 1, 1]` or `Linear [out, in]`: transpose.
    OutIn,
    /// `ConvTranspose2d [in, out, 1, 1]`: as is.
    InOut,
}

struct Loader<'a> {
    sd: &'a StateDict,
    device: &'a Device,
}

impl Loader<'_> {
    fn param(&self, name: &str) -> Result<&StateParam> {
        Ok(self.sd.get(name)?)
    }

    fn vector(&self, name: &str) -> Result<Tensor<1>> {
        let p = self.param(name)?;
        Ok(Tensor::from_data(
            TensorData::new(p.data.clone(), [p.data.len()]),
            self.device,
        ))
    }

    fn matrix(&self, name: &str, layout: Layout) -> Result<Tensor<2>> {
        let p = self.param(name)?;
        let (a, b) = match p.shape.as_slice() {
            [a, b] | [a, b, 1, 1] => (*a, *b),
            other => {
                return Err(randla_model::Error::ShapeMismatch {
                    name: name.into(),
                    expected: vec![],
                    actual: other.to_vec(),
                }
                .into());
            }
        };
        let data = match layout {
            Layout::InOut => TensorData::new(p.data.clone(), [a, b]),
            Layout::OutIn => {
                let mut t = vec![0.0f32; a * b];
                for o in 0..a {
                    for i in 0..b {
                        t[i * a + o] = p.data[o * b + i];
                    }
                }
                TensorData::new(t, [b, a])
            }
        };
        Ok(Tensor::from_data(data, self.device))
    }

    fn linear(&self, prefix: &str, layout: Layout) -> Result<Conv1x1> {
        Ok(Conv1x1::from_tensors(
            self.matrix(&format!("{prefix}.weight"), layout)?,
            self.vector(&format!("{prefix}.bias"))?,
        ))
    }

    fn batch_norm(&self, prefix: &str) -> Result<BatchNorm> {
        let count = self
            .sd
            .get(&format!("{prefix}.num_batches_tracked"))
            .ok()
            .and_then(|p| p.data.first().copied());
        Ok(BatchNorm::from_tensors(
            self.vector(&format!("{prefix}.weight"))?,
            self.vector(&format!("{prefix}.bias"))?,
            self.vector(&format!("{prefix}.running_mean"))?,
            self.vector(&format!("{prefix}.running_var"))?,
            count.unwrap_or(0.0),
        ))
    }

    /// A `SharedMLP` with BN; `slope` is its LeakyReLU (`None` for none).
    fn shared_mlp(&self, prefix: &str, layout: Layout, slope: Option<f64>) -> Result<SharedMlp> {
        Ok(SharedMlp {
            conv: self.linear(&format!("{prefix}.conv"), layout)?,
            batch_norm: Some(self.batch_norm(&format!("{prefix}.batch_norm"))?),
            negative_slope: slope,
        })
    }

    fn pooling(&self, prefix: &str) -> Result<AttentivePooling> {
        Ok(AttentivePooling {
            score_fn: self.linear(&format!("{prefix}.score_fn.0"), Layout::OutIn)?,
            mlp: self.shared_mlp(&format!("{prefix}.mlp"), Layout::OutIn, Some(LEAKY_SLOPE))?,
        })
    }

    fn block(&self, prefix: &str) -> Result<DilatedResidualBlock> {
        let mlp =
            |name: &str, slope| self.shared_mlp(&format!("{prefix}.{name}"), Layout::OutIn, slope);
        Ok(DilatedResidualBlock {
            mlp1: mlp("mlp1", Some(LEAKY_SLOPE))?,
            lse1: LocalSpatialEncoding {
                mlp: mlp("lse1.mlp", Some(LEAKY_SLOPE))?,
            },
            pool1: self.pooling(&format!("{prefix}.pool1"))?,
            lse2: LocalSpatialEncoding {
                mlp: mlp("lse2.mlp", Some(LEAKY_SLOPE))?,
            },
            pool2: self.pooling(&format!("{prefix}.pool2"))?,
            mlp2: mlp("mlp2", None)?,
            shortcut: mlp("shortcut", None)?,
        })
    }
}

impl RandLaNet {
    /// The network with Open3D-ML weights: every parameter of `config` mapped by name. The state
    /// dict is checked first (a missing, unexpected, mis-shaped or non-finite tensor is an error
    /// naming it); a missing `num_batches_tracked` is tolerated.
    pub fn from_state_dict(
        config: &RandLaNetConfig,
        sd: &StateDict,
        device: &Device,
    ) -> Result<Self> {
        config.validate()?;
        sd.check(config)?;
        let ld = Loader { sd, device };
        let blocks = (0..config.num_layers)
            .map(|i| ld.block(&format!("encoder.{i}")))
            .collect::<Result<Vec<_>>>()?;
        let decoder = (0..config.num_layers)
            .map(|j| ld.shared_mlp(&format!("decoder.{j}"), Layout::InOut, Some(LEAKY_SLOPE)))
            .collect::<Result<Vec<_>>>()?;
        Ok(RandLaNet {
            fc0: ld.linear("fc0", Layout::OutIn)?,
            bn0: ld.batch_norm("bn0")?,
            encoder: Encoder { blocks },
            mlp: ld.shared_mlp("mlp", Layout::OutIn, Some(LEAKY_SLOPE))?,
            decoder: Decoder { layers: decoder },
            head: Head {
                fc1_0: ld.shared_mlp("fc1.0", Layout::OutIn, Some(LEAKY_SLOPE))?,
                fc1_1: ld.shared_mlp("fc1.1", Layout::OutIn, Some(LEAKY_SLOPE))?,
                dropout: burn::nn::DropoutConfig::new(HEAD_DROPOUT).init(),
                fc1_3: SharedMlp {
                    conv: ld.linear("fc1.3.conv", Layout::OutIn)?,
                    batch_norm: None,
                    negative_slope: None,
                },
            },
            config: config.clone(),
            options: ForwardOptions::default(),
        })
    }

    /// Every parameter and running statistic under its Open3D-ML name and shape (the inverse of
    /// [`RandLaNet::from_state_dict`]; `num_batches_tracked` included).
    pub fn to_state_dict(&self) -> Result<StateDict> {
        let mut w = Writer {
            sd: StateDict::new(),
        };
        w.linear("fc0", &self.fc0, Layout::OutIn, false)?;
        w.batch_norm("bn0", &self.bn0)?;
        for (i, b) in self.encoder.blocks.iter().enumerate() {
            let p = format!("encoder.{i}");
            w.shared_mlp(&format!("{p}.mlp1"), &b.mlp1, Layout::OutIn)?;
            w.shared_mlp(&format!("{p}.lse1.mlp"), &b.lse1.mlp, Layout::OutIn)?;
            w.linear(
                &format!("{p}.pool1.score_fn.0"),
                &b.pool1.score_fn,
                Layout::OutIn,
                false,
            )?;
            w.shared_mlp(&format!("{p}.pool1.mlp"), &b.pool1.mlp, Layout::OutIn)?;
            w.shared_mlp(&format!("{p}.lse2.mlp"), &b.lse2.mlp, Layout::OutIn)?;
            w.linear(
                &format!("{p}.pool2.score_fn.0"),
                &b.pool2.score_fn,
                Layout::OutIn,
                false,
            )?;
            w.shared_mlp(&format!("{p}.pool2.mlp"), &b.pool2.mlp, Layout::OutIn)?;
            w.shared_mlp(&format!("{p}.mlp2"), &b.mlp2, Layout::OutIn)?;
            w.shared_mlp(&format!("{p}.shortcut"), &b.shortcut, Layout::OutIn)?;
        }
        w.shared_mlp("mlp", &self.mlp, Layout::OutIn)?;
        for (j, d) in self.decoder.layers.iter().enumerate() {
            w.shared_mlp(&format!("decoder.{j}"), d, Layout::InOut)?;
        }
        w.shared_mlp("fc1.0", &self.head.fc1_0, Layout::OutIn)?;
        w.shared_mlp("fc1.1", &self.head.fc1_1, Layout::OutIn)?;
        w.shared_mlp("fc1.3", &self.head.fc1_3, Layout::OutIn)?;
        Ok(w.sd)
    }
}

struct Writer {
    sd: StateDict,
}

fn read<const D: usize>(name: &str, t: Tensor<D>) -> Result<Vec<f32>> {
    t.try_into_vec_as::<f32>().map_err(|e| Error::Read {
        name: name.into(),
        message: format!("{e:?}"),
    })
}

impl Writer {
    fn vector(&mut self, name: String, t: Tensor<1>) -> Result<()> {
        let data = read(&name, t)?;
        self.sd
            .insert(name, StateParam::new(vec![data.len()], data));
        Ok(())
    }

    /// `conv` is true for a 1×1 convolution (4-d weight), false for a Linear.
    fn linear(&mut self, prefix: &str, l: &Conv1x1, layout: Layout, conv: bool) -> Result<()> {
        let name = format!("{prefix}.weight");
        let [i, o] = l.weight.dims();
        let data = read(&name, l.weight.val())?; // [in, out]
        let (shape, data) = match layout {
            Layout::InOut => (vec![i, o], data),
            Layout::OutIn => {
                let mut t = vec![0.0f32; i * o];
                for a in 0..i {
                    for b in 0..o {
                        t[b * i + a] = data[a * o + b];
                    }
                }
                (vec![o, i], t)
            }
        };
        let shape = if conv {
            [shape, vec![1, 1]].concat()
        } else {
            shape
        };
        self.sd.insert(name, StateParam::new(shape, data));
        self.vector(format!("{prefix}.bias"), l.bias.val())
    }

    fn batch_norm(&mut self, prefix: &str, bn: &BatchNorm) -> Result<()> {
        self.vector(format!("{prefix}.weight"), bn.gamma.val())?;
        self.vector(format!("{prefix}.bias"), bn.beta.val())?;
        self.vector(
            format!("{prefix}.running_mean"),
            bn.running_mean.value_sync(),
        )?;
        self.vector(format!("{prefix}.running_var"), bn.running_var.value_sync())?;
        let name = format!("{prefix}.num_batches_tracked");
        let n = read(&name, bn.num_batches_tracked.value_sync())?;
        self.sd.insert(
            name,
            StateParam::new(vec![], vec![n.first().copied().unwrap_or(0.0)]),
        );
        Ok(())
    }

    fn shared_mlp(&mut self, prefix: &str, m: &SharedMlp, layout: Layout) -> Result<()> {
        self.linear(&format!("{prefix}.conv"), &m.conv, layout, true)?;
        if let Some(bn) = &m.batch_norm {
            self.batch_norm(&format!("{prefix}.batch_norm"), bn)?;
        }
        Ok(())
    }
}
