//! Point-cloud I/O for randla.
//!
//! * Readers: LAS/LAZ 1.0–1.4 (all point formats), PLY (ascii and binary), Semantic3D,
//!   S3DIS rooms, SemanticKITTI scans, plain XYZ/CSV — all into one [`PointCloud`]
//!   (`f64` origin + `f32` local coordinates, named `f32` features, optional labels).
//! * Chunked reading for clouds larger than memory ([`open_chunks`], [`ChunkReader`], module
//!   [`chunks`]): LAS/LAZ, PLY, Semantic3D and XYZ stream from the file in chunks of N points
//!   with memory O(chunk); concatenated chunks equal the whole-file read exactly.
//! * Writers: LAS/LAZ copy-through with new classification and optional extra bytes
//!   ([`rewrite_las_classification`]), PLY, Semantic3D `.labels`, SemanticKITTI `.label`.
//!   Every write goes to a temporary file in the target folder and is renamed into place.
//! * [`info`]: point count, bounds, attributes and class histogram of any supported file.
//!
//! Bad input yields an [`Error`] naming the file, the field and the value, never a panic.

pub mod atomic;
pub mod chunks;
pub mod cloud;
pub mod error;
pub mod formats;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

pub use chunks::{ChunkRead, ChunkReader, Chunks, WholeChunks, open_chunks};
pub use cloud::{Bounds, Feature, PointCloud, attribute_matches};
pub use error::{Error, Result};
pub use formats::Format;
pub use formats::kitti::{LearningMap, read_kitti, write_kitti_labels};
pub use formats::las::{
    ChunkFill, ExtraOutputs, LasChunks, LasHeader, LasReader, Probabilities, RewriteOptions,
    RewriteSummary, copc_nodes, layer_context, read_las, rewrite_las_classification,
    rewrite_las_classification_from, rewrite_las_with, rewrite_laz_classification_layer,
};
pub use formats::ply::{
    PlyEncoding, PlyOptions, PlyReader, PlyWriteOptions, read_ply, rewrite_ply_labels, write_ply,
};
pub use formats::s3dis::{S3DIS_CLASSES, read_s3dis_room};
pub use formats::semantic3d::{Semantic3dReader, read_semantic3d, write_semantic3d_labels};
pub use formats::xyz::{XyzOptions, XyzReader, looks_like_points, read_xyz};

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

/// [`read`] with options: [`ChunkReader::open`] read whole, checked with
/// [`PointCloud::validate`].
pub fn read_with(path: impl AsRef<Path>, opts: &ReadOptions) -> Result<PointCloud> {
    ChunkReader::open(path, opts)?.read_all()
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

/// Summarises a file (LAS/LAZ, PLY, Semantic3D and XYZ are streamed, never fully loaded).
pub fn info(path: impl AsRef<Path>) -> Result<CloudInfo> {
    info_with(path, &ReadOptions::default())
}

/// [`info`] with options.
pub fn info_with(path: impl AsRef<Path>, opts: &ReadOptions) -> Result<CloudInfo> {
    let path = path.as_ref();
    if !path.is_dir() && matches!(Format::from_path(path)?, Format::Las | Format::Laz) {
        // Only x, y, z and the classification are decoded (LAZ layers).
        let (header, points, bounds, classes) =
            LasReader::open_for_features(path, &[], true)?.summarize()?;
        return Ok(CloudInfo {
            points,
            bounds,
            attributes: header.attributes(),
            classes,
        });
    }
    let mut attributes: Vec<String> = ["x", "y", "z"].iter().map(|s| s.to_string()).collect();
    let mut points = 0u64;
    let mut bounds = Bounds::empty();
    let mut classes = BTreeMap::new();
    for c in open_chunks(path, INFO_CHUNK_POINTS, opts)? {
        let c = c?;
        if points == 0 {
            attributes.extend(c.feature_names());
            if c.labels.is_some() {
                attributes.push("label".into());
            }
        }
        points += c.len() as u64;
        bounds.merge(&c.bounds());
        for (k, n) in c.class_histogram() {
            *classes.entry(k).or_insert(0) += n;
        }
    }
    Ok(CloudInfo {
        points,
        bounds,
        attributes,
        classes,
    })
}

/// Points per chunk when [`info`] streams a file.
const INFO_CHUNK_POINTS: usize = 1 << 16;
