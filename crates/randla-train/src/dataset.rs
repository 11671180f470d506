//! Dataset entries to files, per layout, and files to labelled clouds with their input features.

use std::path::{Path, PathBuf};

use randla_io::{PointCloud, ReadOptions};

use crate::config::{InputConfig, Layout};
use crate::error::{Error, Result};

/// Extensions of the generic layout.
const GENERIC_EXT: [&str; 6] = ["las", "laz", "ply", "xyz", "csv", "pts"];

/// True when `name` matches `pattern` (`*` = any run of characters, the rest literal).
pub fn wildcard_match(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let mut rest = name;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.len() >= part.len() && rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
    }
    true
}

fn list_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir, "list the folder", e))?;
    let mut out = Vec::new();
    for e in rd {
        out.push(e.map_err(|e| Error::io(dir, "list the folder", e))?.path());
    }
    out.sort();
    Ok(out)
}

fn ext_of(p: &Path) -> String {
    p.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default()
}

/// Whether a path is a data file (or a room folder, for S3DIS) of `layout`.
fn is_item(p: &Path, layout: Layout) -> bool {
    match layout {
        Layout::Las => p.is_file() && GENERIC_EXT.contains(&ext_of(p).as_str()),
        Layout::S3dis => p.is_dir() && p.join("Annotations").is_dir(),
        Layout::Semantic3d => {
            p.is_file() && ext_of(p) == "txt" && p.with_extension("labels").is_file()
        }
        Layout::Semantickitti => p.is_file() && ext_of(p) == "bin",
        Layout::Toronto3d => p.is_file() && ext_of(p) == "ply",
    }
}

/// The items inside a folder entry.
fn expand_dir(dir: &Path, layout: Layout) -> Result<Vec<PathBuf>> {
    if layout == Layout::S3dis && is_item(dir, layout) {
        return Ok(vec![dir.to_path_buf()]);
    }
    if layout == Layout::Semantickitti {
        // A sequence folder holds velodyne/; the dataset's `sequences` folder holds sequences.
        if dir.join("velodyne").is_dir() {
            return Ok(list_dir(&dir.join("velodyne"))?
                .into_iter()
                .filter(|p| is_item(p, layout))
                .collect());
        }
        let mut out = Vec::new();
        for s in list_dir(dir)? {
            if s.join("velodyne").is_dir() {
                out.extend(expand_dir(&s, layout)?);
            }
        }
        return Ok(out);
    }
    Ok(list_dir(dir)?
        .into_iter()
        .filter(|p| is_item(p, layout))
        .collect())
}

/// The files (or S3DIS room folders) named by `entries` under `root`, in order, without
/// duplicates. `field` names the configuration field in errors.
pub fn resolve(
    entries: &[String],
    root: &Path,
    layout: Layout,
    field: &str,
    config: &Path,
) -> Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = Vec::new();
    for entry in entries {
        let path = root.join(entry);
        let found = if entry.contains('*') {
            let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
            let pat = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if dir.to_string_lossy().contains('*') {
                return Err(Error::config(
                    config,
                    field,
                    entry,
                    "`*` may appear only in the last path component",
                ));
            }
            let mut v = Vec::new();
            for p in list_dir(&dir)? {
                let name = p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if wildcard_match(&pat, &name) {
                    if is_item(&p, layout) {
                        v.push(p);
                    } else if p.is_dir() {
                        v.extend(expand_dir(&p, layout)?);
                    }
                }
            }
            v
        } else if path.is_dir() {
            expand_dir(&path, layout)?
        } else if path.exists() {
            if !is_item(&path, layout) {
                return Err(Error::config(
                    config,
                    field,
                    entry,
                    format!("{} is not a {layout:?} data file", path.display()),
                ));
            }
            vec![path]
        } else {
            return Err(Error::config(
                config,
                field,
                entry,
                format!("{} does not exist", path.display()),
            ));
        };
        if found.is_empty() {
            return Err(Error::config(
                config,
                field,
                entry,
                format!("matches no {layout:?} data under {}", root.display()),
            ));
        }
        for f in found {
            if !out.contains(&f) {
                out.push(f);
            }
        }
    }
    Ok(out)
}

/// Reads one item of `layout` (labels included when the layout has them).
pub fn read_item(path: &Path, layout: Layout) -> Result<PointCloud> {
    let opts = ReadOptions::default();
    let cloud = match layout {
        Layout::S3dis => randla_io::read_s3dis_room(path)?,
        _ => randla_io::read_with(path, &opts)?,
    };
    Ok(cloud)
}

/// `[N, features]` input attributes of a cloud (after xyz), each divided by its scale.
pub fn input_features(cloud: &PointCloud, input: &InputConfig, path: &Path) -> Result<Vec<f32>> {
    let nf = input.features.len();
    let n = cloud.len();
    let mut out = vec![0f32; n * nf];
    for (j, (name, scale)) in input.features.iter().zip(&input.scale).enumerate() {
        let col = cloud.feature(name).ok_or_else(|| Error::Dataset {
            path: path.into(),
            message: format!(
                "has no attribute {name:?} (input.features); it has {:?}",
                cloud.feature_names()
            ),
        })?;
        for (i, v) in col.iter().enumerate() {
            out[i * nf + j] = v / scale;
        }
    }
    Ok(out)
}
