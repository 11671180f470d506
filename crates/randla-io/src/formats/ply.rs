//! Stanford PLY, ascii and binary (little and big endian): reader and writer.
//!
//! The `vertex` element supplies the points: `x`, `y`, `z` (float or double), and every other
//! scalar property becomes an `f32` feature, except the label, taken from the property named in
//! [`PlyOptions::label`] or else the first of [`LABEL_NAMES`] (in any case). Other elements
//! (faces...) are skipped. Features keep their property names; [`crate::PointCloud::feature`]
//! finds a LAS dimension under the names PDAL or CloudCompare give it (`returnnumber`,
//! `scalar_Intensity`...). [`rewrite_ply_labels`] writes predictions back into a copy of a PLY
//! file.

mod rewrite;
pub use rewrite::rewrite_ply_labels;

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;

use super::{ChunkBuilder, Lines, ReadState};
use crate::atomic::write_atomic;
use crate::chunks::{ChunkRead, Stream};
use crate::cloud::PointCloud;
use crate::error::{Error, Result};
use crate::formats::las::Probabilities;

/// Property names searched for the label, in order (compared without regard to case).
pub const LABEL_NAMES: [&str; 5] = [
    "class",
    "label",
    "scalar_Label",
    "scalar_Classification",
    "classification",
];

/// The vertex property holding the label: `name` if given (it must exist), else the first of
/// [`LABEL_NAMES`] present, exact spelling first, then in any case. Must be a scalar.
fn label_property(props: &[Prop], name: Option<&str>, path: &Path) -> Result<Option<usize>> {
    let find = |n: &str| props.iter().position(|p| p.name() == n);
    let found = match name {
        Some(n) => Some(find(n).ok_or_else(|| {
            Error::invalid(
                path,
                format!("label property {n}"),
                "missing",
                "the requested label property is not in the vertex element",
            )
        })?),
        None => LABEL_NAMES.iter().find_map(|n| find(n)).or_else(|| {
            LABEL_NAMES
                .iter()
                .find_map(|n| props.iter().position(|p| p.name().eq_ignore_ascii_case(n)))
        }),
    };
    if let Some(li) = found
        && let Prop::List { name, .. } = &props[li]
    {
        return Err(Error::invalid(
            path,
            format!("property {name} type"),
            "list",
            "a label must be a scalar",
        ));
    }
    Ok(found)
}

/// Scalar property types of PLY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    I8,
    U8,
    I16,
    U16,
    I32,
    U32,
    F32,
    F64,
}

impl Ty {
    fn parse(s: &str) -> Option<Ty> {
        Some(match s {
            "char" | "int8" => Ty::I8,
            "uchar" | "uint8" => Ty::U8,
            "short" | "int16" => Ty::I16,
            "ushort" | "uint16" => Ty::U16,
            "int" | "int32" => Ty::I32,
            "uint" | "uint32" => Ty::U32,
            "float" | "float32" => Ty::F32,
            "double" | "float64" => Ty::F64,
            _ => return None,
        })
    }
    fn size(self) -> usize {
        match self {
            Ty::I8 | Ty::U8 => 1,
            Ty::I16 | Ty::U16 => 2,
            Ty::I32 | Ty::U32 | Ty::F32 => 4,
            Ty::F64 => 8,
        }
    }
    fn is_float(self) -> bool {
        matches!(self, Ty::F32 | Ty::F64)
    }
    /// The PLY name of the type (what [`Ty::parse`] reads first).
    fn name(self) -> &'static str {
        match self {
            Ty::I8 => "char",
            Ty::U8 => "uchar",
            Ty::I16 => "short",
            Ty::U16 => "ushort",
            Ty::I32 => "int",
            Ty::U32 => "uint",
            Ty::F32 => "float",
            Ty::F64 => "double",
        }
    }
    /// Writes `v` as this type into `out` (`self.size()` bytes): the inverse of [`Ty::decode`].
    fn encode(self, v: f64, big: bool, out: &mut [u8]) {
        macro_rules! put {
            ($x:expr) => {{
                let x = $x;
                out.copy_from_slice(&if big {
                    x.to_be_bytes()
                } else {
                    x.to_le_bytes()
                })
            }};
        }
        match self {
            Ty::I8 => out[0] = v as i8 as u8,
            Ty::U8 => out[0] = v as u8,
            Ty::I16 => put!(v as i16),
            Ty::U16 => put!(v as u16),
            Ty::I32 => put!(v as i32),
            Ty::U32 => put!(v as u32),
            Ty::F32 => put!(v as f32),
            Ty::F64 => put!(v),
        }
    }
    fn decode(self, b: &[u8], big: bool) -> f64 {
        macro_rules! get {
            ($t:ty, $n:expr) => {{
                let mut a = [0u8; $n];
                a.copy_from_slice(&b[..$n]);
                if big {
                    <$t>::from_be_bytes(a)
                } else {
                    <$t>::from_le_bytes(a)
                }
            }};
        }
        match self {
            Ty::I8 => f64::from(b[0] as i8),
            Ty::U8 => f64::from(b[0]),
            Ty::I16 => f64::from(get!(i16, 2)),
            Ty::U16 => f64::from(get!(u16, 2)),
            Ty::I32 => f64::from(get!(i32, 4)),
            Ty::U32 => f64::from(get!(u32, 4)),
            Ty::F32 => f64::from(get!(f32, 4)),
            Ty::F64 => get!(f64, 8),
        }
    }
}

#[derive(Debug, Clone)]
enum Prop {
    Scalar { name: String, ty: Ty },
    List { name: String, count: Ty, item: Ty },
}

impl Prop {
    fn name(&self) -> &str {
        match self {
            Prop::Scalar { name, .. } | Prop::List { name, .. } => name,
        }
    }
}

#[derive(Debug, Clone)]
struct Element {
    name: String,
    count: u64,
    props: Vec<Prop>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Ascii,
    Le,
    Be,
}

/// Options of the PLY reader.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlyOptions {
    /// Name of the label property; `None` tries [`LABEL_NAMES`].
    pub label: Option<String>,
}

/// Encoding of a written PLY file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PlyEncoding {
    /// Human-readable text.
    Ascii,
    /// Binary little endian (compact and fast).
    #[default]
    BinaryLittleEndian,
}

/// Reads a PLY file.
pub fn read_ply(path: &Path, opts: &PlyOptions) -> Result<PointCloud> {
    PlyReader::open(path, opts)?.read_all()
}

/// Reads PLY data held in memory; `path` only names the source in errors.
pub fn read_ply_bytes(bytes: &[u8], path: &Path, opts: &PlyOptions) -> Result<PointCloud> {
    if bytes.is_empty() {
        return Err(Error::empty(path, "file has 0 bytes"));
    }
    PlyReader::new(bytes, path, opts, Some(bytes.len() as u64))?.read_all()
}

/// The longest header line accepted (a binary file without newlines is not read whole).
const MAX_HEADER_LINE: u64 = 64 << 10;

/// Binary vertex rows are read in blocks of about this many bytes.
const BLOCK_BYTES: usize = 256 << 10;

/// The parsed header: encoding, elements, and its length in bytes.
struct Header {
    encoding: Encoding,
    elements: Vec<Element>,
    /// The header's bytes as read, up to and including the line `end_header`.
    raw: Vec<u8>,
}

fn parse_header<R: BufRead>(r: &mut R, path: &Path) -> Result<Header> {
    // The header is ascii text up to and including the line "end_header".
    let mut lines: Vec<(usize, String)> = Vec::new();
    let mut found_end = false;
    let mut line_no = 0usize;
    let mut raw = Vec::new();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = r
            .by_ref()
            .take(MAX_HEADER_LINE)
            .read_until(b'\n', &mut buf)
            .map_err(|e| Error::io(path, "read header", e))?;
        let complete = buf.last() == Some(&b'\n');
        if !complete && n as u64 == MAX_HEADER_LINE && line_no > 0 {
            return Err(Error::invalid(
                path,
                format!("header line {}", line_no + 1),
                format!("more than {MAX_HEADER_LINE} bytes"),
                "not a PLY header line",
            ));
        }
        let line = complete.then(|| {
            String::from_utf8_lossy(&buf[..n - 1])
                .trim_end_matches('\r')
                .to_string()
        });
        if line_no == 0 && line.as_deref().map(str::trim) != Some("ply") {
            // The first 16 bytes of the file name it in the error.
            let mut first = buf[..n.min(16)].to_vec();
            if first.len() < 16
                && let Ok(more) = r.fill_buf()
            {
                first.extend_from_slice(&more[..more.len().min(16 - first.len())]);
            }
            return Err(Error::invalid(
                path,
                "magic",
                format!("{:?}", String::from_utf8_lossy(&first)),
                "a PLY file starts with the line \"ply\"",
            ));
        }
        let Some(line) = line else { break };
        raw.extend_from_slice(&buf[..n]);
        line_no += 1;
        if line.trim() == "end_header" {
            found_end = true;
            break;
        }
        lines.push((line_no, line));
        if line_no > 10_000 {
            break;
        }
    }
    if !found_end {
        return Err(Error::truncated(
            path,
            "header",
            "a line \"end_header\"",
            "end of file",
        ));
    }
    let mut encoding = None;
    let mut elements: Vec<Element> = Vec::new();
    for (no, line) in &lines[1..] {
        let toks: Vec<&str> = line.split_whitespace().collect();
        match toks.as_slice() {
            [] => {}
            ["comment", ..] | ["obj_info", ..] => {}
            ["format", f, v] => {
                if *v != "1.0" {
                    return Err(Error::unsupported(
                        path,
                        format!("format version (header line {no})"),
                        v,
                        "only PLY 1.0 exists",
                    ));
                }
                encoding = Some(match *f {
                    "ascii" => Encoding::Ascii,
                    "binary_little_endian" => Encoding::Le,
                    "binary_big_endian" => Encoding::Be,
                    _ => {
                        return Err(Error::invalid(
                            path,
                            format!("format (header line {no})"),
                            f,
                            "expected ascii, binary_little_endian or binary_big_endian",
                        ));
                    }
                });
            }
            ["element", name, count] => {
                let count = count.parse::<u64>().map_err(|_| {
                    Error::invalid(
                        path,
                        format!("element {name} count (header line {no})"),
                        count,
                        "not a non-negative integer",
                    )
                })?;
                elements.push(Element {
                    name: name.to_string(),
                    count,
                    props: Vec::new(),
                });
            }
            ["property", "list", c, i, name] => {
                let el = elements.last_mut().ok_or_else(|| {
                    Error::invalid(
                        path,
                        format!("header line {no}"),
                        line,
                        "property before any element",
                    )
                })?;
                let count = Ty::parse(c).ok_or_else(|| {
                    Error::invalid(
                        path,
                        format!("property {name} list count type"),
                        c,
                        "unknown PLY type",
                    )
                })?;
                let item = Ty::parse(i).ok_or_else(|| {
                    Error::invalid(
                        path,
                        format!("property {name} list item type"),
                        i,
                        "unknown PLY type",
                    )
                })?;
                if count.is_float() {
                    return Err(Error::invalid(
                        path,
                        format!("property {name} list count type"),
                        c,
                        "must be an integer type",
                    ));
                }
                el.props.push(Prop::List {
                    name: name.to_string(),
                    count,
                    item,
                });
            }
            ["property", ty, name] => {
                let el = elements.last_mut().ok_or_else(|| {
                    Error::invalid(
                        path,
                        format!("header line {no}"),
                        line,
                        "property before any element",
                    )
                })?;
                let ty = Ty::parse(ty).ok_or_else(|| {
                    Error::invalid(
                        path,
                        format!("property {name} type"),
                        ty,
                        "unknown PLY type",
                    )
                })?;
                el.props.push(Prop::Scalar {
                    name: name.to_string(),
                    ty,
                });
            }
            _ => {
                return Err(Error::invalid(
                    path,
                    format!("header line {no}"),
                    format!("{line:?}"),
                    "not a PLY header line",
                ));
            }
        }
    }
    let encoding = encoding.ok_or_else(|| {
        Error::invalid(path, "format", "missing", "the header has no format line")
    })?;
    Ok(Header {
        encoding,
        elements,
        raw,
    })
}

/// Streaming reader of a PLY file's vertices, in [`PointCloud`] chunks (see [`ChunkRead`]).
///
/// Reads from a buffered stream: memory is O(chunk), not O(file). Elements before the vertex
/// element (faces...) are skipped at open, elements after it are never read. All chunks share
/// one origin, chosen from the first point.
#[derive(Debug)]
pub struct PlyReader<R: BufRead = BufReader<File>> {
    state: ReadState,
    src: Lines<R>,
    encoding: Encoding,
    /// The vertex element's properties.
    props: Vec<Prop>,
    map: VertexMap,
    /// Binary rows of scalars only: (offset, type) per property and the row length.
    fixed: Option<(Vec<(usize, Ty)>, usize)>,
    count: u64,
    /// Most points reserved up front (the count is trusted only when checked against the size).
    reserve: u64,
    row: Vec<f64>,
    buf: Vec<u8>,
}

impl PlyReader {
    /// Opens a PLY file and parses its header; skips the elements before the vertices.
    pub fn open(path: impl AsRef<Path>, opts: &PlyOptions) -> Result<Self> {
        let path = path.as_ref();
        let f = super::open(path)?;
        let len = f.metadata().map_err(|e| Error::io(path, "stat", e))?.len();
        if len == 0 {
            return Err(Error::empty(path, "file has 0 bytes"));
        }
        PlyReader::new(BufReader::with_capacity(1 << 20, f), path, opts, Some(len))
    }
}

impl<R: BufRead> PlyReader<R> {
    /// Reads from any buffered stream; `path` only names the source in errors.
    pub fn from_reader(reader: R, path: &Path, opts: &PlyOptions) -> Result<Self> {
        PlyReader::new(reader, path, opts, None)
    }

    /// `total_len`: the stream's length in bytes when known, to reject an impossible vertex
    /// count before reading.
    fn new(mut reader: R, path: &Path, opts: &PlyOptions, total_len: Option<u64>) -> Result<Self> {
        let Header {
            encoding,
            elements,
            raw,
        } = parse_header(&mut reader, path)?;
        let len = raw.len() as u64;
        let vi = elements
            .iter()
            .position(|e| e.name == "vertex")
            .ok_or_else(|| {
                Error::invalid(
                    path,
                    "element vertex",
                    "missing",
                    "a PLY point cloud needs a vertex element",
                )
            })?;
        let vertex = &elements[vi];
        let find = |n: &str| vertex.props.iter().position(|p| p.name() == n);
        let mut xyz = [0usize; 3];
        for (k, n) in ["x", "y", "z"].into_iter().enumerate() {
            let i = find(n).ok_or_else(|| {
                Error::invalid(
                    path,
                    format!("property {n}"),
                    "missing",
                    "the vertex element needs x, y and z",
                )
            })?;
            match &vertex.props[i] {
                Prop::Scalar { ty, .. } if ty.is_float() => {}
                Prop::Scalar { ty, .. } => {
                    return Err(Error::invalid(
                        path,
                        format!("property {n} type"),
                        format!("{ty:?}").to_lowercase(),
                        "x, y and z must be float or double",
                    ));
                }
                Prop::List { .. } => {
                    return Err(Error::invalid(
                        path,
                        format!("property {n} type"),
                        "list",
                        "x, y and z must be float or double",
                    ));
                }
            }
            xyz[k] = i;
        }
        let label = label_property(&vertex.props, opts.label.as_deref(), path)?;
        if vertex.count == 0 {
            return Err(Error::empty(path, "element vertex has 0 points"));
        }
        // A point takes at least one byte per property (two in ascii), so a count larger than the
        // data cannot be right; checking it first fails fast on corrupt headers.
        let min_point = match encoding {
            Encoding::Ascii => 2 * vertex.props.len() as u64,
            _ => vertex
                .props
                .iter()
                .map(|p| match p {
                    Prop::Scalar { ty, .. } => ty.size() as u64,
                    Prop::List { count, .. } => count.size() as u64,
                })
                .sum(),
        };
        let body = total_len.map(|t| t.saturating_sub(len));
        if let Some(body) = body
            && vertex.count.saturating_mul(min_point.max(1)) > body
        {
            return Err(Error::invalid(
                path,
                "element vertex count",
                vertex.count,
                format!(
                    "the {body} bytes of data cannot hold that many points: truncated or corrupt"
                ),
            ));
        }
        let features: Vec<usize> = (0..vertex.props.len())
            .filter(|&i| {
                !xyz.contains(&i)
                    && Some(i) != label
                    && matches!(vertex.props[i], Prop::Scalar { .. })
            })
            .collect();
        let fixed = fixed_layout(&vertex.props);
        let (props, count) = (vertex.props.clone(), vertex.count);
        let mut src = Lines::new(reader, "data line");
        for e in &elements[..vi] {
            skip_element(&mut src, path, e, encoding)?;
        }
        Ok(PlyReader {
            state: ReadState::new(path),
            src,
            encoding,
            row: vec![0.0; props.len()],
            map: VertexMap {
                xyz,
                label: label.map(|i| (i, props[i].name().to_string())),
                features,
            },
            props,
            fixed,
            count,
            reserve: if body.is_some() { count } else { 1 << 16 },
            buf: Vec::new(),
        })
    }

    /// Number of points announced by the header.
    pub fn point_count(&self) -> u64 {
        self.count
    }

    /// Number of points read so far.
    pub fn points_read(&self) -> u64 {
        self.state.read
    }

    /// Reads `n` more vertices into a chunk.
    fn read_rows(&mut self, n: usize) -> Result<PointCloud> {
        let reserve = (n as u64).min(self.reserve) as usize;
        let map = &self.map;
        let mut b = ChunkBuilder::new(
            self.state.origin,
            map.features.len(),
            map.label.is_some(),
            reserve,
        );
        let path = self.state.path.as_path();
        let big = self.encoding == Encoding::Be;
        match (self.encoding, &self.fixed) {
            (Encoding::Ascii, _) => {
                for _ in 0..n {
                    let Some((no, line)) = self.src.next_line(path)? else {
                        return Err(Error::truncated(
                            path,
                            "element vertex",
                            format!("{} rows", self.count),
                            format!("{} rows", self.state.read),
                        ));
                    };
                    parse_ascii_row(path, &self.props, no, line, &mut self.row)?;
                    map.push(&mut b, path, &self.row, self.state.read)?;
                    self.state.read += 1;
                }
            }
            (_, Some((layout, row_len))) => {
                let row_len = *row_len;
                let block = (BLOCK_BYTES / row_len).max(1);
                let mut buf = std::mem::take(&mut self.buf);
                let mut left = n;
                while left > 0 {
                    let rows = left.min(block);
                    buf.resize(rows * row_len, 0);
                    let got = super::read_full(&mut self.src.r, &mut buf, path)?;
                    for rec in buf[..got].chunks_exact(row_len) {
                        for (v, &(at, ty)) in self.row.iter_mut().zip(layout) {
                            *v = ty.decode(&rec[at..], big);
                        }
                        map.push(&mut b, path, &self.row, self.state.read)?;
                        self.state.read += 1;
                    }
                    if got < buf.len() {
                        // The first property cut short, and how many of its bytes are there.
                        let part = got % row_len;
                        let (pi, &(at, ty)) = layout
                            .iter()
                            .enumerate()
                            .rfind(|(_, (at, _))| *at <= part)
                            .unwrap_or((0, &layout[0]));
                        return Err(Error::truncated(
                            path,
                            format!(
                                "element vertex row {} property {}",
                                self.state.read,
                                self.props[pi].name()
                            ),
                            format!("{} bytes", ty.size()),
                            format!("{} bytes left", part - at),
                        ));
                    }
                    left -= rows;
                }
                self.buf = buf;
            }
            (_, None) => {
                let mut scratch = RowBuf::default();
                for _ in 0..n {
                    let row = Some(&mut self.row[..]);
                    let (r, j) = (&mut self.src.r, self.state.read);
                    read_binary_row(r, path, "vertex", &self.props, j, big, row, &mut scratch)?;
                    map.push(&mut b, path, &self.row, self.state.read)?;
                    self.state.read += 1;
                }
            }
        }
        let names = map.features.iter().map(|&i| self.props[i].name());
        Ok(b.finish(names, &mut self.state.origin))
    }
}

/// Where the values of a vertex row go in a chunk.
#[derive(Debug)]
struct VertexMap {
    xyz: [usize; 3],
    /// The label property's index and name.
    label: Option<(usize, String)>,
    /// Indices of the properties that become features, in file order.
    features: Vec<usize>,
}

impl VertexMap {
    /// Adds vertex `index`, whose values are `row`, to the chunk.
    fn push(&self, b: &mut ChunkBuilder, path: &Path, row: &[f64], index: u64) -> Result<()> {
        let p = [row[self.xyz[0]], row[self.xyz[1]], row[self.xyz[2]]];
        b.point(path, p, index)?;
        b.features(self.features.iter().map(|&i| row[i] as f32));
        if let Some((li, name)) = &self.label {
            let v = row[*li];
            b.label(super::label_from_f64(
                path,
                format_args!("{name} of vertex {index}"),
                v,
            )?);
        }
        Ok(())
    }
}

impl<R: BufRead> Stream for PlyReader<R> {
    fn state(&self) -> &ReadState {
        &self.state
    }

    fn state_mut(&mut self) -> &mut ReadState {
        &mut self.state
    }

    fn read_points(&mut self, max: usize) -> Result<Option<PointCloud>> {
        let n = (self.count - self.state.read).min(max as u64) as usize;
        if n == 0 {
            return Ok(None);
        }
        self.read_rows(n).map(Some)
    }
}

/// Parses the properties of one ascii row into `row` (list properties are skipped).
fn parse_ascii_row(
    path: &Path,
    props: &[Prop],
    no: usize,
    line: &str,
    row: &mut [f64],
) -> Result<()> {
    let mut toks = line.split_whitespace();
    for (pi, p) in props.iter().enumerate() {
        let field = || format!("property {} (data line {no})", p.name());
        let want = match p {
            Prop::Scalar { .. } => "a value",
            Prop::List { .. } => "a list count",
        };
        let t = toks
            .next()
            .ok_or_else(|| Error::truncated(path, field(), want, "end of line"))?;
        match p {
            Prop::Scalar { .. } => {
                row[pi] = t
                    .parse::<f64>()
                    .map_err(|_| Error::invalid(path, field(), format!("{t:?}"), "not a number"))?;
            }
            Prop::List { .. } => {
                let c = t.parse::<usize>().map_err(|_| {
                    Error::invalid(path, field(), format!("{t:?}"), "not a list count")
                })?;
                for _ in 0..c {
                    toks.next().ok_or_else(|| {
                        Error::truncated(path, field(), format!("{c} list items"), "end of line")
                    })?;
                }
            }
        }
    }
    Ok(())
}

/// A binary row's bytes and its properties' offsets, reused from row to row.
#[derive(Debug, Default)]
struct RowBuf {
    bytes: Vec<u8>,
    at: Vec<usize>,
}

/// The offset of each property in a binary row and the row's length, when every property is a
/// scalar (rows of one size, read in blocks).
fn fixed_layout(props: &[Prop]) -> Option<(Vec<(usize, Ty)>, usize)> {
    let mut layout = Vec::with_capacity(props.len());
    let mut len = 0;
    for p in props {
        let Prop::Scalar { ty, .. } = p else {
            return None;
        };
        layout.push((len, *ty));
        len += ty.size();
    }
    Some((layout, len))
}

/// Reads one binary row of element `name` (row `j`) into `scratch`, decoding its scalars into
/// `row` if given.
#[allow(clippy::too_many_arguments)]
fn read_binary_row(
    r: &mut impl Read,
    path: &Path,
    name: &str,
    props: &[Prop],
    j: u64,
    big: bool,
    row: Option<&mut [f64]>,
    scratch: &mut RowBuf,
) -> Result<()> {
    scratch.bytes.clear();
    copy_binary_row(
        r,
        path,
        name,
        props,
        j,
        big,
        &mut scratch.bytes,
        &mut scratch.at,
    )?;
    if let Some(row) = row {
        for (pi, p) in props.iter().enumerate() {
            if let Prop::Scalar { ty, .. } = p {
                row[pi] = ty.decode(&scratch.bytes[scratch.at[pi]..], big);
            }
        }
    }
    Ok(())
}

/// Copies binary row `j` of element `name` onto `buf`; sets `at` to each property's offset in
/// it.
#[allow(clippy::too_many_arguments)]
fn copy_binary_row(
    r: &mut impl Read,
    path: &Path,
    name: &str,
    props: &[Prop],
    j: u64,
    big: bool,
    buf: &mut Vec<u8>,
    at: &mut Vec<usize>,
) -> Result<()> {
    let start = buf.len();
    at.clear();
    for p in props {
        at.push(buf.len() - start);
        let short = |want: u64, left: usize| {
            Error::truncated(
                path,
                format!("element {name} row {j} property {}", p.name()),
                format!("{want} bytes"),
                format!("{left} bytes left"),
            )
        };
        let (ty, item) = match p {
            Prop::Scalar { ty, .. } => (*ty, None),
            Prop::List { count, item, .. } => (*count, Some(*item)),
        };
        let off = buf.len();
        buf.resize(off + ty.size(), 0);
        let got = super::read_full(r, &mut buf[off..], path)?;
        if got < ty.size() {
            return Err(short(ty.size() as u64, got));
        }
        if let Some(item) = item {
            let c = ty.decode(&buf[off..], big);
            if c < 0.0 {
                return Err(Error::invalid(
                    path,
                    format!("element {name} row {j} property {} count", p.name()),
                    c,
                    "negative list length",
                ));
            }
            // Read through `take`, so that the buffer grows with the bytes there are, not with
            // a corrupt count.
            let len = (c as u64).saturating_mul(item.size() as u64);
            let got = r
                .by_ref()
                .take(len)
                .read_to_end(buf)
                .map_err(|e| Error::io(path, "read", e))?;
            if (got as u64) < len {
                return Err(short(len, got));
            }
        }
    }
    Ok(())
}

/// Skips all rows of an element that comes before the vertices.
fn skip_element<R: BufRead>(
    src: &mut Lines<R>,
    path: &Path,
    e: &Element,
    encoding: Encoding,
) -> Result<()> {
    let fixed = fixed_layout(&e.props).map(|(_, len)| len as u64);
    match (encoding, fixed) {
        (Encoding::Ascii, _) => {
            for j in 0..e.count {
                if src.next_line(path)?.is_none() {
                    return Err(Error::truncated(
                        path,
                        format!("element {}", e.name),
                        format!("{} rows", e.count),
                        format!("{j} rows"),
                    ));
                }
            }
        }
        (_, Some(sz)) => {
            let need = u128::from(e.count) * u128::from(sz);
            let got = super::skip_bytes(&mut src.r, u64::try_from(need).unwrap_or(u64::MAX), path)?;
            if u128::from(got) < need {
                return Err(Error::truncated(
                    path,
                    format!("element {}", e.name),
                    format!("{need} bytes"),
                    format!("{got} bytes"),
                ));
            }
        }
        (_, None) => {
            let big = encoding == Encoding::Be;
            let mut scratch = RowBuf::default();
            for j in 0..e.count {
                read_binary_row(
                    &mut src.r,
                    path,
                    &e.name,
                    &e.props,
                    j,
                    big,
                    None,
                    &mut scratch,
                )?;
            }
        }
    }
    Ok(())
}

/// Options of [`write_ply`].
#[derive(Debug, Clone, Copy, Default)]
pub struct PlyWriteOptions<'a> {
    /// Ascii or binary.
    pub encoding: PlyEncoding,
    /// Replace an existing output.
    pub overwrite: bool,
    /// Optional per-point confidence written as `float confidence`.
    pub confidence: Option<&'a [f32]>,
    /// Optional class probabilities written as `float prob_<name>`.
    pub probabilities: Option<Probabilities<'a>>,
}

/// Writes `cloud` as PLY: `double x, y, z` (absolute), every feature as `float`, labels as
/// `uint label`, then the optional confidence and probabilities. Atomic (temporary file and
/// rename); an existing output is replaced only with `overwrite`.
pub fn write_ply(path: &Path, cloud: &PointCloud, opts: &PlyWriteOptions<'_>) -> Result<()> {
    cloud.validate(path)?;
    let n = cloud.len();
    if let Some(c) = opts.confidence
        && c.len() != n
    {
        return Err(Error::argument(
            path,
            "confidence length",
            c.len(),
            format!("must equal the point count {n}"),
        ));
    }
    let k = opts.probabilities.map_or(0, |p| p.names.len());
    if let Some(p) = opts.probabilities
        && p.values.len() != n * k
    {
        return Err(Error::argument(
            path,
            "probabilities length",
            p.values.len(),
            format!("must be points × classes = {n} × {k}"),
        ));
    }
    let mut names: Vec<String> = Vec::new();
    for f in &cloud.features {
        names.push(f.name.clone());
    }
    if opts.confidence.is_some() {
        names.push("confidence".into());
    }
    if let Some(p) = opts.probabilities {
        names.extend(p.names.iter().map(|n| format!("prob_{n}")));
    }
    for nm in &names {
        if nm.is_empty()
            || nm.chars().any(char::is_whitespace)
            || ["x", "y", "z", "label"].contains(&nm.as_str())
        {
            return Err(Error::argument(
                path,
                "property name",
                format!("{nm:?}"),
                "must be non-empty, without spaces, and not x/y/z/label",
            ));
        }
    }
    write_atomic(path, &[], opts.overwrite, |out| {
        let mut h = String::from("ply\n");
        h += match opts.encoding {
            PlyEncoding::Ascii => "format ascii 1.0\n",
            PlyEncoding::BinaryLittleEndian => "format binary_little_endian 1.0\n",
        };
        h += "comment written by randla-io\n";
        h += &format!(
            "element vertex {n}\nproperty double x\nproperty double y\nproperty double z\n"
        );
        for nm in &names {
            h += &format!("property float {nm}\n");
        }
        if cloud.labels.is_some() {
            h += "property uint label\n";
        }
        h += "end_header\n";
        out.write_all_or_err(h.as_bytes())?;
        let mut buf: Vec<u8> = Vec::with_capacity(1 << 16);
        let mut vals: Vec<f32> = Vec::with_capacity(names.len());
        for i in 0..n {
            let p = cloud.point_f64(i);
            vals.clear();
            vals.extend(cloud.features.iter().map(|f| f.values[i]));
            if let Some(c) = opts.confidence {
                vals.push(c[i]);
            }
            if let Some(pr) = opts.probabilities {
                vals.extend_from_slice(&pr.values[i * k..(i + 1) * k]);
            }
            let label = cloud.labels.as_ref().map(|l| l[i]);
            match opts.encoding {
                PlyEncoding::Ascii => {
                    let _ = write!(buf, "{} {} {}", p[0], p[1], p[2]);
                    for v in &vals {
                        let _ = write!(buf, " {v}");
                    }
                    if let Some(l) = label {
                        let _ = write!(buf, " {l}");
                    }
                    buf.push(b'\n');
                }
                PlyEncoding::BinaryLittleEndian => {
                    for c in p {
                        buf.extend_from_slice(&c.to_le_bytes());
                    }
                    for v in &vals {
                        buf.extend_from_slice(&v.to_le_bytes());
                    }
                    if let Some(l) = label {
                        buf.extend_from_slice(&l.to_le_bytes());
                    }
                }
            }
            if buf.len() > (1 << 16) - 256 {
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

    #[test]
    fn ascii_with_faces_before_vertices_is_skipped() {
        let ply = b"ply\nformat ascii 1.0\nelement face 1\nproperty list uchar int vertex_indices\nelement vertex 2\nproperty float x\nproperty float y\nproperty float z\nproperty uchar red\nproperty int scalar_Label\nend_header\n3 0 1 1\n1 2 3 255 4\n4 5 6 0 5\n";
        let c = read_ply_bytes(ply, Path::new("t.ply"), &PlyOptions::default()).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c.labels, Some(vec![4, 5]));
        assert_eq!(c.feature("red").unwrap(), &[255.0, 0.0]);
        assert_eq!(c.point_f64(1), [4.0, 5.0, 6.0]);
    }

    #[test]
    fn las_dimensions_from_pdal_or_cloudcompare_are_found_by_their_las_names() {
        // PDAL lower-cases its dimension names (`returnnumber`, `classification`), CloudCompare
        // prefixes scalar fields (`scalar_Intensity`): a model trained on LAS finds them.
        let ply = b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\nproperty float z\nproperty ushort scalar_Intensity\nproperty uchar returnnumber\nproperty uchar scalar_Number_Of_Returns\nproperty float nir\nproperty float Infrared\nproperty uchar Classification\nend_header\n1 2 3 400 1 2 0.5 0.25 6\n";
        let c = read_ply_bytes(ply, Path::new("t.ply"), &PlyOptions::default()).unwrap();
        assert_eq!(c.feature_names()[..2], ["scalar_Intensity", "returnnumber"]);
        assert_eq!(c.feature("intensity").unwrap(), &[400.0]);
        assert_eq!(c.feature("scalar_Intensity").unwrap(), &[400.0]);
        assert_eq!(c.feature("return_number").unwrap(), &[1.0]);
        assert_eq!(c.feature("number_of_returns").unwrap(), &[2.0]);
        // An exact name first.
        assert_eq!(c.feature("nir").unwrap(), &[0.5]);
        assert_eq!(c.feature("Infrared").unwrap(), &[0.25]);
        assert_eq!(c.feature("scan_angle"), None);
        assert_eq!(c.labels, Some(vec![6]));
    }

    #[test]
    fn a_huge_list_count_is_a_truncation_not_an_allocation() {
        // A face before the vertices whose (uint) list count claims 4 G items of 8 bytes: the
        // row is read as far as the file goes and named, without first reserving (and zeroing)
        // 32 GB, more than a machine of this project holds.
        let mut ply = b"ply\nformat binary_little_endian 1.0\nelement face 1\nproperty list uint double vertex_indices\nelement vertex 1\nproperty float x\nproperty float y\nproperty float z\nend_header\n".to_vec();
        ply.extend_from_slice(&u32::MAX.to_le_bytes());
        ply.extend_from_slice(&[0u8; 24]);
        let e = read_ply_bytes(&ply, Path::new("t.ply"), &PlyOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("t.ply") && e.contains("element face row 0 property vertex_indices"),
            "{e}"
        );
    }

    #[test]
    fn big_endian_binary() {
        let mut ply = b"ply\nformat binary_big_endian 1.0\nelement vertex 1\nproperty double x\nproperty double y\nproperty double z\nproperty ushort class\nend_header\n".to_vec();
        for v in [770_500.25f64, 6_277_500.5, 12.0] {
            ply.extend_from_slice(&v.to_be_bytes());
        }
        ply.extend_from_slice(&6u16.to_be_bytes());
        let c = read_ply_bytes(&ply, Path::new("t.ply"), &PlyOptions::default()).unwrap();
        assert_eq!(c.point_f64(0), [770_500.25, 6_277_500.5, 12.0]);
        assert_eq!(c.labels, Some(vec![6]));
    }

    #[test]
    fn integer_coordinates_are_rejected_with_type() {
        let ply = b"ply\nformat ascii 1.0\nelement vertex 1\nproperty int x\nproperty float y\nproperty float z\nend_header\n1 2 3\n";
        let e = read_ply_bytes(ply, Path::new("t.ply"), &PlyOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("t.ply") && e.contains("property x") && e.contains("i32"),
            "{e}"
        );
    }
}
