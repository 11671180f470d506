//! The training loop: crops → weighted cross-entropy → Adam, per-epoch learning-rate decay,
//! validation at full resolution through the deployment predictor, atomic checkpoints, resume.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use randla_burn::burn::tensor::{Device, Tensor, TensorData};
use randla_burn::{BatchTensors, RandLaNet};
use randla_io::PointCloud;
use randla_model::model_dir::ModelDir;
use randla_model::{Batch, RandLaNetConfig, StateDict};
use randla_predict::{PredictOptions, Predictor};
use serde::Serialize;

use crate::adam::Adam;
use crate::cache::{self, CacheStatus, Prepared};
use crate::checkpoint::{Checkpoint, TrainerState};
use crate::config::{ClassMap, Engine, IGNORED, TrainConfig};
use crate::dataset;
use crate::error::{Error, Result};
use crate::fused::FusedTrainer;
use crate::metrics::Scores;
use crate::sampler::{self, Sampler};
use randla_metrics::ConfusionMatrix;

/// File names inside a run directory.
pub mod files {
    /// The last checkpoint (resume point).
    pub const LAST: &str = "checkpoints/last.safetensors";
    /// The checkpoint of the best validation mIoU.
    pub const BEST: &str = "checkpoints/best.safetensors";
    /// The model directory (best weights, or last without validation).
    pub const MODEL: &str = "model";
    /// One JSON line per step and per epoch.
    pub const METRICS: &str = "metrics.jsonl";
    /// A copy of the configuration the run was started with.
    pub const CONFIG: &str = "train.toml";
}

/// How [`train`] runs.
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// Continue from `RUN_DIR/checkpoints/last.safetensors` when it exists.
    pub resume: bool,
    /// Stop (as if killed) after this many epochs of this process (tests).
    pub stop_after_epochs: Option<usize>,
    /// Preprocessing cache folder (overrides `[data] cache`; default `RUN_DIR/cache`).
    pub cache_dir: Option<PathBuf>,
}

/// What happens during training, for progress displays.
#[derive(Debug)]
pub enum Event<'a> {
    /// A training cloud was preprocessed (or found in the cache).
    Cache {
        /// The source.
        source: &'a Path,
        /// Hit, miss, rebuilt.
        status: &'a CacheStatus,
        /// Subsampled points.
        subsampled: usize,
        /// Original points.
        points: usize,
    },
    /// Data and network are ready.
    Ready {
        /// Subsampled training points per class.
        class_counts: &'a [u64],
        /// Subsampled training points of no class (codes in `classes.ignore`, or in no class's
        /// codes without `strict`), left out of the loss.
        ignored: u64,
        /// Loss weight per class.
        class_weights: &'a [f32],
        /// Trainable parameters.
        parameters: usize,
        /// Validation clouds.
        val_clouds: usize,
    },
    /// Resumed from a checkpoint.
    Resumed {
        /// Epochs already done.
        epoch: usize,
        /// Steps already done.
        global_step: u64,
    },
    /// An epoch begins.
    EpochStart {
        /// Epoch index (0-based).
        epoch: usize,
        /// Epochs in all.
        epochs: usize,
        /// Steps in it.
        steps: usize,
        /// Its learning rate.
        lr: f64,
    },
    /// A step ended.
    Step {
        /// Epoch index.
        epoch: usize,
        /// Step index in the epoch.
        step: usize,
        /// This step's loss.
        loss: f64,
        /// Mean loss of the epoch so far.
        mean_loss: f64,
    },
    /// Validation begins.
    Validating {
        /// Epoch index.
        epoch: usize,
    },
    /// An epoch ended.
    EpochEnd {
        /// Its record (also written to the metrics log).
        record: &'a EpochRecord,
    },
}

/// One epoch's line of the metrics log.
#[derive(Debug, Clone, Serialize)]
pub struct EpochRecord {
    /// Always `"epoch"`.
    pub kind: &'static str,
    /// Epoch index (0-based).
    pub epoch: usize,
    /// Steps done after it.
    pub global_step: u64,
    /// Its learning rate.
    pub lr: f64,
    /// Its mean training loss.
    pub loss: f64,
    /// Validation scores, when validated.
    pub val: Option<ValRecord>,
    /// Whether this is the best validation so far.
    pub best: bool,
    /// Seconds of this epoch (training + validation).
    pub secs: f64,
    /// Seconds of the run so far.
    pub elapsed_s: f64,
}

/// Validation scores with class names.
#[derive(Debug, Clone, Serialize)]
pub struct ValRecord {
    /// Mean IoU.
    pub miou: f64,
    /// Overall accuracy.
    pub oa: f64,
    /// Per-class IoU, by name.
    pub iou: Vec<(String, Option<f64>)>,
    /// Seconds validating.
    pub secs: f64,
}

#[derive(Serialize)]
struct StepRecord {
    kind: &'static str,
    epoch: usize,
    step: usize,
    global_step: u64,
    lr: f64,
    loss: f64,
    secs: f64,
}

/// What a training run produced.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    /// Epochs completed.
    pub epochs: usize,
    /// Steps completed.
    pub global_step: u64,
    /// Best validation mIoU and its epoch.
    pub best: Option<(f64, usize)>,
    /// Last validation scores.
    pub last_val: Option<Scores>,
    /// Seconds of training over the whole run (resumed parts included).
    pub elapsed_s: f64,
    /// The model directory.
    pub model_dir: PathBuf,
    /// The final weights.
    pub weights: StateDict,
}

/// A validation cloud at full resolution with its truth (training classes).
#[derive(Debug)]
pub struct ValCloud {
    /// Where it came from.
    pub source: PathBuf,
    /// The cloud.
    pub cloud: PointCloud,
    /// Truth class per point ([`IGNORED`] for ignored ones).
    pub truth: Vec<u32>,
}

/// Reads the validation clouds of a configuration.
pub fn load_val(config: &TrainConfig) -> Result<Vec<ValCloud>> {
    let items = dataset::resolve(
        &config.data.val,
        &config.data_root(),
        config.data.layout,
        "data.val",
        &config.source,
    )?;
    let map = ClassMap::new(&config.classes);
    items
        .into_iter()
        .map(|p| {
            let cloud = dataset::read_item(&p, config.data.layout)?;
            let raw = cloud.labels.as_ref().ok_or_else(|| Error::Dataset {
                path: p.clone(),
                message: "has no labels".into(),
            })?;
            let truth = map.map_all(raw, &p)?;
            Ok(ValCloud {
                source: p,
                cloud,
                truth,
            })
        })
        .collect()
}

/// Scores a model on validation clouds with the deployment predictor.
pub fn validate(model: &ModelDir, val: &[ValCloud], budget_mib: u64) -> Result<Scores> {
    let predictor = Predictor::new(model)?;
    let opts = PredictOptions {
        budget: randla_geom::MemoryBudget::bytes(budget_mib << 20),
        ..Default::default()
    };
    let n = model.config.num_classes;
    let mut conf = ConfusionMatrix::new(n);
    for v in val {
        let pred =
            predictor.predict(&v.cloud, &v.source.display().to_string(), &opts, &|_, _| {})?;
        for (&t, &p) in v.truth.iter().zip(&pred.class) {
            if t != IGNORED && (t as usize) < n {
                conf.add(t as usize, p as usize);
            }
        }
    }
    Ok(Scores::from_confusion(&conf))
}

/// Sets the running-average momentum (PyTorch convention: weight of the batch statistic) of
/// every batch norm of the network.
pub fn set_bn_momentum(net: &mut RandLaNet, momentum: f64) {
    fn mlp(m: &mut randla_burn::blocks::SharedMlp, momentum: f64) {
        if let Some(bn) = m.batch_norm.as_mut() {
            bn.momentum = momentum;
        }
    }
    net.bn0.momentum = momentum;
    for b in net.encoder.blocks.iter_mut() {
        for m in [
            &mut b.mlp1,
            &mut b.lse1.mlp,
            &mut b.pool1.mlp,
            &mut b.lse2.mlp,
            &mut b.pool2.mlp,
            &mut b.mlp2,
            &mut b.shortcut,
        ] {
            mlp(m, momentum);
        }
    }
    mlp(&mut net.mlp, momentum);
    for m in net.decoder.layers.iter_mut() {
        mlp(m, momentum);
    }
    for m in [
        &mut net.head.fc1_0,
        &mut net.head.fc1_1,
        &mut net.head.fc1_3,
    ] {
        mlp(m, momentum);
    }
}

/// Mixes a seed with a counter (splitmix64).
pub fn mix(seed: u64, n: u64) -> u64 {
    let mut z = seed
        .wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The weighted cross-entropy of the reference: mean over the non-ignored points of
/// `−w_label · log softmax(logits)[label]`.
///
/// Shapes: `logits [B, N, C]`, `labels` B·N entries → a one-element loss.
pub fn weighted_cross_entropy(
    logits: Tensor<3>,
    labels: &[u32],
    weights: &[f32],
) -> Result<Tensor<1>> {
    let [b, n, c] = logits.dims();
    if labels.len() != b * n || weights.len() != c {
        return Err(Error::Training(format!(
            "{} labels and {} weights for logits [{b}, {n}, {c}]",
            labels.len(),
            weights.len()
        )));
    }
    let valid = labels.iter().filter(|&&l| (l as usize) < c).count();
    let mut w = vec![0f32; b * n * c];
    if valid > 0 {
        for (i, &l) in labels.iter().enumerate() {
            if (l as usize) < c {
                w[i * c + l as usize] = weights[l as usize] / valid as f32;
            }
        }
    }
    let device = logits.device();
    let w = Tensor::<3>::from_data(TensorData::new(w, [b, n, c]), &device);
    let logp = randla_burn::burn::tensor::activation::log_softmax(logits, 2);
    Ok((logp * w).sum().neg())
}

/// One optimiser step on a batch of crops. Returns the network and the loss.
pub fn train_step(
    net: RandLaNet,
    adam: &mut Adam,
    config: &RandLaNetConfig,
    crops: &[sampler::CropTensors],
    class_weights: &[f32],
    lr: f64,
    device: &Device,
) -> Result<(RandLaNet, f64)> {
    let refs: Vec<(&[f32], &randla_geom::Pyramid)> = crops
        .iter()
        .map(|c| (c.features.as_slice(), &c.pyramid))
        .collect();
    let batch = Batch::from_crops(&refs, config.in_channels)?;
    let input = BatchTensors::from_batch(&batch, config, device)?;
    let labels: Vec<u32> = crops
        .iter()
        .flat_map(|c| c.labels.iter().copied())
        .collect();
    step_on_batch(net, adam, &input, &labels, class_weights, lr)
}

/// One optimiser step on a batch already on the network's (autodiff) device: forward in the
/// network's mode (training: batch statistics, dropout from the device's RNG), weighted
/// cross-entropy ([`weighted_cross_entropy`]), backward, one [`Adam`] step. Returns the network
/// and the loss; a non-finite loss is an error and leaves no update. [`train_step`] builds the
/// batch from crops and calls this; `randla bench train-step` times it.
///
/// `labels`: B·N training classes (≥ the class count = ignored), in the batch's point order.
pub fn step_on_batch(
    net: RandLaNet,
    adam: &mut Adam,
    input: &BatchTensors,
    labels: &[u32],
    class_weights: &[f32],
    lr: f64,
) -> Result<(RandLaNet, f64)> {
    let logits = net.forward(input)?;
    let loss = weighted_cross_entropy(logits, labels, class_weights)?;
    let value = loss
        .clone()
        .try_into_vec_as::<f32>()
        .map_err(|e| Error::Training(format!("{e:?}")))?[0] as f64;
    if !value.is_finite() {
        return Err(Error::Training(format!("the loss is {value}")));
    }
    let grads = loss.backward();
    let net = adam.step(net, &grads, lr)?;
    Ok((net, value))
}

fn append_line(path: &Path, value: &impl Serialize) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io(path, "open the metrics log", e))?;
    let mut line = serde_json::to_string(value).expect("serialisable");
    line.push('\n');
    f.write_all(line.as_bytes())
        .map_err(|e| Error::io(path, "append to the metrics log", e))
}

/// The training device: Flex CPU with autodiff (and gradient checkpointing when asked).
pub fn training_device(config: &TrainConfig) -> Device {
    let d = randla_burn::cpu_device().autodiff();
    if config.train.gradient_checkpointing {
        d.gradient_checkpointing()
    } else {
        d
    }
}

/// The network being trained, on the configured [`Engine`].
enum Training {
    /// burn's autodiff (`None` only while a step holds the network).
    Burn(Option<Box<RandLaNet>>, Device),
    /// The fused step.
    Fused(Box<FusedTrainer>),
}

impl Training {
    fn new(config: &TrainConfig, net_cfg: &RandLaNetConfig, weights: &StateDict) -> Result<Self> {
        let t = &config.train;
        Ok(match t.engine {
            Engine::Burn => {
                let device = training_device(config);
                let mut net = RandLaNet::from_state_dict(net_cfg, weights, &device)?;
                set_bn_momentum(&mut net, t.bn_momentum);
                Training::Burn(Some(Box::new(net)), device)
            }
            Engine::Fused => {
                let mut f = FusedTrainer::new(net_cfg, weights, t.seed)?;
                f.bn_momentum = t.bn_momentum as f32;
                Training::Fused(Box::new(f))
            }
        })
    }

    /// Seeds the dropout masks of an epoch.
    fn seed(&mut self, seed: u64) {
        match self {
            Training::Burn(_, device) => device.seed(seed),
            Training::Fused(f) => f.reseed(seed),
        }
    }

    fn step(
        &mut self,
        adam: &mut Adam,
        config: &RandLaNetConfig,
        crops: &[sampler::CropTensors],
        class_weights: &[f32],
        lr: f64,
    ) -> Result<f64> {
        match self {
            Training::Burn(net, device) => {
                let current = net.take().ok_or_else(|| {
                    Error::Training("the network was lost in a failed step".into())
                })?;
                let (next, loss) =
                    train_step(*current, adam, config, crops, class_weights, lr, device)?;
                *net = Some(Box::new(next));
                Ok(loss)
            }
            Training::Fused(f) => {
                let refs: Vec<(&[f32], &randla_geom::Pyramid)> = crops
                    .iter()
                    .map(|c| (c.features.as_slice(), &c.pyramid))
                    .collect();
                let batch = Batch::from_crops(&refs, config.in_channels)?;
                let labels: Vec<u32> = crops
                    .iter()
                    .flat_map(|c| c.labels.iter().copied())
                    .collect();
                f.step(adam, &batch, &labels, class_weights, lr)
            }
        }
    }

    fn state_dict(&self) -> Result<StateDict> {
        match self {
            Training::Burn(Some(net), _) => Ok(net.to_state_dict()?),
            Training::Burn(None, _) => Err(Error::Training(
                "the network was lost in a failed step".into(),
            )),
            Training::Fused(f) => Ok(f.state_dict()),
        }
    }
}

/// Prepares the training clouds (through the cache).
pub fn prepare_train(
    config: &TrainConfig,
    cache_dir: &Path,
    on_event: &mut dyn FnMut(&Event),
) -> Result<Vec<Prepared>> {
    let items = dataset::resolve(
        &config.data.train,
        &config.data_root(),
        config.data.layout,
        "data.train",
        &config.source,
    )?;
    let mut clouds = Vec::with_capacity(items.len());
    for item in items {
        let (p, status) = cache::load_or_build(cache_dir, &item, config)?;
        on_event(&Event::Cache {
            source: &item,
            status: &status,
            subsampled: p.len(),
            points: p.proj.len(),
        });
        if p.labels.iter().all(|&l| l == IGNORED) {
            return Err(Error::Dataset {
                path: item,
                message: "every point is ignored: no training label".into(),
            });
        }
        clouds.push(p);
    }
    Ok(clouds)
}

/// Trains as `config` says into `run_dir` (checkpoints, metrics log, model directory).
pub fn train(
    config: &TrainConfig,
    run_dir: &Path,
    opts: &TrainOptions,
    on_event: &mut dyn FnMut(&Event),
) -> Result<TrainSummary> {
    std::fs::create_dir_all(run_dir).map_err(|e| Error::io(run_dir, "create the run folder", e))?;
    let cache_dir = opts
        .cache_dir
        .clone()
        .or_else(|| {
            config
                .data
                .cache
                .as_ref()
                .map(|c| config.base_dir().join(c))
        })
        .unwrap_or_else(|| run_dir.join("cache"));
    let t = &config.train;
    let net_cfg = config.network();
    let classes = config.classes.names.len();
    let clouds = prepare_train(config, &cache_dir, on_event)?;
    let val = if config.data.val.is_empty() {
        Vec::new()
    } else {
        load_val(config)?
    };
    let mut counts = vec![0u64; classes];
    for c in &clouds {
        for (a, b) in counts.iter_mut().zip(c.class_counts(classes)) {
            *a += b;
        }
    }
    let class_weights = if t.class_weights {
        sampler::class_weights(&counts)
            .iter()
            .map(|w| (*w as f64).powf(t.class_weight_power) as f32)
            .collect()
    } else {
        vec![1.0; classes]
    };
    // Every point is of a class (counted above) or IGNORED.
    let ignored =
        clouds.iter().map(|c| c.labels.len() as u64).sum::<u64>() - counts.iter().sum::<u64>();
    on_event(&Event::Ready {
        class_counts: &counts,
        ignored,
        class_weights: &class_weights,
        parameters: net_cfg.num_trainable_parameters(),
        val_clouds: val.len(),
    });

    let mut init_rng = ChaCha8Rng::seed_from_u64(mix(t.seed, u64::MAX));
    let mut sampler = Sampler::new(
        &clouds,
        t.sampler,
        net_cfg.num_points,
        t.centre_noise,
        &mut init_rng,
    )?;
    let last_path = run_dir.join(files::LAST);
    let best_path = run_dir.join(files::BEST);
    let model_path = run_dir.join(files::MODEL);
    let metrics_path = run_dir.join(files::METRICS);
    let fingerprint = config.fingerprint();

    let (mut net, mut adam, mut state) = if opts.resume && last_path.is_file() {
        let ck = Checkpoint::load(&last_path)?;
        if ck.state.fingerprint != fingerprint {
            return Err(Error::Checkpoint {
                path: last_path,
                message: "was written with another configuration (data, classes, model or schedule differ; only train.epochs may change on resume)".into(),
            });
        }
        if !sampler.set_possibility(ck.possibility) {
            return Err(Error::Checkpoint {
                path: last_path,
                message: "its sampler state does not fit the training clouds".into(),
            });
        }
        let net = Training::new(config, &net_cfg, &ck.weights)?;
        on_event(&Event::Resumed {
            epoch: ck.state.epoch,
            global_step: ck.state.global_step,
        });
        (net, ck.adam, ck.state)
    } else {
        if opts.resume {
            // Nothing to resume: a fresh run (the metrics log restarts).
            let _ = std::fs::remove_file(&metrics_path);
        } else if last_path.exists() {
            return Err(Error::Checkpoint { path: last_path, message: "a run is already in this folder (use --resume to continue it, or another --out)".into() });
        } else {
            let _ = std::fs::remove_file(&metrics_path);
        }
        let sd = StateDict::random(&net_cfg, t.seed);
        let net = Training::new(config, &net_cfg, &sd)?;
        let state = TrainerState {
            epoch: 0,
            global_step: 0,
            lr: t.learning_rate,
            best_miou: None,
            best_epoch: None,
            fingerprint: fingerprint.clone(),
            elapsed_s: 0.0,
            adam_t: 0,
        };
        (net, Adam::default(), state)
    };
    if let Ok(text) = toml::to_string_pretty(config) {
        let _ = crate::checkpoint::write_atomic(&run_dir.join(files::CONFIG), text.as_bytes());
    }
    let pcfg = net_cfg.pyramid_config();
    let mut last_val = None;
    let mut done_here = 0usize;
    while state.epoch < t.epochs {
        if opts.stop_after_epochs.is_some_and(|n| done_here >= n) {
            break;
        }
        let epoch = state.epoch;
        let started = Instant::now();
        let mut rng = ChaCha8Rng::seed_from_u64(mix(t.seed, epoch as u64));
        net.seed(mix(t.seed ^ 0xD20F, epoch as u64));
        on_event(&Event::EpochStart {
            epoch,
            epochs: t.epochs,
            steps: t.steps_per_epoch,
            lr: state.lr,
        });
        let mut loss_sum = 0.0;
        for step in 0..t.steps_per_epoch {
            let st = Instant::now();
            let mut crops = Vec::with_capacity(t.batch_size);
            for _ in 0..t.batch_size {
                let crop = sampler.next(&clouds, &mut rng)?;
                crops.push(sampler::crop_tensors(
                    &clouds[crop.cloud],
                    &crop,
                    Some(&t.augment),
                    &pcfg,
                    &mut rng,
                )?);
            }
            let loss = net.step(&mut adam, &net_cfg, &crops, &class_weights, state.lr)?;
            loss_sum += loss;
            state.global_step += 1;
            append_line(
                &metrics_path,
                &StepRecord {
                    kind: "step",
                    epoch,
                    step,
                    global_step: state.global_step,
                    lr: state.lr,
                    loss,
                    secs: st.elapsed().as_secs_f64(),
                },
            )?;
            on_event(&Event::Step {
                epoch,
                step,
                loss,
                mean_loss: loss_sum / (step + 1) as f64,
            });
        }
        let lr = state.lr;
        state.lr *= t.lr_decay;
        state.epoch += 1;
        state.adam_t = adam.t;
        let weights = net.state_dict()?;
        let eval_cfg = net_cfg.clone();
        let model = ModelDir::new(
            eval_cfg,
            weights.clone(),
            Some(config.input_spec()),
            Some(config.class_spec()),
        )?;
        let mut val_rec = None;
        let mut best = false;
        if !val.is_empty() && (state.epoch % t.val_every == 0 || state.epoch == t.epochs) {
            on_event(&Event::Validating { epoch });
            let vt = Instant::now();
            let scores = validate(&model, &val, t.val_budget_mib)?;
            best = state.best_miou.is_none_or(|b| scores.miou > b);
            if best {
                state.best_miou = Some(scores.miou);
                state.best_epoch = Some(epoch);
            }
            val_rec = Some(ValRecord {
                miou: scores.miou,
                oa: scores.oa,
                iou: config
                    .classes
                    .names
                    .iter()
                    .cloned()
                    .zip(scores.iou.iter().copied())
                    .collect(),
                secs: vt.elapsed().as_secs_f64(),
            });
            last_val = Some(scores);
        }
        state.elapsed_s += started.elapsed().as_secs_f64();
        let ck = Checkpoint {
            state: state.clone(),
            weights,
            adam: adam.clone(),
            possibility: sampler.possibility.clone(),
        };
        if best {
            ck.save(&best_path)?;
            model.save(&model_path, true)?;
        } else if val.is_empty() {
            model.save(&model_path, true)?;
        }
        ck.save(&last_path)?;
        let record = EpochRecord {
            kind: "epoch",
            epoch,
            global_step: state.global_step,
            lr,
            loss: loss_sum / t.steps_per_epoch as f64,
            val: val_rec,
            best,
            secs: started.elapsed().as_secs_f64(),
            elapsed_s: state.elapsed_s,
        };
        append_line(&metrics_path, &record)?;
        on_event(&Event::EpochEnd { record: &record });
        done_here += 1;
    }
    if !model_path
        .join(randla_model::model_dir::CONFIG_FILE)
        .is_file()
    {
        // No epoch ran in this process and none before: write the current weights.
        ModelDir::new(
            net_cfg.clone(),
            net.state_dict()?,
            Some(config.input_spec()),
            Some(config.class_spec()),
        )?
        .save(&model_path, true)?;
    }
    Ok(TrainSummary {
        epochs: state.epoch,
        global_step: state.global_step,
        best: state.best_miou.zip(state.best_epoch),
        last_val,
        elapsed_s: state.elapsed_s,
        model_dir: model_path,
        weights: net.state_dict()?,
    })
}
