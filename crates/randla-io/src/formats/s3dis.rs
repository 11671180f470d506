//! S3DIS (Stanford Large-Scale 3D Indoor Spaces): `Area_N/<room>/Annotations/*.txt`, one file per
//! object (`x y z r g b` per line); the class is the file-name prefix before `_`
//! (`chair_3.txt` → `chair`).

use std::path::{Path, PathBuf};

use crate::cloud::PointCloud;
use crate::error::{Error, Result};

/// The 13 S3DIS classes; a label is the index in this list.
pub const S3DIS_CLASSES: [&str; 13] = [
    "ceiling", "floor", "wall", "beam", "column", "window", "door", "table", "chair", "sofa",
    "bookcase", "board", "clutter",
];

/// Label of an object file name; unknown prefixes (e.g. `stairs`) are `clutter`, as in the
/// reference RandLA-Net preprocessing.
pub fn class_of_file(name: &str) -> u32 {
    let prefix = name.split('_').next().unwrap_or("");
    S3DIS_CLASSES
        .iter()
        .position(|c| *c == prefix)
        .unwrap_or(12) as u32
}

/// The object files of a room, sorted by name. `room` may be the room folder or its
/// `Annotations` folder.
pub fn room_files(room: &Path) -> Result<Vec<PathBuf>> {
    let ann = if room.join("Annotations").is_dir() {
        room.join("Annotations")
    } else {
        room.to_path_buf()
    };
    let rd = std::fs::read_dir(&ann).map_err(|e| Error::io(&ann, "list annotations", e))?;
    let mut files = Vec::new();
    for e in rd {
        let e = e.map_err(|e| Error::io(&ann, "list annotations", e))?;
        let p = e.path();
        if p.extension().is_some_and(|x| x == "txt") && p.is_file() {
            files.push(p);
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(Error::empty(&ann, "no Annotations/*.txt object files"));
    }
    Ok(files)
}

/// Reads one S3DIS room: all its annotated objects concatenated, labels per [`S3DIS_CLASSES`],
/// features `red`, `green`, `blue`.
pub fn read_s3dis_room(room: &Path) -> Result<PointCloud> {
    let mut cloud = PointCloud::default();
    let mut rgb: [Vec<f32>; 3] = Default::default();
    let mut labels = Vec::new();
    for f in room_files(room)? {
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let class = class_of_file(&name);
        read_object(
            super::open_text(&f)?,
            &f,
            class,
            &mut cloud,
            &mut rgb,
            &mut labels,
        )?;
    }
    if cloud.is_empty() {
        return Err(Error::empty(room, "no points in any object file"));
    }
    for (n, c) in ["red", "green", "blue"].into_iter().zip(rgb) {
        cloud.set_feature(n, c);
    }
    cloud.labels = Some(labels);
    Ok(cloud)
}

/// Parses one object file stream (`x y z r g b` lines), appending to `cloud`.
pub fn read_object<R: std::io::BufRead>(
    r: R,
    path: &Path,
    class: u32,
    cloud: &mut PointCloud,
    rgb: &mut [Vec<f32>; 3],
    labels: &mut Vec<u32>,
) -> Result<()> {
    let before = cloud.len();
    super::for_each_line(r, path, |no, line| {
        let mut v = [0f64; 6];
        let toks: Vec<&str> = line.split_whitespace().collect();
        if toks.len() != 6 {
            return Err(Error::invalid(
                path,
                format!("line {no}"),
                format!("{line:?}"),
                format!("expected 6 columns (x y z r g b), found {}", toks.len()),
            ));
        }
        for (k, t) in toks.iter().enumerate() {
            v[k] = super::parse_f64(path, ["x", "y", "z", "red", "green", "blue"][k], no, t)?;
        }
        let p = [v[0], v[1], v[2]];
        let index = cloud.positions.len() as u64;
        super::push_point(path, cloud, p, index)?;
        for k in 0..3 {
            rgb[k].push(v[3 + k] as f32);
        }
        labels.push(class);
        Ok(())
    })?;
    if cloud.len() == before {
        return Err(Error::empty(path, "object file has no points"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_from_prefix() {
        assert_eq!(class_of_file("chair_12.txt"), 8);
        assert_eq!(class_of_file("ceiling_1.txt"), 0);
        assert_eq!(class_of_file("stairs_1.txt"), 12);
    }
}
