//! Semantic3D: `.txt` point files (`x y z intensity r g b` per line) and `.labels` files (one
//! integer class per line, 0 = unlabelled).

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use super::{ChunkBuilder, Lines, ReadState};
use crate::atomic::write_atomic;
use crate::chunks::{ChunkRead, Stream};
use crate::cloud::PointCloud;
use crate::error::{Error, Result};

/// The `.labels` file that goes with a Semantic3D `.txt` file (same stem).
pub fn labels_path(points: &Path) -> PathBuf {
    points.with_extension("labels")
}

/// Reads a Semantic3D point file, and its labels from `labels` or, when `None`, from the sibling
/// `.labels` file if one exists. Features: `intensity`, `red`, `green`, `blue`.
pub fn read_semantic3d(path: &Path, labels: Option<&Path>) -> Result<PointCloud> {
    Semantic3dReader::open(path, labels)?.read_all()
}

/// Parses Semantic3D point lines from a stream; `path` only names the source in errors.
pub fn read_semantic3d_points<R: BufRead>(r: R, path: &Path) -> Result<PointCloud> {
    Semantic3dReader::<R, &[u8]>::from_readers(r, path, None).read_all()
}

/// The columns of a point line; the last four are the features.
const COLUMNS: [&str; 7] = ["x", "y", "z", "intensity", "red", "green", "blue"];

/// Parses one point line: exactly the seven numbers of [`COLUMNS`].
fn parse_line(path: &Path, no: usize, line: &str) -> Result<[f64; 7]> {
    let mut v = [0f64; 7];
    let mut n = 0;
    for tok in line.split_whitespace() {
        if n == 7 {
            n += 1;
            break;
        }
        v[n] = super::parse_f64(path, COLUMNS[n], no, tok)?;
        n += 1;
    }
    if n != 7 {
        return Err(Error::invalid(
            path,
            format!("line {no}"),
            format!("{line:?}"),
            format!(
                "expected 7 columns (x y z intensity r g b), found {}",
                line.split_whitespace().count()
            ),
        ));
    }
    Ok(v)
}

/// Streaming reader of a Semantic3D point file and its labels file, line by line in
/// [`PointCloud`] chunks (see [`ChunkRead`]): memory is O(chunk), not O(file).
///
/// Label `i` goes with point `i`; a points file and a labels file of different lengths are an
/// error naming the labels file and both counts, found when the shorter one ends.
#[derive(Debug)]
pub struct Semantic3dReader<R: BufRead = BufReader<File>, L: BufRead = BufReader<File>> {
    state: ReadState,
    points: Lines<R>,
    labels: Option<(PathBuf, Lines<L>)>,
}

impl Semantic3dReader {
    /// Opens a point file and its labels from `labels` or, when `None`, from the sibling
    /// `.labels` file if one exists.
    pub fn open(path: &Path, labels: Option<&Path>) -> Result<Self> {
        let points = super::open_text(path)?;
        let lp = labels
            .map(Path::to_path_buf)
            .unwrap_or_else(|| labels_path(path));
        let l = if labels.is_some() || lp.is_file() {
            Some(super::open_text(&lp)?)
        } else {
            None
        };
        Ok(Semantic3dReader::from_readers(
            points,
            path,
            l.map(|l| (l, lp.as_path())),
        ))
    }
}

impl<R: BufRead, L: BufRead> Semantic3dReader<R, L> {
    /// Reads points from `points` and labels from `labels` (a stream and its name); the paths
    /// only name the sources in errors.
    pub fn from_readers(points: R, path: &Path, labels: Option<(L, &Path)>) -> Self {
        Semantic3dReader {
            state: ReadState::new(path),
            points: Lines::new(points, "line"),
            labels: labels.map(|(l, p)| (p.to_path_buf(), Lines::new(l, "line"))),
        }
    }

    /// Number of points read so far.
    pub fn points_read(&self) -> u64 {
        self.state.read
    }
}

/// Labels file `lp` holds `labels` labels for the `points` points of `path`.
fn mismatch(path: &Path, lp: &Path, points: u64, labels: u64) -> Error {
    Error::count(
        lp,
        format!("labels (one per point of {})", path.display()),
        points,
        labels,
    )
}

impl<R: BufRead, L: BufRead> Stream for Semantic3dReader<R, L> {
    fn state(&self) -> &ReadState {
        &self.state
    }

    fn state_mut(&mut self) -> &mut ReadState {
        &mut self.state
    }

    fn read_points(&mut self, max: usize) -> Result<Option<PointCloud>> {
        let path = self.state.path.as_path();
        let with_labels = self.labels.is_some();
        let mut b = ChunkBuilder::new(self.state.origin, 4, with_labels, max.min(1 << 16));
        while b.len() < max {
            let Some((no, line)) = self.points.next_line(path)? else {
                if self.state.read == 0 {
                    return Err(Error::empty(path, "no points"));
                }
                if let Some((lp, labels)) = &mut self.labels {
                    let more = labels
                        .count_rest(lp, |no, l| super::parse_label(lp, "label", no, l).map(drop))?;
                    if more > 0 {
                        return Err(mismatch(path, lp, self.state.read, self.state.read + more));
                    }
                }
                break;
            };
            let v = parse_line(path, no, line)?;
            b.point(path, [v[0], v[1], v[2]], self.state.read)?;
            b.features(v[3..].iter().map(|&x| x as f32));
            if let Some((lp, labels)) = &mut self.labels {
                let Some((lno, l)) = labels.next_line(lp)? else {
                    let mut index = self.state.read;
                    let more = self.points.count_rest(path, |no, l| {
                        let v = parse_line(path, no, l)?;
                        index += 1;
                        super::check_xyz(path, [v[0], v[1], v[2]], index)
                    })?;
                    if self.state.read == 0 {
                        return Err(Error::empty(lp, "no labels"));
                    }
                    return Err(mismatch(
                        path,
                        lp,
                        self.state.read + 1 + more,
                        self.state.read,
                    ));
                };
                b.label(super::parse_label(lp, "label", lno, l)?);
            }
            self.state.read += 1;
        }
        if b.len() == 0 {
            return Ok(None);
        }
        Ok(Some(b.finish(
            COLUMNS[3..].iter().copied(),
            &mut self.state.origin,
        )))
    }
}

/// Parses a labels stream (one non-negative integer per line).
pub fn read_labels<R: BufRead>(r: R, path: &Path) -> Result<Vec<u32>> {
    let mut out = Vec::new();
    super::for_each_line(r, path, |no, line| {
        out.push(super::parse_label(path, "label", no, line)?);
        Ok(())
    })?;
    if out.is_empty() {
        return Err(Error::empty(path, "no labels"));
    }
    Ok(out)
}

/// Writes a Semantic3D `.labels` file (one integer per line), atomically.
pub fn write_semantic3d_labels(path: &Path, labels: &[u32], overwrite: bool) -> Result<()> {
    write_atomic(path, &[], overwrite, |out| {
        let mut buf = String::with_capacity(1 << 16);
        for l in labels {
            buf.push_str(&l.to_string());
            buf.push('\n');
            if buf.len() > 60_000 {
                out.write_all_or_err(buf.as_bytes())?;
                buf.clear();
            }
        }
        out.write_all_or_err(buf.as_bytes())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_points_and_reports_bad_columns() {
        let t = "1 2 3 -1200 10 20 30\n\n4.5 5 6 7 8 9 10\n";
        let c = read_semantic3d_points(t.as_bytes(), Path::new("s.txt")).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c.feature("intensity").unwrap(), &[-1200.0, 7.0]);
        let e = read_semantic3d_points("1 2 3 4 5 6\n".as_bytes(), Path::new("s.txt"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 1") && e.contains("found 6"), "{e}");
        let e = read_semantic3d_points("1 2 x 4 5 6 7\n".as_bytes(), Path::new("s.txt"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("z (line 1)") && e.contains("\"x\""), "{e}");
        let e = read_semantic3d_points("1 2 inf 4 5 6 7\n".as_bytes(), Path::new("s.txt"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("non-finite"), "{e}");
    }
}
