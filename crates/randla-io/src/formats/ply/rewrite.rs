//! Copy-through rewrite of a PLY file with new per-vertex labels (and optional confidence and
//! class probabilities): every element (faces too), property, type, comment and value of the
//! input is kept, in its encoding; only the label property's values change, and properties the
//! input lacks are added at the end of the vertex element.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use super::{Encoding, Prop, Ty, copy_binary_row, fixed_layout, label_property, parse_header};
use crate::atomic::{AtomicFile, write_atomic};
use crate::error::{Error, Result};
use crate::formats::las::ExtraOutputs;

/// What a vertex property of the output holds.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Value {
    Label,
    Confidence,
    Prob(usize),
}

/// Output buffer flushed to the file at about this size.
const FLUSH_BYTES: usize = 1 << 20;

/// Writes `input` (a PLY file) to `output` with its vertices' labels set to `codes`, and with
/// `extra`'s confidence (`confidence`) and probabilities (`prob_<class>`) when given.
///
/// The label goes into the input's label property (the first of [`super::LABEL_NAMES`], in any case),
/// keeping its type (a code that does not fit it is an error), or else into a new `uint label`;
/// confidence and probabilities replace float properties of those names or are added as
/// `float`. Everything else is copied byte for byte (ascii vertex rows that change are rejoined
/// with single spaces). Atomic; an existing output is replaced only with `overwrite`.
pub fn rewrite_ply_labels(
    input: &Path,
    output: &Path,
    codes: &[u32],
    extra: Option<&ExtraOutputs<'_>>,
    overwrite: bool,
) -> Result<()> {
    let mut r = BufReader::with_capacity(1 << 20, super::super::open(input)?);
    let header = parse_header(&mut r, input)?;
    let vi = header
        .elements
        .iter()
        .position(|e| e.name == "vertex")
        .ok_or_else(|| {
            Error::invalid(
                input,
                "element vertex",
                "missing",
                "a PLY point cloud needs a vertex element",
            )
        })?;
    let vertex = &header.elements[vi];
    if vertex.count != codes.len() as u64 {
        return Err(Error::argument(
            output,
            "labels",
            codes.len(),
            format!(
                "one per vertex of {} ({} vertices)",
                input.display(),
                vertex.count
            ),
        ));
    }
    let props = &vertex.props;
    // What each property of the output holds: patched in place (the property, its type), or
    // appended.
    let mut patch: Vec<(usize, Ty, Value)> = Vec::new();
    let mut append: Vec<(String, Ty, Value)> = Vec::new();
    match label_property(props, None, input)? {
        Some(i) => {
            let Prop::Scalar { ty, name } = &props[i] else {
                unreachable!("label_property returns scalars only")
            };
            if let Some(&c) = codes.iter().find(|&&c| !fits(*ty, c)) {
                return Err(Error::argument(
                    output,
                    format!("label property {name} ({})", ty.name()),
                    c,
                    "a predicted code does not fit the input's label type; write .las/.laz or relabel the classes",
                ));
            }
            patch.push((i, *ty, Value::Label));
        }
        None => append.push(("label".into(), Ty::U32, Value::Label)),
    }
    let mut named = Vec::new();
    if let Some(x) = extra {
        if let Some(c) = x.confidence {
            check_len(output, "confidence", c.len(), codes.len())?;
            named.push(("confidence".to_string(), Value::Confidence));
        }
        if let Some(p) = x.probabilities {
            check_len(
                output,
                "probabilities",
                p.values.len(),
                codes.len() * p.names.len(),
            )?;
            for (k, n) in p.names.iter().enumerate() {
                named.push((format!("prob_{n}"), Value::Prob(k)));
            }
        }
    }
    for (name, v) in named {
        match props.iter().position(|p| p.name() == name) {
            Some(i) => match &props[i] {
                Prop::Scalar { ty, .. } if ty.is_float() => patch.push((i, *ty, v)),
                p => {
                    return Err(Error::invalid(
                        input,
                        format!("property {name}"),
                        match p {
                            Prop::Scalar { ty, .. } => ty.name().to_string(),
                            Prop::List { .. } => "list".into(),
                        },
                        "holds an earlier prediction's values only as float or double",
                    ));
                }
            },
            None => append.push((name, Ty::F32, v)),
        }
    }
    let value = |v: Value, i: usize| -> f64 {
        match v {
            Value::Label => f64::from(codes[i]),
            Value::Confidence => f64::from(extra.and_then(|x| x.confidence).expect("checked")[i]),
            Value::Prob(k) => {
                let p = extra.and_then(|x| x.probabilities).expect("checked");
                f64::from(p.values[i * p.names.len() + k])
            }
        }
    };
    let big = header.encoding == Encoding::Be;
    // Vertex `i`'s binary row, at `start` in `buf` with its properties at offsets `at`: the
    // patched properties set, the added ones appended.
    let finish_row = |buf: &mut Vec<u8>, start: usize, at: &[usize], i: usize| {
        for &(p, ty, v) in &patch {
            let off = start + at[p];
            ty.encode(value(v, i), big, &mut buf[off..off + ty.size()]);
        }
        for &(_, ty, v) in &append {
            let off = buf.len();
            buf.resize(off + ty.size(), 0);
            ty.encode(value(v, i), big, &mut buf[off..]);
        }
    };
    let head = header_with(&header.raw, &append);
    write_atomic(output, &[input], overwrite, |out| {
        out.write_all_or_err(&head)?;
        let mut buf: Vec<u8> = Vec::with_capacity(FLUSH_BYTES + 4096);
        let mut at = Vec::new();
        for (ei, e) in header.elements.iter().enumerate().take(vi + 1) {
            let is_vertex = ei == vi;
            // Binary rows of scalars only: read in blocks, patched where they lie.
            if let (Some((layout, row_len)), false) =
                (fixed_layout(&e.props), header.encoding == Encoding::Ascii)
            {
                let offs: Vec<usize> = layout.iter().map(|&(o, _)| o).collect();
                out.write_all_or_err(&buf)?;
                buf.clear();
                let per = (FLUSH_BYTES / row_len.max(1)).max(1);
                let mut block = vec![0u8; per * row_len];
                let mut j = 0u64;
                while j < e.count {
                    let rows = (e.count - j).min(per as u64) as usize;
                    let want = rows * row_len;
                    let got = super::super::read_full(&mut r, &mut block[..want], input)?;
                    if got < want {
                        return Err(Error::truncated(
                            input,
                            format!("element {} row {}", e.name, j + (got / row_len) as u64),
                            format!("{row_len} bytes"),
                            format!("{} bytes left", got % row_len),
                        ));
                    }
                    if !is_vertex {
                        out.write_all_or_err(&block[..want])?;
                    } else {
                        for (k, row) in block[..want].chunks_exact(row_len).enumerate() {
                            let start = buf.len();
                            buf.extend_from_slice(row);
                            finish_row(&mut buf, start, &offs, j as usize + k);
                        }
                        out.write_all_or_err(&buf)?;
                        buf.clear();
                    }
                    j += rows as u64;
                }
                continue;
            }
            for j in 0..e.count {
                let start = buf.len();
                match header.encoding {
                    Encoding::Ascii => {
                        let ending = copy_line(&mut r, input, &e.name, e.count, j, &mut buf)?;
                        if is_vertex {
                            let line = buf.split_off(start);
                            let text = std::str::from_utf8(&line[..line.len() - ending.len()])
                                .map_err(|_| {
                                    Error::invalid(
                                        input,
                                        format!("element vertex row {j}"),
                                        "non-UTF-8 data",
                                        "an ascii PLY row is text",
                                    )
                                })?;
                            ascii_row(input, props, j, text, &patch, &append, &value, &mut buf)?;
                            buf.extend_from_slice(ending);
                        }
                    }
                    _ => {
                        copy_binary_row(
                            &mut r, input, &e.name, &e.props, j, big, &mut buf, &mut at,
                        )?;
                        if is_vertex {
                            finish_row(&mut buf, start, &at, j as usize);
                        }
                    }
                }
                if buf.len() >= FLUSH_BYTES {
                    out.write_all_or_err(&buf)?;
                    buf.clear();
                }
            }
        }
        out.write_all_or_err(&buf)?;
        copy_rest(&mut r, input, out)
    })
}

/// Errors unless `got` values were given for `want`.
fn check_len(output: &Path, what: &str, got: usize, want: usize) -> Result<()> {
    if got == want {
        Ok(())
    } else {
        Err(Error::argument(
            output,
            format!("{what} length"),
            got,
            format!("must be {want}"),
        ))
    }
}

/// Whether class code `c` is representable in `ty`.
fn fits(ty: Ty, c: u32) -> bool {
    match ty {
        Ty::I8 => c <= i8::MAX as u32,
        Ty::U8 => c <= u8::MAX as u32,
        Ty::I16 => c <= i16::MAX as u32,
        Ty::U16 => c <= u16::MAX as u32,
        Ty::I32 => c <= i32::MAX as u32,
        Ty::U32 | Ty::F64 => true,
        Ty::F32 => c <= 1 << 24,
    }
}

/// The input header `raw` with `append`'s properties added at the end of the vertex element
/// (before the next element or `end_header`), in the header's own line ending.
fn header_with(raw: &[u8], append: &[(String, Ty, Value)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + 32 * append.len());
    let mut in_vertex = false;
    let mut ending: &[u8] = b"\n";
    for line in raw.split_inclusive(|&b| b == b'\n') {
        let text = String::from_utf8_lossy(line);
        let toks: Vec<&str> = text.split_whitespace().collect();
        let element = toks.first() == Some(&"element");
        if in_vertex && (element || toks.first() == Some(&"end_header")) {
            for (name, ty, _) in append {
                out.extend_from_slice(format!("property {} {name}", ty.name()).as_bytes());
                out.extend_from_slice(ending);
            }
            in_vertex = false;
        }
        if element && toks.get(1) == Some(&"vertex") {
            in_vertex = true;
            ending = if line.ends_with(b"\r\n") {
                b"\r\n"
            } else {
                b"\n"
            };
        }
        out.extend_from_slice(line);
    }
    out
}

/// Copies the next non-blank line of element `name` (row `j` of `count`), with any blank lines
/// before it, onto `buf`; returns the line's ending (`"\r\n"`, `"\n"`, or none at the end).
fn copy_line(
    r: &mut impl BufRead,
    path: &Path,
    name: &str,
    count: u64,
    j: u64,
    buf: &mut Vec<u8>,
) -> Result<&'static [u8]> {
    loop {
        let start = buf.len();
        let n = r
            .read_until(b'\n', buf)
            .map_err(|e| Error::io(path, "read", e))?;
        if n == 0 {
            return Err(Error::truncated(
                path,
                format!("element {name}"),
                format!("{count} rows"),
                format!("{j} rows"),
            ));
        }
        let line = &buf[start..];
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        return Ok(if line.ends_with(b"\r\n") {
            b"\r\n"
        } else if line.ends_with(b"\n") {
            b"\n"
        } else {
            b""
        });
    }
}

/// Appends vertex row `j` (ascii `line`, without its ending) to `buf` with the patched
/// properties' tokens replaced and the appended ones added.
#[allow(clippy::too_many_arguments)]
fn ascii_row(
    path: &Path,
    props: &[Prop],
    j: u64,
    line: &str,
    patch: &[(usize, Ty, Value)],
    append: &[(String, Ty, Value)],
    value: &impl Fn(Value, usize) -> f64,
    buf: &mut Vec<u8>,
) -> Result<()> {
    use std::io::Write;
    let i = j as usize;
    let text = |v: Value| -> String {
        match v {
            Value::Label => format!("{}", value(v, i) as u32),
            _ => format!("{}", value(v, i) as f32),
        }
    };
    if patch.is_empty() {
        buf.extend_from_slice(line.trim_end().as_bytes());
    } else {
        let mut toks: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        // The token of each patched property (a list takes its count and its items).
        let mut t = 0;
        for (p, prop) in props.iter().enumerate() {
            let field = || format!("element vertex row {j} property {}", prop.name());
            let tok = toks
                .get(t)
                .ok_or_else(|| Error::truncated(path, field(), "a value", "end of line"))?;
            match prop {
                Prop::Scalar { .. } => {
                    if let Some(&(_, _, v)) = patch.iter().find(|(q, _, _)| *q == p) {
                        toks[t] = text(v);
                    }
                    t += 1;
                }
                Prop::List { .. } => {
                    let c = tok.parse::<usize>().map_err(|_| {
                        Error::invalid(path, field(), format!("{tok:?}"), "not a list count")
                    })?;
                    t += 1 + c;
                }
            }
        }
        buf.extend_from_slice(toks.join(" ").as_bytes());
    }
    for &(_, _, v) in append {
        let _ = write!(buf, " {}", text(v));
    }
    Ok(())
}

/// Copies whatever follows the vertices (later elements) unchanged.
fn copy_rest(r: &mut impl Read, path: &Path, out: &mut AtomicFile) -> Result<()> {
    let mut block = vec![0u8; 1 << 16];
    loop {
        let n = super::super::read_full(r, &mut block, path)?;
        out.write_all_or_err(&block[..n])?;
        if n < block.len() {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::las::Probabilities;
    use crate::formats::ply::{PlyOptions, read_ply};

    /// A mesh with a face element before and after the vertices, comments, mixed types and an
    /// existing `uchar classification`, in each encoding.
    fn mesh(encoding: &str) -> Vec<u8> {
        let mut h = format!(
            "ply\nformat {encoding} 1.0\ncomment crs EPSG:2154\nelement face 1\nproperty list uchar int vertex_indices\nelement vertex 3\nproperty double x\nproperty double y\nproperty double z\nproperty ushort intensity\nproperty uchar classification\nproperty list uchar uchar tags\nelement edge 1\nproperty int a\nproperty int b\nend_header\n"
        )
        .into_bytes();
        let rows: [([f64; 3], u16, u8, &[u8]); 3] = [
            ([770_500.25, 6_277_500.5, 12.0], 300, 2, &[7]),
            ([770_501.0, 6_277_501.0, 13.5], 65_000, 6, &[]),
            ([770_502.0, 6_277_502.0, 14.0], 0, 1, &[1, 2]),
        ];
        let big = encoding == "binary_big_endian";
        let put_i32 = |v: i32, h: &mut Vec<u8>| {
            h.extend_from_slice(&if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            })
        };
        if encoding == "ascii" {
            h.extend_from_slice(b"3 0 1 2\n");
            for (p, i, c, t) in rows {
                let tags: Vec<String> = t.iter().map(|x| x.to_string()).collect();
                h.extend_from_slice(
                    format!(
                        "{} {} {}  {i} {c} {} {}\n",
                        p[0],
                        p[1],
                        p[2],
                        t.len(),
                        tags.join(" ")
                    )
                    .trim_end()
                    .as_bytes(),
                );
                h.push(b'\n');
            }
            h.extend_from_slice(b"0 2\n");
        } else {
            h.push(3);
            for v in [0, 1, 2] {
                put_i32(v, &mut h);
            }
            for (p, i, c, t) in rows {
                for v in p {
                    h.extend_from_slice(&if big {
                        v.to_be_bytes()
                    } else {
                        v.to_le_bytes()
                    });
                }
                h.extend_from_slice(&if big {
                    i.to_be_bytes()
                } else {
                    i.to_le_bytes()
                });
                h.push(c);
                h.push(t.len() as u8);
                h.extend_from_slice(t);
            }
            put_i32(0, &mut h);
            put_i32(2, &mut h);
        }
        h
    }

    #[test]
    fn everything_but_the_labels_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        for enc in ["ascii", "binary_little_endian", "binary_big_endian"] {
            let input = dir.path().join(format!("{enc}.ply"));
            let bytes = mesh(enc);
            std::fs::write(&input, &bytes).unwrap();
            let out = dir.path().join(format!("{enc}_out.ply"));
            rewrite_ply_labels(&input, &out, &[5, 2, 64], None, false).unwrap();
            let written = std::fs::read(&out).unwrap();
            let head = bytes
                .windows(11)
                .position(|w| w == b"end_header\n")
                .unwrap()
                + 11;
            assert_eq!(written[..head], bytes[..head], "{enc}");
            let before = read_ply(&input, &PlyOptions::default()).unwrap();
            let after = read_ply(&out, &PlyOptions::default()).unwrap();
            assert_eq!(before.labels, Some(vec![2, 6, 1]), "{enc}");
            assert_eq!(after.labels, Some(vec![5, 2, 64]), "{enc}");
            assert_eq!(after.features, before.features, "{enc}");
            for i in 0..3 {
                assert_eq!(after.point_f64(i), before.point_f64(i), "{enc}");
            }
            if enc == "ascii" {
                // The face and edge rows are intact; vertex rows differ in the label token only
                // (and are rejoined with single spaces).
                let lines = |b: &[u8]| -> Vec<Vec<String>> {
                    String::from_utf8_lossy(&b[head..])
                        .lines()
                        .map(|l| l.split_whitespace().map(str::to_string).collect())
                        .collect()
                };
                let (a, b) = (lines(&bytes), lines(&written));
                assert_eq!(a.len(), b.len());
                for (k, (ra, rb)) in a.iter().zip(&b).enumerate() {
                    let changed: Vec<usize> = (0..ra.len()).filter(|&t| ra[t] != rb[t]).collect();
                    let want: &[usize] = if (1..=3).contains(&k) { &[4] } else { &[] };
                    assert_eq!(ra.len(), rb.len(), "row {k}");
                    assert!(
                        changed.iter().all(|t| want.contains(t)),
                        "row {k}: {changed:?}"
                    );
                }
            } else {
                // The label is patched in place: the same size, the face and edge bytes and
                // every other vertex byte unchanged.
                assert_eq!(written.len(), bytes.len(), "{enc}");
                let diff: Vec<usize> = (0..bytes.len())
                    .filter(|&k| bytes[k] != written[k])
                    .collect();
                assert!(diff.len() <= 3, "{enc}: {diff:?}");
            }
        }
    }

    #[test]
    fn new_properties_are_appended_and_earlier_ones_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["ground".to_string(), "building".to_string()];
        let probs = [0.75f32, 0.25, 0.5, 0.5, 0.125, 0.875];
        let conf = [0.75f32, 0.5, 0.875];
        let extra = ExtraOutputs {
            confidence: Some(&conf),
            probabilities: Some(Probabilities {
                names: &names,
                values: &probs,
            }),
        };
        for enc in ["ascii", "binary_little_endian", "binary_big_endian"] {
            let input = dir.path().join(format!("{enc}.ply"));
            std::fs::write(&input, mesh(enc)).unwrap();
            let once = dir.path().join(format!("{enc}_1.ply"));
            rewrite_ply_labels(&input, &once, &[2, 6, 6], Some(&extra), false).unwrap();
            let c = read_ply(&once, &PlyOptions::default()).unwrap();
            assert_eq!(c.labels, Some(vec![2, 6, 6]), "{enc}");
            assert_eq!(c.feature("confidence").unwrap(), &conf, "{enc}");
            assert_eq!(
                c.feature("prob_building").unwrap(),
                &[0.25, 0.5, 0.875],
                "{enc}"
            );
            let text = String::from_utf8_lossy(&std::fs::read(&once).unwrap()).into_owned();
            assert!(
                text.contains("property list uchar uchar tags\nproperty float confidence\nproperty float prob_ground\nproperty float prob_building\nelement edge 1"),
                "{enc}"
            );
            // Run again on its own output: the same properties are refilled, none added.
            let twice = dir.path().join(format!("{enc}_2.ply"));
            let conf2 = [0.5f32, 0.5, 0.5];
            let extra2 = ExtraOutputs {
                confidence: Some(&conf2),
                ..extra
            };
            rewrite_ply_labels(&once, &twice, &[1, 1, 1], Some(&extra2), false).unwrap();
            let c2 = read_ply(&twice, &PlyOptions::default()).unwrap();
            assert_eq!(c2.labels, Some(vec![1, 1, 1]), "{enc}");
            assert_eq!(c2.features.len(), c.features.len(), "{enc}");
            assert_eq!(c2.feature("confidence").unwrap(), &conf2, "{enc}");
            if enc != "ascii" {
                assert_eq!(
                    std::fs::metadata(&twice).unwrap().len(),
                    std::fs::metadata(&once).unwrap().len(),
                    "{enc}"
                );
            }
        }
    }

    #[test]
    fn bad_requests_name_the_file_and_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("m.ply");
        std::fs::write(&input, mesh("binary_little_endian")).unwrap();
        let out = dir.path().join("o.ply");
        // A code that does not fit the uchar classification.
        let e = rewrite_ply_labels(&input, &out, &[2, 300, 1], None, false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("classification") && e.contains("uchar") && e.contains("300"),
            "{e}"
        );
        // Too few labels.
        let e = rewrite_ply_labels(&input, &out, &[2, 3], None, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("3 vertices") && e.contains("m.ply"), "{e}");
        // Cut inside the vertices.
        let bytes = mesh("binary_little_endian");
        let cut = dir.path().join("cut.ply");
        std::fs::write(&cut, &bytes[..bytes.len() - 30]).unwrap();
        let e = rewrite_ply_labels(&cut, &out, &[1, 1, 1], None, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("cut.ply") && e.contains("vertex row 2"), "{e}");
        assert!(!out.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
        // Cut inside rows of scalars only (read in blocks).
        let fixed = dir.path().join("fixed.ply");
        let mut b = b"ply\nformat binary_big_endian 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\nend_header\n".to_vec();
        b.extend_from_slice(&[0u8; 12 * 3 - 5]);
        std::fs::write(&fixed, &b).unwrap();
        let e = rewrite_ply_labels(&fixed, &out, &[1, 1, 1], None, false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("fixed.ply") && e.contains("vertex row 2") && e.contains("7 bytes left"),
            "{e}"
        );
        assert!(!out.exists());
        // No label property: a `uint label` is added.
        let plain = dir.path().join("plain.ply");
        std::fs::write(
            &plain,
            "ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty float y\nproperty float z\nend_header\n1 2 3\n4 5 6\n",
        )
        .unwrap();
        rewrite_ply_labels(&plain, &out, &[7, 8], None, false).unwrap();
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty float y\nproperty float z\nproperty uint label\nend_header\n1 2 3 7\n4 5 6 8\n"
        );
    }
}
