//! Reading a cloud in chunks of at most N points, for files larger than the memory budget.
//!
//! [`LasReader`], [`PlyReader`], [`Semantic3dReader`] and [`XyzReader`] read from a buffered
//! stream, so memory is O(chunk), not O(file); [`ChunkReader`] picks one by the file's format
//! (as [`crate::read_with`] does) and [`open_chunks`] gives its iterator. SemanticKITTI scans and
//! S3DIS rooms, small by nature, are read whole and handed out in chunks.
//!
//! All chunks of one file share one origin (chosen from the file's first point, as the
//! whole-file readers do), so concatenating them with [`PointCloud::append`] gives exactly the
//! whole-file read; the whole-file readers are these readers asked for one chunk.

use std::path::{Path, PathBuf};

use crate::ReadOptions;
use crate::cloud::PointCloud;
use crate::error::{Error, Result};
use crate::formats::kitti::read_kitti;
use crate::formats::las::LasReader;
use crate::formats::ply::PlyReader;
use crate::formats::s3dis::read_s3dis_room;
use crate::formats::semantic3d::Semantic3dReader;
use crate::formats::xyz::XyzReader;
use crate::formats::{Format, ReadState};

/// A reader that hands out a file's points in chunks.
pub trait ChunkRead {
    /// Reads the next chunk of up to `max` points (at least one); `None` after the last. On a
    /// file without points the first call is an error; after an error the reader is unusable.
    fn read_chunk(&mut self, max: usize) -> Result<Option<PointCloud>>;

    /// The file read (it names the source in errors).
    fn path(&self) -> &Path;

    /// Iterates over chunks of up to `chunk_points` points.
    fn chunks(self, chunk_points: usize) -> Chunks<Self>
    where
        Self: Sized,
    {
        Chunks {
            reader: self,
            chunk_points,
            done: false,
        }
    }

    /// Reads all remaining points into one cloud.
    fn read_all(self) -> Result<PointCloud>
    where
        Self: Sized,
    {
        concat(self, usize::MAX)
    }
}

/// A reader that streams a file record by record (PLY, Semantic3D, XYZ): [`ChunkRead`] comes
/// from its [`ReadState`] and its `read_points`; after an error it refuses to go on.
pub(crate) trait Stream {
    fn state(&self) -> &ReadState;
    fn state_mut(&mut self) -> &mut ReadState;
    /// Reads the next chunk of up to `max` (at least 1) points; `None` at the end.
    fn read_points(&mut self, max: usize) -> Result<Option<PointCloud>>;
}

impl<T: Stream> ChunkRead for T {
    fn read_chunk(&mut self, max: usize) -> Result<Option<PointCloud>> {
        self.state().check()?;
        let r = self.read_points(max.max(1));
        self.state_mut().record(r)
    }

    fn path(&self) -> &Path {
        &self.state().path
    }
}

/// Reads all remaining chunks of up to `chunk_points` points and concatenates them.
pub(crate) fn concat<T: ChunkRead>(mut r: T, chunk_points: usize) -> Result<PointCloud> {
    let mut all = PointCloud::default();
    while let Some(c) = r.read_chunk(chunk_points)? {
        if all.is_empty() {
            all = c;
        } else {
            all.append(&c)
                .map_err(|e| Error::invalid(r.path(), "chunk", e, "internal layout mismatch"))?;
        }
    }
    Ok(all)
}

/// Iterator over the chunks of a [`ChunkRead`] reader; it ends after the first error.
#[derive(Debug)]
pub struct Chunks<T> {
    reader: T,
    chunk_points: usize,
    done: bool,
}

impl<T> Chunks<T> {
    /// The reader (its position, point counts...).
    pub fn reader(&self) -> &T {
        &self.reader
    }
}

impl<T: ChunkRead> Iterator for Chunks<T> {
    type Item = Result<PointCloud>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let r = self.reader.read_chunk(self.chunk_points).transpose();
        self.done = !matches!(r, Some(Ok(_)));
        r
    }
}

/// A chunk reader for any supported file, chosen by its format (see [`ChunkReader::open`]).
#[derive(Debug)]
#[non_exhaustive]
pub enum ChunkReader {
    /// LAS or LAZ.
    Las(Box<LasReader>),
    /// PLY, ascii or binary.
    Ply(PlyReader),
    /// Semantic3D `.txt` with its optional `.labels`.
    Semantic3d(Semantic3dReader),
    /// XYZ/CSV.
    Xyz(XyzReader),
    /// A SemanticKITTI scan or an S3DIS room, read whole and handed out in chunks.
    Whole(WholeChunks),
}

impl ChunkReader {
    /// Opens any supported file (format from the extension; a folder is an S3DIS room).
    pub fn open(path: impl AsRef<Path>, opts: &ReadOptions) -> Result<Self> {
        let path = path.as_ref();
        if path.is_dir() {
            return Ok(ChunkReader::Whole(WholeChunks::new(
                read_s3dis_room(path)?,
                path,
            )));
        }
        let labels = opts.labels.as_deref();
        Ok(match Format::from_path(path)? {
            Format::Las | Format::Laz => {
                ChunkReader::Las(Box::new(LasReader::open_for_cloud(path)?))
            }
            Format::Ply => ChunkReader::Ply(PlyReader::open(path, &opts.ply)?),
            // A `.txt` whose first line is not Semantic3D's seven columns is plain delimited
            // text (`x y z`, or a header of names), as `.xyz`.
            Format::Semantic3d if !seven_columns(path)? => {
                ChunkReader::Xyz(XyzReader::open(path, &opts.xyz)?)
            }
            Format::Semantic3d => ChunkReader::Semantic3d(Semantic3dReader::open(path, labels)?),
            Format::Kitti => {
                let cloud = read_kitti(path, labels, opts.learning_map.as_ref())?;
                ChunkReader::Whole(WholeChunks::new(cloud, path))
            }
            Format::Xyz => ChunkReader::Xyz(XyzReader::open(path, &opts.xyz)?),
        })
    }

    fn reader(&mut self) -> &mut dyn ChunkRead {
        match self {
            ChunkReader::Las(r) => &mut **r,
            ChunkReader::Ply(r) => r,
            ChunkReader::Semantic3d(r) => r,
            ChunkReader::Xyz(r) => r,
            ChunkReader::Whole(r) => r,
        }
    }
}

impl ChunkRead for ChunkReader {
    /// The next chunk, checked with [`PointCloud::validate`].
    fn read_chunk(&mut self, max: usize) -> Result<Option<PointCloud>> {
        let r = self.reader();
        let c = r.read_chunk(max)?;
        if let Some(c) = &c {
            let first = match self {
                ChunkReader::Las(r) => r.points_read(),
                ChunkReader::Ply(r) => r.points_read(),
                ChunkReader::Semantic3d(r) => r.points_read(),
                ChunkReader::Xyz(r) => r.points_read(),
                ChunkReader::Whole(r) => r.next as u64,
            } - c.len() as u64;
            c.validate_from(self.path(), first)?;
        }
        Ok(c)
    }

    fn path(&self) -> &Path {
        match self {
            ChunkReader::Las(r) => r.path(),
            ChunkReader::Ply(r) => r.path(),
            ChunkReader::Semantic3d(r) => r.path(),
            ChunkReader::Xyz(r) => r.path(),
            ChunkReader::Whole(r) => r.path(),
        }
    }

    /// The whole cloud, each format read its fastest way, checked with
    /// [`PointCloud::validate`].
    fn read_all(self) -> Result<PointCloud> {
        let path = self.path().to_path_buf();
        let c = match self {
            ChunkReader::Las(r) => r.read_all()?,
            ChunkReader::Ply(r) => r.read_all()?,
            ChunkReader::Semantic3d(r) => r.read_all()?,
            ChunkReader::Xyz(r) => r.read_all()?,
            ChunkReader::Whole(r) => r.read_all()?,
        };
        c.validate(&path)?;
        Ok(c)
    }
}

/// Opens any supported file for reading in chunks of up to `chunk_points` points (see
/// [`ChunkReader::open`]); every chunk is checked with [`PointCloud::validate`].
pub fn open_chunks(
    path: impl AsRef<Path>,
    chunk_points: usize,
    opts: &ReadOptions,
) -> Result<Chunks<ChunkReader>> {
    Ok(ChunkReader::open(path, opts)?.chunks(chunk_points))
}

/// Whether the first non-blank line of the text file `path` is seven numbers separated by white
/// space, as in a Semantic3D point file (`x y z intensity r g b`); a header of seven names is not.
fn seven_columns(path: &Path) -> Result<bool> {
    match crate::formats::sniff_lines(path)?.next_line(path) {
        Ok(Some((_, line))) => {
            let fields: Vec<&str> = line.split_whitespace().collect();
            Ok(fields.len() == 7 && fields.iter().all(|f| f.parse::<f64>().is_ok()))
        }
        // A file of blank lines, or one that is not UTF-8, is left to the Semantic3D reader,
        // which names what is wrong.
        Ok(None) | Err(Error::Invalid { .. }) => Ok(true),
        Err(e) => Err(e),
    }
}

/// A cloud already in memory, handed out in chunks (formats read whole).
#[derive(Debug)]
pub struct WholeChunks {
    path: PathBuf,
    cloud: PointCloud,
    next: usize,
}

impl WholeChunks {
    /// Hands out `cloud`, read from `path`.
    pub fn new(cloud: PointCloud, path: &Path) -> Self {
        WholeChunks {
            path: path.to_path_buf(),
            cloud,
            next: 0,
        }
    }
}

impl ChunkRead for WholeChunks {
    fn read_chunk(&mut self, max: usize) -> Result<Option<PointCloud>> {
        let start = self.next;
        if start >= self.cloud.len() {
            return Ok(None);
        }
        self.next = start + (self.cloud.len() - start).min(max.max(1));
        Ok(Some(self.cloud.slice(start..self.next)))
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn read_all(self) -> Result<PointCloud> {
        if self.next == 0 {
            Ok(self.cloud)
        } else {
            concat(self, usize::MAX)
        }
    }
}
