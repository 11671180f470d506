//! Round trips: LAS/LAZ copy-through with new classification (identical except Classification),
//! extra bytes, LAS↔LAZ, PLY ascii/binary, Semantic3D and SemanticKITTI labels.

mod common;

use std::path::Path;

use common::{leftovers, make_las, raw_records, tile};
use randla_io::{
    ExtraOutputs, LasReader, PlyEncoding, PlyOptions, PlyWriteOptions, Probabilities,
    RewriteOptions, layer_context, read, read_las, read_ply, rewrite_las_classification,
    rewrite_las_classification_from, rewrite_las_with, rewrite_laz_classification_layer, write_ply,
};

fn new_classes(n: usize) -> Vec<u8> {
    (0..n).map(|i| ((i * 7 + 3) % 20) as u8).collect()
}

/// A confidence and two class probabilities (`a`, `b`) per point, to add as extra bytes.
struct Added {
    conf: Vec<f32>,
    probs: Vec<f32>,
    names: [String; 2],
}

impl Added {
    fn new(n: usize) -> Self {
        Added {
            conf: (0..n).map(|i| (i % 3) as f32 / 2.0).collect(),
            probs: (0..n * 2).map(|i| (i % 5) as f32 / 4.0).collect(),
            names: ["a".to_string(), "b".to_string()],
        }
    }

    fn outputs(&self) -> ExtraOutputs<'_> {
        ExtraOutputs {
            confidence: Some(&self.conf),
            probabilities: Some(Probabilities {
                names: &self.names,
                values: &self.probs,
            }),
        }
    }
}

/// Asserts that two record sets are identical except the classification byte, which must be
/// `classes` (for formats 0–5 only the low 5 bits, the flag bits must be unchanged).
fn assert_same_but_class(
    a: &[u8],
    b: &[u8],
    len_a: usize,
    len_b: usize,
    format: u8,
    classes: &[u8],
) {
    assert_eq!(a.len() / len_a, b.len() / len_b);
    let off = if format >= 6 { 16 } else { 15 };
    for (i, (ra, rb)) in a.chunks_exact(len_a).zip(b.chunks_exact(len_b)).enumerate() {
        assert_eq!(ra[..off], rb[..off], "point {i}");
        assert_eq!(ra[off + 1..], rb[off + 1..len_a], "point {i}");
        if format >= 6 {
            assert_eq!(rb[off], classes[i], "point {i}");
        } else {
            assert_eq!(rb[off] & 0x1F, classes[i], "point {i}");
            assert_eq!(rb[off] & 0xE0, ra[off] & 0xE0, "flags of point {i}");
        }
    }
}

fn prefix(path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    let r = LasReader::open(path).unwrap();
    let _ = r;
    let off = u32::from_le_bytes([bytes[96], bytes[97], bytes[98], bytes[99]]) as usize;
    bytes[..off].to_vec()
}

#[test]
fn laz_tile_rewrite_changes_only_classification() {
    let dir = tempfile::tempdir().unwrap();
    let input = tile("77050_627760");
    let out = dir.path().join("out.laz");
    let n = LasReader::open(&input).unwrap().point_count() as usize;
    let classes = new_classes(n);
    let s = rewrite_las_classification(&input, &out, &classes, None, false).unwrap();
    assert_eq!(s.points, n as u64);
    assert!(s.compressed);
    // Header and every VLR byte for byte.
    assert_eq!(prefix(&input), prefix(&out));
    let (a, la) = raw_records(&input);
    let (b, lb) = raw_records(&out);
    assert_same_but_class(&a, &b, la, lb, 8, &classes);
    let c = read_las(&out).unwrap();
    assert_eq!(
        c.labels
            .unwrap()
            .iter()
            .map(|&l| l as u8)
            .collect::<Vec<_>>(),
        classes
    );
    assert!(leftovers(dir.path()).is_empty());
}

#[test]
fn rewrite_from_kept_records_equals_the_decoding_rewrite() {
    let dir = tempfile::tempdir().unwrap();
    let input = tile("77050_627760");
    // The records kept while reading the cloud in uneven chunks, and the cloud itself.
    let mut r = LasReader::open(&input).unwrap();
    let n = r.point_count() as usize;
    let mut records = Vec::new();
    let mut points = 0;
    while let Some(c) = r.read_chunk_keeping(7_777, &mut records).unwrap() {
        points += c.len();
    }
    assert_eq!(points, n);
    let (raw, len) = raw_records(&input);
    assert_eq!(records.len(), n * len);
    assert!(records == raw, "kept records differ from the file's");
    let classes = new_classes(n);
    let added = Added::new(n);
    let extra = added.outputs();
    let (a, b) = (dir.path().join("decoded.laz"), dir.path().join("kept.laz"));
    rewrite_las_classification(&input, &a, &classes, Some(&extra), false).unwrap();
    rewrite_las_classification_from(&input, &records, &b, &classes, Some(&extra), false).unwrap();
    assert!(
        std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(),
        "the two rewrites differ"
    );
    // Records of another length are refused, naming the field, and nothing is written.
    let c = dir.path().join("short.laz");
    let e = rewrite_las_classification_from(&input, &records[1..], &c, &classes, None, false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("records length"), "{e}");
    assert!(!c.exists());
    assert!(leftovers(dir.path()).is_empty());
}

/// The model's features of a file, read as `open_for_features` does, in uneven chunks, with
/// every point's classification-layer context.
fn read_for_layers(path: &Path, features: &[String]) -> (randla_io::PointCloud, Vec<u8>) {
    let mut r = LasReader::open_for_features(path, features, false).unwrap();
    assert!(
        r.classification_layer_rewritable(true),
        "{}",
        path.display()
    );
    let mut contexts = Vec::new();
    let mut cloud: Option<randla_io::PointCloud> = None;
    while let Some(c) = r.read_chunk_keeping_contexts(7_777, &mut contexts).unwrap() {
        assert!(c.labels.is_none(), "the classification is not decoded");
        match &mut cloud {
            None => cloud = Some(c),
            Some(a) => a.append(&c).unwrap(),
        }
    }
    (cloud.unwrap(), contexts)
}

/// Asserts that the classification-layer rewrite of `input` with `classes`, with and without
/// added confidence and probabilities, is byte for byte the full rewrite, and that it changes
/// only the classification (and appends the extra bytes).
fn assert_layer_rewrite_is_the_full_one(
    dir: &Path,
    input: &Path,
    contexts: &[u8],
    classes: &[u8],
    name: &str,
    format: u8,
) {
    let n = classes.len();
    let conf: Vec<f32> = (0..n).map(|i| ((i * 7) % 10) as f32 / 9.0).collect();
    let probs: Vec<f32> = (0..n * 2)
        .map(|i| {
            if i % 97 < 40 {
                0.25
            } else {
                (i % 13) as f32 / 12.0
            }
        })
        .collect();
    let names = ["ground".to_string(), "other".to_string()];
    let extra = ExtraOutputs {
        confidence: Some(&conf),
        probabilities: Some(Probabilities {
            names: &names,
            values: &probs,
        }),
    };
    for (with, extra) in [("", None), ("_probs", Some(&extra))] {
        let (a, b) = (
            dir.join(format!("{name}{with}_full.laz")),
            dir.join(format!("{name}{with}_layer.laz")),
        );
        let full = rewrite_las_classification(input, &a, classes, extra, false).unwrap();
        let layer =
            rewrite_laz_classification_layer(input, contexts, &b, classes, extra, false).unwrap();
        assert_eq!(layer, full);
        assert!(
            std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(),
            "{name}{with}: the two rewrites differ"
        );
        let ((orig, len), (got, out_len)) = (raw_records(input), raw_records(&b));
        assert_same_but_class(&orig, &got, len, out_len, format, classes);
    }
}

#[test]
fn classification_layer_rewrite_equals_the_full_rewrite() {
    let dir = tempfile::tempdir().unwrap();
    let features: Vec<String> = ["intensity", "return_number", "number_of_returns"]
        .map(String::from)
        .into();
    // A tile written by IGN's LASzip: the decoded layers equal a full read's, the contexts
    // come from the records, and recoding only the classification layer writes what decoding
    // and re-encoding every field writes.
    let input = tile("77050_627760");
    let (cloud, contexts) = read_for_layers(&input, &features);
    let full = read_las(&input).unwrap();
    assert_eq!(cloud.positions, full.positions);
    assert_eq!(
        cloud.features.len(),
        features.len(),
        "only the features asked for"
    );
    for f in &features {
        assert_eq!(cloud.feature(f).unwrap(), full.feature(f).unwrap(), "{f}");
    }
    // Labels alone (what `randla eval` reads).
    let labels = LasReader::open_for_features(&input, &[], true)
        .unwrap()
        .read_all()
        .unwrap();
    assert!(labels.features.is_empty());
    assert_eq!(labels.labels, full.labels);
    assert_eq!(labels.positions, full.positions);
    let (raw, len) = raw_records(&input);
    let want: Vec<u8> = raw.chunks_exact(len).map(layer_context).collect();
    assert_eq!(contexts, want);
    let n = cloud.len();
    for (name, classes) in [("new", new_classes(n)), ("constant", vec![9u8; n])] {
        assert_layer_rewrite_is_the_full_one(dir.path(), &input, &contexts, &classes, name, 6);
    }

    // Formats 6–10 with four scanner channels, single and multiple returns, extra bytes and
    // an EVLR, 100,001 points (two full chunks and one of a single point), compressed by the
    // `laz` crate; classes that change, that are constant in the first chunk, and that differ
    // on one channel only.
    for format in 6..=10u8 {
        let las = dir.path().join(format!("f{format}.las"));
        make_las(&las, 4, format, 100_001, 2, true);
        let mut bytes = std::fs::read(&las).unwrap();
        let start = u32::from_le_bytes([bytes[96], bytes[97], bytes[98], bytes[99]]) as usize;
        let len = usize::from(LasReader::open(&las).unwrap().header().record_length);
        for (i, rec) in bytes[start..].chunks_exact_mut(len).enumerate() {
            let (h, n_ret) = ((i * 2_654_435_761) >> 7, 1 + (i / 3) % 3);
            let channel = ((h % 97) / 40).min(3) as u8 + u8::from(i % 1_000 == 999);
            rec[14] = ((n_ret as u8) << 4) | (1 + (h % n_ret) as u8);
            rec[15] = (rec[15] & 0xCF) | (channel << 4);
        }
        std::fs::write(&las, &bytes).unwrap();
        let input = dir.path().join(format!("f{format}.laz"));
        let (orig, _) = raw_records(&las);
        let orig_classes: Vec<u8> = orig.chunks_exact(len).map(|r| r[16]).collect();
        rewrite_las_classification(&las, &input, &orig_classes, None, false).unwrap();
        let (_, contexts) = read_for_layers(&input, &features);
        let m = contexts.len();
        let mut constant_first = new_classes(m);
        constant_first[..50_000].fill(4);
        let one_channel: Vec<u8> = (0..m)
            .map(|i| {
                if contexts[i] >> 1 == 2 {
                    (i % 5) as u8
                } else {
                    1
                }
            })
            .collect();
        for (name, classes) in [
            ("new", new_classes(m)),
            ("constant_first", constant_first),
            ("one_channel", one_channel),
        ] {
            let name = format!("f{format}_{name}");
            assert_layer_rewrite_is_the_full_one(
                dir.path(),
                &input,
                &contexts,
                &classes,
                &name,
                format,
            );
        }
    }
}

#[test]
fn classification_layer_rewrite_refuses_what_it_cannot_write() {
    let dir = tempfile::tempdir().unwrap();
    let input = tile("77050_627760");
    let n = LasReader::open(&input).unwrap().point_count() as usize;
    let (contexts, classes) = (vec![0u8; n], vec![2u8; n]);
    let out = dir.path().join("out.laz");
    /// The field the error names, the input, contexts, classes and output.
    type Case<'a> = (&'a str, &'a Path, &'a [u8], &'a [u8], &'a Path);
    let cases: [Case<'_>; 4] = [
        ("contexts length", &input, &contexts[1..], &classes, &out),
        ("classes length", &input, &contexts, &classes[1..], &out),
        (
            "output extension",
            &input,
            &contexts,
            &classes,
            &dir.path().join("out.las"),
        ),
        (
            "point format",
            &dir.path().join("f3.laz"),
            &contexts[..100],
            &classes[..100],
            &out,
        ),
    ];
    make_las(&dir.path().join("f3.laz"), 2, 3, 100, 0, false);
    for (field, input, ctx, cls, output) in cases {
        let e = rewrite_laz_classification_layer(input, ctx, output, cls, None, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains(field), "{e}");
        assert!(!output.exists(), "{field}: {} written", output.display());
    }
    assert!(leftovers(dir.path()).is_empty());
    // A chunk that holds another number of points than the chunk table announces is refused,
    // naming the chunk, and nothing is written.
    let mut bytes = std::fs::read(&input).unwrap();
    let start = u32::from_le_bytes(bytes[96..100].try_into().unwrap()) as usize;
    let len = usize::from(LasReader::open(&input).unwrap().header().record_length);
    let count_at = start + 8 + len;
    let count = u32::from_le_bytes(bytes[count_at..count_at + 4].try_into().unwrap());
    bytes[count_at..count_at + 4].copy_from_slice(&(count - 1).to_le_bytes());
    let bad = dir.path().join("bad.laz");
    std::fs::write(&bad, &bytes).unwrap();
    let e = rewrite_laz_classification_layer(&bad, &contexts, &out, &classes, None, false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("LAZ chunk 0") && e.contains("points"), "{e}");
    assert!(!out.exists());
    assert!(leftovers(dir.path()).is_empty());
    // An existing output is kept without `overwrite`.
    std::fs::write(&out, b"keep").unwrap();
    assert!(
        rewrite_laz_classification_layer(&input, &contexts, &out, &classes, None, false).is_err()
    );
    assert_eq!(std::fs::read(&out).unwrap(), b"keep");
}

#[test]
fn las_rewrite_is_byte_identical_except_classification() {
    let dir = tempfile::tempdir().unwrap();
    for (minor, format) in [
        (0, 0),
        (1, 1),
        (2, 2),
        (2, 3),
        (3, 4),
        (3, 5),
        (4, 6),
        (4, 7),
        (4, 8),
        (4, 9),
        (4, 10),
    ] {
        let input = dir.path().join(format!("in_{minor}_{format}.las"));
        make_las(&input, minor, format, 500, 3, minor == 4);
        let out = dir.path().join(format!("out_{minor}_{format}.las"));
        let classes: Vec<u8> = (0..500).map(|i| (i % 31) as u8).collect();
        rewrite_las_classification(&input, &out, &classes, None, false).unwrap();
        let a = std::fs::read(&input).unwrap();
        let b = std::fs::read(&out).unwrap();
        assert_eq!(a.len(), b.len(), "format {format}");
        let h = LasReader::open(&input).unwrap().header();
        let start = u32::from_le_bytes([a[96], a[97], a[98], a[99]]) as usize;
        let len = usize::from(h.record_length);
        let off = if format >= 6 { 16 } else { 15 };
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            let in_points = i >= start && i < start + 500 * len;
            if in_points && (i - start) % len == off {
                let p = (i - start) / len;
                if format >= 6 {
                    assert_eq!(*y, classes[p]);
                } else {
                    assert_eq!((*y & 0x1F, *y & 0xE0), (classes[p], *x & 0xE0));
                }
            } else {
                assert_eq!(x, y, "format {format}: byte {i} differs");
            }
        }
    }
}

#[test]
fn laz_of_every_format_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    for (minor, format) in [(2, 0), (2, 1), (2, 2), (2, 3), (4, 6), (4, 7), (4, 8)] {
        let input = dir.path().join(format!("in_{format}.laz"));
        make_las(&input, minor, format, 300, 2, minor == 4);
        let classes: Vec<u8> = (0..300).map(|i| (30 - i % 31) as u8).collect();
        let out = dir.path().join(format!("out_{format}.laz"));
        rewrite_las_classification(&input, &out, &classes, None, false).unwrap();
        assert_eq!(prefix(&input), prefix(&out), "format {format}");
        let (a, la) = raw_records(&input);
        let (b, lb) = raw_records(&out);
        assert_same_but_class(&a, &b, la, lb, format, &classes);
        // The EVLR after the compressed points is copied and still found by the las crate.
        if minor == 4 {
            let r = las::Reader::from_path(&out).unwrap();

            let e = &r.header().evlrs()[0];
            assert_eq!(e.data, b"evlr payload that must survive");
        }
    }
}

#[test]
fn laz_to_las_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let input = tile("77060_627760");
    let n = LasReader::open(&input).unwrap().point_count() as usize;
    let classes = new_classes(n);
    let las_out = dir.path().join("plain.las");
    let s = rewrite_las_classification(&input, &las_out, &classes, None, false).unwrap();
    assert!(!s.compressed);
    let h = LasReader::open(&las_out).unwrap().header();
    assert!(
        !h.compressed
            && h.point_format == 8
            && h.vlr_count + 1 == LasReader::open(&input).unwrap().header().vlr_count
    );
    let (a, la) = raw_records(&input);
    let (b, lb) = raw_records(&las_out);
    assert_same_but_class(&a, &b, la, lb, 8, &classes);
    let back = dir.path().join("back.laz");
    let orig: Vec<u8> = a.chunks_exact(la).map(|r| r[16]).collect();
    rewrite_las_classification(&las_out, &back, &orig, None, false).unwrap();
    let (c, lc) = raw_records(&back);
    assert_eq!(a, c);
    assert_eq!(la, lc);
    let r = las::Reader::from_path(&back).unwrap();

    assert_eq!(r.header().number_of_points(), n as u64);
}

#[test]
fn extra_bytes_confidence_and_probabilities() {
    let dir = tempfile::tempdir().unwrap();
    let input = tile("77055_627760");
    let n = LasReader::open(&input).unwrap().point_count() as usize;
    let classes = new_classes(n);
    let names: Vec<String> = ["ground", "vegetation", "building"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let conf: Vec<f32> = (0..n).map(|i| (i % 100) as f32 / 100.0).collect();
    let probs: Vec<f32> = (0..n * 3).map(|i| (i % 3) as f32 * 0.25).collect();
    let extra = ExtraOutputs {
        confidence: Some(&conf),
        probabilities: Some(Probabilities {
            names: &names,
            values: &probs,
        }),
    };
    for ext in ["laz", "las"] {
        let out = dir.path().join(format!("pred.{ext}"));
        let s = rewrite_las_classification(&input, &out, &classes, Some(&extra), false).unwrap();
        assert_eq!(
            s.added_dimensions,
            [
                "confidence",
                "prob_ground",
                "prob_vegetation",
                "prob_building"
            ]
        );
        assert_eq!(s.record_length, 38 + 16);
        let c = read_las(&out).unwrap();
        assert_eq!(c.feature("confidence").unwrap(), &conf[..]);
        let pb = c.feature("prob_building").unwrap();
        for i in (0..n).step_by(101) {
            assert_eq!(pb[i], probs[i * 3 + 2]);
        }
        let (a, la) = raw_records(&input);
        let (b, lb) = raw_records(&out);
        assert_same_but_class(&a, &b, la, lb, 8, &classes);
        // The Extra Bytes VLR as other readers see it.
        let r = las::Reader::from_path(&out).unwrap();

        let eb = r
            .header()
            .vlrs()
            .iter()
            .find(|v| v.user_id == "LASF_Spec" && v.record_id == 4)
            .unwrap();
        assert_eq!(eb.data.len(), 4 * 192);
        assert_eq!(&eb.data[4..14], b"confidence");
        assert_eq!(eb.data[2], 9, "float data type");
    }
    // Rewriting an output that already has them (an earlier prediction's) refills them in
    // place: the same record length and dimensions, the new values, the other bytes as they
    // were; as LAZ and as LAS.
    let conf2: Vec<f32> = conf.iter().map(|c| 1.0 - c).collect();
    let probs2: Vec<f32> = probs.iter().map(|p| p + 0.125).collect();
    let extra2 = ExtraOutputs {
        confidence: Some(&conf2),
        probabilities: Some(Probabilities {
            names: &names,
            values: &probs2,
        }),
    };
    let out = dir.path().join("pred.laz");
    for name in ["again.laz", "again.las"] {
        let again = dir.path().join(name);
        rewrite_las_classification(&out, &again, &classes, Some(&extra2), false).unwrap();
        let (a, la) = raw_records(&out);
        let (b, lb) = raw_records(&again);
        assert_eq!(la, lb, "{name}");
        // Only the last 16 bytes (the four floats) differ.
        for (ra, rb) in a.chunks_exact(la).zip(b.chunks_exact(lb)).step_by(97) {
            assert_eq!(ra[..la - 16], rb[..lb - 16], "{name}");
        }
        let c = read_las(&again).unwrap();
        assert_eq!(c.feature_names(), read_las(&out).unwrap().feature_names());
        assert_eq!(c.feature("confidence").unwrap(), conf2.as_slice(), "{name}");
        let pb = c.feature("prob_vegetation").unwrap();
        for i in (0..n).step_by(101) {
            assert_eq!(pb[i], probs2[i * 3 + 1], "{name}");
        }
    }
    // Asking for the same dimension twice is refused.
    let names2 = vec!["ground".to_string(), "ground".to_string()];
    let twice = ExtraOutputs {
        confidence: None,
        probabilities: Some(Probabilities {
            names: &names2,
            values: &probs[..n * 2],
        }),
    };
    let bad = dir.path().join("bad.laz");
    let e = rewrite_las_classification(&input, &bad, &classes, Some(&twice), false).unwrap_err();
    assert!(e.to_string().contains("prob_ground"), "{e}");
    assert!(!bad.exists());
}

#[test]
fn streaming_rewrite_sees_every_point_once() {
    let dir = tempfile::tempdir().unwrap();
    let input = tile("77050_627755");
    // Compressed and uncompressed outputs, whose chunks are sized apart (7,000 points asked;
    // the default's for a LAS output is capped to stay in cache).
    for (name, chunk_points) in [("s.laz", 7_000), ("s.las", 7_000), ("d.las", 1 << 18)] {
        let out = dir.path().join(name);
        let opts = RewriteOptions {
            chunk_points,
            confidence: true,
            ..Default::default()
        };
        let (mut seen, mut calls) = (0u64, 0);
        let s = rewrite_las_with(&input, &out, &opts, |f| {
            assert_eq!(f.start, seen);
            assert_eq!(f.records.len(), f.classes.len() * 38);
            for (i, c) in f.classes.iter_mut().enumerate() {
                *c = if *c == 2 { 9 } else { *c };
                f.confidence[i] = 0.5;
            }
            seen += f.classes.len() as u64;
            calls += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, s.points);
        assert!(calls > 1, "{name}: {calls} chunk(s)");
        let c = read(&out).unwrap();
        let h = c.class_histogram();
        assert_eq!(h.get(&9), Some(&13_881), "{name}");
        assert_eq!(h.get(&2), None, "{name}");
    }
}

#[test]
fn ply_binary_and_ascii_round_trip_the_tile() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = read(tile("77060_627755")).unwrap();
    for enc in [PlyEncoding::BinaryLittleEndian, PlyEncoding::Ascii] {
        let out = dir.path().join(format!("{enc:?}.ply"));
        let n = cloud.len();
        let names = vec!["a".to_string(), "b".to_string()];
        let probs: Vec<f32> = (0..2 * n).map(|i| (i % 5) as f32 / 4.0).collect();
        let opts = PlyWriteOptions {
            encoding: enc,
            probabilities: Some(Probabilities {
                names: &names,
                values: &probs,
            }),
            ..Default::default()
        };
        write_ply(&out, &cloud, &opts).unwrap();
        let back = read_ply(&out, &PlyOptions::default()).unwrap();
        assert_eq!(back.origin, cloud.origin);
        assert_eq!(back.positions, cloud.positions, "{enc:?}");
        assert_eq!(back.labels, cloud.labels);
        for f in &cloud.features {
            assert_eq!(back.feature(&f.name).unwrap(), &f.values[..], "{}", f.name);
        }
        assert_eq!(
            back.feature("prob_b").unwrap()[..4],
            [probs[1], probs[3], probs[5], probs[7]]
        );
        // Refuses to overwrite without the flag, replaces with it.
        assert!(
            write_ply(
                &out,
                &cloud,
                &PlyWriteOptions {
                    encoding: enc,
                    ..Default::default()
                }
            )
            .is_err()
        );
        let opts = PlyWriteOptions {
            encoding: enc,
            overwrite: true,
            ..Default::default()
        };
        write_ply(&out, &cloud, &opts).unwrap();
        assert!(
            read_ply(&out, &PlyOptions::default())
                .unwrap()
                .feature("prob_b")
                .is_none()
        );
    }
    assert!(leftovers(dir.path()).is_empty());
}

#[test]
fn label_files_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let labels: Vec<u32> = (0..1000).map(|i| i % 9).collect();
    let s3d = dir.path().join("scan.labels");
    randla_io::write_semantic3d_labels(&s3d, &labels, false).unwrap();
    let back = randla_io::formats::semantic3d::read_labels(
        std::fs::File::open(&s3d)
            .map(std::io::BufReader::new)
            .unwrap(),
        &s3d,
    )
    .unwrap();
    assert_eq!(back, labels);
    let k = dir.path().join("000000.label");
    randla_io::write_kitti_labels(&k, &labels, false).unwrap();
    let bytes = std::fs::read(&k).unwrap();
    let back = randla_io::formats::kitti::read_kitti_label_bytes(&bytes, &k, 1000, None).unwrap();
    assert_eq!(back, labels);
    assert!(randla_io::write_kitti_labels(&k, &labels, false).is_err());
    randla_io::write_kitti_labels(&k, &labels[..10], true).unwrap();
    assert_eq!(std::fs::read(&k).unwrap().len(), 40);
}

#[test]
fn extra_bytes_after_undocumented_bytes_in_las12() {
    // LAS 1.2 point format 3 with 2 undeclared extra bytes per point: the new dimension must be
    // declared after a filler descriptor so that it lands at the right offset.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("f3.laz");
    make_las(&input, 2, 3, 400, 2, false);
    let classes: Vec<u8> = (0..400).map(|i| (i % 32) as u8).collect();
    let conf: Vec<f32> = (0..400).map(|i| i as f32 * 0.5).collect();
    let extra = ExtraOutputs {
        confidence: Some(&conf),
        probabilities: None,
    };
    let out = dir.path().join("f3_pred.laz");
    let s = rewrite_las_classification(&input, &out, &classes, Some(&extra), false).unwrap();
    assert_eq!(s.record_length, 34 + 2 + 4);
    let h = LasReader::open(&out).unwrap().header();
    let names: Vec<&str> = h.extra_fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["undocumented", "confidence"]);
    assert_eq!(h.version, (1, 2));
    let c = read_las(&out).unwrap();
    assert_eq!(c.feature("confidence").unwrap(), &conf[..]);
    let (a, la) = raw_records(&input);
    let (b, lb) = raw_records(&out);
    assert_same_but_class(&a, &b, la, lb, 3, &classes);
}

/// An uncompressed output is written in parallel parts (positioned reads and writes): the same
/// bytes as the chunk-by-chunk streaming rewrite, from the file or from kept records, legacy and
/// extended formats with confidence and probabilities and an EVLR after the points; a class the
/// format cannot store far into the file is refused, and nothing is left behind.
#[test]
fn parallel_las_rewrite_equals_the_streaming_one() {
    let dir = tempfile::tempdir().unwrap();
    let n = 150_001;
    for (name, format) in [("legacy.las", 1), ("extended.las", 6)] {
        let input = dir.path().join(name);
        make_las(&input, 4, format, n, 0, true);
        let classes = new_classes(n);
        let added = Added::new(n);
        let (conf, probs, names) = (&added.conf, &added.probs, &added.names);
        let extra = added.outputs();
        let par = dir.path().join(format!("par-{name}"));
        rewrite_las_classification(&input, &par, &classes, Some(&extra), false).unwrap();
        let (records, _) = raw_records(&input);
        let kept = dir.path().join(format!("kept-{name}"));
        rewrite_las_classification_from(&input, &records, &kept, &classes, Some(&extra), false)
            .unwrap();
        let opts = RewriteOptions {
            confidence: true,
            probability_names: names.to_vec(),
            ..Default::default()
        };
        let serial = dir.path().join(format!("serial-{name}"));
        rewrite_las_with(&input, &serial, &opts, |f| {
            let s = f.start as usize;
            let m = f.classes.len();
            f.classes.copy_from_slice(&classes[s..s + m]);
            f.confidence.copy_from_slice(&conf[s..s + m]);
            f.probabilities.copy_from_slice(&probs[2 * s..2 * (s + m)]);
            Ok(())
        })
        .unwrap();
        let want = std::fs::read(&serial).unwrap();
        assert!(
            std::fs::read(&par).unwrap() == want,
            "{name}: parallel rewrite differs"
        );
        assert!(
            std::fs::read(&kept).unwrap() == want,
            "{name}: kept-records rewrite differs"
        );
    }
    let input = dir.path().join("legacy.las");
    let mut classes = new_classes(n);
    classes[140_000] = 40;
    let out = dir.path().join("bad.las");
    let e = rewrite_las_classification(&input, &out, &classes, None, false)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("classes[140000]") && e.contains("0 to 31"),
        "{e}"
    );
    assert!(!out.exists());
    assert!(leftovers(dir.path()).is_empty());
}
