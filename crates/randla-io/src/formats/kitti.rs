//! SemanticKITTI: `velodyne/*.bin` scans (float32 x y z remission), `labels/*.label` (uint32;
//! semantic class in the low 16 bits, instance id in the high 16) and the dataset yaml's
//! `learning_map` / `learning_map_inv`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::atomic::write_atomic;
use crate::cloud::PointCloud;
use crate::error::{Error, Result};

/// The raw-label ↔ training-class mapping of a SemanticKITTI yaml file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LearningMap {
    /// `learning_map`: raw semantic label → training class.
    pub map: BTreeMap<u32, u32>,
    /// `learning_map_inv`: training class → raw semantic label (may be empty).
    pub inverse: BTreeMap<u32, u32>,
}

impl LearningMap {
    /// Loads `learning_map` (required) and `learning_map_inv` (optional) from a yaml file.
    pub fn load(path: &Path) -> Result<LearningMap> {
        let bytes = super::read_nonempty(path)?;
        let text = super::as_utf8(path, &bytes)?;
        LearningMap::from_yaml(text, path)
    }

    /// Parses the two mappings from yaml text (block style `key: value` lines indented under
    /// the section name, or flow style `{k: v, ...}`); other sections are ignored.
    pub fn from_yaml(text: &str, path: &Path) -> Result<LearningMap> {
        let map = section(text, "learning_map", path)?.ok_or_else(|| {
            Error::invalid(
                path,
                "learning_map",
                "missing",
                "the yaml has no top-level learning_map section",
            )
        })?;
        if map.is_empty() {
            return Err(Error::empty(path, "learning_map has no entries"));
        }
        let inverse = section(text, "learning_map_inv", path)?.unwrap_or_default();
        Ok(LearningMap { map, inverse })
    }

    /// The training class of a raw label (semantic part only), if mapped.
    pub fn apply(&self, raw: u32) -> Option<u32> {
        self.map.get(&(raw & 0xFFFF)).copied()
    }

    /// The raw label of a training class, via `learning_map_inv`.
    pub fn to_raw(&self, class: u32) -> Option<u32> {
        self.inverse.get(&class).copied()
    }
}

fn strip_comment(line: &str) -> &str {
    line.split('#').next().unwrap_or("")
}

fn parse_pair(path: &Path, sec: &str, no: usize, s: &str) -> Result<(u32, u32)> {
    let (k, v) = s.split_once(':').ok_or_else(|| {
        Error::invalid(
            path,
            format!("{sec} (line {no})"),
            format!("{s:?}"),
            "expected `key: value`",
        )
    })?;
    let num = |t: &str| {
        t.trim().parse::<u32>().map_err(|_| {
            Error::invalid(
                path,
                format!("{sec} (line {no})"),
                format!("{:?}", t.trim()),
                "expected a non-negative integer",
            )
        })
    };
    Ok((num(k)?, num(v)?))
}

/// Reads the top-level section `name` as an integer map; `None` if absent.
fn section(text: &str, name: &str, path: &Path) -> Result<Option<BTreeMap<u32, u32>>> {
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    let head = format!("{name}:");
    while let Some((no, line)) = lines.next() {
        let l = strip_comment(line).trim_end();
        if !l.starts_with(&head) {
            continue;
        }
        let rest = l[head.len()..].trim();
        let mut m = BTreeMap::new();
        if !rest.is_empty() {
            let inner = rest
                .strip_prefix('{')
                .and_then(|r| r.strip_suffix('}'))
                .ok_or_else(|| {
                    Error::invalid(
                        path,
                        format!("{name} (line {no})"),
                        format!("{rest:?}"),
                        "expected a mapping",
                    )
                })?;
            for part in inner.split(',').filter(|p| !p.trim().is_empty()) {
                let (k, v) = parse_pair(path, name, no, part)?;
                m.insert(k, v);
            }
            return Ok(Some(m));
        }
        for (no, line) in lines.by_ref() {
            let l = strip_comment(line);
            if l.trim().is_empty() {
                continue;
            }
            if !l.starts_with([' ', '\t']) {
                break;
            }
            let (k, v) = parse_pair(path, name, no, l.trim())?;
            if m.insert(k, v).is_some() {
                return Err(Error::invalid(
                    path,
                    format!("{name} (line {no})"),
                    k,
                    "duplicate key",
                ));
            }
        }
        return Ok(Some(m));
    }
    Ok(None)
}

/// The label file of a scan: `sequences/NN/velodyne/X.bin` → `sequences/NN/labels/X.label`.
pub fn labels_path(scan: &Path) -> PathBuf {
    let stem = scan
        .file_stem()
        .map(|s| s.to_os_string())
        .unwrap_or_default();
    let mut name = stem;
    name.push(".label");
    match scan.parent().and_then(Path::parent) {
        Some(seq) => seq.join("labels").join(name),
        None => PathBuf::from(name),
    }
}

/// Reads a scan, with labels from `labels` or (when `None`) from [`labels_path`] if it exists.
/// Labels are the semantic part (low 16 bits), passed through `map` when given (an unmapped raw
/// label is an error). Feature: `remission`.
pub fn read_kitti(
    scan: &Path,
    labels: Option<&Path>,
    map: Option<&LearningMap>,
) -> Result<PointCloud> {
    let bytes = super::read_nonempty(scan)?;
    let mut cloud = read_kitti_scan_bytes(&bytes, scan)?;
    let lp = labels
        .map(Path::to_path_buf)
        .unwrap_or_else(|| labels_path(scan));
    if labels.is_some() || lp.is_file() {
        let lb = super::read_nonempty(&lp)?;
        cloud.labels = Some(read_kitti_label_bytes(&lb, &lp, cloud.len(), map)?);
    }
    Ok(cloud)
}

/// Decodes a scan held in memory (`float32 × 4` per point).
pub fn read_kitti_scan_bytes(bytes: &[u8], path: &Path) -> Result<PointCloud> {
    if bytes.is_empty() {
        return Err(Error::empty(path, "file has 0 bytes"));
    }
    if !bytes.len().is_multiple_of(16) {
        return Err(Error::truncated(
            path,
            "point records",
            "a multiple of 16 bytes (float32 x y z remission)",
            format!("{} bytes", bytes.len()),
        ));
    }
    let n = bytes.len() / 16;
    let mut cloud = PointCloud::default();
    cloud.positions.reserve(n);
    let mut rem = Vec::with_capacity(n);
    for (i, r) in bytes.chunks_exact(16).enumerate() {
        let f = |k: usize| f32::from_le_bytes([r[4 * k], r[4 * k + 1], r[4 * k + 2], r[4 * k + 3]]);
        let p = [f(0), f(1), f(2)];
        for (k, name) in ["x", "y", "z"].into_iter().enumerate() {
            super::check_finite(path, name, f64::from(p[k]), i as u64)?;
        }
        cloud.positions.push(p);
        rem.push(f(3));
    }
    cloud.set_feature("remission", rem);
    Ok(cloud)
}

/// Decodes a `.label` file held in memory, checking it has `points` entries.
pub fn read_kitti_label_bytes(
    bytes: &[u8],
    path: &Path,
    points: usize,
    map: Option<&LearningMap>,
) -> Result<Vec<u32>> {
    if !bytes.len().is_multiple_of(4) {
        return Err(Error::truncated(
            path,
            "labels",
            "a multiple of 4 bytes (uint32)",
            format!("{} bytes", bytes.len()),
        ));
    }
    let n = bytes.len() / 4;
    if n != points {
        return Err(Error::count(
            path,
            "labels (one per scan point)",
            points as u64,
            n as u64,
        ));
    }
    bytes
        .chunks_exact(4)
        .enumerate()
        .map(|(i, b)| {
            let sem = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) & 0xFFFF;
            match map {
                None => Ok(sem),
                Some(m) => m.apply(sem).ok_or_else(|| {
                    Error::invalid(
                        path,
                        format!("label of point {i}"),
                        sem,
                        "not in the learning_map",
                    )
                }),
            }
        })
        .collect()
}

/// Writes a `.label` file (uint32 little endian, instance id 0), atomically. Pass raw
/// SemanticKITTI ids (see [`LearningMap::to_raw`]) for a submission-ready file.
pub fn write_kitti_labels(path: &Path, labels: &[u32], overwrite: bool) -> Result<()> {
    if let Some((i, l)) = labels.iter().enumerate().find(|(_, l)| **l > 0xFFFF) {
        return Err(Error::argument(
            path,
            format!("labels[{i}]"),
            l,
            "semantic labels are 16-bit",
        ));
    }
    write_atomic(path, &[], overwrite, |out| {
        let mut buf = Vec::with_capacity(labels.len().min(1 << 16) * 4);
        for l in labels {
            buf.extend_from_slice(&l.to_le_bytes());
            if buf.len() >= 1 << 18 {
                out.write_all_or_err(&buf)?;
                buf.clear();
            }
        }
        out.write_all_or_err(&buf)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = "labels:\n  0 : \"unlabeled\"\n  10: \"car\"\ncolor_map: # bgr\n  0 : [0, 0, 0]\nlearning_map:\n  0 : 0     # \"unlabeled\"\n  10: 1     # \"car\"\n  252: 1    # \"moving-car\"\nlearning_map_inv: # inverse\n  0: 0\n  1: 10\nlearning_ignore:\n  0: True\n";

    #[test]
    fn parses_learning_map_sections() {
        let m = LearningMap::from_yaml(YAML, Path::new("k.yaml")).unwrap();
        assert_eq!(m.map.len(), 3);
        assert_eq!(m.apply(252 | (7 << 16)), Some(1));
        assert_eq!(m.to_raw(1), Some(10));
        let flow =
            LearningMap::from_yaml("learning_map: {0: 0, 10: 1}\n", Path::new("k.yaml")).unwrap();
        assert_eq!(flow.apply(10), Some(1));
        let e = LearningMap::from_yaml("learning_map:\n  a: 1\n", Path::new("k.yaml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("k.yaml") && e.contains("line 2") && e.contains("\"a\""),
            "{e}"
        );
        assert!(LearningMap::from_yaml("labels:\n  0: x\n", Path::new("k.yaml")).is_err());
    }

    #[test]
    fn label_path_follows_layout() {
        assert_eq!(
            labels_path(Path::new("seq/00/velodyne/000123.bin")),
            Path::new("seq/00/labels/000123.label")
        );
    }
}
