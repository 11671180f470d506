//! Corrupt, truncated and inconsistent inputs: every reader returns an error naming the file,
//! the field and the value; nothing panics and no partial output is left behind.

mod common;

use std::path::{Path, PathBuf};

use common::{assert_has, leftovers, make_las, tile};
use randla_io::{Error, PlyOptions, ReadOptions, read, read_with};

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Reads `path` fully and returns the error message (panics if reading succeeds).
fn err_of(path: &Path) -> String {
    match read(path) {
        Ok(c) => panic!("{} read {} points without error", path.display(), c.len()),
        Err(e) => {
            let s = e.to_string();
            assert!(
                s.contains(&*path.file_name().unwrap().to_string_lossy()),
                "no file name in {s}"
            );
            s
        }
    }
}

#[test]
fn empty_and_unknown_files() {
    let d = tempfile::tempdir().unwrap();
    for name in ["e.las", "e.laz", "e.ply", "e.txt", "e.bin", "e.xyz"] {
        let p = write(d.path(), name, b"");
        assert_has(&err_of(&p), &["empty"]);
    }
    let p = write(d.path(), "scan.e57", b"whatever");
    assert_has(&err_of(&p), &["unknown point-cloud format", "\"e57\""]);
    assert!(matches!(
        read(d.path().join("missing.las")),
        Err(Error::Io { .. })
    ));
}

#[test]
fn las_header_corruption() {
    let d = tempfile::tempdir().unwrap();
    let good = d.path().join("good.las");
    make_las(&good, 4, 6, 200, 0, false);
    let bytes = std::fs::read(&good).unwrap();
    let patch = |name: &str, at: usize, val: &[u8]| {
        let mut b = bytes.clone();
        b[at..at + val.len()].copy_from_slice(val);
        write(d.path(), name, &b)
    };
    assert_has(
        &err_of(&write(d.path(), "short.las", &bytes[..100])),
        &["truncated", "header"],
    );
    assert_has(
        &err_of(&patch("sig.las", 0, b"LASX")),
        &["file signature", "LASX"],
    );
    assert_has(&err_of(&patch("ver.las", 24, &[2, 0])), &["version", "2.0"]);
    assert_has(
        &err_of(&patch("fmt.las", 104, &[11])),
        &["point_data_record_format", "11"],
    );
    assert_has(
        &err_of(&patch("len.las", 105, &10u16.to_le_bytes())),
        &["point_data_record_length", "10"],
    );
    assert_has(
        &err_of(&patch("scale.las", 131, &0f64.to_le_bytes())),
        &["x_scale_factor", "= 0"],
    );
    assert_has(
        &err_of(&patch("off.las", 96, &9_999_999u32.to_le_bytes())),
        &["offset_to_point_data", "9999999"],
    );
    assert_has(
        &err_of(&patch("vlrs.las", 100, &500u32.to_le_bytes())),
        &["number_of_variable_length_records", "500"],
    );
    // Header announces more points than the file holds (legacy and 64-bit counts agree).
    let mut b = bytes.clone();
    b[107..111].copy_from_slice(&300u32.to_le_bytes());
    b[247..255].copy_from_slice(&300u64.to_le_bytes());
    assert_has(
        &err_of(&write(d.path(), "count.las", &b)),
        &["number_of_point_records", "300", "200 records"],
    );
    // Legacy and 64-bit counts disagree.
    assert_has(
        &err_of(&patch("count2.las", 107, &199u32.to_le_bytes())),
        &["number_of_point_records", "199", "200"],
    );
    // Truncated point data.
    assert_has(
        &err_of(&write(d.path(), "cut.las", &bytes[..bytes.len() - 100])),
        &["number_of_point_records", "200"],
    );
    // Coordinates that overflow to infinity.
    assert_has(
        &err_of(&patch("inf.las", 131, &1e308f64.to_le_bytes())),
        &["non-finite", "x", "inf"],
    );
    // Zero points.
    let mut b = bytes.clone();
    b[107..111].copy_from_slice(&0u32.to_le_bytes());
    b[247..255].copy_from_slice(&0u64.to_le_bytes());
    assert_has(
        &err_of(&write(d.path(), "zero.las", &b)),
        &["empty", "0 points"],
    );
}

#[test]
fn laz_corruption_is_an_error_not_a_panic() {
    let d = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(tile("77050_627760")).unwrap();
    let offset = u32::from_le_bytes([bytes[96], bytes[97], bytes[98], bytes[99]]) as usize;
    // Truncations at several places of the compressed data.
    for frac in [0.999, 0.9, 0.5, 0.01] {
        let cut = offset + ((bytes.len() - offset) as f64 * frac) as usize;
        let p = write(d.path(), &format!("cut{frac}.laz"), &bytes[..cut]);
        let e = err_of(&p);
        assert!(e.contains("laz") || e.contains("truncated"), "{e}");
    }
    // Header announcing more (or far fewer) points than compressed. Point format 8 keeps the
    // legacy 32-bit count at 0 and the real one at byte 247.
    let real = u64::from_le_bytes(bytes[247..255].try_into().unwrap());
    for (name, n) in [("more.laz", real + 1000), ("fewer.laz", 10)] {
        let mut b = bytes.clone();
        b[247..255].copy_from_slice(&n.to_le_bytes());
        let e = err_of(&write(d.path(), name, &b));
        assert!(
            e.contains("laz") || e.contains("number_of_point_records"),
            "{e}"
        );
    }
    // A chunk table claiming billions of chunks (found by the fuzzer: the laz crate would try to
    // allocate for them).
    let table = u64::from_le_bytes(bytes[offset..offset + 8].try_into().unwrap()) as usize;
    let mut b = bytes.clone();
    b[table + 4..table + 8].copy_from_slice(&0xF0F0_F0F0u32.to_le_bytes());
    assert_has(
        &err_of(&write(d.path(), "chunks.laz", &b)),
        &["LAZ number of chunks", "4042322160"],
    );
    let mut b = bytes.clone();
    b[offset..offset + 8].copy_from_slice(&(bytes.len() as u64 + 10).to_le_bytes());
    assert_has(
        &err_of(&write(d.path(), "table.laz", &b)),
        &["LAZ chunk table offset"],
    );
    // A layer size of ~4 GiB at the start of the first chunk (found by the fuzzer: the laz crate
    // allocates the announced size before reading).
    let mut b = bytes.clone();
    let sizes = offset + 8 + 38 + 4;
    b[sizes + 4..sizes + 8].copy_from_slice(&0xFFFF_0000u32.to_le_bytes());
    assert_has(
        &err_of(&write(d.path(), "layer.laz", &b)),
        &["LAZ chunk 0 layer sizes"],
    );
    // Compressed flag without the LASzip VLR.
    let mut b = bytes.clone();
    b[100..104].copy_from_slice(&0u32.to_le_bytes());
    assert_has(&err_of(&write(d.path(), "novlr.laz", &b)), &["LASzip VLR"]);
    // Garbage in the compressed stream: error or (undetectable) different values, never a panic.
    for (k, at) in [offset + 8, offset + 100, offset + 5000, bytes.len() / 2]
        .into_iter()
        .enumerate()
    {
        let mut b = bytes.clone();
        for x in &mut b[at..at + 64] {
            *x ^= 0x5A;
        }
        let p = write(d.path(), &format!("garbage{k}.laz"), &b);
        let _ = read(&p);
    }
}

#[test]
fn rewrite_refusals_leave_nothing_behind() {
    let d = tempfile::tempdir().unwrap();
    let input = d.path().join("in.las");
    make_las(&input, 2, 3, 100, 0, false);
    let classes = vec![1u8; 100];
    // Wrong class count.
    let out = d.path().join("out.las");
    let e = randla_io::rewrite_las_classification(&input, &out, &classes[..99], None, false)
        .unwrap_err();
    assert_has(&e.to_string(), &["classes length", "99", "100 points"]);
    // Class too large for point format 3, found mid-way: no partial output.
    let mut big = classes.clone();
    big[70] = 40;
    let e = randla_io::rewrite_las_classification(&input, &out, &big, None, false).unwrap_err();
    assert_has(&e.to_string(), &["classes[70]", "40", "0 to 31"]);
    assert!(!out.exists());
    // The input itself, also through another spelling, is never a target.
    let e =
        randla_io::rewrite_las_classification(&input, &input, &classes, None, true).unwrap_err();
    assert!(matches!(e, Error::OutputIsInput { .. }), "{e}");
    let other = d.path().join(".").join("in.las");
    let e =
        randla_io::rewrite_las_classification(&input, &other, &classes, None, true).unwrap_err();
    assert!(matches!(e, Error::OutputIsInput { .. }), "{e}");
    // Existing output without the flag.
    randla_io::rewrite_las_classification(&input, &out, &classes, None, false).unwrap();
    let e = randla_io::rewrite_las_classification(&input, &out, &classes, None, false).unwrap_err();
    assert!(matches!(e, Error::OutputExists { .. }), "{e}");
    // Truncated input.
    let cut = write(
        d.path(),
        "cut.laz",
        &std::fs::read(tile("77060_627760")).unwrap()[..200_000],
    );
    let out2 = d.path().join("out2.laz");
    let e = randla_io::rewrite_las_classification(&cut, &out2, &vec![2; 59_606], None, false)
        .unwrap_err();
    assert_has(&e.to_string(), &["cut.laz", "chunk table"]);
    assert!(!out2.exists());
    assert!(leftovers(d.path()).is_empty());
}

#[test]
fn ply_corruption() {
    let d = tempfile::tempdir().unwrap();
    let head = "ply\nformat binary_little_endian 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\nproperty uchar class\nend_header\n";
    let mut ok = head.as_bytes().to_vec();
    for i in 0..3 {
        for v in [i as f32, 1.0, 2.0] {
            ok.extend_from_slice(&v.to_le_bytes());
        }
        ok.push(i as u8);
    }
    assert_eq!(
        read(write(d.path(), "ok.ply", &ok)).unwrap().labels,
        Some(vec![0, 1, 2])
    );
    assert_has(
        &err_of(&write(d.path(), "cut.ply", &ok[..ok.len() - 5])),
        &["element vertex", "3"],
    );
    assert_has(
        &err_of(&write(d.path(), "magic.ply", b"PLY\nformat ascii 1.0\n")),
        &["magic"],
    );
    assert_has(
        &err_of(&write(
            d.path(),
            "noend.ply",
            b"ply\nformat ascii 1.0\nelement vertex 1\n",
        )),
        &["end_header"],
    );
    let p = write(
        d.path(),
        "fmt.ply",
        b"ply\nformat binary_middle_endian 1.0\nelement vertex 1\nproperty float x\nend_header\n",
    );
    assert_has(&err_of(&p), &["format", "binary_middle_endian"]);
    let p = write(d.path(), "ty.ply", b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\nproperty quad z\nend_header\n1 2 3\n");
    assert_has(&err_of(&p), &["property z type", "quad"]);
    let p = write(d.path(), "intx.ply", b"ply\nformat ascii 1.0\nelement vertex 1\nproperty short x\nproperty float y\nproperty float z\nend_header\n1 2 3\n");
    assert_has(&err_of(&p), &["property x type", "i16", "float or double"]);
    let p = write(d.path(), "lab.ply", b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\nproperty float z\nproperty float scalar_Label\nend_header\n1 2 3 2.5\n");
    assert_has(&err_of(&p), &["scalar_Label of vertex 0", "2.5"]);
    let p = write(d.path(), "nan.ply", b"ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty float y\nproperty float z\nend_header\n1 2 3\n1 nan 3\n");
    assert_has(&err_of(&p), &["non-finite", "y = NaN", "point 1"]);
    let p = write(d.path(), "asc.ply", b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\nend_header\n1 2 3\n1 2 3\n");
    assert_has(&err_of(&p), &["element vertex", "3"]);
    let p = write(d.path(), "tok.ply", b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\nproperty float z\nend_header\n1 zz 3\n");
    assert_has(&err_of(&p), &["property y", "\"zz\""]);
    let p = write(d.path(), "huge.ply", b"ply\nformat binary_little_endian 1.0\nelement vertex 4000000000\nproperty float x\nproperty float y\nproperty float z\nend_header\n\0\0\0\0");
    assert_has(&err_of(&p), &["element vertex count", "4000000000"]);
    let p = write(d.path(), "named.ply", &ok);
    let opts = ReadOptions {
        ply: PlyOptions {
            label: Some("semantic".into()),
        },
        ..Default::default()
    };
    let e = read_with(&p, &opts).unwrap_err().to_string();
    assert_has(&e, &["label property semantic", "missing"]);
}

#[test]
fn semantic3d_s3dis_kitti_xyz_corruption() {
    let d = tempfile::tempdir().unwrap();
    // Semantic3D: label count mismatch, bad token.
    let p = write(d.path(), "s.txt", b"1 2 3 4 5 6 7\n1 2 3 4 5 6 7\n");
    write(d.path(), "s.labels", b"1\n2\n3\n");
    let e = read(&p).unwrap_err().to_string();
    assert_has(&e, &["s.labels", "labels", "expected 2, found 3"]);
    write(d.path(), "s.labels", b"1\n-2\n");
    let e = read(&p).unwrap_err().to_string();
    assert_has(&e, &["s.labels", "label (line 2)", "-2"]);
    let p = write(d.path(), "t.txt", b"1 2 3 4 5 6 7\n1 2 3 4 5 6\n");
    assert_has(&err_of(&p), &["line 2", "found 6"]);
    // KITTI: size not a multiple of 16, label count, NaN.
    let p = write(d.path(), "k.bin", &[0u8; 20]);
    assert_has(&err_of(&p), &["truncated", "20 bytes"]);
    std::fs::create_dir_all(d.path().join("seq/velodyne")).unwrap();
    std::fs::create_dir_all(d.path().join("seq/labels")).unwrap();
    let scan = write(&d.path().join("seq/velodyne"), "000001.bin", &[0u8; 32]);
    write(&d.path().join("seq/labels"), "000001.label", &[0u8; 12]);
    let e = read(&scan).unwrap_err().to_string();
    assert_has(&e, &["000001.label", "expected 2, found 3"]);
    let mut nan = vec![0u8; 16];
    nan[4..8].copy_from_slice(&f32::NAN.to_le_bytes());
    assert_has(
        &err_of(&write(d.path(), "nan.bin", &nan)),
        &["non-finite", "y = NaN", "point 0"],
    );
    // S3DIS: bad line, empty room.
    let room = d.path().join("Area_1/office_1/Annotations");
    std::fs::create_dir_all(&room).unwrap();
    let e = read(d.path().join("Area_1/office_1"))
        .unwrap_err()
        .to_string();
    assert_has(&e, &["Annotations", "empty"]);
    write(&room, "chair_1.txt", b"1 2 3 4 5 6\n1 2 3 4 5 x6\n");
    let e = read(d.path().join("Area_1/office_1"))
        .unwrap_err()
        .to_string();
    assert_has(&e, &["chair_1.txt", "blue (line 2)", "\"x6\""]);
    // XYZ.
    assert_has(
        &err_of(&write(d.path(), "a.xyz", b"1 2 3\n1 2\n")),
        &["line 2", "expected 3 columns"],
    );
    assert_has(
        &err_of(&write(d.path(), "b.csv", b"x,y,z\n1,2,3\n1,2,inf\n")),
        &["non-finite", "z = inf"],
    );
    assert_has(
        &err_of(&write(d.path(), "c.xyz", &[0xff, 0xfe, b'\n'])),
        &["non-UTF-8"],
    );
}

/// Inputs the fuzzer (fuzz/, target `las`) found to crash the process through the `laz` crate:
/// a chunk table announcing billions of chunks, a ~4 GiB layer size, GPS-time data that makes
/// the layered decoder recurse until the stack overflows, and a variable-size chunk table
/// covering fewer points than the header (index out of bounds), and a corrupt arithmetic-coded
/// stream that makes the decoder index out of bounds (caught, `Error::Laz`; the default panic
/// hook still prints the `laz` panic message to stderr). All must now be plain errors,
/// both when decoding every field and when decoding for a point cloud.
#[test]
fn fuzzer_findings_are_errors() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for name in [
        "fuzz_laz_chunk_count.laz",
        "fuzz_laz_layer_size.laz",
        "fuzz_laz_gps_recursion.laz",
        "fuzz_laz_variable_chunks.laz",
        "fuzz_laz_decoder_panic.laz",
    ] {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        let full = std::io::Cursor::new(bytes.clone());
        let r = randla_io::LasReader::from_reader(full, Path::new(name)).and_then(|mut r| {
            while r.read_chunk(4096)?.is_some() {}
            Ok(())
        });
        let e = r.unwrap_err().to_string();
        assert!(e.contains(name), "{e}");
        let cloud = std::io::Cursor::new(bytes);
        let r = randla_io::LasReader::from_reader_for_cloud(cloud, Path::new(name))
            .and_then(|r| r.read_all());
        assert!(r.is_err(), "{name}");
    }
}
