//! `randla render FILE -o view.png [--color class|truth|error] [--view top|oblique]
//! [--truth TRUTH] [--map A=B,...] [--ignore CODES] [--width 1600] [--point-size PX] [--force]`:
//! a picture of a classified cloud.
//!
//! Layout, top to bottom: the file name with a scale bar on its right; a line with the colouring,
//! view and point count; the plot; the legend (one swatch and line per class, with point counts
//! and shares). Points
//! are drawn as small squares into a depth buffer: in the top view the highest point of a pixel
//! wins, in the oblique view the nearest. Text uses a 5×7 bitmap font embedded in the binary.

mod canvas;
mod font;

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};

use self::canvas::{Canvas, Rgb};
use self::font::{GLYPH_H, text_width};
use super::eval::{
    ClassMap, CodeList, Naming, has_labels, parse_codes, parse_map, read_labels, truth_index,
};
use super::fmt::thousands;
use super::inputs::{expand_tree, is_folder_of_files, walk};

/// What decides a point's colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorBy {
    /// The file's own labels.
    Class,
    /// The labels of --truth (or the file's own without --truth).
    Truth,
    /// Grey where the file's label equals --truth's, red where it differs (needs --truth).
    Error,
}

/// The projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum View {
    /// Orthographic, straight down, north up; the highest point of each pixel wins.
    Top,
    /// Orthographic from the south-south-west, 35° above the horizon; the nearest point wins.
    Oblique,
}

/// Arguments of `randla render`.
#[derive(Debug, Args)]
pub struct RenderArgs {
    /// The point cloud (any format randla reads; it needs labels unless --color truth with
    /// --truth), or a folder of tiles drawn together (--truth then a folder of their truths,
    /// paired by name as in eval).
    pub file: PathBuf,
    /// The picture to write (.png); an existing file is replaced only with --force.
    #[arg(short, long, value_name = "PNG")]
    pub output: PathBuf,
    /// Colour by the file's classes, by the truth's classes, or by error (needs --truth).
    #[arg(long, value_enum, default_value_t = ColorBy::Class)]
    pub color: ColorBy,
    /// Top-down or oblique view.
    #[arg(long, value_enum, default_value_t = View::Top)]
    pub view: View,
    /// A file with the true labels of the same points in the same order.
    #[arg(long, value_name = "FILE")]
    pub truth: Option<PathBuf>,
    /// Remap codes in the file and in --truth before colouring, as `randla eval --map` does:
    /// "3=5,4=5,64=1" compares the built-in model's classes with IGN LiDAR HD's truth, whose
    /// low and medium vegetation the model counts as vegetation.
    #[arg(long, value_name = "A=B,...", value_parser = parse_map)]
    pub map: Option<ClassMap>,
    /// With --color error: leave out the points whose truth code (after --map) is listed, as
    /// `randla eval --ignore` does. They are drawn pale and the shares count the others only,
    /// so "correct" is eval's OA.
    #[arg(long, value_name = "CODES", value_parser = parse_codes)]
    pub ignore: Option<CodeList>,
    /// Width of the picture in pixels (320 to 8192); the height follows from the cloud's shape.
    #[arg(long, default_value_t = 1600)]
    pub width: u32,
    /// Side of the square drawn per point, in pixels (default: from the point density).
    #[arg(long, value_name = "PX")]
    pub point_size: Option<u32>,
    /// With a folder: its sub-folders' files too, at every depth.
    #[arg(short, long)]
    pub recursive: bool,
    /// Replace an existing output file.
    #[arg(long)]
    pub force: bool,
}

const BACKGROUND: Rgb = [255, 255, 255];
const INK: Rgb = [20, 20, 20];
const FRAME: Rgb = [200, 200, 200];
const CORRECT: Rgb = [175, 175, 175];
const WRONG: Rgb = [230, 20, 20];
const IGNORED: Rgb = [225, 225, 240];
/// Oblique view: elevation above the horizon and azimuth of the viewing direction (from north,
/// clockwise), in degrees.
const ELEVATION_DEG: f64 = 35.0;
const AZIMUTH_DEG: f64 = 30.0;

/// Conventional colours of the ASPRS classes (LAS 1.4).
fn asprs_color(code: u32) -> Option<Rgb> {
    Some(match code {
        0 => [200, 200, 200],
        1 => [140, 140, 140],
        2 => [150, 105, 60],
        3 => [175, 225, 105],
        4 => [85, 175, 55],
        5 => [20, 105, 35],
        6 => [225, 70, 35],
        7 => [255, 0, 255],
        9 => [30, 110, 230],
        10 => [110, 70, 150],
        11 => [80, 80, 80],
        13 => [255, 230, 0],
        14 => [255, 170, 0],
        15 => [160, 40, 160],
        16 => [255, 120, 0],
        17 => [120, 180, 230],
        18 => [255, 105, 180],
        19 => [0, 190, 190],
        20 => [200, 170, 120],
        21 => [190, 225, 255],
        22 => [90, 90, 150],
        _ => return None,
    })
}

/// Distinct colours for codes without a conventional one (Tableau 10, then its light shades).
const PALETTE: [Rgb; 20] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
    [174, 199, 232],
    [255, 187, 120],
    [152, 223, 138],
    [255, 152, 150],
    [197, 176, 213],
    [196, 156, 148],
    [247, 182, 210],
    [199, 199, 199],
    [219, 219, 141],
    [158, 218, 229],
];

/// Colours for user-defined ASPRS codes (64...): none of them close to a standard class colour.
const EXTRA_ASPRS: [Rgb; 5] = [
    [0, 0, 140],
    [148, 103, 189],
    [23, 190, 207],
    [188, 189, 34],
    [227, 119, 194],
];

/// The colour of class `code` under `naming`.
fn class_color(naming: Naming, code: u32) -> Rgb {
    match naming {
        Naming::Asprs => {
            asprs_color(code).unwrap_or(EXTRA_ASPRS[code as usize % EXTRA_ASPRS.len()])
        }
        Naming::S3dis | Naming::Codes => PALETTE[code as usize % PALETTE.len()],
    }
}

/// One legend line.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    color: Rgb,
    text: String,
}

/// What to draw: a colour per point and the legend that explains them.
#[derive(Debug)]
struct Coloring {
    colors: Vec<Rgb>,
    legend: Vec<Entry>,
    /// How the colours were chosen, for the title.
    title: String,
}

fn file_name(p: &Path) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Lines "label  count  share" with aligned columns: row `(label, n, of)` shows `n` and its
/// share of `of`.
fn aligned(rows: &[(String, u64, u64)]) -> Vec<String> {
    let lw = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0);
    let cw = rows.iter().map(|r| thousands(r.1).len()).max().unwrap_or(0);
    rows.iter()
        .map(|(label, n, of)| {
            let pct = 100.0 * *n as f64 / (*of).max(1) as f64;
            format!("{label:<lw$} {:>cw$} {pct:>5.1}%", thousands(*n))
        })
        .collect()
}

/// Colours by class code, with one legend entry per code present.
fn by_class(labels: &[u32], naming: Naming, title: String) -> Coloring {
    let mut counts = std::collections::BTreeMap::<u32, u64>::new();
    for &l in labels {
        *counts.entry(l).or_insert(0) += 1;
    }
    let cw = counts
        .keys()
        .map(|c| c.to_string().len())
        .max()
        .unwrap_or(1);
    let all = labels.len() as u64;
    let rows: Vec<(String, u64, u64)> = counts
        .iter()
        .map(|(&code, &n)| {
            let name = naming.name(code).replace('_', " ");
            let label = if name == code.to_string() {
                format!("{code:>cw$}")
            } else {
                format!("{code:>cw$} {name}")
            };
            (label, n, all)
        })
        .collect();
    let legend = counts
        .keys()
        .zip(aligned(&rows))
        .map(|(&code, text)| Entry {
            color: class_color(naming, code),
            text,
        })
        .collect();
    // A small table: codes are few, points many.
    let table: std::collections::HashMap<u32, Rgb> = counts
        .keys()
        .map(|&c| (c, class_color(naming, c)))
        .collect();
    Coloring {
        colors: labels.iter().map(|l| table[l]).collect(),
        legend,
        title,
    }
}

/// Grey where `pred` equals `truth`, red elsewhere, pale where the truth code is in `ignore`.
/// The correct and wrong shares are of the points not ignored (eval's OA and its complement);
/// the ignored share is of all points.
fn by_error(pred: &[u32], truth: &[u32], ignore: &[u32], truth_path: &Path) -> Coloring {
    let colors: Vec<Rgb> = pred
        .iter()
        .zip(truth)
        .map(|(p, t)| {
            if ignore.contains(t) {
                IGNORED
            } else if p == t {
                CORRECT
            } else {
                WRONG
            }
        })
        .collect();
    let count = |c: Rgb| colors.iter().filter(|&&x| x == c).count() as u64;
    let (wrong, ignored) = (count(WRONG), count(IGNORED));
    let (all, scored) = (pred.len() as u64, pred.len() as u64 - ignored);
    let mut rows = vec![
        ("correct".to_string(), scored - wrong, scored),
        ("wrong".to_string(), wrong, scored),
    ];
    let mut legend_colors = vec![CORRECT, WRONG];
    if ignored > 0 {
        rows.push(("ignored".to_string(), ignored, all));
        legend_colors.push(IGNORED);
    }
    let texts = aligned(&rows);
    Coloring {
        colors,
        legend: legend_colors
            .into_iter()
            .zip(texts)
            .map(|(color, text)| Entry { color, text })
            .collect(),
        title: format!("errors vs {}", file_name(truth_path)),
    }
}

/// Reads TRUTH's labels and checks they cover the same points as FILE.
fn truth_labels(truth: &Path, file: &Path, n: usize) -> anyhow::Result<Vec<u32>> {
    let t = read_labels(truth).with_context(|| format!("reading TRUTH {}", truth.display()))?;
    if t.len() != n {
        bail!(
            "point counts differ: FILE {} has {n} points, TRUTH {} has {}; both must hold the \
             same cloud in the same order",
            file.display(),
            truth.display(),
            t.len()
        );
    }
    Ok(t)
}

/// A point projected to the picture plane: horizontal and vertical (up) coordinates in metres,
/// and a depth where larger wins.
fn project(view: View, p: [f32; 3]) -> [f64; 3] {
    let [x, y, z] = p.map(f64::from);
    match view {
        View::Top => [x, y, z],
        View::Oblique => {
            let (sa, ca) = AZIMUTH_DEG.to_radians().sin_cos();
            let (se, ce) = ELEVATION_DEG.to_radians().sin_cos();
            // Right and forward (away from the viewer) horizontal axes.
            let u = x * ca - y * sa;
            let v = x * sa + y * ca;
            [u, v * se + z * ce, z * se - v * ce]
        }
    }
}

/// A round scale-bar length (1, 2 or 5 × 10^k metres) of at most `max_m` metres.
fn scale_bar_length(max_m: f64) -> f64 {
    if max_m.is_nan() || max_m <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(max_m.log10().floor());
    [5.0, 2.0, 1.0]
        .into_iter()
        .map(|k| k * p)
        .find(|&l| l <= max_m)
        .unwrap_or(p)
}

/// The rendered picture and what went into it.
#[derive(Debug)]
struct Picture {
    canvas: Canvas,
    point_size: i64,
}

/// Draws the cloud, the title and the legend.
fn draw(
    positions: &[[f32; 3]],
    coloring: &Coloring,
    view: View,
    width: usize,
    point_size: Option<u32>,
    title: &str,
    subtitle: &str,
) -> Picture {
    let ts = ((width as f64 / 640.0).round() as i64).clamp(1, 4);
    let m = 8 * ts;
    let line_h = 12 * ts;
    let w = width as i64;
    let proj: Vec<[f64; 3]> = positions.iter().map(|&p| project(view, p)).collect();
    let (mut lo, mut hi) = ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]);
    for q in &proj {
        for k in 0..2 {
            lo[k] = lo[k].min(q[k]);
            hi[k] = hi[k].max(q[k]);
        }
    }
    let ext = [(hi[0] - lo[0]).max(1e-3), (hi[1] - lo[1]).max(1e-3)];
    let pw = (w - 2 * m) as f64;
    let max_ph = 4.0 * w as f64;
    let s = (pw / ext[0]).min(max_ph / ext[1]);
    let (plot_w, plot_h) = ((ext[0] * s).ceil() as i64, (ext[1] * s).ceil() as i64);
    let px0 = m + (w - 2 * m - plot_w) / 2;
    // The subtitle on one line, or, when it does not fit, broken after its first part (the
    // colouring) so that a long truth name or --map stays readable.
    let chars_per_line = ((w - 2 * m) / (6 * ts)).max(1) as usize;
    let sub_lines: Vec<&str> = match subtitle.split_once(" | ") {
        Some((first, rest)) if subtitle.chars().count() > chars_per_line => vec![first, rest],
        _ => vec![subtitle],
    };
    let py0 = m + (1 + sub_lines.len() as i64) * line_h + m / 2;

    // Point size: a bit over the mean horizontal spacing (airborne scans come in lines).
    let size = match point_size {
        Some(p) => i64::from(p.max(1)),
        None => {
            let b = bounds_xy(positions);
            let area = ((b[2] - b[0]).max(1e-3) * (b[3] - b[1]).max(1e-3)).max(1e-6);
            let spacing = (area / positions.len().max(1) as f64).sqrt();
            ((1.8 * spacing * s).ceil() as i64).clamp(1, 16)
        }
    };

    // Legend grid, column by column.
    let sw_w = 10 * ts;
    let sw_h = 7 * ts;
    let text_w = coloring
        .legend
        .iter()
        .map(|e| text_width(&e.text) as i64 * ts)
        .max()
        .unwrap_or(0);
    let cell_w = sw_w + 4 * ts + text_w + 16 * ts;
    let n = coloring.legend.len() as i64;
    let cols = ((w - 2 * m + 16 * ts) / cell_w).clamp(1, n.max(1));
    let rows = (n + cols - 1) / cols;
    let legend_y = py0 + plot_h + m;
    let height = legend_y + rows * line_h + m;

    let mut c = Canvas::new(width, height as usize, BACKGROUND);
    // The plot spans [px0, px0 + plot_w] × [py0, py0 + plot_h]; the frame lies just outside.
    c.stroke_rect(px0 - 1, py0 - 1, plot_w + 3, plot_h + 3, 1, FRAME);
    c.set_clip(px0, py0, px0 + plot_w + 1, py0 + plot_h + 1);
    for (q, &col) in proj.iter().zip(&coloring.colors) {
        let x = px0 + ((q[0] - lo[0]) * s).round() as i64;
        let y = py0 + ((hi[1] - q[1]) * s).round() as i64;
        c.splat(x, y, size, q[2] as f32, col);
    }

    // Scale bar on the title line, at the right.
    let bar_m = scale_bar_length((w as f64 / 6.0) / s);
    let bar_px = (bar_m * s).round() as i64;
    let label = if bar_m >= 1.0 {
        format!("{bar_m:.0} m")
    } else {
        format!("{bar_m} m")
    };
    let bar_x1 = w - m;
    let bar_x0 = bar_x1 - bar_px;
    let cap = 7 * ts;
    c.fill_rect(bar_x0, m + cap / 2 - ts / 2, bar_px, ts.max(1), INK);
    c.fill_rect(bar_x0, m, ts, cap, INK);
    c.fill_rect(bar_x1 - ts, m, ts, cap, INK);
    let label_x = bar_x0 - 3 * ts - text_width(&label) as i64 * ts;
    c.text(label_x, m, &label, ts, INK);

    // Title (left of the scale bar) and subtitle, shortened to what fits.
    let fit = |t: &str, right: i64| {
        let room = ((right - m) / (6 * ts)).max(0) as usize;
        if t.chars().count() > room {
            t.chars().take(room.saturating_sub(3)).collect::<String>() + "..."
        } else {
            t.to_string()
        }
    };
    c.text(m, m, &fit(title, label_x - 6 * ts), ts, INK);
    for (i, line) in sub_lines.iter().enumerate() {
        c.text(m, m + (1 + i as i64) * line_h, &fit(line, w - m), ts, INK);
    }

    // Legend.
    for (i, e) in coloring.legend.iter().enumerate() {
        let (col, row) = (i as i64 / rows, i as i64 % rows);
        let x = m + col * cell_w;
        let y = legend_y + row * line_h;
        c.fill_rect(x, y, sw_w, sw_h, e.color);
        c.stroke_rect(x, y, sw_w, sw_h, 1, INK);
        c.text(x + sw_w + 4 * ts, y, &e.text, ts, INK);
    }
    debug_assert!(GLYPH_H as i64 * ts <= line_h);
    Picture {
        canvas: c,
        point_size: size,
    }
}

/// Min x, min y, max x, max y of local coordinates.
fn bounds_xy(p: &[[f32; 3]]) -> [f64; 4] {
    let mut b = [
        f64::INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NEG_INFINITY,
    ];
    for q in p {
        b[0] = b[0].min(f64::from(q[0]));
        b[1] = b[1].min(f64::from(q[1]));
        b[2] = b[2].max(f64::from(q[0]));
        b[3] = b[3].max(f64::from(q[1]));
    }
    b
}

/// The points to draw: of FILE, or of every file of the folder FILE, in one frame.
struct Scene {
    positions: Vec<[f32; 3]>,
    /// The labels, or the first file that has none.
    labels: Result<Vec<u32>, PathBuf>,
    /// --truth's labels, point for point.
    truth: Option<Vec<u32>>,
    files: usize,
    /// The first file, and its truth (whose formats name the classes).
    first: PathBuf,
    first_truth: PathBuf,
}

/// Reads FILE (and --truth), or, when FILE is a folder of tiles, each of its files (at every
/// depth with --recursive) with the truth of the same path in the --truth folder, into one frame.
fn load(args: &RenderArgs) -> anyhow::Result<Scene> {
    let (files, truths): (Vec<PathBuf>, Vec<Option<PathBuf>>) = if is_folder_of_files(&args.file) {
        let files = expand_tree(std::slice::from_ref(&args.file), args.recursive, None)?;
        let truths = match &args.truth {
            None => vec![None; files.len()],
            Some(t) if t.is_dir() => {
                let (truths, _) = walk(t, args.recursive, None, &mut |f: &Path| has_labels(f))?;
                files
                    .iter()
                    .map(|f| match truth_index(&f.rel, &truths) {
                        Some(j) => Ok(Some(truths[j].path.clone())),
                        None => bail!(
                            "{}: no truth for this file in {} (a file of the same name, or of \
                             the same name before the extension)",
                            f.path.display(),
                            t.display()
                        ),
                    })
                    .collect::<anyhow::Result<_>>()?
            }
            Some(t) => bail!(
                "{}: FILE is a folder, so --truth must be one too (its files paired by name); {} is not",
                args.file.display(),
                t.display()
            ),
        };
        (files.into_iter().map(|f| f.path).collect(), truths)
    } else {
        (vec![args.file.clone()], vec![args.truth.clone()])
    };
    let mut scene = Scene {
        positions: Vec::new(),
        labels: Ok(Vec::new()),
        truth: args.truth.as_ref().map(|_| Vec::new()),
        files: files.len(),
        first: files[0].clone(),
        first_truth: truths[0].clone().unwrap_or_else(|| files[0].clone()),
    };
    // Every file in the first one's frame: its coordinates, appended.
    let mut frame: Option<randla_io::PointCloud> = None;
    for (file, truth) in files.iter().zip(&truths) {
        let mut cloud = match randla_io::read(file) {
            // An empty tile of a folder adds nothing to the picture.
            Err(randla_io::Error::Empty { .. })
                if files.len() > 1 && super::inputs::las_without_points(file) =>
            {
                continue;
            }
            r => r.with_context(|| format!("reading FILE {}", file.display()))?,
        };
        let n = cloud.len();
        match (&mut scene.labels, cloud.labels.take()) {
            (Ok(all), Some(l)) => all.extend(l),
            (Ok(_), None) => scene.labels = Err(file.clone()),
            (Err(_), _) => {}
        }
        if let (Some(all), Some(t)) = (&mut scene.truth, truth) {
            all.extend(truth_labels(t, file, n)?);
        }
        cloud.features.clear();
        frame
            .get_or_insert_with(|| randla_io::PointCloud::with_origin(cloud.origin))
            .append(&cloud)
            .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    }
    scene.positions = frame.map(|f| f.positions).unwrap_or_default();
    if scene.positions.is_empty() {
        bail!("{}: has no points to draw", args.file.display());
    }
    Ok(scene)
}

/// Runs `randla render`.
pub fn run(args: RenderArgs) -> anyhow::Result<()> {
    if !(320..=8192).contains(&args.width) {
        bail!(
            "--width {} is out of range: give 320 to 8192 pixels",
            args.width
        );
    }
    let is_png = args
        .output
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"));
    if !is_png {
        bail!("{}: the output must be a .png file", args.output.display());
    }
    if args.color == ColorBy::Error && args.truth.is_none() {
        bail!(
            "--color error needs --truth TRUTH: comparing {} with its own labels would show no \
             error at all",
            args.file.display()
        );
    }
    if args.ignore.is_some() && args.color != ColorBy::Error {
        bail!(
            "--ignore only applies to --color error (it leaves points out of the error count); \
             to hide classes in the other views, --map them onto one code"
        );
    }
    let mut inputs: Vec<&Path> = vec![&args.file];
    if let Some(t) = &args.truth {
        inputs.push(t);
    }
    randla_io::atomic::check_output(&args.output, &inputs, args.force)?;

    let scene = load(&args)?;
    let n = scene.positions.len();
    let map = args.map.clone().unwrap_or_default();
    let own = || -> anyhow::Result<Vec<u32>> {
        let mut labels = match &scene.labels {
            Ok(l) => l.clone(),
            Err(file) => bail!(
                "{}: has no labels to colour by (expected a LAS/LAZ classification, a PLY \
                 label property, or a label column)",
                file.display()
            ),
        };
        map.apply(&mut labels);
        Ok(labels)
    };
    let truth = || -> anyhow::Result<Vec<u32>> {
        let mut labels = scene.truth.clone().context("--truth was checked above")?;
        map.apply(&mut labels);
        Ok(labels)
    };
    let mut coloring = match (args.color, &args.truth) {
        (ColorBy::Class, _) | (ColorBy::Truth, None) => {
            let what = if args.color == ColorBy::Class {
                "classes"
            } else {
                "truth (its own labels)"
            };
            by_class(&own()?, Naming::for_file(&scene.first), what.to_string())
        }
        (ColorBy::Truth, Some(t)) => by_class(
            &truth()?,
            Naming::for_file(&scene.first_truth),
            format!("truth of {}", file_name(t)),
        ),
        (ColorBy::Error, Some(t)) => {
            let ignore = args.ignore.as_ref().map_or(&[][..], |c| &c.0[..]);
            by_error(&own()?, &truth()?, ignore, t)
        }
        (ColorBy::Error, None) => unreachable!("checked above"),
    };
    if !map.is_empty() {
        coloring.title += &format!(" (mapped {map})");
    }
    let view = match args.view {
        View::Top => "top",
        View::Oblique => "oblique",
    };
    let title = file_name(&args.file);
    let files = if scene.files > 1 {
        format!(" in {} files", scene.files)
    } else {
        String::new()
    };
    let subtitle = format!(
        "colour: {} | {view} view | {} points{files}",
        coloring.title,
        thousands(n as u64)
    );
    let pic = draw(
        &scene.positions,
        &coloring,
        args.view,
        args.width as usize,
        args.point_size,
        &title,
        &subtitle,
    );
    let bytes = pic
        .canvas
        .to_png()
        .with_context(|| format!("{}: encoding PNG", args.output.display()))?;
    randla_io::atomic::write_atomic(&args.output, &inputs, args.force, |f| {
        f.write_all_or_err(&bytes)
    })?;
    println!(
        "wrote {} ({}x{} px, {} points, {view} view, {} px per point, {} bytes)",
        args.output.display(),
        pic.canvas.width,
        pic.canvas.height,
        n,
        pic.point_size,
        bytes.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_bar_is_round_and_fits() {
        assert_eq!(scale_bar_length(12.0), 10.0);
        assert_eq!(scale_bar_length(7.0), 5.0);
        assert_eq!(scale_bar_length(3.0), 2.0);
        assert_eq!(scale_bar_length(0.3), 0.2);
        assert_eq!(scale_bar_length(0.0), 1.0);
    }

    #[test]
    fn oblique_projection_at_known_points() {
        // Top view is the identity.
        assert_eq!(project(View::Top, [1.0, 2.0, 3.0]), [1.0, 2.0, 3.0]);
        // A point higher up appears higher on the screen and nearer to the viewer; a point
        // further along the viewing direction appears higher and further away.
        let o = project(View::Oblique, [0.0, 0.0, 0.0]);
        let up = project(View::Oblique, [0.0, 0.0, 1.0]);
        assert!(up[1] > o[1] && up[2] > o[2]);
        let (sa, ca) = AZIMUTH_DEG.to_radians().sin_cos();
        let far = project(View::Oblique, [sa as f32, ca as f32, 0.0]);
        assert!(far[0].abs() < 1e-6 && far[1] > 0.0 && far[2] < 0.0);
    }

    #[test]
    fn top_view_draws_the_highest_point_and_a_legend() {
        // Two points at the same place inside the plot: the higher (class 6) must hide the
        // lower (class 2). Two class-1 points at the corners.
        let positions = [
            [5.0, 5.0, 1.0],
            [5.0, 5.0, 5.0],
            [0.0, 0.0, 0.0],
            [10.0, 10.0, 0.0],
        ];
        let coloring = by_class(&[2, 6, 1, 1], Naming::Asprs, "classes".into());
        assert_eq!(coloring.legend.len(), 3);
        assert!(coloring.legend[1].text.starts_with("2 ground"));
        assert!(coloring.legend[0].text.contains("50.0%"));
        let pic = draw(&positions, &coloring, View::Top, 400, Some(3), "t", "s");
        let c = &pic.canvas;
        assert_eq!(c.width, 400);
        let count = |rgb: Rgb| {
            (0..c.height)
                .flat_map(|y| (0..c.width).map(move |x| (x, y)))
                .filter(|&(x, y)| c.get(x, y) == rgb)
                .count()
        };
        let building = asprs_color(6).unwrap();
        let ground = asprs_color(2).unwrap();
        // A legend swatch is 10×7 minus its 1-px outline: 8×5. Building: one 3×3 splat and its
        // swatch; ground: only its swatch (hidden in the plot).
        assert_eq!(count(building), 9 + 40);
        assert_eq!(count(ground), 40);
        // The corner points are clipped to the plot: a quarter-ish of their squares remain.
        assert_eq!(count(asprs_color(1).unwrap()), 4 + 4 + 40);
    }

    #[test]
    fn a_subtitle_too_long_for_one_line_takes_two() {
        let positions = [[0.0, 0.0, 0.0], [10.0, 10.0, 0.0]];
        let coloring = by_class(&[2, 6], Naming::Asprs, "classes".into());
        let height = |subtitle: &str| {
            draw(
                &positions,
                &coloring,
                View::Top,
                640,
                Some(3),
                "t",
                subtitle,
            )
            .canvas
            .height
        };
        // 640 px at text scale 1: 104 characters of 6 px fit between the margins.
        let short = height("colour: classes | top view | 2 points");
        let long = height(&format!(
            "colour: errors vs {} | top view | 2 points",
            "x".repeat(90)
        ));
        assert_eq!(long, short + 12);
        // Without a place to break, the line is cut instead.
        assert_eq!(height(&"x".repeat(200)), short);
    }

    #[test]
    fn error_coloring_counts() {
        let c = by_error(&[1, 2, 3, 4], &[1, 2, 0, 0], &[], Path::new("t.laz"));
        assert_eq!(c.colors, [CORRECT, CORRECT, WRONG, WRONG]);
        assert_eq!(c.legend.len(), 2);
        assert!(c.legend[1].text.starts_with("wrong") && c.legend[1].text.ends_with("50.0%"));
        // Ignored truth codes: drawn pale, left out of the correct/wrong shares (3 scored
        // points, 2 correct), their own share of all 5 points.
        let c = by_error(&[1, 2, 3, 4, 9], &[1, 2, 0, 7, 7], &[7], Path::new("t.laz"));
        assert_eq!(c.colors, [CORRECT, CORRECT, WRONG, IGNORED, IGNORED]);
        let texts: Vec<&str> = c.legend.iter().map(|e| e.text.as_str()).collect();
        assert_eq!(
            texts,
            ["correct 2  66.7%", "wrong   1  33.3%", "ignored 2  40.0%"]
        );
    }
}
