//! Stanford PLY, ascii and binary (little and big endian): reader and writer.
//!
//! The `vertex` element supplies the points: `x`, `y`, `z` (float or double), and every other
//! scalar property becomes an `f32` feature, except the label, taken from the property named in
//! [`PlyOptions::label`] or else the first of `class`, `label`, `scalar_Label`,
//! `scalar_Classification`. Other elements (faces...) are skipped.

use std::io::Write;
use std::path::Path;

use crate::atomic::write_atomic;
use crate::cloud::PointCloud;
use crate::error::{Error, Result};
use crate::formats::las::Probabilities;

/// Property names searched for the label, in order.
pub const LABEL_NAMES: [&str; 4] = ["class", "label", "scalar_Label", "scalar_Classification"];

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
    let bytes = super::read_nonempty(path)?;
    read_ply_bytes(&bytes, path, opts)
}

fn parse_header<'a>(bytes: &'a [u8], path: &Path) -> Result<(Encoding, Vec<Element>, &'a [u8])> {
    // The header is ascii text up to and including the line "end_header".
    let mut pos = 0usize;
    let mut lines: Vec<(usize, String)> = Vec::new();
    let mut found_end = false;
    let mut line_no = 0usize;
    while pos < bytes.len() {
        let end = bytes[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|i| pos + i);
        let Some(end) = end else { break };
        line_no += 1;
        let line = String::from_utf8_lossy(&bytes[pos..end])
            .trim_end_matches('\r')
            .to_string();
        pos = end + 1;
        if line.trim() == "end_header" {
            found_end = true;
            break;
        }
        lines.push((line_no, line));
        if line_no > 10_000 {
            break;
        }
    }
    if lines.first().map(|l| l.1.trim()) != Some("ply") {
        let first = String::from_utf8_lossy(&bytes[..bytes.len().min(16)]).to_string();
        return Err(Error::invalid(
            path,
            "magic",
            format!("{first:?}"),
            "a PLY file starts with the line \"ply\"",
        ));
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
    Ok((encoding, elements, &bytes[pos..]))
}

/// Reads PLY data held in memory; `path` only names the source in errors.
pub fn read_ply_bytes(bytes: &[u8], path: &Path, opts: &PlyOptions) -> Result<PointCloud> {
    if bytes.is_empty() {
        return Err(Error::empty(path, "file has 0 bytes"));
    }
    let (encoding, elements, body) = parse_header(bytes, path)?;
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
    let label = match &opts.label {
        Some(n) => Some(find(n).ok_or_else(|| {
            Error::invalid(
                path,
                format!("label property {n}"),
                "missing",
                "the requested label property is not in the vertex element",
            )
        })?),
        None => LABEL_NAMES.iter().find_map(|n| find(n)),
    };
    if let Some(li) = label
        && let Prop::List { name, .. } = &vertex.props[li]
    {
        return Err(Error::invalid(
            path,
            format!("property {name} type"),
            "list",
            "a label must be a scalar",
        ));
    }
    if vertex.count == 0 {
        return Err(Error::empty(path, "element vertex has 0 points"));
    }
    // A point takes at least one byte per property (two in ascii), so a count larger than the
    // data cannot be right; checking it first avoids giant allocations on corrupt headers.
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
    if vertex.count.saturating_mul(min_point.max(1)) > body.len() as u64 {
        return Err(Error::invalid(
            path,
            "element vertex count",
            vertex.count,
            format!(
                "the {} bytes of data cannot hold that many points: truncated or corrupt",
                body.len()
            ),
        ));
    }
    let n = vertex.count as usize;
    let feature_idx: Vec<usize> = (0..vertex.props.len())
        .filter(|&i| {
            !xyz.contains(&i) && Some(i) != label && matches!(vertex.props[i], Prop::Scalar { .. })
        })
        .collect();
    let mut cols: Vec<Vec<f32>> = feature_idx.iter().map(|_| Vec::with_capacity(n)).collect();
    let mut labels: Vec<u32> = Vec::with_capacity(if label.is_some() { n } else { 0 });
    let mut cloud = PointCloud::default();
    cloud.positions.reserve(n);
    let mut row = vec![0f64; vertex.props.len()];
    let mut index = 0u64;
    let mut on_point = |row: &[f64], cloud: &mut PointCloud| -> Result<()> {
        let p = [row[xyz[0]], row[xyz[1]], row[xyz[2]]];
        super::push_point(path, cloud, p, index)?;
        for (c, &i) in cols.iter_mut().zip(&feature_idx) {
            c.push(row[i] as f32);
        }
        if let Some(li) = label {
            labels.push(super::label_from_f64(
                path,
                &format!("{} of vertex {index}", vertex.props[li].name()),
                row[li],
            )?);
        }
        index += 1;
        Ok(())
    };
    match encoding {
        Encoding::Ascii => {
            let text = super::as_utf8(path, body)?;
            let mut lines = text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty());
            for e in &elements[..=vi] {
                let is_vertex = e.name == "vertex";
                for j in 0..e.count {
                    let Some((ln, line)) = lines.next() else {
                        return Err(Error::truncated(
                            path,
                            format!("element {}", e.name),
                            format!("{} rows", e.count),
                            format!("{j} rows"),
                        ));
                    };
                    if !is_vertex {
                        continue;
                    }
                    let mut toks = line.split_whitespace();
                    for (pi, p) in vertex.props.iter().enumerate() {
                        let field = format!("property {} (data line {})", p.name(), ln + 1);
                        match p {
                            Prop::Scalar { .. } => {
                                let t = toks.next().ok_or_else(|| {
                                    Error::truncated(path, field.clone(), "a value", "end of line")
                                })?;
                                row[pi] = t.parse::<f64>().map_err(|_| {
                                    Error::invalid(
                                        path,
                                        field.clone(),
                                        format!("{t:?}"),
                                        "not a number",
                                    )
                                })?;
                            }
                            Prop::List { .. } => {
                                let t = toks.next().ok_or_else(|| {
                                    Error::truncated(
                                        path,
                                        field.clone(),
                                        "a list count",
                                        "end of line",
                                    )
                                })?;
                                let c = t.parse::<usize>().map_err(|_| {
                                    Error::invalid(
                                        path,
                                        field.clone(),
                                        format!("{t:?}"),
                                        "not a list count",
                                    )
                                })?;
                                for _ in 0..c {
                                    toks.next().ok_or_else(|| {
                                        Error::truncated(
                                            path,
                                            field.clone(),
                                            format!("{c} list items"),
                                            "end of line",
                                        )
                                    })?;
                                }
                            }
                        }
                    }
                    on_point(&row, &mut cloud)?;
                }
            }
        }
        Encoding::Le | Encoding::Be => {
            let big = encoding == Encoding::Be;
            let mut at = 0usize;
            for e in &elements[..=vi] {
                let is_vertex = e.name == "vertex";
                let fixed: Option<usize> = e
                    .props
                    .iter()
                    .map(|p| match p {
                        Prop::Scalar { ty, .. } => Some(ty.size()),
                        _ => None,
                    })
                    .sum();
                if !is_vertex && let Some(sz) = fixed {
                    let need = (e.count as u128) * sz as u128;
                    if need > (body.len() - at) as u128 {
                        return Err(Error::truncated(
                            path,
                            format!("element {}", e.name),
                            format!("{need} bytes"),
                            format!("{} bytes", body.len() - at),
                        ));
                    }
                    at += need as usize;
                    continue;
                }
                for j in 0..e.count {
                    for (pi, p) in e.props.iter().enumerate() {
                        let short = |want: usize, at: usize| {
                            Error::truncated(
                                path,
                                format!("element {} row {j} property {}", e.name, p.name()),
                                format!("{want} bytes"),
                                format!("{} bytes left", body.len() - at),
                            )
                        };
                        match p {
                            Prop::Scalar { ty, .. } => {
                                let s = ty.size();
                                if at + s > body.len() {
                                    return Err(short(s, at));
                                }
                                if is_vertex {
                                    row[pi] = ty.decode(&body[at..], big);
                                }
                                at += s;
                            }
                            Prop::List { count, item, .. } => {
                                let s = count.size();
                                if at + s > body.len() {
                                    return Err(short(s, at));
                                }
                                let c = count.decode(&body[at..], big);
                                at += s;
                                if c < 0.0 {
                                    return Err(Error::invalid(
                                        path,
                                        format!(
                                            "element {} row {j} property {} count",
                                            e.name,
                                            p.name()
                                        ),
                                        c,
                                        "negative list length",
                                    ));
                                }
                                let len = (c as usize).saturating_mul(item.size());
                                if len > body.len() - at {
                                    return Err(short(len, at));
                                }
                                at += len;
                            }
                        }
                    }
                    if is_vertex {
                        on_point(&row, &mut cloud)?;
                    }
                }
            }
        }
    }
    for (c, &i) in cols.into_iter().zip(&feature_idx) {
        cloud.set_feature(vertex.props[i].name(), c);
    }
    if label.is_some() {
        cloud.labels = Some(labels);
    }
    Ok(cloud)
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
