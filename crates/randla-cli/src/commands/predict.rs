//! `randla predict`: classify every point of one or more files and write them back intact.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use randla_geom::MemoryBudget;
use randla_io::{ExtraOutputs, Format, PlyEncoding, PlyWriteOptions, Probabilities};
use randla_model::model_dir::ModelDir;
use randla_predict::{PredictOptions, Predictor, Sampling};

use super::inputs::{InputFile, expand_tree};
use rayon::prelude::*;

/// `--sampling`: how each pass samples its levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SamplingArg {
    /// A random sampling spread evenly over space (default).
    Stratified,
    /// A plain shuffle, as Open3D-ML.
    Random,
}

impl From<SamplingArg> for Sampling {
    fn from(s: SamplingArg) -> Self {
        match s {
            SamplingArg::Stratified => Sampling::Stratified,
            SamplingArg::Random => Sampling::Random,
        }
    }
}

/// The passes' random sampling, as `randla predict` and `randla bench predict` take it.
#[derive(Debug, Args)]
pub struct PassArgs {
    /// Passes per point, each with its own random sampling, probabilities averaged (the
    /// reference's test-time voting): a little more accurate; the passes share their first
    /// layer, so each vote after the first costs less than half a pass.
    #[arg(long, default_value_t = 1)]
    pub votes: usize,
    /// Seed of the random sampling (the same seed gives the same prediction).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// How each pass samples its levels: `stratified` (a random sampling spread evenly over
    /// space; more accurate in one pass) or `random` (a plain shuffle, as Open3D-ML).
    #[arg(long, value_enum, default_value_t = SamplingArg::Stratified)]
    pub sampling: SamplingArg,
}

impl PassArgs {
    /// `opts` with these votes, seed and sampling, once they are checked.
    pub fn apply(&self, opts: PredictOptions) -> anyhow::Result<PredictOptions> {
        if self.votes == 0 {
            bail!("--votes must be at least 1");
        }
        Ok(PredictOptions {
            votes: self.votes,
            seed: self.seed,
            sampling: self.sampling.into(),
            ..opts
        })
    }
}

/// Arguments of `randla predict`.
#[derive(Debug, Args)]
pub struct PredictArgs {
    /// Point-cloud files (LAS/LAZ, PLY, Semantic3D .txt, SemanticKITTI .bin, .xyz/.csv/.pts
    /// text) or folders of them. A file that fails is named and the others are still written;
    /// the run then exits with an error.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Output: a file (one input) or a folder (each output named after its input).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Model directory (default: the `RANDLA_MODEL` directory if set, else the model built into
    /// the binary, `models/default`).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Memory the network's passes may hold (e.g. 2GiB): tiles shrink to fit it. The cloud's
    /// own columns come on top (12 bytes per input point for its coordinates and 4 per
    /// attribute the model reads: 0.24 GB for 10 M points with the built-in model), and a note
    /// says when the whole process went above the budget. A LAZ input written
    /// back as LAZ (point formats 6-10) never decodes more than the model's fields: only its
    /// classification layer is coded again. Another LAZ input whose decoded points take at most
    /// a quarter of the budget keeps them for the write instead of decoding the file twice.
    /// Default: half the RAM available now.
    #[arg(long)]
    pub memory_budget: Option<String>,
    /// Largest tile, in points after grid subsampling: larger clouds are cut into XY tiles run
    /// with a margin of context and voted across the overlaps. Default: 8 of the model's
    /// training crops (num_points; 65536 for the built-in model), at most 500000. Much larger
    /// tiles are a little faster but less accurate: the network reads coordinates relative to
    /// its crop, and far beyond its training crops those leave the range it learned.
    #[arg(long)]
    pub tile_points: Option<usize>,
    #[command(flatten)]
    pub pass: PassArgs,
    /// Context around each tile, in metres. Default: the radius of the network's coarsest
    /// neighbourhoods at the cloud's density times the model's `[predict] margin_radii` (1
    /// unless its config.toml says otherwise; the built-in model says 0.5, measured as accurate
    /// as one radius for it: 2.4 m on IGN LiDAR HD). A wider margin gives each tile more
    /// context and costs time; `--margin 0` lost 0.003 OA and 0.012 mIoU on the validation tiles
    /// cut into 8,192-point tiles (`scripts/margin_vs_accuracy.sh` measures a margin).
    #[arg(long)]
    pub margin: Option<f32>,
    /// Grid subsampling cell, in metres, instead of the model's `grid_size`: a coarser grid
    /// leaves fewer points for the network (faster), a finer one more. The built-in model was
    /// trained on its 0.3 m grid; a model runs best near its training grid (RESULTS.md, "Grid":
    /// the previous one, trained on 0.25 m, scored alike on 0.25 and 0.3 m, and lost vegetation
    /// on 0.33 m).
    #[arg(long, value_name = "METRES")]
    pub grid_size: Option<f32>,
    /// Also write the confidence and the per-class probabilities (LAS 1.4 extra bytes, PLY
    /// properties). An input that already has them (an earlier prediction's, as 4-byte floats)
    /// gets them refilled in place; without this flag they are copied through unchanged.
    #[arg(long)]
    pub probabilities: bool,
    /// Leave the points whose input class code is one of these as they are, e.g. "7,9,17,18"
    /// (noise, water, bridges: classes the model does not have, or ones edited by hand). The
    /// network still sees them; only their written class is the input's.
    #[arg(long, value_name = "CODES", value_delimiter = ',')]
    pub keep: Vec<u32>,
    /// Replace outputs that exist.
    #[arg(long)]
    pub force: bool,
    /// Leave out the inputs whose output exists: resumes a run over a folder that was stopped
    /// or had a failing file.
    #[arg(long)]
    pub skip_existing: bool,
    /// Search input folders at every depth; each output keeps its path below the folder given
    /// (`survey/2024/a.laz` → `OUT/2024/a.laz`). Hidden folders, links to folders and the
    /// output folder itself are left out.
    #[arg(short, long)]
    pub recursive: bool,
    /// Worker threads (default: every core). Each output file is written by one more thread,
    /// with its own pool of as many workers for LAZ coding, while the next file is classified;
    /// with two or more, small files (up to 64 MiB) are also read one ahead, on a third pool,
    /// and two small files (up to 1,048,576 points each) are classified at once.
    #[arg(long)]
    pub threads: Option<usize>,
}

/// The shipped model (`models/default`, trained on the IGN LiDAR HD sample tiles), compiled
/// into the binary so that `randla predict` works wherever the binary goes.
const BUILTIN_CONFIG: &str = include_str!("../../../../models/default/config.toml");
const BUILTIN_WEIGHTS: &[u8] = include_bytes!("../../../../models/default/weights.safetensors");
/// How the built-in model is named in messages and errors.
pub const BUILTIN_NAME: &str = "built-in model (models/default, IGN LiDAR HD)";

/// The model to use: `--model DIR`, else the `RANDLA_MODEL` directory, else the built-in one.
pub fn resolve_model(dir: Option<&Path>) -> anyhow::Result<ModelDir> {
    let dir = dir
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("RANDLA_MODEL").map(PathBuf::from));
    match dir {
        Some(dir) => {
            if !dir.exists() {
                bail!(
                    "{}: no model there. Give --model MODEL_DIR (from `randla train` or `randla import`), or leave it out for the built-in model",
                    dir.display()
                );
            }
            ModelDir::load(&dir).with_context(|| format!("loading the model {}", dir.display()))
        }
        None => ModelDir::from_parts(BUILTIN_NAME, BUILTIN_CONFIG, BUILTIN_WEIGHTS)
            .with_context(|| format!("loading the {BUILTIN_NAME}")),
    }
}

/// Where the prediction of `input` goes: `output` itself for a single input named like a file,
/// else `input`'s path below its folder, under `output`.
fn output_for(input: &InputFile, output: &Path, single: bool) -> PathBuf {
    if single && !output.is_dir() && output.extension().is_some() {
        return output.to_path_buf();
    }
    let name = if input.rel.as_os_str().is_empty() {
        PathBuf::from("prediction.laz")
    } else {
        input.rel.clone()
    };
    let name = match Format::from_path(&input.path) {
        // Text inputs get one code per line (XYZ/CSV files have no writer of their own).
        Ok(Format::Semantic3d | Format::Xyz) => name.with_extension("labels"),
        Ok(Format::Kitti) => name.with_extension("label"),
        _ => name,
    };
    output.join(name)
}

/// What a prediction is written as, decided from the output's extension (and checked against the
/// input) before any work is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutputKind {
    /// The input LAS/LAZ copied with its classification replaced.
    Las,
    /// The input PLY copied with its labels replaced (or added), every element and property
    /// kept.
    PlyCopy,
    /// A PLY of the model's inputs with the predicted labels (from another format).
    Ply,
    /// Semantic3D `.labels`: one code per line.
    Semantic3dLabels,
    /// SemanticKITTI `.label`: one `u32` per point.
    KittiLabels,
}

impl OutputKind {
    /// The kind of `out`, or why `input`'s prediction cannot be written there.
    fn of(input: &Path, out: &Path) -> anyhow::Result<Self> {
        match Format::from_path(out).ok() {
            Some(Format::Las | Format::Laz) => {
                if !matches!(Format::from_path(input)?, Format::Las | Format::Laz) {
                    bail!(
                        "{}: LAS/LAZ output needs a LAS/LAZ input to copy from (input {}); write .ply instead",
                        out.display(),
                        input.display()
                    );
                }
                Ok(OutputKind::Las)
            }
            Some(Format::Ply) if Format::from_path(input)? == Format::Ply => {
                Ok(OutputKind::PlyCopy)
            }
            Some(Format::Ply) => Ok(OutputKind::Ply),
            _ if out.extension().is_some_and(|e| e == "labels") => Ok(OutputKind::Semantic3dLabels),
            _ if out.extension().is_some_and(|e| e == "label") => Ok(OutputKind::KittiLabels),
            _ => bail!(
                "{}: cannot write predictions in this format; use .las, .laz, .ply, .labels or .label (or name a folder without an extension)",
                out.display()
            ),
        }
    }
}

/// Runs `randla predict`.
pub fn run(args: PredictArgs) -> anyhow::Result<()> {
    let pool = super::bench::thread_pool(args.threads)?;
    // The writer's LAZ coders run on a pool of the same size (else rayon's global pool, every
    // core, whatever `--threads` says).
    let writer_pool = super::bench::thread_pool(args.threads)?;
    let inputs = expand_tree(&args.inputs, args.recursive, Some(&args.output))?;
    let single = inputs.len() == 1;
    if !single && !args.output.is_dir() && Format::from_path(&args.output).is_ok() {
        bail!(
            "{}: {} input files need an output folder, and this names a point-cloud file; give a folder (e.g. -o predictions)",
            args.output.display(),
            inputs.len()
        );
    }
    if args.skip_existing && args.force {
        bail!("--skip-existing and --force ask opposite things of an existing output; give one");
    }
    let outs: Vec<PathBuf> = inputs
        .iter()
        .map(|f| output_for(f, &args.output, single))
        .collect();
    let files: Vec<PathBuf> = inputs.into_iter().map(|f| f.path).collect();
    // Before anything about existing outputs: an output that is its input is refused whatever
    // the flags (with --skip-existing it would otherwise read as done).
    for (f, o) in files.iter().zip(&outs) {
        if o.canonicalize()
            .ok()
            .is_some_and(|c| f.canonicalize().ok().as_ref() == Some(&c))
        {
            bail!(
                "{}: the output would overwrite its own input; write to another file or folder (-o)",
                o.display()
            );
        }
    }
    // Resuming a run: the inputs whose output is already there are left out.
    let (files, outs): (Vec<PathBuf>, Vec<PathBuf>) = if args.skip_existing {
        let (todo, done): (Vec<_>, Vec<_>) =
            files.into_iter().zip(outs).partition(|(_, o)| !o.exists());
        if !done.is_empty() {
            eprintln!(
                "note: {} input(s) skipped, their output exists (--skip-existing)",
                done.len()
            );
        }
        if todo.is_empty() {
            eprintln!("done: nothing to do, every output exists");
            return Ok(());
        }
        todo.into_iter().unzip()
    } else {
        (files, outs)
    };
    // With several files and more than one worker, small files (see `small_file`) are read in
    // the background, on a pool of the same size (for the LAZ decoders); each file's size is
    // looked up once.
    let reader_pool = (files.len() > 1 && pool.current_num_threads() > 1)
        .then(|| super::bench::thread_pool(args.threads))
        .transpose()?;
    let small: Vec<bool> = files
        .iter()
        .map(|f| reader_pool.is_some() && small_file(f))
        .collect();
    let kinds = files
        .iter()
        .zip(&outs)
        .map(|(f, o)| OutputKind::of(f, o))
        .collect::<anyhow::Result<Vec<_>>>()?;
    for (i, (f, o)) in files.iter().zip(&outs).enumerate() {
        if let Some(j) = outs[..i].iter().position(|p| p == o) {
            bail!(
                "{}: inputs {} and {} would both be written there; give them to separate runs or rename one",
                o.display(),
                files[j].display(),
                f.display()
            );
        }
        if o.exists() && !args.force {
            bail!(
                "{}: the output exists; use --force to replace it, or --skip-existing to leave it (input {})",
                o.display(),
                f.display()
            );
        }
    }
    let mut model = resolve_model(args.model.as_deref())?;
    if let Some(g) = args.grid_size {
        if !(g.is_finite() && g > 0.0) {
            bail!("--grid-size {g}: expected a cell size in metres, more than 0");
        }
        model.config.grid_size = g;
    }
    let predictor = Predictor::new(&model)?;
    if let Some(out) = outs
        .iter()
        .zip(&kinds)
        .find_map(|(o, k)| (*k == OutputKind::Las).then_some(o))
    {
        let classes = predictor.classes();
        if let Some(c) = (0..classes.names.len()).find(|&c| classes.code(c) > u8::MAX as u32) {
            bail!(
                "{}: class {:?} is written back as code {}, which does not fit a LAS classification byte (0-255); write .ply instead",
                out.display(),
                classes.names[c],
                classes.code(c)
            );
        }
    }
    let cfg = &model.config;
    eprintln!(
        "model: {} ({} layers {:?}, {} classes, grid {} m)",
        model.path.display(),
        cfg.num_layers,
        cfg.dim_output,
        cfg.num_classes,
        cfg.grid_size
    );
    let budget = match &args.memory_budget {
        Some(s) => s.parse::<MemoryBudget>()?,
        None => MemoryBudget::default(),
    };
    if args.tile_points == Some(0) {
        bail!("--tile-points must be at least 1");
    }
    if let Some(m) = args.margin.filter(|m| !m.is_finite() || *m < 0.0) {
        bail!("--margin {m}: expected a distance in metres, 0 or more");
    }
    let opts = args.pass.apply(PredictOptions {
        budget,
        probabilities: args.probabilities,
        tile_points: args.tile_points,
        margin: args.margin,
        ..Default::default()
    })?;
    // The output folder (or the output file's folder) is made now, so that a path that cannot
    // be written fails before the classification; the folders this run creates are removed
    // again if it fails before writing into them.
    let folder = if !single || args.output.extension().is_none() {
        args.output.as_path()
    } else {
        args.output.parent().unwrap_or(Path::new(""))
    };
    let mut created = create_folders(folder)
        .with_context(|| format!("{}: cannot create the output folder", folder.display()))?;
    // Outputs in sub-folders (--recursive): theirs too (a folder that exists is left alone, so
    // neighbours sharing one only need dropping when adjacent).
    let mut parents: Vec<&Path> = outs.iter().filter_map(|o| o.parent()).collect();
    parents.dedup();
    for dir in parents {
        created.extend(
            create_folders(dir)
                .with_context(|| format!("{}: cannot create the output folder", dir.display()))?,
        );
    }
    let result = (|| -> anyhow::Result<()> {
        let total_t = Instant::now();
        let (mut total_points, mut max_points) = (0usize, 0usize);
        // Each file is written on its own thread while the next one is read and classified (the
        // LAS/LAZ rewrite is single-threaded, so a core would otherwise idle). At most one write
        // (of one file, or of a pair of small ones) is in flight.
        // The writer's report lines go through the progress display, so that they do not tear
        // the next file's bar.
        let needed = &predictor.input().features;
        let budget_bytes = opts.budget.bytes;
        let keep = &args.keep;
        let load_file = |i: usize, read_ahead: bool| {
            let t = Instant::now();
            load(
                &files[i],
                &outs[i],
                kinds[i],
                needed,
                args.probabilities,
                !keep.is_empty(),
                budget_bytes,
            )
            .map(|(cloud, kept)| Loaded {
                cloud,
                kept,
                read_s: t.elapsed().as_secs_f64(),
                read_ahead,
            })
        };
        let display = indicatif::MultiProgress::new();
        // Subsamples and classifies one file read for its turn.
        let classify = |(index, mut l): (usize, Loaded)| -> anyhow::Result<Classified> {
            let (file, kind) = (&files[index], kinds[index]);
            let n = l.cloud.len();
            let source = file.display().to_string();
            // The input's classes, for the points --keep leaves as they are.
            let input_classes = if keep.is_empty() {
                None
            } else {
                Some(l.cloud.labels.take().with_context(|| {
                    format!(
                        "{}: --keep leaves points with the input's class, and this file has no classification or labels",
                        file.display()
                    )
                })?)
            };
            // Only a PLY output is written from the cloud (the others are copied from the input
            // file or hold labels only): otherwise it goes with the subsampling, before the
            // network's passes (240 MB for 10 M points).
            let (sub, ply_cloud) = if kind == OutputKind::Ply {
                (predictor.subsample(&l.cloud, &source)?, Some(l.cloud))
            } else {
                let bytes = n * (12 + 4 * l.cloud.features.len());
                let sub = predictor.subsample_owned(l.cloud, &source)?;
                // Giving a small cloud's pages back only makes the passes fault them in again
                // (six 60k-point tiles: 0.67 → 0.72 s).
                if bytes >= RELEASE_MIN_BYTES {
                    super::release_freed_memory();
                }
                (sub, None)
            };
            // Counts input points (subsampled progress scaled up), so {rate} is input
            // points/s.
            let bar = display.add(indicatif::ProgressBar::new(n as u64));
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} {msg} [{bar:30}] {percent}% {rate} {elapsed}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .with_key(
                    "rate",
                    |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = write!(w, "{} points/s", super::fmt::thousands(s.per_sec() as u64));
                    },
                ),
            );
            bar.set_message(format!("{}", file.display()));
            let progress = |done: usize, all: usize| {
                bar.set_position((n as u128 * done as u128 / all.max(1) as u128) as u64)
            };
            let mut prediction = predictor.predict_subsampled(sub, &opts, &progress)?;
            bar.finish_and_clear();
            let mut kept_points = 0;
            if let Some(input) = &input_classes {
                for (c, &o) in prediction.codes.iter_mut().zip(input) {
                    if keep.contains(&o) {
                        *c = o;
                        kept_points += 1;
                    }
                }
            }
            Ok(Classified {
                index,
                points: n,
                kept_points,
                prediction,
                ply_cloud,
                kept: l.kept,
                read_s: l.read_s,
                read_ahead: l.read_ahead,
            })
        };
        // A file that cannot be read, classified or written does not stop the others: with
        // several inputs its error is shown when it happens and the run goes on (a folder of
        // tiles with one bad tile still gets the rest); the run then fails naming every such
        // file. One input's error is simply the run's.
        let several = !single;
        // With several files, a bar of files done over the file's own bars (ETA from the files'
        // pace).
        let overall = several.then(|| {
            let bar = display.add(indicatif::ProgressBar::new(files.len() as u64));
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "files [{bar:30}] {pos}/{len}, {elapsed} so far, about {eta} left",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar
        });
        let file_done = || {
            if let Some(bar) = &overall {
                bar.inc(1);
            }
        };
        let failures: std::sync::Mutex<Vec<(usize, anyhow::Error)>> = Default::default();
        let fail = |index: usize, e: anyhow::Error| {
            file_done();
            if several {
                display.suspend(|| eprintln!("Error: {e:#}"));
            }
            failures
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((index, e));
        };
        std::thread::scope(|scope| -> anyhow::Result<()> {
            let mut pending: Option<std::thread::ScopedJoinHandle<'_, ()>> = None;
            let (display, writer_pool, fail, file_done) =
                (&display, &writer_pool, &fail, &file_done);
            let finish = |h: std::thread::ScopedJoinHandle<'_, ()>| {
                h.join()
                    .map_err(|_| anyhow::anyhow!("the output writer stopped unexpectedly"))
            };
            pool.install(|| -> anyhow::Result<()> {
                type Reading<'s> = std::thread::ScopedJoinHandle<'s, anyhow::Result<Loaded>>;
                // A file read on a thread of the reader pool, while this one does other work.
                let spawn_read = |i: usize| -> Reading<'_> {
                    let load_file = &load_file;
                    let reader_pool = reader_pool
                        .as_ref()
                        .expect("only small files are read in the background, with a reader pool");
                    scope.spawn(move || reader_pool.install(|| load_file(i, true)))
                };
                let join_read = |i: usize, h: Reading<'_>| -> anyhow::Result<Loaded> {
                    h.join().map_err(|_| {
                        anyhow::anyhow!(
                            "{}: the reading thread stopped unexpectedly",
                            files[i].display()
                        )
                    })?
                };
                // The next file is read on a thread of its own while this one is read and
                // classified: a small file's read leaves a core idle (its LAZ chunks are few and
                // uneven). Only small files, so that at most one small cloud more is held.
                let mut ahead: Option<Reading<'_>> = None;
                let mut i = 0;
                while i < files.len() {
                    let t = Instant::now();
                    // Two small files are read together and, when each has at most
                    // PAIR_MAX_POINTS points, classified at once on the same workers: each fills
                    // the cores the other leaves idle at the ends of its steps.
                    let pair = small[i] && small.get(i + 1) == Some(&true);
                    let current = ahead.take();
                    let partner = pair.then(|| spawn_read(i + 1));
                    let next = i + 1 + usize::from(pair);
                    if small.get(next) == Some(&true) {
                        ahead = Some(spawn_read(next));
                    }
                    let first = match current {
                        Some(h) => join_read(i, h),
                        None => load_file(i, false),
                    };
                    let second = partner.map(|h| join_read(i + 1, h));
                    let mut batch = Vec::new();
                    for (index, read) in [(i, Some(first)), (i + 1, second)] {
                        match read {
                            Some(Ok(l)) => batch.push((index, l)),
                            Some(Err(e)) => match copy_empty(
                                &files[index],
                                &outs[index],
                                kinds[index],
                                (args.force, args.probabilities),
                                &e,
                            ) {
                                Some(Ok(line)) => {
                                    file_done();
                                    display.suspend(|| eprintln!("{line}"));
                                }
                                Some(Err(copy)) => fail(index, copy),
                                None => fail(index, e),
                            },
                            None => {}
                        }
                    }
                    i = next;
                    let together = batch.len() == 2
                        && batch.iter().all(|(_, l)| l.cloud.len() <= PAIR_MAX_POINTS);
                    let results = if together {
                        let second = batch.pop().expect("two files");
                        let first = batch.pop().expect("two files");
                        let (a, b) = (first.0, second.0);
                        let (ra, rb) = rayon::join(|| classify(first), || classify(second));
                        vec![(a, ra), (b, rb)]
                    } else {
                        batch.into_iter().map(|b| (b.0, classify(b))).collect()
                    };
                    let mut done = Vec::new();
                    for (index, r) in results {
                        match r {
                            Ok(c) => done.push(c),
                            Err(e) => fail(index, e),
                        }
                    }
                    total_points += done.iter().map(|c| c.points).sum::<usize>();
                    max_points = done.iter().map(|c| c.points).fold(max_points, usize::max);
                    if let Some(h) = pending.take() {
                        finish(h)?;
                    }
                    if done.is_empty() {
                        continue;
                    }
                    let (force, votes, grid) =
                        (args.force, opts.votes, predictor.config().grid_size);
                    let (files, outs, kinds) = (&files, &outs, &kinds);
                    pending = Some(scope.spawn(move || {
                        // The files of a pair are written at once; their reports (or errors)
                        // follow in order.
                        let written: Vec<(usize, anyhow::Result<String>)> =
                            writer_pool.install(|| {
                                done.into_par_iter()
                                    .map(|mut c| {
                                        let (file, out, kind) =
                                            (&files[c.index], &outs[c.index], kinds[c.index]);
                                        let t_write = Instant::now();
                                        let lines = write(
                                            file,
                                            c.kept.as_ref(),
                                            out,
                                            kind,
                                            c.ply_cloud.as_mut(),
                                            &c.prediction,
                                            force,
                                        )
                                        .map(|()| {
                                            let mut lines = report(
                                                file,
                                                out,
                                                &c.prediction,
                                                grid,
                                                votes,
                                                (t.elapsed().as_secs_f64(), together),
                                                (c.read_s, c.read_ahead),
                                                t_write.elapsed().as_secs_f64(),
                                            );
                                            if c.kept_points > 0 {
                                                lines += &format!(
                                                    "\n  kept: {} points ({:.1}%) with their input class (--keep)",
                                                    c.kept_points,
                                                    100.0 * c.kept_points as f64
                                                        / c.points.max(1) as f64
                                                );
                                            }
                                            lines
                                        });
                                        (c.index, lines)
                                    })
                                    .collect()
                            });
                        for (index, lines) in written {
                            match lines {
                                Ok(lines) => {
                                    file_done();
                                    display.suspend(|| eprintln!("{lines}"))
                                }
                                Err(e) => fail(index, e),
                            }
                        }
                    }));
                }
                Ok(())
            })?;
            if let Some(h) = pending.take() {
                finish(h)?;
            }
            Ok(())
        })?;
        if let Some(bar) = &overall {
            bar.finish_and_clear();
        }
        let mut failures = failures.into_inner().unwrap_or_else(|p| p.into_inner());
        failures.sort_by_key(|(index, _)| *index);
        if !several && let Some((_, e)) = failures.pop() {
            return Err(e);
        }
        let secs = total_t.elapsed().as_secs_f64();
        let mem = randla_memory::memory_info();
        eprintln!(
            "done: {} file(s), {} points in {:.2} s ({:.0} points/s), peak RSS {:.0} MiB{}",
            files.len() - failures.len(),
            total_points,
            secs,
            total_points as f64 / secs,
            mem.rss_peak_bytes.unwrap_or(0) as f64 / 1048576.0,
            if failures.is_empty() {
                String::new()
            } else {
                format!("; {} failed", failures.len())
            }
        );
        // The budget sizes the passes; say so when the whole process went above it.
        if let Some(peak) = mem.rss_peak_bytes.filter(|&p| p > budget_bytes) {
            let columns = 12 + 4 * needed.len();
            eprintln!(
                "note: the peak RSS ({:.0} MiB) is above the memory budget ({:.0} MiB), which bounds the network's passes: the cloud's own columns ({columns} bytes per input point, {:.0} MiB for the largest file here) and the file buffers come on top",
                peak as f64 / 1048576.0,
                budget_bytes as f64 / 1048576.0,
                (max_points * columns) as f64 / 1048576.0
            );
        }
        if !failures.is_empty() {
            let names: Vec<String> = failures
                .iter()
                .map(|(index, _)| files[*index].display().to_string())
                .collect();
            bail!(
                "{} of {} input files failed (each error is shown above; the others were written): {}",
                failures.len(),
                files.len(),
                names.join(", ")
            );
        }
        Ok(())
    })();
    if result.is_err() {
        // Only empty folders are removed (`remove_dir` refuses others): files already written
        // by this run stay.
        for dir in created.iter().rev() {
            let _ = std::fs::remove_dir(dir);
        }
    }
    result
}

/// Creates `dir` and its missing parents, as `mkdir -p`; returns the folders it created,
/// outermost first.
fn create_folders(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let missing: Vec<PathBuf> = dir
        .ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
        .map(Path::to_path_buf)
        .collect();
    std::fs::create_dir_all(dir)?;
    Ok(missing.into_iter().rev().collect())
}

/// A file's line (times by stage) and its class histogram.
#[allow(clippy::too_many_arguments)]
fn report(
    file: &Path,
    out: &Path,
    p: &randla_predict::Prediction,
    grid: f32,
    votes: usize,
    (secs, together): (f64, bool),
    (read_s, read_ahead): (f64, bool),
    write_s: f64,
) -> String {
    let s = &p.stats;
    let tiles = s.passes / votes;
    let paired = if s.paired_passes > 0 {
        ", two at a time"
    } else {
        ""
    };
    let passes = match (tiles > 1, votes > 1) {
        (true, true) => format!(
            " ({tiles} tiles with a {:.1} m margin{paired} × {votes} votes)",
            s.margin_m
        ),
        (true, false) => format!(" (tiles with a {:.1} m margin{paired})", s.margin_m),
        (false, true) => format!(" (one pass × {votes} votes)"),
        (false, false) => String::new(),
    };
    let line = format!(
        "{} → {}: {} points ({} after {} m grid) in {:.2} s = {:.0} points/s{} [read {:.2} s{}, subsample {:.2} s, neighbours {:.2} s, network {:.2} s in {} pass(es) of up to {} points{}, write {:.2} s]",
        file.display(),
        out.display(),
        s.points,
        s.subsampled,
        grid,
        secs,
        s.points as f64 / secs,
        if together {
            " (together with the other file of its pair)"
        } else {
            ""
        },
        read_s,
        if read_ahead { " in the background" } else { "" },
        s.subsample_s,
        s.pyramid_s,
        s.network_s,
        s.passes,
        s.crop_points,
        passes,
        write_s
    );
    // Classes index `class_names`: counted in an array (a map per point took 0.05 s at 10 M).
    let mut hist = vec![0usize; p.class_names.len()];
    for &c in &p.class {
        hist[c as usize] += 1;
    }
    let parts: Vec<String> = hist
        .iter()
        .enumerate()
        .filter(|&(_, &n)| n > 0)
        .map(|(c, &n)| {
            format!(
                "{} {:.1}%",
                p.class_names[c],
                100.0 * n as f64 / s.points as f64
            )
        })
        .collect();
    format!("{line}\n  classes: {}", parts.join(", "))
}

/// What the LAS/LAZ rewrite of a compressed input takes from its read, so that it does not
/// decode the input again.
enum Kept {
    /// Every decoded point record.
    Records(Vec<u8>),
    /// Each point's classification-layer context ([`randla_io::layer_context`]).
    Contexts(Vec<u8>),
}

/// Reads `file` for the network, with what its write to `out` (as `kind`) can reuse.
///
/// A layered LAZ file rewritten as LAZ decodes only the layers the model reads and keeps each
/// point's classification-layer context: the write then recodes that one layer (and codes the
/// added extra bytes' layers) and copies the others. Another LAZ file rewritten as LAS/LAZ keeps
/// its decoded records for the write (decoding is most of a LAZ rewrite's time) when they fit a
/// quarter of the memory budget. LAS/LAZ outputs are otherwise copied from the input file and
/// label files hold labels only: those inputs are read in chunks keeping just what the model
/// reads (a LAS tile carries ~18 attributes), so the whole file's attributes are never in memory
/// at once. Only a PLY output is written from the whole cloud.
#[allow(clippy::too_many_arguments)]
fn load(
    file: &Path,
    out: &Path,
    kind: OutputKind,
    needed: &[String],
    probabilities: bool,
    labels: bool,
    budget_bytes: u64,
) -> anyhow::Result<(randla_io::PointCloud, Option<Kept>)> {
    let kept = match kind {
        // `OutputKind::Las` means a LAS/LAZ input (`OutputKind::of`).
        OutputKind::Las if is_laz(out) => {
            match read_laz_contexts(file, needed, probabilities, labels)? {
                Some((cloud, c)) => Some((cloud, Kept::Contexts(c))),
                None => read_laz_keeping(file, needed, budget_bytes / 4, labels)?
                    .map(|(cloud, r)| (cloud, Kept::Records(r))),
            }
        }
        OutputKind::Las => read_laz_keeping(file, needed, budget_bytes / 4, labels)?
            .map(|(cloud, r)| (cloud, Kept::Records(r))),
        _ => None,
    };
    Ok(match kept {
        Some((cloud, kept)) => (cloud, Some(kept)),
        None if kind == OutputKind::Ply => (randla_io::read(file)?, None),
        None => (read_model_inputs(file, needed, labels)?, None),
    })
}

/// A LAS/LAZ input with no points (a tile emptied by a filter, an empty cell of a tiling) has
/// nothing to classify: its output is a byte copy of it, so that a folder with an empty tile
/// comes back whole and the run succeeds. `None` when `error` is not such a file's read error
/// (a file of 0 bytes is broken, not empty: its error stands);
/// an error when the output's extension differs from the input's (a .laz input written as .las
/// would need its LAZ records turned into LAS ones).
fn copy_empty(
    file: &Path,
    out: &Path,
    kind: OutputKind,
    (force, probabilities): (bool, bool),
    error: &anyhow::Error,
) -> Option<anyhow::Result<String>> {
    let empty = error
        .chain()
        .any(|c| matches!(c.downcast_ref(), Some(randla_io::Error::Empty { .. })));
    if !empty || kind != OutputKind::Las || !super::inputs::las_without_points(file) {
        return None;
    }
    let ext = |p: &Path| p.extension().map(|e| e.to_ascii_lowercase());
    if ext(file) != ext(out) {
        return Some(Err(anyhow::anyhow!(
            "{}: no points to classify; an empty file is copied as it is, so its output must have its extension ({})",
            file.display(),
            out.display()
        )));
    }
    Some((|| {
        let bytes = std::fs::read(file).with_context(|| format!("{}: reading", file.display()))?;
        randla_io::atomic::write_atomic(out, &[file], force, |w| w.write_all_or_err(&bytes))?;
        Ok(format!(
            "{} → {}: no points, copied unchanged{}",
            file.display(),
            out.display(),
            if probabilities {
                " (without probability fields: there is nothing to put in them)"
            } else {
                ""
            }
        ))
    })())
}

/// A file read for its turn.
struct Loaded {
    cloud: randla_io::PointCloud,
    /// What the write can reuse from the read.
    kept: Option<Kept>,
    read_s: f64,
    /// Whether it was read ahead, while the file before was classified.
    read_ahead: bool,
}

/// A file classified, waiting for its write.
struct Classified {
    /// Its position among the inputs.
    index: usize,
    points: usize,
    /// Points whose input class --keep left as it was.
    kept_points: usize,
    prediction: randla_predict::Prediction,
    /// The cloud a PLY output is written from.
    ply_cloud: Option<randla_io::PointCloud>,
    kept: Option<Kept>,
    read_s: f64,
    read_ahead: bool,
}

/// Two files read together are classified at once when each has at most this many points (so
/// that the two passes' memory stays small beside the budget each assumes).
const PAIR_MAX_POINTS: usize = 1 << 20;

/// Files at most this large on disk are read ahead of their turn ([`small_file`]).
const READ_AHEAD_MAX_BYTES: u64 = 64 << 20;

/// Whether `file` is small enough to be read while the file before it is classified.
fn small_file(file: &Path) -> bool {
    std::fs::metadata(file).is_ok_and(|m| m.len() <= READ_AHEAD_MAX_BYTES)
}

/// Whether `path` names a LAZ file.
fn is_laz(path: &Path) -> bool {
    matches!(Format::from_path(path), Ok(Format::Laz))
}

/// A layered LAZ `file`'s model inputs, only their layers decoded, and each point's
/// classification-layer context; `None` for files whose rewrite (`adding_extra_bytes` or not)
/// cannot take them.
fn read_laz_contexts(
    file: &Path,
    needed: &[String],
    adding_extra_bytes: bool,
    labels: bool,
) -> anyhow::Result<Option<(randla_io::PointCloud, Vec<u8>)>> {
    if !is_laz(file) {
        return Ok(None);
    }
    let mut reader = randla_io::LasReader::open_for_features(file, needed, labels)?;
    if !reader.classification_layer_rewritable(adding_extra_bytes) {
        return Ok(None);
    }
    let total = reader.point_count();
    let mut contexts = Vec::new();
    let _ = contexts.try_reserve_exact(usize::try_from(total).unwrap_or(0));
    let mut cloud: Option<randla_io::PointCloud> = None;
    while let Some(chunk) = reader.read_chunk_keeping_contexts(READ_CHUNK_POINTS, &mut contexts)? {
        append(&mut cloud, chunk, Some(total), file)?;
    }
    Ok(Some((finish_cloud(cloud, file)?, contexts)))
}

/// A LAS/LAZ `file`'s model inputs (as [`read_model_inputs`]) and every point record decoded,
/// when the points are compressed and those records take at most `max_bytes`; `None` for an
/// uncompressed file (a LAS rewrite copies its records without decoding) and larger ones.
fn read_laz_keeping(
    file: &Path,
    needed: &[String],
    max_bytes: u64,
    labels: bool,
) -> anyhow::Result<Option<(randla_io::PointCloud, Vec<u8>)>> {
    let mut reader = randla_io::LasReader::open(file)?;
    let h = reader.header();
    let bytes = h.point_count * u64::from(h.record_length);
    if !h.compressed || bytes > max_bytes {
        return Ok(None);
    }
    let mut records = Vec::new();
    if records.try_reserve_exact(bytes as usize).is_err() {
        return Ok(None);
    }
    let mut cloud: Option<randla_io::PointCloud> = None;
    let total = Some(h.point_count);
    while let Some(mut chunk) = reader.read_chunk_keeping(READ_CHUNK_POINTS, &mut records)? {
        keep_model_inputs(&mut chunk, needed, labels);
        append(&mut cloud, chunk, total, file)?;
    }
    Ok(Some((finish_cloud(cloud, file)?, records)))
}

/// Drops every attribute but the model's, and the labels unless `labels`.
fn keep_model_inputs(chunk: &mut randla_io::PointCloud, needed: &[String], labels: bool) {
    chunk.features.retain(|f| {
        needed
            .iter()
            .any(|n| randla_io::attribute_matches(&f.name, n))
    });
    if !labels {
        chunk.labels = None;
    }
}

/// Appends `chunk` to the cloud read so far. With the file's point count `total` known, the
/// first chunk's columns are made room for the whole file at once: growing them by doubling
/// left the abandoned smaller copies resident (freed memory is kept for the network's passes),
/// about twice the cloud's size at the read's end.
fn append(
    cloud: &mut Option<randla_io::PointCloud>,
    mut chunk: randla_io::PointCloud,
    total: Option<u64>,
    file: &Path,
) -> anyhow::Result<()> {
    match cloud {
        None => {
            if let Some(rest) = total
                .and_then(|t| usize::try_from(t).ok())
                .and_then(|t| t.checked_sub(chunk.len()))
            {
                // A header may announce more points than the machine holds: then no room is
                // made ahead and the columns grow as they would anyway.
                let _ = chunk.positions.try_reserve_exact(rest);
                if let Some(l) = &mut chunk.labels {
                    let _ = l.try_reserve_exact(rest);
                }
                for f in &mut chunk.features {
                    let _ = f.values.try_reserve_exact(rest);
                }
            }
            *cloud = Some(chunk)
        }
        Some(c) => c
            .append(&chunk)
            .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?,
    }
    Ok(())
}

/// The cloud read from `file`, its capacities trimmed (appending without a known total doubled
/// them).
fn finish_cloud(
    cloud: Option<randla_io::PointCloud>,
    file: &Path,
) -> anyhow::Result<randla_io::PointCloud> {
    let mut cloud =
        cloud.with_context(|| format!("{}: the file holds no point", file.display()))?;
    cloud.positions.shrink_to_fit();
    cloud
        .features
        .iter_mut()
        .for_each(|f| f.values.shrink_to_fit());
    Ok(cloud)
}

/// A freed cloud at least this large has its pages given back to the system.
const RELEASE_MIN_BYTES: usize = 64 << 20;

/// Points read per chunk by [`read_model_inputs`].
const READ_CHUNK_POINTS: usize = 1 << 20;

/// The points of `file` with only the attributes in `needed` and no labels, read in chunks.
pub(crate) fn read_model_inputs(
    file: &Path,
    needed: &[String],
    labels: bool,
) -> anyhow::Result<randla_io::PointCloud> {
    let mut cloud: Option<randla_io::PointCloud> = None;
    if matches!(Format::from_path(file), Ok(Format::Las | Format::Laz)) {
        // Only the model's fields are decoded (LAZ layers).
        let mut reader = randla_io::LasReader::open_for_features(file, needed, labels)?;
        if !reader.header().compressed {
            // Read by parts on every worker, straight into the cloud.
            return Ok(reader.read_rest()?);
        }
        let total = Some(reader.point_count());
        while let Some(chunk) = reader.read_chunk(READ_CHUNK_POINTS)? {
            append(&mut cloud, chunk, total, file)?;
        }
        return finish_cloud(cloud, file);
    }
    let mut chunks =
        randla_io::open_chunks(file, READ_CHUNK_POINTS, &randla_io::ReadOptions::default())?;
    let total = match chunks.reader() {
        randla_io::ChunkReader::Las(r) => Some(r.point_count()),
        _ => None,
    };
    for chunk in &mut chunks {
        let mut chunk = chunk?;
        keep_model_inputs(&mut chunk, needed, labels);
        append(&mut cloud, chunk, total, file)?;
    }
    finish_cloud(cloud, file)
}

/// Writes the prediction `p` of `input` to `out` as `kind` (a PLY output is `ply_cloud` with the
/// predicted codes as its labels; a LAS/LAZ output is copied from `input`, with what its read
/// `kept` when there is that).
fn write(
    input: &Path,
    kept: Option<&Kept>,
    out: &Path,
    kind: OutputKind,
    ply_cloud: Option<&mut randla_io::PointCloud>,
    p: &randla_predict::Prediction,
    force: bool,
) -> anyhow::Result<()> {
    let probs = p.probabilities.as_deref().map(|values| Probabilities {
        names: &p.class_names,
        values,
    });
    let conf = p.probabilities.as_ref().map(|_| p.confidence.as_slice());
    match kind {
        OutputKind::Las => {
            let codes = p
                .codes
                .iter()
                .map(|&c| {
                    u8::try_from(c).map_err(|_| {
                        anyhow::anyhow!(
                            "{}: class code {c} does not fit a LAS classification byte",
                            out.display()
                        )
                    })
                })
                .collect::<anyhow::Result<Vec<u8>>>()?;
            let extra = ExtraOutputs {
                confidence: conf,
                probabilities: probs,
            };
            match kept {
                Some(Kept::Records(r)) => randla_io::rewrite_las_classification_from(
                    input,
                    r,
                    out,
                    &codes,
                    Some(&extra),
                    force,
                )?,
                Some(Kept::Contexts(c)) => randla_io::rewrite_laz_classification_layer(
                    input,
                    c,
                    out,
                    &codes,
                    Some(&extra),
                    force,
                )?,
                None => {
                    randla_io::rewrite_las_classification(input, out, &codes, Some(&extra), force)?
                }
            };
        }
        OutputKind::Ply => {
            let cloud = ply_cloud
                .with_context(|| format!("{}: the cloud to write was not kept", out.display()))?;
            cloud.labels = Some(p.codes.clone());
            randla_io::write_ply(
                out,
                cloud,
                &PlyWriteOptions {
                    encoding: PlyEncoding::BinaryLittleEndian,
                    overwrite: force,
                    confidence: conf,
                    probabilities: probs,
                },
            )?;
        }
        OutputKind::PlyCopy => {
            let extra = ExtraOutputs {
                confidence: conf,
                probabilities: probs,
            };
            randla_io::rewrite_ply_labels(input, out, &p.codes, Some(&extra), force)?;
        }
        OutputKind::Semantic3dLabels => randla_io::write_semantic3d_labels(out, &p.codes, force)?,
        OutputKind::KittiLabels => randla_io::write_kitti_labels(out, &p.codes, force)?,
    }
    Ok(())
}
