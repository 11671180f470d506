//! Format detection and the per-format readers and writers.

pub mod kitti;
pub mod las;
pub mod ply;
pub mod s3dis;
pub mod semantic3d;
pub mod xyz;

use std::path::Path;

use crate::error::{Error, Result};

/// The point-cloud file formats this crate reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// ASPRS LAS, uncompressed (`.las`).
    Las,
    /// LAS compressed with LASzip (`.laz`).
    Laz,
    /// Stanford PLY, ascii or binary (`.ply`).
    Ply,
    /// Semantic3D point file (`.txt`: x y z intensity r g b), labels in a sibling `.labels`.
    Semantic3d,
    /// SemanticKITTI velodyne scan (`.bin`: float32 x y z remission), labels in `labels/*.label`.
    Kitti,
    /// Plain delimited text (`.xyz`, `.csv`, `.pts`) read with a column spec.
    Xyz,
}

/// The extensions [`Format::from_path`] understands, for error messages.
pub const KNOWN_EXTENSIONS: &str =
    ".las .laz .ply .txt (Semantic3D, or plain columns) .bin (SemanticKITTI) .xyz .csv .pts";

impl Format {
    /// Detects the format from the file extension (case-insensitive).
    pub fn from_path(path: &Path) -> Result<Format> {
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        Ok(match ext.as_str() {
            "las" => Format::Las,
            "laz" => Format::Laz,
            "ply" => Format::Ply,
            "txt" => Format::Semantic3d,
            "bin" => Format::Kitti,
            "xyz" | "csv" | "pts" => Format::Xyz,
            _ => {
                return Err(Error::UnknownFormat {
                    path: path.to_path_buf(),
                    extension: ext,
                    expected: KNOWN_EXTENSIONS,
                });
            }
        })
    }

    /// A short lower-case name (`"laz"`, `"ply"`...).
    pub fn name(self) -> &'static str {
        match self {
            Format::Las => "las",
            Format::Laz => "laz",
            Format::Ply => "ply",
            Format::Semantic3d => "semantic3d",
            Format::Kitti => "semantickitti",
            Format::Xyz => "xyz",
        }
    }
}

/// Opens a file for reading, naming it in the error.
pub(crate) fn open(path: &Path) -> Result<std::fs::File> {
    std::fs::File::open(path).map_err(|e| Error::io(path, "open", e))
}

/// Reads a whole (text or small binary) file, rejecting an empty one.
pub(crate) fn read_nonempty(path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, "read", e))?;
    if bytes.is_empty() {
        return Err(Error::empty(path, "file has 0 bytes"));
    }
    Ok(bytes)
}

/// Parses one numeric text token as `f64`, naming the field and line on error.
pub(crate) fn parse_f64(path: &Path, field: &str, line: usize, tok: &str) -> Result<f64> {
    tok.parse::<f64>().map_err(|_| {
        Error::invalid(
            path,
            format!("{field} (line {line})"),
            format!("{tok:?}"),
            "not a number",
        )
    })
}

/// Parses one label token: a non-negative integer (a float token with no fraction is accepted).
pub(crate) fn parse_label(path: &Path, field: &str, line: usize, tok: &str) -> Result<u32> {
    if let Ok(v) = tok.parse::<u32>() {
        return Ok(v);
    }
    let v = parse_f64(path, field, line, tok)?;
    label_from_f64(path, format_args!("{field} (line {line})"), v)
}

/// Converts a numeric label value to `u32`, rejecting negative, fractional or non-finite values
/// (`field` is only formatted for the error).
pub(crate) fn label_from_f64(path: &Path, field: impl std::fmt::Display, v: f64) -> Result<u32> {
    if v.is_finite() && v >= 0.0 && v <= f64::from(u32::MAX) && v.fract() == 0.0 {
        Ok(v as u32)
    } else {
        Err(Error::invalid(
            path,
            field.to_string(),
            v,
            "a label must be a non-negative integer",
        ))
    }
}

/// Appends the absolute point `p` (the cloud's `index`-th) to `cloud`: checks its coordinates
/// are finite, takes the cloud's origin from the first point, stores the local coordinates.
pub(crate) fn push_point(
    path: &Path,
    cloud: &mut crate::cloud::PointCloud,
    p: [f64; 3],
    index: u64,
) -> Result<()> {
    check_xyz(path, p, index)?;
    if index == 0 {
        cloud.origin = crate::cloud::choose_origin(p);
    }
    let l = cloud.local(p);
    cloud.positions.push(l);
    Ok(())
}

/// Checks that the three coordinates of point `index` are finite.
pub(crate) fn check_xyz(path: &Path, p: [f64; 3], index: u64) -> Result<()> {
    for (k, name) in ["x", "y", "z"].into_iter().enumerate() {
        check_finite(path, name, p[k], index)?;
    }
    Ok(())
}

/// Checks that a coordinate is finite.
pub(crate) fn check_finite(path: &Path, field: &'static str, value: f64, index: u64) -> Result<()> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(Error::NonFinite {
            path: path.to_path_buf(),
            field,
            value,
            index,
        })
    }
}

/// The lines of a text stream, read one at a time into a reused buffer (memory O(line)).
#[derive(Debug)]
pub(crate) struct Lines<R> {
    /// The stream, positioned after the last line returned.
    pub(crate) r: R,
    buf: Vec<u8>,
    no: usize,
    /// How a line is called in errors (`"line"`, `"data line"`).
    what: &'static str,
}

impl<R: std::io::BufRead> Lines<R> {
    /// Lines of `r`, numbered from 1, called `what` in errors.
    pub(crate) fn new(r: R, what: &'static str) -> Self {
        Lines {
            r,
            buf: Vec::with_capacity(256),
            no: 0,
            what,
        }
    }

    /// The next non-blank line, trimmed, with its 1-based number (blank lines count); `None`
    /// at the end of the stream.
    pub(crate) fn next_line(&mut self, path: &Path) -> Result<Option<(usize, &str)>> {
        loop {
            self.buf.clear();
            let n = self
                .r
                .read_until(b'\n', &mut self.buf)
                .map_err(|e| Error::io(path, "read", e))?;
            if n == 0 {
                return Ok(None);
            }
            self.no += 1;
            match std::str::from_utf8(&self.buf) {
                Ok(s) if s.trim().is_empty() => {}
                Ok(_) => break,
                Err(e) => {
                    return Err(Error::invalid(
                        path,
                        format!("{} {} byte {}", self.what, self.no, e.valid_up_to()),
                        "non-UTF-8 data",
                        "a text file was expected",
                    ));
                }
            }
        }
        // Checked in the loop (a borrow returned from inside it would outlive the loop).
        let s = std::str::from_utf8(&self.buf).unwrap_or_default();
        Ok(Some((self.no, s.trim())))
    }

    /// Checks (`check(number, line)`) and counts the remaining non-blank lines.
    pub(crate) fn count_rest(
        &mut self,
        path: &Path,
        mut check: impl FnMut(usize, &str) -> Result<()>,
    ) -> Result<u64> {
        let mut n = 0;
        while let Some((no, line)) = self.next_line(path)? {
            check(no, line)?;
            n += 1;
        }
        Ok(n)
    }
}

/// Calls `f(line_number, trimmed_line)` for every non-blank line of a text stream.
pub(crate) fn for_each_line<R: std::io::BufRead>(
    r: R,
    path: &Path,
    mut f: impl FnMut(usize, &str) -> Result<()>,
) -> Result<()> {
    let mut lines = Lines::new(r, "line");
    while let Some((no, line)) = lines.next_line(path)? {
        f(no, line)?;
    }
    Ok(())
}

/// Reads into `buf` until it is full or the stream ends; returns the number of bytes read.
pub(crate) fn read_full(r: &mut impl std::io::Read, buf: &mut [u8], path: &Path) -> Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(path, "read", e)),
        }
    }
    Ok(got)
}

/// Reads and drops up to `n` bytes; returns how many there were.
pub(crate) fn skip_bytes(r: &mut impl std::io::Read, n: u64, path: &Path) -> Result<u64> {
    std::io::copy(&mut std::io::Read::take(r, n), &mut std::io::sink())
        .map_err(|e| Error::io(path, "read", e))
}

/// The columns of one chunk under construction: positions in the reader's origin (taken from
/// the file's first point), `f32` feature columns, optional labels.
#[derive(Debug)]
pub(crate) struct ChunkBuilder {
    cloud: crate::cloud::PointCloud,
    cols: Vec<Vec<f32>>,
    labels: Option<Vec<u32>>,
}

impl ChunkBuilder {
    /// A chunk with the file's `origin` (`None` before the first point), `features` columns
    /// and labels if `labels`, with room for `reserve` points.
    pub(crate) fn new(
        origin: Option<[f64; 3]>,
        features: usize,
        labels: bool,
        reserve: usize,
    ) -> Self {
        let mut cloud = crate::cloud::PointCloud::with_origin(origin.unwrap_or_default());
        cloud.positions.reserve(reserve);
        ChunkBuilder {
            cloud,
            cols: (0..features).map(|_| Vec::with_capacity(reserve)).collect(),
            labels: labels.then(|| Vec::with_capacity(reserve)),
        }
    }

    /// Points in the chunk so far.
    pub(crate) fn len(&self) -> usize {
        self.cloud.positions.len()
    }

    /// Adds the file's `index`-th point (see [`push_point`]); then call [`Self::features`]
    /// and, with labels, [`Self::label`].
    pub(crate) fn point(&mut self, path: &Path, p: [f64; 3], index: u64) -> Result<()> {
        push_point(path, &mut self.cloud, p, index)
    }

    /// The feature values of the last point, one per column.
    pub(crate) fn features(&mut self, values: impl IntoIterator<Item = f32>) {
        for (c, v) in self.cols.iter_mut().zip(values) {
            c.push(v);
        }
    }

    /// The label of the last point.
    pub(crate) fn label(&mut self, l: u32) {
        if let Some(v) = &mut self.labels {
            v.push(l);
        }
    }

    /// The chunk, its feature columns named by `names`; records its origin in `origin`.
    pub(crate) fn finish<'a>(
        self,
        names: impl IntoIterator<Item = &'a str>,
        origin: &mut Option<[f64; 3]>,
    ) -> crate::cloud::PointCloud {
        let mut cloud = self.cloud;
        for (n, c) in names.into_iter().zip(self.cols) {
            cloud.set_feature(n, c);
        }
        cloud.labels = self.labels;
        if !cloud.is_empty() {
            *origin = Some(cloud.origin);
        }
        cloud
    }
}

/// What every streaming reader keeps: its file, the points read so far, the origin (taken
/// from the first point) and whether an error stopped it.
#[derive(Debug)]
pub(crate) struct ReadState {
    pub(crate) path: std::path::PathBuf,
    pub(crate) read: u64,
    pub(crate) origin: Option<[f64; 3]>,
    failed: bool,
}

impl ReadState {
    pub(crate) fn new(path: &Path) -> Self {
        ReadState {
            path: path.to_path_buf(),
            read: 0,
            origin: None,
            failed: false,
        }
    }

    /// Refuses to read on after an error.
    pub(crate) fn check(&self) -> Result<()> {
        if self.failed {
            return Err(Error::invalid(
                &self.path,
                "read",
                "after an error",
                "an earlier error left the reader unusable",
            ));
        }
        Ok(())
    }

    /// Records the outcome of a chunk read.
    pub(crate) fn record<T>(&mut self, r: Result<T>) -> Result<T> {
        self.failed = r.is_err();
        r
    }
}

/// The lines of a text file opened to look at its first lines only, as [`open_text`] opens it
/// but with a small buffer: a folder of large text files is sniffed without reading a megabyte
/// of each.
pub(crate) fn sniff_lines(path: &Path) -> Result<Lines<std::io::BufReader<std::fs::File>>> {
    Ok(Lines::new(open_text_with(path, 8 << 10)?, "line"))
}

/// Opens a text file for [`for_each_line`], rejecting an empty file.
pub(crate) fn open_text(path: &Path) -> Result<std::io::BufReader<std::fs::File>> {
    open_text_with(path, 1 << 20)
}

/// [`open_text`] with a buffer of `capacity` bytes.
fn open_text_with(path: &Path, capacity: usize) -> Result<std::io::BufReader<std::fs::File>> {
    let f = open(path)?;
    let len = f.metadata().map_err(|e| Error::io(path, "stat", e))?.len();
    if len == 0 {
        return Err(Error::empty(path, "file has 0 bytes"));
    }
    Ok(std::io::BufReader::with_capacity(capacity, f))
}

/// Decodes a file as UTF-8, naming the first bad byte offset on error.
pub(crate) fn as_utf8<'a>(path: &Path, bytes: &'a [u8]) -> Result<&'a str> {
    std::str::from_utf8(bytes).map_err(|e| {
        Error::invalid(
            path,
            format!("byte {}", e.valid_up_to()),
            "non-UTF-8 data",
            "a text file was expected",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_by_extension() {
        assert_eq!(
            Format::from_path(Path::new("a/B.LAZ")).unwrap(),
            Format::Laz
        );
        assert_eq!(Format::from_path(Path::new("x.csv")).unwrap(), Format::Xyz);
        let e = Format::from_path(Path::new("scan.e57"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("scan.e57") && e.contains("unknown") && e.contains("e57"),
            "{e}"
        );
        assert!(Format::from_path(Path::new("noext")).is_err());
    }

    #[test]
    fn labels_must_be_integers() {
        let p = Path::new("f");
        assert_eq!(parse_label(p, "label", 1, "7").unwrap(), 7);
        assert_eq!(parse_label(p, "label", 1, "7.0").unwrap(), 7);
        assert!(parse_label(p, "label", 1, "-1").is_err());
        assert!(parse_label(p, "label", 1, "2.5").is_err());
        assert!(parse_label(p, "label", 1, "nan").is_err());
        assert!(
            parse_label(p, "label", 1, "abc")
                .unwrap_err()
                .to_string()
                .contains("\"abc\"")
        );
    }
}
