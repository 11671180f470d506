//! Every dataset layout, read from a tiny folder generated in that layout, through resolution
//! and preprocessing (class mapping, features, grid subsampling).

use std::path::Path;

use randla_train::{IGNORED, TrainConfig, cache, dataset};

mod common;

fn config(
    dir: &Path,
    layout: &str,
    root: &str,
    train: &str,
    codes: &str,
    features: &str,
    scale: &str,
) -> TrainConfig {
    let text = format!(
        "[data]\nlayout = \"{layout}\"\nroot = \"{root}\"\ntrain = [{train}]\ngrid_size = 0.05\n\
         [classes]\nnames = [\"a\", \"b\"]\ncodes = {codes}\n[input]\nfeatures = {features}\nscale = {scale}\n"
    );
    let p = dir.join("cfg.toml");
    std::fs::write(&p, &text).unwrap();
    TrainConfig::load(&p).unwrap()
}

fn labels_of(c: &TrainConfig) -> Vec<Vec<u32>> {
    let items = dataset::resolve(
        &c.data.train,
        &c.data_root(),
        c.data.layout,
        "data.train",
        &c.source,
    )
    .unwrap();
    items
        .iter()
        .map(|i| {
            let p = cache::preprocess(i, c).unwrap();
            assert_eq!(p.channels, c.input.features.len());
            assert!(p.features.iter().all(|v| v.is_finite()));
            let mut l = p.labels.clone();
            l.sort();
            l.dedup();
            l
        })
        .collect()
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn s3dis_rooms_in_an_area() {
    let d = tempfile::tempdir().unwrap();
    for room in ["office_1", "office_2"] {
        let ann = d.path().join("Area_1").join(room).join("Annotations");
        write(
            &ann.join("floor_1.txt"),
            b"0 0 0 10 20 30\n1 0 0 10 20 30\n0 1 0 10 20 30\n",
        );
        write(
            &ann.join("chair_1.txt"),
            b"0 0 1 200 0 0\n0.5 0.5 1 200 0 0\n",
        );
        write(&ann.join("stairs_1.txt"), b"3 3 3 1 1 1\n");
    }
    // floor = 1, chair = 8; stairs read as clutter (12), ignored here.
    let c = config(
        d.path(),
        "s3dis",
        ".",
        "\"Area_1\"",
        "[[1], [8]]",
        "[\"red\", \"green\", \"blue\"]",
        "[255.0, 255.0, 255.0]",
    );
    assert_eq!(labels_of(&c), vec![vec![0, 1, IGNORED]; 2]);
}

#[test]
fn semantic3d_points_and_labels() {
    let d = tempfile::tempdir().unwrap();
    write(
        &d.path().join("s/scene_a.txt"),
        b"0 0 0 -1200 10 10 10\n1 0 0 -1000 10 10 10\n0 0 2 300 50 60 70\n",
    );
    write(&d.path().join("s/scene_a.labels"), b"2\n2\n5\n");
    write(&d.path().join("s/unlabelled.txt"), b"0 0 0 1 1 1 1\n");
    let c = config(
        d.path(),
        "semantic3d",
        "s",
        "\"scene_*\"",
        "[[2], [5]]",
        "[\"intensity\"]",
        "[2048.0]",
    );
    assert_eq!(labels_of(&c), vec![vec![0, 1]]);
    // A folder entry takes only the labelled files.
    let c = config(
        d.path(),
        "semantic3d",
        ".",
        "\"s\"",
        "[[2], [5]]",
        "[\"intensity\"]",
        "[2048.0]",
    );
    assert_eq!(labels_of(&c).len(), 1);
}

#[test]
fn semantickitti_sequences() {
    let d = tempfile::tempdir().unwrap();
    let seq = d.path().join("sequences/00");
    let pts: [[f32; 4]; 3] = [
        [0.0, 0.0, 0.0, 0.1],
        [5.0, 0.0, 0.0, 0.2],
        [0.0, 5.0, 1.0, 0.3],
    ];
    let bytes: Vec<u8> = pts.iter().flatten().flat_map(|v| v.to_le_bytes()).collect();
    write(&seq.join("velodyne/000000.bin"), &bytes);
    let labels: Vec<u8> = [40u32, 10, 0x0001_000A]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    write(&seq.join("labels/000000.label"), &labels);
    // Raw semantic labels (instance bits dropped): road 40, car 10.
    let c = config(
        d.path(),
        "semantickitti",
        ".",
        "\"sequences\"",
        "[[40], [10]]",
        "[\"remission\"]",
        "[1.0]",
    );
    assert_eq!(labels_of(&c), vec![vec![0, 1]]);
}

#[test]
fn toronto3d_ply_with_scalar_label() {
    let d = tempfile::tempdir().unwrap();
    let ply = "ply\nformat ascii 1.0\nelement vertex 3\nproperty double x\nproperty double y\nproperty double z\n\
               property float scalar_Intensity\nproperty float scalar_Label\nend_header\n\
               0 0 0 10 1\n1 0 0 20 1\n0 0 3 30 8\n";
    write(&d.path().join("L001.ply"), ply.as_bytes());
    let c = config(
        d.path(),
        "toronto3d",
        ".",
        "\"L00*.ply\"",
        "[[1], [8]]",
        "[\"scalar_Intensity\"]",
        "[255.0]",
    );
    assert_eq!(labels_of(&c), vec![vec![0, 1]]);
}

#[test]
fn generic_ply_folder_and_a_real_laz_tile() {
    let d = tempfile::tempdir().unwrap();
    common::write_ply(&d.path().join("plys/one.ply"), &common::scene(300, 5.0, 1));
    let c = config(
        d.path(),
        "las",
        ".",
        "\"plys\"",
        "[[2], [6]]",
        "[\"intensity\"]",
        "[1000.0]",
    );
    assert_eq!(labels_of(&c), vec![vec![0, 1, IGNORED]]);
    // The shipped IGN tile (LAZ), relative to the repository's data folder.
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/ign-lidar-hd");
    let c = config(
        d.path(),
        "las",
        data.to_str().unwrap(),
        "\"test_data_77050_627760_*.laz\"",
        "[[2], [6]]",
        "[\"intensity\", \"number_of_returns\"]",
        "[1000.0, 5.0]",
    );
    assert_eq!(labels_of(&c), vec![vec![0, 1, IGNORED]]);
}
