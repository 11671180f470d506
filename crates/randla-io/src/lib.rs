//! Point-cloud I/O for randla.
//!
//! * Readers: LAS/LAZ 1.0–1.4 (all point formats, chunked), PLY (ascii and binary), Semantic3D,
//!   S3DIS rooms, SemanticKITTI scans, plain XYZ/CSV — all into one [`PointCloud`]
//!   (`f64` origin + `f32` local coordinates, named `f32` features, optional labels).
//! * Writers: LAS/LAZ copy-through with new classification and optional extra bytes
//!   ([`rewrite_las_classification`]), PLY, Semantic3D `.labels`, SemanticKITTI `.label`.
//!   Every write goes to a temporary file in the target folder and is renamed into place.
//! * [`info`]: point count, bounds, attributes and class histogram of any supported file.
//!
//! Bad input yields an [`Error`] naming the file, the field and the value, never a panic.

pub mod atomic;
pub mod cloud;
pub mod error;
pub mod formats;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

pub use cloud::{Bounds, Feature, PointCloud};
pub use error::{Error, Result};
pub use formats::Format;
pub use formats::kitti::{LearningMap, read_kitti, write_kitti_labels};
pub use formats::las::{
    ChunkFill, ExtraOutputs, LasChunks, LasHeader, LasReader, Probabilities, RewriteOptions,
    RewriteSummary, read_las, rewrite_las_classification, rewrite_las_with,
};
pub use formats::ply::{PlyEncoding, PlyOptions, PlyWriteOptions, read_ply, write_ply};
pub use formats::s3dis::{S3DIS_CLASSES, read_s3dis_room};
pub use formats::semantic3d::{read_semantic3d, write_semantic3d_labels};
pub use formats::xyz::{XyzOptions, read_xyz};

/// Options of [`read_with`] and [`info_with`], per format.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReadOptions {
    /// PLY: the label property.
    pub ply: PlyOptions,
    /// XYZ/CSV: column spec and delimiter.
    pub xyz: XyzOptions,
    /// Semantic3D / SemanticKITTI: explicit labels file (default: the dataset's sibling file).
    pub labels: Option<PathBuf>,
    /// SemanticKITTI: map raw labels to training classes.
    pub learning_map: Option<LearningMap>,
}

/// Reads any supported file (format from the extension; a folder is read as an S3DIS room).
pub fn read(path: impl AsRef<Path>) -> Result<PointCloud> {
    read_with(path, &ReadOptions::default())
}

/// [`read`] with options.
pub fn read_with(path: impl AsRef<Path>, opts: &ReadOptions) -> Result<PointCloud> {
    let path = path.as_ref();
    if path.is_dir() {
        return read_s3dis_room(path);
    }
    let cloud = match Format::from_path(path)? {
        Format::Las | Format::Laz => read_las(path)?,
        Format::Ply => read_ply(path, &opts.ply)?,
        Format::Semantic3d => read_semantic3d(path, opts.labels.as_deref())?,
        Format::Kitti => read_kitti(path, opts.labels.as_deref(), opts.learning_map.as_ref())?,
        Format::Xyz => read_xyz(path, &opts.xyz)?,
    };
    cloud.validate(path)?;
    Ok(cloud)
}

/// Summary of a point cloud, as printed by `randla info --json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CloudInfo {
    /// Number of points.
    pub points: u64,
    /// Bounding box of the points (recomputed, not taken from a header).
    pub bounds: Bounds,
    /// Names of the per-point attributes stored in the file.
    pub attributes: Vec<String>,
    /// Points per class code (empty without labels); JSON keys are the codes as strings.
    pub classes: BTreeMap<u32, u64>,
}

/// Summarises a file (LAS/LAZ are streamed, never fully loaded).
pub fn info(path: impl AsRef<Path>) -> Result<CloudInfo> {
    info_with(path, &ReadOptions::default())
}

/// [`info`] with options.
pub fn info_with(path: impl AsRef<Path>, opts: &ReadOptions) -> Result<CloudInfo> {
    let path = path.as_ref();
    if !path.is_dir() && matches!(Format::from_path(path)?, Format::Las | Format::Laz) {
        let (header, points, bounds, classes) = LasReader::open_for_cloud(path)?.summarize()?;
        return Ok(CloudInfo {
            points,
            bounds,
            attributes: header.attributes(),
            classes,
        });
    }
    let c = read_with(path, opts)?;
    let mut attributes: Vec<String> = ["x", "y", "z"].iter().map(|s| s.to_string()).collect();
    attributes.extend(c.feature_names());
    if c.labels.is_some() {
        attributes.push("label".into());
    }
    Ok(CloudInfo {
        points: c.len() as u64,
        bounds: c.bounds(),
        attributes,
        classes: c.class_histogram(),
    })
}
