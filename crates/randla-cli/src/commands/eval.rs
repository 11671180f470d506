//! `randla eval PRED TRUTH [--map A=B,...] [--ignore CODES] [--json]`: how well a prediction
//! matches the truth, point by point.
//!
//! The metrics themselves are `randla-metrics`'s; this file reads the two label sequences,
//! remaps and filters them, and prints the report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::fmt::thousands;
use super::inputs::{InputFile, is_folder_of_files, text_without_points, walk};
use anyhow::{Context, bail};
use clap::Args;
use randla_io::{Format, LasReader};
use randla_metrics::{CodeConfusion, asprs};
use serde::Serialize;
use serde::ser::SerializeMap;

/// Arguments of `randla eval`.
///
/// Point `i` of PRED is compared with point `i` of TRUTH: both must be the same cloud in the
/// same order (a prediction written by `randla predict`, and its input or a labelled copy).
///
/// The classes are the codes, after `--map`, that occur at the scored points in either file.
/// mIoU is the mean IoU over the classes with support > 0 (at least one truth point); a class
/// that occurs only in the prediction is listed but does not enter the mean. OA is correct points
/// over scored points.
///
/// Class names: ASPRS names (`ground`, `high_vegetation`...) when TRUTH is LAS/LAZ, S3DIS names
/// for an S3DIS room folder, else the code itself; codes without a name (e.g. 64) are shown as
/// the code.
///
/// JSON: `{"miou", "oa", "per_class": {NAME: {"iou", "precision", "recall", "f1", "support"}},
/// "confusion": {"labels": [NAME...], "codes": [CODE...], "matrix": [[...]]}}`, classes in
/// ascending code order, matrix rows = truth, columns = predicted. A value that is undefined
/// (precision of a class never predicted, recall of a class with no truth point) is `null`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The prediction: any point-cloud file with labels (.las/.laz classification, .ply label
    /// property, ...), or a folder of them (`randla predict`'s output folder).
    pub pred: PathBuf,
    /// The truth: a file with labels and the same points in the same order (it may be PRED's
    /// own input file), or, when PRED is a folder, a folder whose files are paired with PRED's
    /// by name (or by name before the extension: `x.labels` with `x.txt`); all pairs are
    /// scored together.
    pub truth: PathBuf,
    /// Remap codes in both files before scoring, e.g. "3=5,4=5" merges low and medium
    /// vegetation into high vegetation. Mappings apply at once, not in a chain ("3=5,5=6" sends
    /// 3 to 5, not 6).
    #[arg(long, value_name = "A=B,...", value_parser = parse_map)]
    pub map: Option<ClassMap>,
    /// Leave out the points whose truth code (after --map) is listed, e.g. "0,1".
    #[arg(long, value_name = "CODES", value_parser = parse_codes)]
    pub ignore: Option<CodeList>,
    /// With folders: pair the files of their sub-folders too, by their path below PRED and
    /// TRUTH (after `randla predict DIR -o OUT --recursive`).
    #[arg(short, long)]
    pub recursive: bool,
    /// Print JSON (see the command's long help for the layout).
    #[arg(long)]
    pub json: bool,
}

/// The parsed `--map`: source code to target code.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClassMap(BTreeMap<u32, u32>);

impl ClassMap {
    /// No code is remapped.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Replaces every mapped code in `labels`.
    pub(crate) fn apply(&self, labels: &mut [u32]) {
        if self.is_empty() {
            return;
        }
        for l in labels {
            if let Some(&to) = self.0.get(l) {
                *l = to;
            }
        }
    }
}

/// As it was given: "3=5,4=5".
impl std::fmt::Display for ClassMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pairs: Vec<String> = self.0.iter().map(|(a, b)| format!("{a}={b}")).collect();
        f.write_str(&pairs.join(","))
    }
}

fn parse_code(s: &str, what: &str) -> Result<u32, String> {
    let s = s.trim();
    s.parse::<u32>()
        .map_err(|_| format!("{what} {s:?} is not a class code (a whole number >= 0)"))
}

/// Parses `--map`: "A=B" pairs separated by commas.
pub(crate) fn parse_map(s: &str) -> Result<ClassMap, String> {
    let mut map = BTreeMap::new();
    for item in s.split(',') {
        let Some((from, to)) = item.split_once('=') else {
            return Err(format!(
                "{:?} is not FROM=TO (expected e.g. \"3=5,4=5\")",
                item.trim()
            ));
        };
        let (from, to) = (parse_code(from, "FROM")?, parse_code(to, "TO")?);
        if let Some(prev) = map.insert(from, to)
            && prev != to
        {
            return Err(format!(
                "code {from} is mapped twice (to {prev} and to {to})"
            ));
        }
    }
    Ok(ClassMap(map))
}

/// The parsed `--ignore`: class codes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CodeList(pub(crate) Vec<u32>);

/// Parses `--ignore`: codes separated by commas.
pub(crate) fn parse_codes(s: &str) -> Result<CodeList, String> {
    s.split(',')
        .map(|c| parse_code(c, "code"))
        .collect::<Result<_, _>>()
        .map(CodeList)
}

/// How class codes are named in reports and legends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Naming {
    /// ASPRS LAS names; unnamed codes as numbers.
    Asprs,
    /// S3DIS's 13 class names, by index.
    S3dis,
    /// The codes as numbers.
    Codes,
}

impl Naming {
    /// The naming that fits the labels of `path`: ASPRS for LAS/LAZ, S3DIS for a room folder.
    pub(crate) fn for_file(path: &Path) -> Naming {
        if path.is_dir() {
            return Naming::S3dis;
        }
        match Format::from_path(path) {
            Ok(Format::Las | Format::Laz) => Naming::Asprs,
            _ => Naming::Codes,
        }
    }

    /// The name of `code`.
    pub(crate) fn name(self, code: u32) -> String {
        match self {
            Naming::Asprs => asprs::class_name(code),
            Naming::S3dis => randla_io::S3DIS_CLASSES
                .get(code as usize)
                .map_or_else(|| code.to_string(), |n| n.to_string()),
            Naming::Codes => code.to_string(),
        }
    }
}

/// The labels of a file, one per point (LAS/LAZ are streamed: only the classification is kept).
/// Label files alone are read too: Semantic3D's `.labels` (one code per line, what `randla
/// predict` writes for text inputs) and SemanticKITTI's `.label` (a `u32` per point, the semantic
/// id in its low 16 bits).
pub(crate) fn read_labels(path: &Path) -> anyhow::Result<Vec<u32>> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    match ext.as_deref() {
        Some("labels") => {
            let file = std::fs::File::open(path)
                .with_context(|| format!("{}: cannot open", path.display()))?;
            return Ok(randla_io::formats::semantic3d::read_labels(
                std::io::BufReader::new(file),
                path,
            )?);
        }
        Some("label") => {
            let bytes =
                std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
            let points = bytes.len() / 4;
            return Ok(randla_io::formats::kitti::read_kitti_label_bytes(
                &bytes, path, points, None,
            )?);
        }
        _ => {}
    }
    let is_las = !path.is_dir() && matches!(Format::from_path(path), Ok(Format::Las | Format::Laz));
    if is_las {
        // Only the classification's layers are decoded (x, y and z aside).
        let reader = LasReader::open_for_features(path, &[], true)?;
        if reader.point_count() == 0 {
            // An empty tile (`randla predict` copies one through): nothing to score.
            return Ok(Vec::new());
        }
        let mut labels = Vec::with_capacity(reader.point_count().min(1 << 28) as usize);
        for chunk in reader.chunks(1 << 20) {
            let chunk = chunk?;
            match &chunk.labels {
                Some(l) => labels.extend_from_slice(l),
                None => bail!("{}: has no classification", path.display()),
            }
        }
        return Ok(labels);
    }
    let cloud = randla_io::read(path)?;
    match cloud.labels {
        Some(l) => Ok(l),
        None => bail!(
            "{}: has no labels (expected a LAS/LAZ classification, a PLY label property such as \
             `label` or `class`, or a label column)",
            path.display()
        ),
    }
}

/// Reads the labels of PRED and TRUTH (once if they are the same file) and checks that their
/// point counts agree.
pub(crate) fn read_pair(pred: &Path, truth: &Path) -> anyhow::Result<(Vec<u32>, Vec<u32>)> {
    let p = read_labels(pred).with_context(|| format!("reading PRED {}", pred.display()))?;
    let t = if randla_io::atomic::same_file(pred, truth) {
        p.clone()
    } else {
        read_labels(truth).with_context(|| format!("reading TRUTH {}", truth.display()))?
    };
    if p.len() != t.len() {
        bail!(
            "point counts differ: PRED {} has {} points, TRUTH {} has {}; point i of one is \
             compared with point i of the other, so both must hold the same cloud in the same \
             order",
            pred.display(),
            p.len(),
            truth.display(),
            t.len()
        );
    }
    Ok((p, t))
}

/// Whether [`read_labels`] takes `path`: a point-cloud file or a label file. A text file that
/// does not open like a table of points (a `README.txt` beside the tiles) is not one.
pub(crate) fn has_labels(path: &Path) -> bool {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    if !path.is_file() {
        return false;
    }
    if matches!(ext.as_deref(), Some("labels" | "label")) {
        return true;
    }
    Format::from_path(path).is_ok_and(|f| !text_without_points(path, f))
}

/// A prediction file and its truth.
type Pair = (PathBuf, PathBuf);

/// The (PRED, TRUTH) file pairs of two folders: every prediction in `pred` with the file of
/// `truth` of the same name, or else of the same stem (`x.labels` predicts `x.txt`); with
/// `recursive`, at every depth, each in the sub-folder of the same path. Also the truth files
/// that no prediction pairs with.
fn folder_pairs(
    pred: &Path,
    truth: &Path,
    recursive: bool,
) -> anyhow::Result<(Vec<Pair>, Vec<PathBuf>)> {
    let list = |dir: &Path| walk(dir, recursive, None, &mut |f: &Path| has_labels(f));
    let (preds, subfolders) = list(pred)?;
    if preds.is_empty() {
        bail!(
            "{}: the folder holds no prediction file{}",
            pred.display(),
            match (subfolders, recursive) {
                (_, true) => " at any depth",
                (true, false) => " (its sub-folders are not searched: add --recursive)",
                (false, false) => "",
            }
        );
    }
    let (truths, _) = list(truth)?;
    let mut used = vec![false; truths.len()];
    let mut pairs = Vec::new();
    for p in preds {
        let Some(j) = truth_index(&p.rel, &truths) else {
            let place = match p.rel.parent() {
                Some(d) if !d.as_os_str().is_empty() => truth.join(d),
                _ => truth.to_path_buf(),
            };
            bail!(
                "{}: no truth for this prediction in {} (a file of the same name, or of the same name before the extension)",
                p.path.display(),
                place.display()
            );
        };
        used[j] = true;
        pairs.push((p.path, truths[j].path.clone()));
    }
    let unpaired = truths
        .into_iter()
        .zip(used)
        .filter(|(_, u)| !u)
        .map(|(t, _)| t.path)
        .collect();
    Ok((pairs, unpaired))
}

/// The truth of the prediction at `rel` (its path below the prediction folder) among `truths`
/// (theirs below the truth folder): the one of the same path, or else in the same sub-folder
/// with the same name before the extension (`x.labels` predicts `x.txt`; a label file is no
/// truth for another file).
pub(crate) fn truth_index(rel: &Path, truths: &[InputFile]) -> Option<usize> {
    let same_name = truths.iter().position(|t| t.rel == rel);
    same_name.or_else(|| {
        truths.iter().position(|t| {
            t.rel.parent() == rel.parent()
                && t.rel.file_stem() == rel.file_stem()
                && !t
                    .rel
                    .extension()
                    .is_some_and(|e| e == "labels" || e == "label")
        })
    })
}

/// Runs `randla eval`.
pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    let (mut pred, mut truth, naming_file, files) = match (
        is_folder_of_files(&args.pred),
        is_folder_of_files(&args.truth),
    ) {
        (false, false) => {
            let (p, t) = read_pair(&args.pred, &args.truth)?;
            (p, t, args.truth.clone(), None)
        }
        (true, true) => {
            // Every pair scored together: the points of all files in one confusion matrix.
            let (pairs, unpaired) = folder_pairs(&args.pred, &args.truth, args.recursive)?;
            let (mut p, mut t) = (Vec::new(), Vec::new());
            for (a, b) in &pairs {
                let (pa, tb) = read_pair(a, b)?;
                p.extend(pa);
                t.extend(tb);
            }
            if !unpaired.is_empty() {
                let names: Vec<String> = unpaired.iter().map(|u| u.display().to_string()).collect();
                eprintln!(
                    "note: {} truth file(s) without a prediction, not scored: {}",
                    unpaired.len(),
                    names.join(", ")
                );
            }
            let first = pairs[0].1.clone();
            (p, t, first, Some(pairs.len()))
        }
        (true, false) => bail!(
            "{}: PRED is a folder, so TRUTH must be one too (its files are paired by name); {} is not",
            args.pred.display(),
            args.truth.display()
        ),
        (false, true) => bail!(
            "{}: TRUTH is a folder, so PRED must be one too (its files are paired by name); {} is not",
            args.truth.display(),
            args.pred.display()
        ),
    };
    let map = args.map.clone().unwrap_or_default();
    map.apply(&mut pred);
    map.apply(&mut truth);
    let ignore = args.ignore.clone().unwrap_or_default().0;
    if truth.is_empty() {
        bail!(
            "no point to score: TRUTH {} holds no points{}",
            args.truth.display(),
            if files.is_some() {
                " (nor does any of its files)"
            } else {
                ""
            }
        );
    }
    let conf = CodeConfusion::from_labels(&truth, &pred, &ignore)?;
    if conf.matrix().total() == 0 {
        bail!(
            "no point left to score: all {} points of TRUTH {} have an ignored code ({})",
            truth.len(),
            args.truth.display(),
            join(&ignore)
        );
    }
    let naming = Naming::for_file(&naming_file);
    let report = Report::new(&conf, naming);
    if args.json {
        let s = serde_json::to_string_pretty(&report).context("serialising the report")?;
        println!("{s}");
    } else {
        print!("{}", table(&args, files, &map, &ignore, &conf, &report));
    }
    Ok(())
}

/// One class's row of the JSON report.
#[derive(Debug, Serialize)]
struct ClassJson {
    iou: Option<f64>,
    precision: Option<f64>,
    recall: Option<f64>,
    f1: Option<f64>,
    support: u64,
}

/// Per-class metrics keyed by class name, serialised in class order.
#[derive(Debug)]
struct PerClass(Vec<(String, ClassJson)>);

impl Serialize for PerClass {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// The confusion matrix with its class order.
#[derive(Debug, Serialize)]
struct ConfusionJson {
    labels: Vec<String>,
    codes: Vec<u32>,
    matrix: Vec<Vec<u64>>,
}

/// The JSON report (exactly these four keys).
#[derive(Debug, Serialize)]
struct Report {
    miou: Option<f64>,
    oa: Option<f64>,
    per_class: PerClass,
    confusion: ConfusionJson,
}

impl Report {
    fn new(conf: &CodeConfusion, naming: Naming) -> Report {
        let m = conf.matrix();
        let labels: Vec<String> = conf.codes().iter().map(|&c| naming.name(c)).collect();
        let per_class = labels
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let c = m.class_metrics(i);
                (
                    name.clone(),
                    ClassJson {
                        iou: c.iou,
                        precision: c.precision,
                        recall: c.recall,
                        f1: c.f1,
                        support: c.support,
                    },
                )
            })
            .collect();
        Report {
            miou: m.miou(),
            oa: m.oa(),
            per_class: PerClass(per_class),
            confusion: ConfusionJson {
                labels,
                codes: conf.codes().to_vec(),
                matrix: m.to_rows(),
            },
        }
    }
}

fn join(codes: &[u32]) -> String {
    codes
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn num(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.4}"))
}

/// The human-readable report.
fn table(
    args: &EvalArgs,
    files: Option<usize>,
    map: &ClassMap,
    ignore: &[u32],
    conf: &CodeConfusion,
    report: &Report,
) -> String {
    let m = conf.matrix();
    let mut s = String::new();
    s += &format!("pred     {}\n", args.pred.display());
    s += &format!("truth    {}\n", args.truth.display());
    if let Some(n) = files {
        let by = if args.recursive {
            "by their path below each folder"
        } else {
            "by name"
        };
        s += &format!("files    {n} pairs, paired {by}, scored together\n");
    }
    if !map.is_empty() {
        s += &format!("map      {map}\n");
    }
    s += &format!("points   {} scored", thousands(m.total()));
    if !ignore.is_empty() {
        s += &format!(
            ", {} ignored (truth code {})",
            thousands(conf.ignored()),
            join(ignore)
        );
    }
    s += "\n\n";
    let names = &report.confusion.labels;
    let w = names.iter().map(String::len).max().unwrap_or(0).max(5);
    s += &format!(
        "{:<w$} {:>5} {:>7} {:>9} {:>7} {:>7} {:>11}\n",
        "class", "code", "IoU", "precision", "recall", "F1", "support"
    );
    for (i, (name, c)) in report.per_class.0.iter().enumerate() {
        s += &format!(
            "{name:<w$} {:>5} {:>7} {:>9} {:>7} {:>7} {:>11}\n",
            conf.codes()[i],
            num(c.iou),
            num(c.precision),
            num(c.recall),
            num(c.f1),
            thousands(c.support)
        );
    }
    let with_support = (0..m.num_classes()).filter(|&c| m.support(c) > 0).count();
    s += &format!(
        "\nmIoU     {}  (mean IoU over the {with_support} classes with truth points)\n",
        num(report.miou)
    );
    s += &format!(
        "OA       {}  ({} of {} points correct)\n",
        num(report.oa),
        thousands(m.correct()),
        thousands(m.total())
    );
    // Truth codes the prediction never uses: often classes the model does not have, which
    // then weigh on mIoU with an IoU of 0.
    let rows = m.to_rows();
    let unused: Vec<u32> = (0..m.num_classes())
        .filter(|&c| m.support(c) > 0 && rows.iter().all(|r| r[c] == 0))
        .map(|c| conf.codes()[c])
        .collect();
    if !unused.is_empty() {
        s += &format!(
            "note     truth code(s) {} never predicted: if the model has no such class, --map them to one it has or --ignore them\n",
            join(&unused)
        );
    }
    s += "\nconfusion (rows = truth, columns = predicted, by code)\n";
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|&v| thousands(v)).collect())
        .collect();
    let cw = cells
        .iter()
        .flatten()
        .map(String::len)
        .chain(conf.codes().iter().map(|c| c.to_string().len()))
        .max()
        .unwrap_or(1)
        .max(4);
    let lw = w + 6;
    s += &format!("{:<lw$}", "truth \\ pred");
    for code in conf.codes() {
        s += &format!(" {code:>cw$}");
    }
    s += "\n";
    for (i, row) in cells.iter().enumerate() {
        s += &format!("{:<lw$}", format!("{:>5} {}", conf.codes()[i], names[i]));
        for v in row {
            s += &format!(" {v:>cw$}");
        }
        s += "\n";
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_map_and_ignore() {
        let m = parse_map("3=5, 4=5").unwrap();
        assert_eq!(m.0, BTreeMap::from([(3, 5), (4, 5)]));
        let mut labels = vec![3, 4, 5, 6];
        m.apply(&mut labels);
        assert_eq!(labels, [5, 5, 5, 6]);
        // Simultaneous, not chained.
        let mut l = vec![3, 5];
        parse_map("3=5,5=6").unwrap().apply(&mut l);
        assert_eq!(l, [5, 6]);
        assert_eq!(parse_codes("0, 1").unwrap().0, [0, 1]);
    }

    #[test]
    fn malformed_map_and_ignore_are_errors() {
        for (bad, want) in [
            ("3-5", "is not FROM=TO"),
            ("3=", "TO \"\" is not a class code"),
            ("a=5", "FROM \"a\" is not a class code"),
            ("3=5,3=4", "mapped twice"),
            ("", "is not FROM=TO"),
            ("3=-1", "TO \"-1\""),
        ] {
            let e = parse_map(bad).unwrap_err();
            assert!(e.contains(want), "{bad:?}: {e}");
        }
        assert!(parse_codes("1,,2").is_err());
        assert!(parse_codes("x").unwrap_err().contains("\"x\""));
    }

    #[test]
    fn command_line_definition_is_consistent() {
        use clap::CommandFactory;
        crate::commands::Cli::command().debug_assert();
        let cli = <crate::commands::Cli as clap::Parser>::try_parse_from([
            "randla", "eval", "p.laz", "t.laz", "--map", "3=5", "--ignore", "0,1",
        ])
        .unwrap();
        let crate::commands::Command::Eval(a) = cli.command else {
            panic!("not eval")
        };
        assert_eq!(a.ignore.unwrap().0, [0, 1]);
        assert_eq!(a.map.unwrap().0, BTreeMap::from([(3, 5)]));
    }

    #[test]
    fn names_follow_the_truth_format() {
        assert_eq!(Naming::for_file(Path::new("a.laz")), Naming::Asprs);
        assert_eq!(Naming::for_file(Path::new("a.ply")), Naming::Codes);
        assert_eq!(Naming::Asprs.name(6), "building");
        assert_eq!(Naming::Asprs.name(64), "64");
        assert_eq!(Naming::S3dis.name(1), "floor");
        assert_eq!(Naming::S3dis.name(99), "99");
        assert_eq!(Naming::Codes.name(2), "2");
    }
}
