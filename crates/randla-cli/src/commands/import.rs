//! `randla import`: an Open3D-ML checkpoint into a native model directory.

use std::path::PathBuf;

use clap::Args;
use randla_model::model_dir::ModelDir;

use super::model;

/// Arguments of `randla import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Open3D-ML checkpoint (`.pth`, key `model_state_dict`) or safetensors weights.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Open3D-ML YAML config (its `model:` section) or our TOML; inferred from the weights'
    /// shapes when absent (then k = 16 and ratios of 4 are assumed).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The model directory to write (`config.toml` + `weights.safetensors`).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Replace a model already in the directory.
    #[arg(long)]
    pub force: bool,
}

/// Runs `randla import`.
pub fn run(args: ImportArgs) -> anyhow::Result<()> {
    let m = model::load(&args.checkpoint, args.config.as_ref())?;
    let input = (m.config.in_channels == 3).then(randla_model::model_dir::InputSpec::xyz_only);
    ModelDir::new(m.config.clone(), m.weights, input, None)?.save(&args.output, args.force)?;
    eprintln!(
        "imported {} ({} layers {:?}, {} input channels, {} classes, {} parameters{}) into {}",
        args.checkpoint.display(),
        m.config.num_layers,
        m.config.dim_output,
        m.config.in_channels,
        m.config.num_classes,
        m.config.num_trainable_parameters(),
        if m.inferred {
            "; configuration inferred from the weights"
        } else {
            ""
        },
        args.output.display()
    );
    Ok(())
}
