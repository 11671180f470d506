//! The whole network: `fc0` + `bn0`, encoder, `mlp`, decoder, head.

use burn::module::{Flag, Module, ModuleMapper, Param};
use burn::tensor::activation::leaky_relu;
use burn::tensor::{Device, Tensor};
use randla_geom::MemoryBudget;
use randla_model::RandLaNetConfig;

use crate::batch::BatchTensors;
use crate::blocks::dilated_residual::lfa_bytes_per_row;
use crate::blocks::shared_mlp::LEAKY_SLOPE;
use crate::blocks::{BatchNorm, Conv1x1, Head, SharedMlp};
use crate::decoder::Decoder;
use crate::encoder::Encoder;
use crate::error::{Error, Result};

/// Budget of the memory-efficient mode when [`ForwardOptions::budget`] is not given: 8 MiB for
/// the `[B, chunk, K, C]` intermediates of one block at a time. Small chunks are not slower: on a
/// 45,056-point cloud (Flex, 2 cores) budgets of 4–16 MiB ran the forward pass faster than the
/// standard mode (chunks stay in cache) with a quarter of its peak memory.
pub const DEFAULT_LFA_BUDGET: MemoryBudget = MemoryBudget::bytes(8 << 20);

/// How [`RandLaNet::forward_with`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ForwardOptions {
    /// Run the local feature aggregation (and the random-sample pooling) over chunks of points so
    /// that no `[B, N, K, C]` tensor for the whole cloud exists at once. Same output as the
    /// standard mode; evaluation only (see [`RandLaNet::forward_with`]).
    pub memory_efficient: bool,
    /// Rows per chunk, overriding the budget (memory-efficient mode only).
    pub chunk_points: Option<usize>,
    /// Bytes the per-chunk intermediates may take; [`DEFAULT_LFA_BUDGET`] when `None`.
    pub budget: Option<MemoryBudget>,
}

impl ForwardOptions {
    /// The standard mode: every block over the whole cloud at once.
    pub fn standard() -> Self {
        Self::default()
    }

    /// The memory-efficient mode under `budget`.
    pub fn memory_efficient(budget: MemoryBudget) -> Self {
        ForwardOptions {
            memory_efficient: true,
            chunk_points: None,
            budget: Some(budget),
        }
    }

    /// The memory-efficient mode with a fixed chunk of `rows` points.
    pub fn chunked(rows: usize) -> Self {
        ForwardOptions {
            memory_efficient: true,
            chunk_points: Some(rows),
            budget: None,
        }
    }
}

/// RandLA-Net as Open3D-ML's `RandLANet` (PyTorch), op by op, channels-last.
///
/// Modes follow burn's convention: on a plain device (or after [`Module::valid`]) the network
/// evaluates (running batch-norm statistics, no dropout); on an autodiff device
/// (`Device::flex().autodiff()`) with its training flags enabled it trains (batch statistics,
/// running averages updated with PyTorch momentum 0.01, dropout 0.5). [`RandLaNet::set_training`]
/// flips the flags without moving the network.
#[derive(Module, Debug)]
pub struct RandLaNet {
    /// `fc0`: Linear `in_channels → dim_features`.
    pub fc0: Conv1x1,
    /// `bn0`: batch norm after `fc0`, followed by LeakyReLU(0.2).
    pub bn0: BatchNorm,
    /// `encoder.*`.
    pub encoder: Encoder,
    /// `mlp`: conv + BN + LReLU(0.2) on the bottleneck.
    pub mlp: SharedMlp,
    /// `decoder.*`.
    pub decoder: Decoder,
    /// `fc1.*`.
    pub head: Head,
    /// The configuration the network was built for.
    #[module(skip)]
    pub config: RandLaNetConfig,
    /// What [`RandLaNet::forward`] uses.
    #[module(skip)]
    pub options: ForwardOptions,
}

impl RandLaNet {
    /// A freshly initialised network for `config` with `num_classes` outputs (PyTorch-default
    /// initialisation: uniform ±1/√fan_in; BN γ = 1, β = 0).
    pub fn new(config: &RandLaNetConfig, num_classes: usize, device: &Device) -> Result<Self> {
        let config = RandLaNetConfig {
            num_classes,
            ..config.clone()
        };
        config.validate()?;
        Ok(RandLaNet {
            fc0: Conv1x1::new(config.in_channels, config.dim_features, device),
            bn0: BatchNorm::new(config.dim_features, device),
            encoder: Encoder::new(&config.encoder_in_dims(), &config.dim_output, device),
            mlp: SharedMlp::new(config.bottleneck_dim(), config.bottleneck_dim(), device),
            decoder: Decoder::new(&config.decoder_dims(), device),
            head: Head::new(config.head_in(), num_classes, device),
            config,
            options: ForwardOptions::default(),
        })
    }

    /// Makes [`RandLaNet::forward`] use the memory-efficient mode (default budget).
    pub fn enable_memory_efficient_mode(&mut self) {
        self.options.memory_efficient = true;
    }

    /// The options [`RandLaNet::forward`] uses.
    pub fn with_options(mut self, options: ForwardOptions) -> Self {
        self.options = options;
        self
    }

    /// Enables or disables training behaviour (batch statistics, dropout) without moving the
    /// network off its device or touching gradient settings. Training behaviour also needs an
    /// autodiff device.
    pub fn set_training(self, training: bool) -> Self {
        struct Flags(bool);
        impl ModuleMapper for Flags {
            fn map_flag(&mut self, flag: Param<Flag>) -> Param<Flag> {
                flag.with_value(self.0)
            }
        }
        self.map(&mut Flags(training))
    }

    /// The device of the parameters (autodiff included).
    pub fn device(&self) -> Device {
        self.fc0.weight.val().device()
    }

    /// True when a forward uses batch statistics and dropout.
    pub fn is_training(&self) -> bool {
        self.bn0.is_training_on(&self.device())
    }

    /// Logits with [`RandLaNet::options`].
    ///
    /// Shapes: `batch.features [B, N, in_channels]` → `[B, N, num_classes]`.
    pub fn forward(&self, batch: &BatchTensors) -> Result<Tensor<3>> {
        self.forward_with(batch, &self.options)
    }

    /// Logits with the given options. The memory-efficient mode is refused in training mode:
    /// the batch norms inside the neighbourhoods need statistics over the whole `[B, N, K]` set,
    /// which chunks do not see (use gradient checkpointing to save memory when training).
    ///
    /// Shapes: `batch.features [B, N, in_channels]` → `[B, N, num_classes]`.
    pub fn forward_with(
        &self,
        batch: &BatchTensors,
        options: &ForwardOptions,
    ) -> Result<Tensor<3>> {
        batch.check(&self.config)?;
        let chunks = self.chunk_plan(batch, options)?;
        let x = self.fc0.forward(batch.features.clone()); // [B, N, dim_features]
        let x = leaky_relu(self.bn0.forward(x), LEAKY_SLOPE); // [B, N, dim_features]
        let (x, skips) = self.encoder.forward(x, &batch.layers, &chunks); // [B, N_L, 2·o_{L-1}]
        let x = self.mlp.forward(x); // [B, N_L, 2·o_{L-1}]
        let x = self.decoder.forward(x, skips, &batch.layers); // [B, N, 2·o_0]
        Ok(self.head.forward(x)) // [B, N, num_classes]
    }

    /// Rows per chunk of every encoder level (`None`: the whole level at once).
    pub fn chunk_plan(
        &self,
        batch: &BatchTensors,
        options: &ForwardOptions,
    ) -> Result<Vec<Option<usize>>> {
        let layers = self.config.num_layers;
        if !options.memory_efficient {
            return Ok(vec![None; layers]);
        }
        if self.is_training() {
            return Err(Error::Option {
                option: "memory_efficient",
                message: "the chunked local feature aggregation is exact only with running batch-norm statistics; \
                          evaluate with `model.valid()` or `set_training(false)`, or train in the standard mode \
                          (gradient checkpointing: `Device::flex().autodiff().gradient_checkpointing()`)"
                    .into(),
            });
        }
        if options.chunk_points == Some(0) {
            return Err(Error::Option {
                option: "chunk_points",
                message: "must be at least 1".into(),
            });
        }
        let budget = options.budget.unwrap_or(DEFAULT_LFA_BUDGET);
        Ok((0..layers)
            .map(|i| {
                let rows = options.chunk_points.unwrap_or_else(|| {
                    let per_row =
                        batch.batch_size * lfa_bytes_per_row(batch.k, self.config.dim_output[i]);
                    budget.rows_per_chunk(per_row, 1, 1)
                });
                Some(rows.min(batch.sizes[i]))
            })
            .collect())
    }
}
