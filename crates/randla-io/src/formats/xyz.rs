//! Plain delimited text (`.xyz`, `.csv`, `.pts`): one point per line, columns per a spec.
//!
//! Column names: `x`, `y`, `z` (required), `label`/`class`/`classification` (labels),
//! `_` or `skip` (ignored), anything else a feature. Without a spec, a header line of names is
//! used if present, otherwise the first three columns are x y z and the rest are ignored. The
//! delimiter is `,`, `;` or white space, detected from the first data line unless given. A first
//! line holding one whole number alone is the point count of Leica's `.pts` (and of some `.xyz`
//! exports) and is skipped.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use super::{ChunkBuilder, Lines, ReadState};
use crate::chunks::{ChunkRead, Stream};
use crate::cloud::PointCloud;
use crate::error::{Error, Result};

/// Options of the XYZ/CSV reader.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct XyzOptions {
    /// Column names in file order (see the module docs); `None` = header line or `x y z`.
    pub columns: Option<Vec<String>>,
    /// Field delimiter; `None` = detect (`,` then `;` then white space).
    pub delimiter: Option<char>,
}

impl XyzOptions {
    /// Parses a column spec such as `"x,y,z,_,intensity,label"` (commas or spaces).
    pub fn with_spec(spec: &str) -> XyzOptions {
        XyzOptions {
            columns: Some(
                spec.split([',', ' '])
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect(),
            ),
            delimiter: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Col {
    X,
    Y,
    Z,
    Label,
    Skip,
    Feature(usize),
}

/// The fields of a line: split at `delim` and trimmed, or at white space.
enum Tokens<'a> {
    Delim(std::str::Split<'a, char>),
    White(std::str::SplitWhitespace<'a>),
}

impl<'a> Iterator for Tokens<'a> {
    type Item = &'a str;
    fn next(&mut self) -> Option<&'a str> {
        match self {
            Tokens::Delim(s) => s.next().map(str::trim),
            Tokens::White(s) => s.next(),
        }
    }
}

fn split(line: &str, delim: Option<char>) -> Tokens<'_> {
    match delim {
        Some(d) if !d.is_whitespace() => Tokens::Delim(line.split(d)),
        _ => Tokens::White(line.split_whitespace()),
    }
}

/// Reads an XYZ/CSV file.
pub fn read_xyz(path: &Path, opts: &XyzOptions) -> Result<PointCloud> {
    XyzReader::open(path, opts)?.read_all()
}

/// Reads XYZ/CSV text from a stream; `path` only names the source in errors.
pub fn read_xyz_from<R: BufRead>(r: R, path: &Path, opts: &XyzOptions) -> Result<PointCloud> {
    XyzReader::from_reader(r, path, opts).read_all()
}

/// The columns of a file, known from its first line that is not a comment.
#[derive(Debug)]
struct Layout {
    cols: Vec<Col>,
    features: Vec<String>,
    has_label: bool,
    delim: Option<char>,
}

impl Layout {
    /// The layout given by the first line (and `opts`); true if that line is a header.
    fn new(path: &Path, line: &str, opts: &XyzOptions) -> Result<(Layout, bool)> {
        let delim = opts.delimiter.or(delimiter_of(line));
        let is_header = split(line, delim).any(|t| t.parse::<f64>().is_err());
        let names: Vec<String> = match (&opts.columns, is_header) {
            (Some(c), _) => c.clone(),
            (None, true) => split(line, delim)
                .map(|t| t.trim_matches('"').to_string())
                .collect(),
            (None, false) => vec!["x".into(), "y".into(), "z".into()],
        };
        let mut features = Vec::new();
        let mut has_label = false;
        let cols = build(path, &names, &mut features, &mut has_label).map_err(|e| {
            // Names read off the file: say so, and what a first line may be.
            match (e, opts.columns.is_none() && is_header) {
                (Error::Invalid { reason, .. }, true) => Error::invalid(
                    path,
                    "first line",
                    format!("{:?}", line.trim_end()),
                    format!(
                        "{reason}: a text point file opens with a header naming its x, y and z columns, or with a line of numbers (x y z first)"
                    ),
                ),
                (e, _) => e,
            }
        })?;
        let layout = Layout {
            cols,
            features,
            has_label,
            delim,
        };
        Ok((layout, is_header))
    }

    /// Parses data line `no`: the point, its features (into `feats`) and its label.
    fn parse(
        &self,
        path: &Path,
        no: usize,
        line: &str,
        feats: &mut [f32],
    ) -> Result<([f64; 3], Option<u32>)> {
        let mut p = [0f64; 3];
        let mut label = None;
        let mut toks = split(line, self.delim);
        for (got, c) in self.cols.iter().enumerate() {
            let t = toks.next().ok_or_else(|| {
                Error::invalid(
                    path,
                    format!("line {no}"),
                    format!("{line:?}"),
                    format!("expected {} columns, found {got}", self.cols.len()),
                )
            })?;
            match c {
                Col::Skip => {}
                Col::X => p[0] = super::parse_f64(path, "x", no, t)?,
                Col::Y => p[1] = super::parse_f64(path, "y", no, t)?,
                Col::Z => p[2] = super::parse_f64(path, "z", no, t)?,
                Col::Label => label = Some(super::parse_label(path, "label", no, t)?),
                Col::Feature(i) => {
                    feats[*i] = super::parse_f64(path, &self.features[*i], no, t)? as f32
                }
            }
        }
        Ok((p, label))
    }
}

/// Streaming reader of an XYZ/CSV file, line by line in [`PointCloud`] chunks (see
/// [`ChunkRead`]): memory is O(chunk), not O(file).
#[derive(Debug)]
pub struct XyzReader<R: BufRead = BufReader<File>> {
    state: ReadState,
    lines: Lines<R>,
    opts: XyzOptions,
    layout: Option<Layout>,
    feats: Vec<f32>,
    /// Whether a first line of one whole number (a `.pts` point count) was skipped.
    counted: bool,
}

/// The delimiter a line uses: `,`, else `;`, else white space (`None`).
fn delimiter_of(line: &str) -> Option<char> {
    [',', ';'].into_iter().find(|&d| line.contains(d))
}

/// A line that is one whole number alone: the point count that opens a Leica `.pts` file.
fn is_count_line(line: &str) -> bool {
    let t = line.trim();
    !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit())
}

/// Whether the text file at `path` reads as a table of points: its first line that is neither
/// blank nor a comment (`#`, `//`), after an optional `.pts` point count, is numbers (at least
/// three) or a header naming x, y and z columns. Used to pass over other text files (a
/// `README.txt`, a tile index `.csv`) in a folder of point clouds.
pub fn looks_like_points(path: &Path) -> Result<bool> {
    let mut lines = super::sniff_lines(path)?;
    let mut counted = false;
    loop {
        let line = match lines.next_line(path) {
            Ok(Some((_, line))) => line,
            Ok(None) | Err(Error::Invalid { .. }) => return Ok(false),
            Err(e) => return Err(e),
        };
        if line.starts_with('#') || line.starts_with("//") {
            continue;
        }
        if !counted && is_count_line(line) {
            counted = true;
            continue;
        }
        let fields: Vec<&str> = split(line, delimiter_of(line)).collect();
        if fields.iter().all(|t| t.parse::<f64>().is_ok()) {
            return Ok(fields.len() >= 3);
        }
        let named = |n: &str| {
            fields
                .iter()
                .any(|t| t.trim_matches('"').eq_ignore_ascii_case(n))
        };
        return Ok(named("x") && named("y") && named("z"));
    }
}

impl XyzReader {
    /// Opens an XYZ/CSV file.
    pub fn open(path: &Path, opts: &XyzOptions) -> Result<Self> {
        Ok(XyzReader::from_reader(super::open_text(path)?, path, opts))
    }
}

impl<R: BufRead> XyzReader<R> {
    /// Reads from any buffered stream; `path` only names the source in errors.
    pub fn from_reader(reader: R, path: &Path, opts: &XyzOptions) -> Self {
        XyzReader {
            state: ReadState::new(path),
            lines: Lines::new(reader, "line"),
            opts: opts.clone(),
            layout: None,
            feats: Vec::new(),
            counted: false,
        }
    }

    /// Number of points read so far.
    pub fn points_read(&self) -> u64 {
        self.state.read
    }
}

impl<R: BufRead> Stream for XyzReader<R> {
    fn state(&self) -> &ReadState {
        &self.state
    }

    fn state_mut(&mut self) -> &mut ReadState {
        &mut self.state
    }

    fn read_points(&mut self, max: usize) -> Result<Option<PointCloud>> {
        let path = self.state.path.as_path();
        let mut b: Option<ChunkBuilder> = None;
        let mut n = 0;
        while n < max {
            let Some((no, line)) = self.lines.next_line(path)? else {
                break;
            };
            if line.starts_with('#') || line.starts_with("//") {
                continue;
            }
            let layout = match &mut self.layout {
                Some(l) => l,
                None if self.state.read == 0
                    && !self.counted
                    && self.opts.columns.is_none()
                    && is_count_line(line) =>
                {
                    self.counted = true;
                    continue;
                }
                None => {
                    let (l, header) = Layout::new(path, line, &self.opts)?;
                    self.feats = vec![0.0; l.features.len()];
                    let l = self.layout.insert(l);
                    if header {
                        continue;
                    }
                    l
                }
            };
            let (p, label) = layout.parse(path, no, line, &mut self.feats)?;
            let b = b.get_or_insert_with(|| {
                let reserve = max.min(1 << 16);
                ChunkBuilder::new(
                    self.state.origin,
                    layout.features.len(),
                    layout.has_label,
                    reserve,
                )
            });
            b.point(path, p, self.state.read)?;
            b.features(self.feats.iter().copied());
            if let Some(l) = label {
                b.label(l);
            }
            self.state.read += 1;
            n += 1;
        }
        if self.state.read == 0 {
            return Err(Error::empty(path, "no points"));
        }
        let (Some(b), Some(layout)) = (b, &self.layout) else {
            return Ok(None);
        };
        let names = layout.features.iter().map(String::as_str);
        Ok(Some(b.finish(names, &mut self.state.origin)))
    }
}

fn build(
    path: &Path,
    names: &[String],
    features: &mut Vec<String>,
    has_label: &mut bool,
) -> Result<Vec<Col>> {
    let mut cols = Vec::new();
    for n in names {
        let c = match n.to_ascii_lowercase().as_str() {
            "x" => Col::X,
            "y" => Col::Y,
            "z" => Col::Z,
            "label" | "class" | "classification" => {
                if *has_label {
                    return Err(Error::invalid(
                        path,
                        "column spec",
                        names.join(","),
                        "more than one label column",
                    ));
                }
                *has_label = true;
                Col::Label
            }
            "_" | "skip" | "" => Col::Skip,
            _ => {
                features.push(n.clone());
                Col::Feature(features.len() - 1)
            }
        };
        if c != Col::Skip && !matches!(c, Col::Feature(_)) && cols.contains(&c) {
            return Err(Error::invalid(
                path,
                "column spec",
                names.join(","),
                format!("column {n} appears twice"),
            ));
        }
        cols.push(c);
    }
    for (c, n) in [(Col::X, "x"), (Col::Y, "y"), (Col::Z, "z")] {
        if !cols.contains(&c) {
            return Err(Error::invalid(
                path,
                "column spec",
                names.join(","),
                format!("no {n} column"),
            ));
        }
    }
    Ok(cols)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_and_spec() {
        let c = read_xyz_from(
            "x,y,z,intensity,label\n1,2,3,40,5\n4,5,6,70,8\n".as_bytes(),
            Path::new("a.csv"),
            &XyzOptions::default(),
        )
        .unwrap();
        assert_eq!(c.labels, Some(vec![5, 8]));
        assert_eq!(c.feature("intensity").unwrap(), &[40.0, 70.0]);
        let c = read_xyz_from(
            "1 2 3 9 1\n".as_bytes(),
            Path::new("a.xyz"),
            &XyzOptions::with_spec("x y z _ class"),
        )
        .unwrap();
        assert_eq!(c.labels, Some(vec![1]));
        let c = read_xyz_from(
            "# comment\n1 2 3 9\n".as_bytes(),
            Path::new("a.xyz"),
            &XyzOptions::default(),
        )
        .unwrap();
        assert_eq!(c.len(), 1);
        let e = read_xyz_from(
            "1 2\n".as_bytes(),
            Path::new("a.xyz"),
            &XyzOptions::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("line 1") && e.contains("expected 3 columns"),
            "{e}"
        );
        let e = read_xyz_from(
            "1 2 3\n".as_bytes(),
            Path::new("a.xyz"),
            &XyzOptions::with_spec("x,y"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("no z column"), "{e}");
    }

    #[test]
    fn a_pts_count_line_is_skipped() {
        // Leica's .pts: the point count alone, then x y z intensity r g b.
        let c = read_xyz_from(
            "3\n1 2 3 -20 10 20 30\n4 5 6 7 1 2 3\n7 8 9 0 0 0 0\n".as_bytes(),
            Path::new("a.pts"),
            &XyzOptions::default(),
        )
        .unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(c.point_f64(2), [7.0, 8.0, 9.0]);
        // Only a first line: a lone number later is a short line.
        let e = read_xyz_from(
            "1 2 3\n4\n".as_bytes(),
            Path::new("a.xyz"),
            &XyzOptions::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("line 2") && e.contains("expected 3 columns"),
            "{e}"
        );
    }

    #[test]
    fn a_first_line_that_is_not_a_header_of_points_is_named() {
        let e = read_xyz_from(
            "Tiles of the survey\n".as_bytes(),
            Path::new("README.txt"),
            &XyzOptions::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("README.txt")
                && e.contains("first line")
                && e.contains("\"Tiles of the survey\"")
                && e.contains("no x column"),
            "{e}"
        );
    }

    #[test]
    fn point_tables_are_told_from_other_text() {
        let dir = tempfile::tempdir().unwrap();
        let cases: [(&str, &[u8], bool); 9] = [
            ("numbers.xyz", b"\n1 2 3\n", true),
            ("seven.txt", b"1 2 3 4 5 6 7\n", true),
            (
                "header.csv",
                b"# made by hand\n\"X\",\"Y\",\"Z\",intensity\n1,2,3,4\n",
                true,
            ),
            ("count.pts", b"2\n1 2 3 4\n5 6 7 8\n", true),
            ("README.txt", b"Tiles of the survey\n", false),
            ("index.csv", b"name,xmin,ymin\na.laz,0,0\n", false),
            ("two.xyz", b"1 2\n", false),
            ("blank.txt", b"\n\n", false),
            ("binary.txt", &[0xff, 0xfe, 0x00, 0x31], false),
        ];
        for (name, bytes, points) in cases {
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            assert_eq!(looks_like_points(&p).unwrap(), points, "{name}");
        }
        assert!(looks_like_points(&dir.path().join("missing.txt")).is_err());
    }
}
