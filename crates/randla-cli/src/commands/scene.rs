//! Clouds with real structure for benchmarks: the shipped IGN LiDAR HD block, cropped around a
//! random centre (the reference sampler's "num_points nearest to a centre"), or tiled when more
//! points are asked for than it holds.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The block's points (local coordinates), their [intensity/65535, return/5, returns/5] and
/// classification codes.
#[derive(Debug)]
pub struct Scene {
    /// Local coordinates (common origin).
    pub points: Vec<[f32; 3]>,
    /// Three features per point.
    pub features: Vec<[f32; 3]>,
    /// Classification code per point (0 where a file has none).
    pub codes: Vec<u32>,
    /// Extent of the block in x and y.
    pub extent: [f32; 2],
}

/// The default data folder: `data/ign-lidar-hd` of the repository this binary was built from,
/// or `RANDLA_DATA` when set.
pub fn default_data_dir() -> PathBuf {
    std::env::var_os("RANDLA_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/ign-lidar-hd"))
}

/// Reads every `.laz`/`.las` of `dir` into one scene.
pub fn load(dir: &Path) -> anyhow::Result<Scene> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("{}: cannot list the benchmark data folder", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("laz") || e.eq_ignore_ascii_case("las"))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        bail!(
            "{}: no .las/.laz file to build benchmark clouds from",
            dir.display()
        );
    }
    let mut points = Vec::new();
    let mut features = Vec::new();
    let mut codes = Vec::new();
    let mut origin: Option<[f64; 3]> = None;
    for f in &files {
        let c = randla_io::read(f)?;
        let o = *origin.get_or_insert(c.origin);
        let shift: [f32; 3] = std::array::from_fn(|d| (c.origin[d] - o[d]) as f32);
        let col = |name: &str| {
            c.feature(name)
                .map(|v| v.to_vec())
                .unwrap_or_else(|| vec![0.0; c.len()])
        };
        let (inten, ret, nret) = (
            col("intensity"),
            col("return_number"),
            col("number_of_returns"),
        );
        match &c.labels {
            Some(l) => codes.extend_from_slice(l),
            None => codes.resize(codes.len() + c.len(), 0),
        }
        for i in 0..c.len() {
            let p = c.positions[i];
            points.push([p[0] + shift[0], p[1] + shift[1], p[2] + shift[2]]);
            features.push([inten[i] / 65535.0, ret[i] / 5.0, nret[i] / 5.0]);
        }
    }
    let (lo, hi) = randla_geom::knn::bounds(&points);
    Ok(Scene {
        points,
        features,
        codes,
        extent: [hi[0] - lo[0], hi[1] - lo[1]],
    })
}

/// A crop of a [`Scene`].
#[derive(Debug)]
pub struct Crop {
    /// Coordinates, recentred.
    pub points: Vec<[f32; 3]>,
    /// `channels` input features per point, row-major.
    pub features: Vec<f32>,
    /// The scene's classification code per point.
    pub codes: Vec<u32>,
}

/// A crop of `n` points in shuffled order, recentred (x, y around the crop centre, z from its
/// minimum), with `channels` input features per point: xyz then the scene's three features
/// (zero-padded or cut to `channels`).
pub fn crop(scene: &Scene, n: usize, channels: usize, seed: u64) -> Crop {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // Tile the block when it is too small: copies side by side, 1 m apart.
    let copies = n.div_ceil(scene.points.len()).max(1);
    let side = (copies as f64).sqrt().ceil() as usize;
    let total = copies * scene.points.len();
    let at = |i: usize| {
        let (c, j) = (i / scene.points.len(), i % scene.points.len());
        let p = scene.points[j];
        let (cx, cy) = ((c % side) as f32, (c / side) as f32);
        (
            [
                p[0] + cx * (scene.extent[0] + 1.0),
                p[1] + cy * (scene.extent[1] + 1.0),
                p[2],
            ],
            scene.features[j],
            scene.codes[j],
        )
    };
    let centre = at(rng.random_range(0..total)).0;
    let mut order: Vec<(f32, u32)> = (0..total)
        .map(|i| {
            let p = at(i).0;
            (
                (p[0] - centre[0]).powi(2) + (p[1] - centre[1]).powi(2),
                i as u32,
            )
        })
        .collect();
    if n < total {
        order.select_nth_unstable_by(n - 1, |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        order.truncate(n);
    }
    for i in (1..order.len()).rev() {
        let j = rng.random_range(0..=i);
        order.swap(i, j);
    }
    let zmin = order
        .iter()
        .map(|&(_, i)| at(i as usize).0[2])
        .fold(f32::MAX, f32::min);
    let mut pts = Vec::with_capacity(n);
    let mut feats = Vec::with_capacity(n * channels);
    let mut codes = Vec::with_capacity(n);
    for &(_, i) in &order {
        let (p, f, code) = at(i as usize);
        codes.push(code);
        let q = [p[0] - centre[0], p[1] - centre[1], p[2] - zmin];
        pts.push(q);
        let all = [q[0], q[1], q[2], f[0], f[1], f[2]];
        feats.extend((0..channels).map(|c| all.get(c).copied().unwrap_or(0.0)));
    }
    Crop {
        points: pts,
        features: feats,
        codes,
    }
}
