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
    ".las .laz .ply .txt (Semantic3D) .bin (SemanticKITTI) .xyz .csv .pts";

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
    label_from_f64(path, &format!("{field} (line {line})"), v)
}

/// Converts a numeric label value to `u32`, rejecting negative, fractional or non-finite values.
pub(crate) fn label_from_f64(path: &Path, field: &str, v: f64) -> Result<u32> {
    if v.is_finite() && v >= 0.0 && v <= f64::from(u32::MAX) && v.fract() == 0.0 {
        Ok(v as u32)
    } else {
        Err(Error::invalid(
            path,
            field,
            v,
            "a label must be a non-negative integer",
        ))
    }
}

/// Appends the absolute point `p` (the cloud's `index`-th) to `cloud`: checks its coordinates
/// are finite, takes the cloud's origin from the first point, stores the local coordinates.
pub(crate) fn push_point(path: &Path, cloud: &mut crate::cloud::PointCloud, p: [f64; 3], index: u64) -> Result<()> {
    for (k, name) in ["x", "y", "z"].into_iter().enumerate() {
        check_finite(path, name, p[k], index)?;
    }
    if index == 0 {
        cloud.origin = crate::cloud::choose_origin(p);
    }
    let l = cloud.local(p);
    cloud.positions.push(l);
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

/// Calls `f(line_number, trimmed_line)` for every non-blank line of a text stream.
pub(crate) fn for_each_line<R: std::io::BufRead>(
    mut r: R,
    path: &Path,
    mut f: impl FnMut(usize, &str) -> Result<()>,
) -> Result<()> {
    let mut buf = Vec::with_capacity(256);
    let mut no = 0usize;
    loop {
        buf.clear();
        let n = r
            .read_until(b'\n', &mut buf)
            .map_err(|e| Error::io(path, "read", e))?;
        if n == 0 {
            return Ok(());
        }
        no += 1;
        let s = std::str::from_utf8(&buf).map_err(|e| {
            Error::invalid(
                path,
                format!("line {no} byte {}", e.valid_up_to()),
                "non-UTF-8 data",
                "a text file was expected",
            )
        })?;
        let t = s.trim();
        if !t.is_empty() {
            f(no, t)?;
        }
    }
}

/// Opens a text file for [`for_each_line`], rejecting an empty file.
pub(crate) fn open_text(path: &Path) -> Result<std::io::BufReader<std::fs::File>> {
    let f = open(path)?;
    let len = f.metadata().map_err(|e| Error::io(path, "stat", e))?.len();
    if len == 0 {
        return Err(Error::empty(path, "file has 0 bytes"));
    }
    Ok(std::io::BufReader::with_capacity(1 << 20, f))
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
