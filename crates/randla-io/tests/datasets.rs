//! The research datasets' own layouts, generated in a temporary folder: Semantic3D, S3DIS,
//! SemanticKITTI (with the yaml learning_map) and plain XYZ/CSV; plus `info` on each.

use std::path::Path;

use randla_io::{LearningMap, ReadOptions, XyzOptions, info, read, read_with};

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn semantic3d_points_with_sibling_labels() {
    let d = tempfile::tempdir().unwrap();
    let pts = d.path().join("bildstein_station1_xyz_intensity_rgb.txt");
    let mut text = String::new();
    let mut labels = String::new();
    for i in 0..50 {
        text += &format!(
            "{:.3} {:.3} {:.3} {} {} {} {}\n",
            -10.0 + i as f64 * 0.1,
            3.25,
            1.5,
            -1000 + i,
            i,
            2 * i,
            3 * i
        );
        labels += &format!("{}\n", i % 9);
    }
    write(&pts, text.as_bytes());
    // Without labels first.
    let c = read(&pts).unwrap();
    assert_eq!(c.len(), 50);
    assert!(c.labels.is_none());
    assert_eq!(c.feature_names(), ["intensity", "red", "green", "blue"]);
    write(&pts.with_extension("labels"), labels.as_bytes());
    let c = read(&pts).unwrap();
    assert_eq!(c.labels.as_ref().unwrap()[10], 1);
    assert!((c.point_f64(10)[0] - -9.0).abs() < 1e-6);
    let i = info(&pts).unwrap();
    assert_eq!(i.points, 50);
    assert_eq!(i.classes.get(&0), Some(&6));
    assert_eq!(i.attributes.last().unwrap(), "label");
}

#[test]
fn s3dis_room_from_annotations() {
    let d = tempfile::tempdir().unwrap();
    let room = d
        .path()
        .join("Stanford3dDataset_v1.2_Aligned_Version/Area_1/conferenceRoom_1");
    write(&room.join("conferenceRoom_1.txt"), b"0 0 0 1 1 1\n");
    write(
        &room.join("Annotations/chair_1.txt"),
        b"1.0 2.0 0.5 10 20 30\n1.1 2.0 0.5 10 20 30\n",
    );
    write(
        &room.join("Annotations/wall_2.txt"),
        b"0.0 0.0 1.0 200 200 200\n",
    );
    write(
        &room.join("Annotations/stairs_1.txt"),
        b"3.0 3.0 0.1 1 2 3\n",
    );
    let c = read(&room).unwrap();
    assert_eq!(c.len(), 4);
    // Files in name order: chair, stairs (→ clutter), wall.
    assert_eq!(c.labels, Some(vec![8, 8, 12, 2]));
    assert_eq!(randla_io::S3DIS_CLASSES[8], "chair");
    assert_eq!(c.feature("red").unwrap(), &[10.0, 10.0, 1.0, 200.0]);
    // The Annotations folder itself works too.
    assert_eq!(read(room.join("Annotations")).unwrap().len(), 4);
}

#[test]
fn semantickitti_scan_labels_and_learning_map() {
    let d = tempfile::tempdir().unwrap();
    let seq = d.path().join("dataset/sequences/08");
    let mut scan = Vec::new();
    let mut lab = Vec::new();
    let raw = [0u32, 10, 40, 252, 10];
    for (i, r) in raw.iter().enumerate() {
        for v in [i as f32, -(i as f32), 0.5f32, 0.25] {
            scan.extend_from_slice(&v.to_le_bytes());
        }
        lab.extend_from_slice(&(r | ((i as u32 + 1) << 16)).to_le_bytes());
    }
    write(&seq.join("velodyne/000000.bin"), &scan);
    write(&seq.join("labels/000000.label"), &lab);
    let yaml = d.path().join("semantic-kitti.yaml");
    write(
        &yaml,
        b"labels:\n  0 : \"unlabeled\"\n  10: \"car\"\n  40: \"road\"\n  252: \"moving-car\"\nlearning_map:\n  0 : 0     # unlabeled\n  10: 1     # car\n  40: 9     # road\n  252: 1    # moving-car to car\nlearning_map_inv: # inverse of previous map\n  0: 0\n  1: 10\n  9: 40\n",
    );
    let c = read(seq.join("velodyne/000000.bin")).unwrap();
    assert_eq!(
        c.labels,
        Some(vec![0, 10, 40, 252, 10]),
        "semantic part = low 16 bits"
    );
    assert_eq!(c.feature("remission").unwrap(), &[0.25; 5]);
    let map = LearningMap::load(&yaml).unwrap();
    let opts = ReadOptions {
        learning_map: Some(map.clone()),
        ..Default::default()
    };
    let c = read_with(seq.join("velodyne/000000.bin"), &opts).unwrap();
    assert_eq!(c.labels, Some(vec![0, 1, 9, 1, 1]));
    let back: Vec<u32> = c
        .labels
        .unwrap()
        .iter()
        .map(|&l| map.to_raw(l).unwrap())
        .collect();
    assert_eq!(back, [0, 10, 40, 10, 10]);
    // An unmapped raw label is an error naming the value.
    let mut bad = lab.clone();
    bad[8..12].copy_from_slice(&99u32.to_le_bytes());
    write(&seq.join("labels/000000.label"), &bad);
    let e = read_with(seq.join("velodyne/000000.bin"), &opts)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("000000.label") && e.contains("point 2") && e.contains("99"),
        "{e}"
    );
}

#[test]
fn xyz_and_csv_with_column_specs() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("a.xyz");
    write(
        &p,
        b"770500.10 6277500.20 101.5 17 2\n770501.10 6277501.20 102.5 18 6\n",
    );
    let c = read(&p).unwrap();
    assert_eq!(c.len(), 2);
    assert!(c.labels.is_none() && c.features.is_empty());
    assert_eq!(c.origin, [770_000.0, 6_277_000.0, 0.0]);
    assert!((c.point_f64(1)[1] - 6_277_501.20).abs() < 1e-4);
    let opts = ReadOptions {
        xyz: XyzOptions::with_spec("x,y,z,intensity,class"),
        ..Default::default()
    };
    let c = read_with(&p, &opts).unwrap();
    assert_eq!(c.labels, Some(vec![2, 6]));
    assert_eq!(c.feature("intensity").unwrap(), &[17.0, 18.0]);
    let csv = d.path().join("b.csv");
    write(&csv, b"X,Y,Z,Classification\n1,2,3,5\n4,5,6,5\n");
    let i = info(&csv).unwrap();
    assert_eq!(i.classes.get(&5), Some(&2));
    assert_eq!(i.bounds.max, [4.0, 5.0, 6.0]);
}

/// A `.txt` that is not Semantic3D's seven columns is read as plain delimited text, like `.xyz`:
/// three coordinates, or a header of names; a seven-column `.txt` stays Semantic3D (its features
/// named as the dataset's), and a malformed later line of one is still refused.
#[test]
fn a_txt_of_plain_columns_reads_as_xyz() {
    let d = tempfile::tempdir().unwrap();
    let xyz = d.path().join("scan.txt");
    write(&xyz, b"\n1.0 2.0 3.0\n4.0 5.0 6.5\n7 8 9\n");
    let c = read(&xyz).unwrap();
    assert_eq!(c.len(), 3);
    assert!(c.features.is_empty() && c.labels.is_none());
    assert!((c.point_f64(1)[2] - 6.5).abs() < 1e-6);

    let named = d.path().join("named.txt");
    write(&named, b"x,y,z,intensity,class\n1,2,3,40,2\n4,5,6,50,6\n");
    let c = read(&named).unwrap();
    assert_eq!(c.feature("intensity").unwrap(), &[40.0, 50.0]);
    assert_eq!(c.labels, Some(vec![2, 6]));

    let seven_names = d.path().join("header.txt");
    write(
        &seven_names,
        b"x y z red green blue class
1 2 3 10 20 30 6
",
    );
    let c = read(&seven_names).unwrap();
    assert_eq!(c.feature_names(), ["red", "green", "blue"]);
    assert_eq!(c.labels, Some(vec![6]));

    let s3d = d.path().join("station.txt");
    write(&s3d, b"1 2 3 -100 10 20 30\n4 5 6 -90 11 21 31\n");
    let c = read(&s3d).unwrap();
    assert_eq!(c.feature_names(), ["intensity", "red", "green", "blue"]);
    write(&s3d, b"1 2 3 -100 10 20 30\n4 5 6\n");
    let e = read(&s3d).unwrap_err().to_string();
    assert!(e.contains("station.txt") && e.contains("7 columns"), "{e}");
}
