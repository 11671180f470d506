//! Preprocessing and its on-disk cache.
//!
//! A training cloud is read, its labels mapped to training classes, its input features scaled,
//! and it is grid-subsampled (barycentres, mean features, majority label, back-projection index).
//! The result is stored as one file per cloud, named after the cloud and a key: the xxh3 hash of
//! the source's bytes (all of them: point and label files, every object file of an S3DIS room)
//! and of the preprocessing parameters. A file holds a magic, a version, a JSON header (key,
//! sizes), the arrays, and an xxh3 checksum of all that; a file whose checksum, header or size
//! does not match is rebuilt.

use std::io::Read;
use std::path::{Path, PathBuf};

use randla_geom::sampling::grid_subsample;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::{Xxh3, xxh3_64};

use crate::config::{ClassMap, Layout, TrainConfig};
use crate::dataset;
use crate::error::{Error, Result};

const MAGIC: &[u8; 8] = b"RLTCACHE";
const VERSION: u32 = 1;

/// A grid-subsampled training or validation cloud.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    /// The source file (or folder).
    pub source: PathBuf,
    /// Subsampled points (the cloud's local frame).
    pub points: Vec<[f32; 3]>,
    /// `[points, channels]` scaled input features (after xyz).
    pub features: Vec<f32>,
    /// Feature channels.
    pub channels: usize,
    /// Training class per subsampled point ([`crate::config::IGNORED`] for ignored ones).
    pub labels: Vec<u32>,
    /// For every original point, its subsampled point.
    pub proj: Vec<u32>,
}

impl Prepared {
    /// Subsampled points.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// True when there is no point.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// Points per class (ignored points not counted).
    pub fn class_counts(&self, num_classes: usize) -> Vec<u64> {
        let mut c = vec![0u64; num_classes];
        for &l in &self.labels {
            if (l as usize) < num_classes {
                c[l as usize] += 1;
            }
        }
        c
    }
}

/// What the cache did for one cloud.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheStatus {
    /// A valid entry was there and was used.
    Hit,
    /// There was no entry; it was built and stored.
    Miss,
    /// An entry was there but corrupt or stale (the reason); it was rebuilt.
    Rebuilt(String),
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Header {
    key: String,
    source: String,
    points: usize,
    channels: usize,
    original: usize,
}

/// The files whose bytes make up one item.
fn item_files(path: &Path, layout: Layout) -> Result<Vec<PathBuf>> {
    Ok(match layout {
        Layout::S3dis => randla_io::formats::s3dis::room_files(path)?,
        Layout::Semantic3d => vec![path.to_path_buf(), path.with_extension("labels")],
        Layout::Semantickitti => {
            let l = randla_io::formats::kitti::labels_path(path);
            if l.is_file() {
                vec![path.to_path_buf(), l]
            } else {
                vec![path.to_path_buf()]
            }
        }
        _ => vec![path.to_path_buf()],
    })
}

/// xxh3 of the bytes of every file of an item, streamed.
pub fn content_hash(path: &Path, layout: Layout) -> Result<u64> {
    let mut h = Xxh3::new();
    let mut buf = vec![0u8; 1 << 20];
    for f in item_files(path, layout)? {
        let mut file = std::fs::File::open(&f).map_err(|e| Error::io(&f, "open for hashing", e))?;
        loop {
            let n = file
                .read(&mut buf)
                .map_err(|e| Error::io(&f, "read for hashing", e))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        h.update(
            f.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
                .as_bytes(),
        );
    }
    Ok(h.digest())
}

/// The cache key of an item: its content and every preprocessing parameter.
pub fn cache_key(path: &Path, config: &TrainConfig) -> Result<String> {
    let content = content_hash(path, config.data.layout)?;
    let params = serde_json::json!({
        "layout": config.data.layout,
        "grid": config.data.grid_size,
        "features": config.input.features,
        "scale": config.input.scale,
        "codes": config.classes.codes,
        "ignore": config.classes.ignore,
        "strict": config.classes.strict,
        "version": VERSION,
    });
    Ok(format!(
        "{content:016x}-{:016x}",
        xxh3_64(params.to_string().as_bytes())
    ))
}

/// Reads and subsamples one item (no cache).
pub fn preprocess(path: &Path, config: &TrainConfig) -> Result<Prepared> {
    let cloud = dataset::read_item(path, config.data.layout)?;
    let raw = cloud.labels.as_ref().ok_or_else(|| Error::Dataset {
        path: path.into(),
        message: "has no labels".into(),
    })?;
    let map = ClassMap::new(&config.classes);
    let labels = map.map_all(raw, path)?;
    let feats = dataset::input_features(&cloud, &config.input, path)?;
    let nf = config.input.features.len();
    let sub = grid_subsample(
        &cloud.positions,
        &feats,
        nf,
        Some(&labels),
        config.data.grid_size,
    )?;
    Ok(Prepared {
        source: path.into(),
        labels: sub.labels.unwrap_or_default(),
        points: sub.points,
        features: sub.features,
        channels: nf,
        proj: sub.proj,
    })
}

fn encode(p: &Prepared, key: &str) -> Vec<u8> {
    let header = Header {
        key: key.into(),
        source: p.source.display().to_string(),
        points: p.len(),
        channels: p.channels,
        original: p.proj.len(),
    };
    let hj = serde_json::to_vec(&header).expect("header serialises");
    let mut out =
        Vec::with_capacity(32 + hj.len() + p.len() * (16 + 4 * p.channels) + p.proj.len() * 4);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(hj.len() as u64).to_le_bytes());
    out.extend_from_slice(&hj);
    for q in &p.points {
        for v in q {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    for v in &p.features {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for v in p.labels.iter().chain(&p.proj) {
        out.extend_from_slice(&v.to_le_bytes());
    }
    let sum = xxh3_64(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

fn decode(bytes: &[u8], key: &str, source: &Path) -> std::result::Result<Prepared, String> {
    if bytes.len() < 28 || &bytes[..8] != MAGIC {
        return Err("not a cache file (bad magic)".into());
    }
    let (body, sum) = bytes.split_at(bytes.len() - 8);
    if xxh3_64(body) != u64::from_le_bytes(sum.try_into().expect("8 bytes")) {
        return Err("checksum mismatch (corrupt)".into());
    }
    let version = u32::from_le_bytes(body[8..12].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(format!("version {version}, expected {VERSION}"));
    }
    let hl = u64::from_le_bytes(body[12..20].try_into().expect("8 bytes")) as usize;
    let h: Header = body
        .get(20..20 + hl)
        .and_then(|s| serde_json::from_slice(s).ok())
        .ok_or("unreadable header")?;
    if h.key != key {
        return Err(format!("stale: key {} ≠ {key}", h.key));
    }
    let mut at = 20 + hl;
    let need = h.points * (3 + h.channels + 1) * 4 + h.original * 4;
    if body.len() - at != need {
        return Err(format!(
            "{} payload bytes, expected {need}",
            body.len() - at
        ));
    }
    let mut f32s = |n: usize| {
        let v: Vec<f32> = body[at..at + 4 * n]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4")))
            .collect();
        at += 4 * n;
        v
    };
    let flat = f32s(h.points * 3);
    let features = f32s(h.points * h.channels);
    let u32s = |from: usize, n: usize| -> Vec<u32> {
        body[from..from + 4 * n]
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().expect("4")))
            .collect()
    };
    let labels = u32s(at, h.points);
    let proj = u32s(at + 4 * h.points, h.original);
    Ok(Prepared {
        source: source.into(),
        points: flat.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect(),
        features,
        channels: h.channels,
        labels,
        proj,
    })
}

/// The cache file of an item.
pub fn cache_path(dir: &Path, item: &Path, key: &str) -> PathBuf {
    let stem = item
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "cloud".into());
    dir.join(format!("{stem}-{key}.rlcache"))
}

/// The preprocessed item from the cache in `dir`, building (and storing) it when missing,
/// corrupt or stale.
pub fn load_or_build(
    dir: &Path,
    item: &Path,
    config: &TrainConfig,
) -> Result<(Prepared, CacheStatus)> {
    let key = cache_key(item, config)?;
    let file = cache_path(dir, item, &key);
    let status = match std::fs::read(&file) {
        Ok(bytes) => match decode(&bytes, &key, item) {
            Ok(p) => return Ok((p, CacheStatus::Hit)),
            Err(why) => CacheStatus::Rebuilt(why),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => CacheStatus::Miss,
        Err(e) => CacheStatus::Rebuilt(e.to_string()),
    };
    let p = preprocess(item, config)?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, "create the cache folder", e))?;
    crate::checkpoint::write_atomic(&file, &encode(&p, &key))?;
    Ok((p, status))
}
