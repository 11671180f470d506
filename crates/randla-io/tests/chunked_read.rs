//! Chunked reading ([`randla_io::open_chunks`] and the per-format readers): for every format,
//! the chunks concatenated equal the whole-file read bit for bit (origin, positions, features,
//! labels) at every chunk size, and corrupt data in the middle of a file is an error naming the
//! file, the field and the value, from the chunk reader too.

mod common;

use std::path::{Path, PathBuf};

use common::{assert_has, make_las};
use randla_io::formats::ply::read_ply_bytes;
use randla_io::{
    ChunkRead, PlyEncoding, PlyOptions, PlyReader, PlyWriteOptions, PointCloud, ReadOptions,
    Semantic3dReader, XyzOptions, XyzReader, open_chunks, read_with, write_ply,
};

const N: usize = 2345;

/// A cloud in projected coordinates (the origin is not zero) with two features and labels.
fn cloud(n: usize) -> PointCloud {
    let pts: Vec<[f64; 3]> = (0..n)
        .map(|i| {
            let f = i as f64;
            [
                770_123.456 + (f * 0.731).rem_euclid(50.0),
                6_277_321.5 + (f * 0.377).rem_euclid(50.0),
                100.0 + (f * 0.013).rem_euclid(30.0),
            ]
        })
        .collect();
    let mut c = PointCloud::from_f64(&pts);
    c.set_feature(
        "intensity",
        (0..n).map(|i| (i * 37 % 4096) as f32).collect(),
    );
    c.set_feature("red", (0..n).map(|i| (i % 256) as f32 * 0.5).collect());
    c.labels = Some((0..n).map(|i| (i % 9) as u32).collect());
    c
}

/// Origin, positions, features and labels as bits, so that equality is exact.
type Bits = (
    [u64; 3],
    Vec<[u32; 3]>,
    Vec<(String, Vec<u32>)>,
    Option<Vec<u32>>,
);

fn bits(c: &PointCloud) -> Bits {
    (
        c.origin.map(f64::to_bits),
        c.positions.iter().map(|p| p.map(f32::to_bits)).collect(),
        c.features
            .iter()
            .map(|f| {
                (
                    f.name.clone(),
                    f.values.iter().map(|v| v.to_bits()).collect(),
                )
            })
            .collect(),
        c.labels.clone(),
    )
}

/// Asserts that two clouds are equal bit for bit, naming the first difference.
fn assert_same(a: &PointCloud, b: &PointCloud, what: &str) {
    let (a, b) = (bits(a), bits(b));
    assert!(a.0 == b.0, "{what}: origin differs");
    assert!(
        a.1.len() == b.1.len(),
        "{what}: {} vs {} points",
        a.1.len(),
        b.1.len()
    );
    if let Some(i) = (0..a.1.len()).find(|&i| a.1[i] != b.1[i]) {
        panic!("{what}: position {i} differs");
    }
    assert!(a.2 == b.2, "{what}: features differ");
    assert!(a.3 == b.3, "{what}: labels differ");
}

/// Concatenates chunks (the first one gives the origin).
fn push(all: &mut PointCloud, c: PointCloud) {
    if all.is_empty() {
        *all = c;
    } else {
        all.append(&c).unwrap();
    }
}

/// Asserts that reading `path` in chunks of every size gives the whole-file read, chunk by
/// chunk in the whole read's origin; returns the whole read.
fn assert_chunks_equal_whole(path: &Path, opts: &ReadOptions) -> PointCloud {
    let whole = read_with(path, opts).unwrap();
    let n = whole.len();
    assert!(n > 0);
    for size in [1, 7, 1000, n - 1, n, n + 1, usize::MAX] {
        let mut all = PointCloud::default();
        let mut count = 0;
        for c in open_chunks(path, size, opts).unwrap() {
            let c = c.unwrap();
            assert!(!c.is_empty() && c.len() <= size, "{}", path.display());
            assert_eq!(c.origin, whole.origin, "{} chunk {count}", path.display());
            push(&mut all, c);
            count += 1;
        }
        assert_eq!(count, n.div_ceil(size), "{} size {size}", path.display());
        assert_same(&all, &whole, &format!("{} size {size}", path.display()));
    }
    whole
}

/// A binary or ascii PLY written by hand: `element face` rows before the vertices, vertices
/// `double x y z`, `list uchar int idx` (if `list`), `ushort intensity`, `uchar class`.
fn hand_ply(format: &str, list: bool, n: usize) -> Vec<u8> {
    let mut h = format!("ply\nformat {format} 1.0\ncomment by hand\n");
    h += "element face 2\nproperty list uchar int vertex_indices\n";
    h += &format!("element vertex {n}\nproperty double x\nproperty double y\nproperty double z\n");
    if list {
        h += "property list uchar int idx\n";
    }
    h += "property ushort intensity\nproperty uchar class\nend_header\n";
    let mut b = h.into_bytes();
    let big = format == "binary_big_endian";
    let ascii = format == "ascii";
    let int = |b: &mut Vec<u8>, v: i32| {
        b.extend_from_slice(&if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        })
    };
    for _ in 0..2 {
        if ascii {
            b.extend_from_slice(b"3 0 1 2\n");
        } else {
            b.push(3);
            (0..3).for_each(|k| int(&mut b, k));
        }
    }
    let c = cloud(n);
    for i in 0..n {
        let p = c.point_f64(i);
        let (intensity, class) = (i as u16 * 3, (i % 7) as u8);
        if ascii {
            let l = if list { "2 5 6 " } else { "" };
            let row = format!("{} {} {} {l}{intensity} {class}\n", p[0], p[1], p[2]);
            b.extend_from_slice(row.as_bytes());
            continue;
        }
        for v in p {
            b.extend_from_slice(&if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            });
        }
        if list {
            b.push(2);
            int(&mut b, 5);
            int(&mut b, 6);
        }
        b.extend_from_slice(&if big {
            intensity.to_be_bytes()
        } else {
            intensity.to_le_bytes()
        });
        b.push(class);
    }
    b
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn ply_chunks_equal_the_whole_read() {
    let d = tempfile::tempdir().unwrap();
    let c = cloud(N);
    let opts = ReadOptions::default();
    for enc in [PlyEncoding::BinaryLittleEndian, PlyEncoding::Ascii] {
        let p = d.path().join(format!("w{enc:?}.ply"));
        let w = PlyWriteOptions {
            encoding: enc,
            ..Default::default()
        };
        write_ply(&p, &c, &w).unwrap();
        let whole = assert_chunks_equal_whole(&p, &opts);
        assert_eq!(whole.origin, [770_000.0, 6_277_000.0, 0.0]);
        assert_eq!(whole.labels, c.labels);
        assert_eq!(whole.feature_names(), ["intensity", "red"]);
    }
    for format in ["binary_little_endian", "binary_big_endian", "ascii"] {
        for list in [false, true] {
            let bytes = hand_ply(format, list, N);
            let p = write(d.path(), &format!("{format}_{list}.ply"), &bytes);
            let whole = assert_chunks_equal_whole(&p, &opts);
            assert_eq!(whole.feature_names(), ["intensity"], "{format} {list}");
            assert_eq!(whole.labels.as_ref().unwrap()[8], 1);
            assert_eq!(whole.point_f64(5), c.point_f64(5), "{format} {list}");
            // The same bytes from memory and from a stream of unknown length.
            let mem = read_ply_bytes(&bytes, &p, &PlyOptions::default()).unwrap();
            assert_same(&mem, &whole, "from memory");
            let r = PlyReader::from_reader(&bytes[..], &p, &PlyOptions::default()).unwrap();
            assert_eq!(r.point_count(), N as u64);
            let mut all = PointCloud::default();
            for c in r.chunks(333) {
                push(&mut all, c.unwrap());
            }
            assert_same(&all, &whole, "from a stream");
        }
    }
}

#[test]
fn text_chunks_equal_the_whole_read_with_labels_aligned() {
    let d = tempfile::tempdir().unwrap();
    let c = cloud(N);
    let (mut s3d, mut labels, mut csv) = (String::new(), String::new(), String::new());
    csv += "# exported\nx,y,z,intensity,label\n";
    for i in 0..N {
        let p = c.point_f64(i);
        s3d += &format!("{} {} {} {} 1 2 {}\n", p[0], p[1], p[2], i % 2000, i % 256);
        labels += &format!("{}\n", (i * 5) % 9);
        csv += &format!("{},{},{},{},{}\n", p[0], p[1], p[2], i % 100, i % 6);
        if i % 100 == 0 {
            s3d += "\n";
            csv += "\n";
        }
    }
    let pts = write(d.path(), "station.txt", s3d.as_bytes());
    write(d.path(), "station.labels", labels.as_bytes());
    let whole = assert_chunks_equal_whole(&pts, &ReadOptions::default());
    let want: Vec<u32> = (0..N).map(|i| ((i * 5) % 9) as u32).collect();
    assert_eq!(whole.labels.as_ref(), Some(&want));
    assert_eq!(whole.point_f64(N - 1), c.point_f64(N - 1));
    // An explicit labels file elsewhere.
    let other = write(d.path(), "elsewhere/l.labels", labels.as_bytes());
    let opts = ReadOptions {
        labels: Some(other),
        ..Default::default()
    };
    assert_same(
        &assert_chunks_equal_whole(&pts, &opts),
        &whole,
        "labels elsewhere",
    );

    let p = write(d.path(), "a.csv", csv.as_bytes());
    let whole = assert_chunks_equal_whole(&p, &ReadOptions::default());
    assert_eq!(whole.labels.as_ref().unwrap()[7], 1);
    assert_eq!(whole.feature_names(), ["intensity"]);
    let p = write(d.path(), "b.xyz", csv.replace(',', " ").as_bytes());
    let opts = ReadOptions {
        xyz: XyzOptions::with_spec("x y z _ class"),
        ..Default::default()
    };
    let spec = assert_chunks_equal_whole(&p, &opts);
    assert_eq!(spec.labels, whole.labels);
    assert!(spec.features.is_empty());
}

#[test]
fn las_kitti_and_s3dis_through_the_same_entry_point() {
    let d = tempfile::tempdir().unwrap();
    for name in ["t.las", "t.laz"] {
        let p = d.path().join(name);
        make_las(&p, 4, 7, 1500, 0, false);
        assert_chunks_equal_whole(&p, &ReadOptions::default());
    }
    let mut scan = Vec::new();
    for i in 0..300 {
        for v in [i as f32 * 0.1, -2.0, 0.5, 0.25] {
            scan.extend_from_slice(&v.to_le_bytes());
        }
    }
    let p = write(d.path(), "seq/velodyne/000000.bin", &scan);
    assert_chunks_equal_whole(&p, &ReadOptions::default());
    let room = d.path().join("Area_1/office_1");
    write(
        &room,
        "Annotations/chair_1.txt",
        b"1 2 3 4 5 6\n1 2 4 4 5 6\n",
    );
    write(&room, "Annotations/wall_1.txt", b"0 0 1 9 9 9\n");
    assert_eq!(
        assert_chunks_equal_whole(&room, &ReadOptions::default()).len(),
        3
    );
}

/// Reads `path` in chunks of `size`: the points of the chunks before the error, and its message.
fn points_before_error(path: &Path, size: usize) -> (usize, String) {
    let mut it = open_chunks(path, size, &ReadOptions::default()).unwrap();
    let mut n = 0;
    for c in it.by_ref() {
        match c {
            Ok(c) => n += c.len(),
            Err(e) => {
                assert!(it.next().is_none(), "the iterator must end after an error");
                return (n, e.to_string());
            }
        }
    }
    panic!("{} read {n} points without error", path.display());
}

#[test]
fn corrupt_data_mid_file_is_an_error_from_the_chunk_reader() {
    let d = tempfile::tempdir().unwrap();
    // Binary PLY: a NaN at vertex 500.
    let p = d.path().join("nan.ply");
    write_ply(&p, &cloud(1000), &PlyWriteOptions::default()).unwrap();
    let orig = std::fs::read(&p).unwrap();
    let mut bytes = orig.clone();
    let at = bytes.len() - 500 * (24 + 8 + 4) + 8;
    bytes[at..at + 8].copy_from_slice(&f64::NAN.to_le_bytes());
    let p = write(d.path(), "nan.ply", &bytes);
    let (n, e) = points_before_error(&p, 100);
    assert_eq!(n, 500);
    assert_has(&e, &["nan.ply", "non-finite", "y = NaN", "point 500"]);
    // The reader refuses to go on after an error.
    let mut r = PlyReader::open(&p, &PlyOptions::default()).unwrap();
    while r.read_chunk(64).is_ok() {}
    assert_has(
        &r.read_chunk(64).unwrap_err().to_string(),
        &["nan.ply", "earlier error"],
    );

    // Binary PLY from a stream that ends in the middle of vertex 700 (the length of a file is
    // checked against the vertex count when it is opened).
    let cut = orig.len() - 300 * 36 - 10;
    let mut r =
        PlyReader::from_reader(&orig[..cut], Path::new("cut.ply"), &PlyOptions::default()).unwrap();
    let mut n = 0;
    let e = loop {
        match r.read_chunk(64) {
            Ok(Some(c)) => n += c.len(),
            Ok(None) => panic!("no error"),
            Err(e) => break e.to_string(),
        }
    };
    assert_eq!(n, 640);
    assert_has(
        &e,
        &[
            "cut.ply",
            "truncated",
            "element vertex row 699 property intensity",
        ],
    );
    let p = write(d.path(), "cut.ply", &orig[..cut]);
    let e = open_chunks(&p, 100, &ReadOptions::default())
        .unwrap_err()
        .to_string();
    assert_has(&e, &["cut.ply", "element vertex count", "1000"]);

    // Ascii PLY: a bad token on data line 301 (vertex 300), a bad label later.
    let p = d.path().join("a.ply");
    let w = PlyWriteOptions {
        encoding: PlyEncoding::Ascii,
        ..Default::default()
    };
    write_ply(&p, &cloud(1000), &w).unwrap();
    let text = std::fs::read_to_string(&p).unwrap();
    let (head, body) = text.split_at(text.find("end_header\n").unwrap() + 11);
    let mut lines: Vec<String> = body.lines().map(str::to_string).collect();
    lines[300] = lines[300].replacen(' ', " 12x5 ", 1);
    let p = write(
        d.path(),
        "a.ply",
        format!("{head}{}\n", lines.join("\n")).as_bytes(),
    );
    let (n, e) = points_before_error(&p, 128);
    assert_eq!(n, 256);
    assert_has(&e, &["a.ply", "property y (data line 301)", "\"12x5\""]);

    // Semantic3D: a line with 6 columns, then labels too short, too long and a bad label.
    let mut s3d = String::new();
    for i in 0..1000 {
        s3d += &format!("{i} 2 3 4 5 6 7\n");
    }
    let bad = s3d.replacen("640 2 3 4 5 6 7\n", "640 2 3 4 5 6\n", 1);
    let p = write(d.path(), "s.txt", bad.as_bytes());
    let (n, e) = points_before_error(&p, 100);
    assert_eq!(n, 600);
    assert_has(&e, &["s.txt", "line 641", "found 6"]);
    let p = write(d.path(), "s.txt", s3d.as_bytes());
    let labels = |k: usize| (0..k).map(|i| format!("{}\n", i % 8)).collect::<String>();
    write(d.path(), "s.labels", labels(600).as_bytes());
    let (n, e) = points_before_error(&p, 100);
    assert_eq!(n, 600);
    assert_has(
        &e,
        &[
            "s.labels",
            "labels (one per point of",
            "expected 1000, found 600",
        ],
    );
    write(d.path(), "s.labels", labels(1003).as_bytes());
    let (n, e) = points_before_error(&p, 100);
    assert_eq!(n, 1000);
    assert_has(&e, &["s.labels", "expected 1000, found 1003"]);
    write(
        d.path(),
        "s.labels",
        labels(1000).replacen("5\n", "-5\n", 40).as_bytes(),
    );
    let (n, e) = points_before_error(&p, 100);
    assert_eq!(n, 0);
    assert_has(&e, &["s.labels", "label (line 6)", "-5"]);
    let mut l = labels(1000);
    l.replace_range(l.len() - 2.., "2.5\n");
    write(d.path(), "s.labels", l.as_bytes());
    let (n, e) = points_before_error(&p, 300);
    assert_eq!(n, 900);
    assert_has(&e, &["s.labels", "label (line 1000)", "2.5"]);
    // The whole-file read reports the same count mismatch.
    write(d.path(), "s.labels", labels(999).as_bytes());
    let e = read_with(&p, &ReadOptions::default())
        .unwrap_err()
        .to_string();
    assert_has(&e, &["s.labels", "expected 1000, found 999"]);
    let r = Semantic3dReader::from_readers(
        s3d.as_bytes(),
        Path::new("m.txt"),
        Some((&b"1\n"[..], Path::new("m.labels"))),
    );
    let e = r.read_all().unwrap_err().to_string();
    assert_has(&e, &["m.labels", "expected 1000, found 1"]);

    // XYZ: a short line and an infinite coordinate in the middle.
    let mut xyz = String::from("x y z i\n");
    for i in 0..1000 {
        xyz += &format!("{i} 1 2 3\n");
    }
    let p = write(
        d.path(),
        "p.xyz",
        xyz.replacen("\n450 1 2 3\n", "\n450 1 2\n", 1).as_bytes(),
    );
    let (n, e) = points_before_error(&p, 200);
    assert_eq!(n, 400);
    assert_has(&e, &["p.xyz", "line 452", "expected 4 columns, found 3"]);
    let p = write(
        d.path(),
        "q.xyz",
        xyz.replacen("\n777 1 2 3\n", "\n777 inf 2 3\n", 1)
            .as_bytes(),
    );
    let (n, e) = points_before_error(&p, 200);
    assert_eq!(n, 600);
    assert_has(&e, &["q.xyz", "non-finite", "y = inf", "point 777"]);
    let r = XyzReader::from_reader(
        &b"# only a comment\n"[..],
        Path::new("e.xyz"),
        &XyzOptions::default(),
    );
    assert_has(
        &r.read_all().unwrap_err().to_string(),
        &["e.xyz", "no points"],
    );
}

/// A chunk of at least 262,144 LAS records is decoded in parallel parts: the same cloud, bit
/// for bit, as chunks small enough to be decoded in one piece (RGB and NIR columns included).
#[test]
fn las_records_decoded_in_parallel_parts_equal_small_chunks() {
    let d = tempfile::tempdir().unwrap();
    for (name, format) in [("big.las", 8), ("big.laz", 7)] {
        let p = d.path().join(name);
        make_las(&p, 4, format, 300_000, 0, false);
        let whole = read_with(&p, &ReadOptions::default()).unwrap();
        assert_eq!(whole.len(), 300_000);
        let mut all = PointCloud::default();
        for c in open_chunks(&p, 100_000, &ReadOptions::default()).unwrap() {
            push(&mut all, c.unwrap());
        }
        assert_same(&all, &whole, name);
    }
}

/// A whole uncompressed file is read in parallel parts, each straight into its rows
/// (`LasReader::read_rest`): the same cloud, bit for bit, as small chunks, for the legacy and the
/// extended formats, every field or only some with labels; a file shorter than its header says
/// is refused, naming the points it holds.
#[test]
fn las_read_whole_in_parallel_parts_equals_small_chunks() {
    let d = tempfile::tempdir().unwrap();
    let n = 200_003;
    for (name, format) in [("legacy.las", 3), ("extended.las", 8)] {
        let p = d.path().join(name);
        make_las(&p, 4, format, n, 0, true);
        let whole = randla_io::LasReader::open_for_cloud(&p)
            .unwrap()
            .read_rest()
            .unwrap();
        let mut all = PointCloud::default();
        for c in open_chunks(&p, 50_000, &ReadOptions::default()).unwrap() {
            push(&mut all, c.unwrap());
        }
        assert_eq!(whole.len(), n);
        assert_same(&whole, &all, name);

        let only = ["intensity".to_string(), "number_of_returns".to_string()];
        let some = randla_io::LasReader::open_for_features(&p, &only, true)
            .unwrap()
            .read_rest()
            .unwrap();
        let mut r = randla_io::LasReader::open_for_features(&p, &only, true).unwrap();
        let mut chunked = PointCloud::default();
        while let Some(c) = r.read_chunk(30_000).unwrap() {
            push(&mut chunked, c);
        }
        assert_eq!(some.feature_names(), ["intensity", "number_of_returns"]);
        assert!(some.labels.is_some());
        assert_same(&some, &chunked, name);
    }
    // A file cut short after it was opened (the open checks the size too): the last 10.5
    // records gone.
    let p = d.path().join("extended.las");
    let bytes = std::fs::read(&p).unwrap();
    let evlr = 60 + b"evlr payload that must survive".len();
    let reader = randla_io::LasReader::open_for_cloud(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() - evlr - 38 * 10 - 20]).unwrap();
    let e = reader.read_rest().unwrap_err().to_string();
    assert_has(
        &e,
        &[
            "extended.las",
            "truncated",
            "point data",
            "200003 points",
            "199992 points",
        ],
    );
}
