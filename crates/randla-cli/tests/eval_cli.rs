//! `randla eval` on a real IGN tile: a file against itself, deliberately altered copies with
//! hand-computed scores, `--map` / `--ignore`, and the errors bad input must give.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// 59,606 points: 1:3195 2:21975 3:1811 4:2184 5:12582 6:17859 (data/ign-lidar-hd/README.md).
fn tile() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../data/ign-lidar-hd/test_data_77060_627760_LA93_IGN69.laz")
}

fn other_tile() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../data/ign-lidar-hd/test_data_77055_627760_LA93_IGN69.laz")
}

const N: u64 = 59_606;

/// A fresh scratch folder per test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("randla-eval-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn eval(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_randla"))
        .arg("eval")
        .args(args)
        .output()
        .unwrap()
}

fn eval_json(pred: &Path, truth: &Path, extra: &[&str]) -> Value {
    let mut args = vec![pred.as_os_str(), truth.as_os_str()];
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    args.push("--json".as_ref());
    let out = eval(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn close(v: &Value, want: f64) -> bool {
    v.as_f64().is_some_and(|x| (x - want).abs() < 1e-12)
}

/// A LAS copy of the tile in which every low-vegetation point (3) is medium vegetation (4).
fn copy_with_3_as_4(dir: &Path) -> PathBuf {
    let cloud = randla_io::read(tile()).unwrap();
    let classes: Vec<u8> = cloud
        .labels
        .unwrap()
        .iter()
        .map(|&l| if l == 3 { 4 } else { l as u8 })
        .collect();
    let out = dir.join("pred_3_as_4.las");
    randla_io::rewrite_las_classification(&tile(), &out, &classes, None, false).unwrap();
    out
}

#[test]
fn a_file_against_itself_is_perfect() {
    let v = eval_json(&tile(), &tile(), &[]);
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["confusion", "miou", "oa", "per_class"]);
    assert_eq!(v["miou"], 1.0);
    assert_eq!(v["oa"], 1.0);
    let want = [
        ("unclassified", 3195),
        ("ground", 21975),
        ("low_vegetation", 1811),
        ("medium_vegetation", 2184),
        ("high_vegetation", 12582),
        ("building", 17859),
    ];
    let per_class = v["per_class"].as_object().unwrap();
    assert_eq!(per_class.len(), want.len());
    for (name, support) in want {
        let c = &per_class[name];
        let mut keys: Vec<&str> = c.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["f1", "iou", "precision", "recall", "support"],
            "{name}"
        );
        assert_eq!(c["support"], support, "{name}");
        for k in ["iou", "precision", "recall", "f1"] {
            assert_eq!(c[k], 1.0, "{name} {k}");
        }
    }
    let conf = &v["confusion"];
    let labels: Vec<&str> = conf["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert_eq!(labels, want.map(|w| w.0));
    assert_eq!(conf["codes"], serde_json::json!([1, 2, 3, 4, 5, 6]));
    let matrix = conf["matrix"].as_array().unwrap();
    for (i, row) in matrix.iter().enumerate() {
        for (j, x) in row.as_array().unwrap().iter().enumerate() {
            let want = if i == j { want[i].1 } else { 0 };
            assert_eq!(*x, want, "confusion[{i}][{j}]");
        }
    }
}

#[test]
fn an_altered_copy_gives_the_hand_computed_scores() {
    let dir = scratch("altered");
    let pred = copy_with_3_as_4(&dir);
    let v = eval_json(&pred, &tile(), &[]);
    // 1,811 low-vegetation points predicted as medium vegetation, everything else right.
    assert!(close(&v["oa"], (N - 1811) as f64 / N as f64), "{}", v["oa"]);
    let low = &v["per_class"]["low_vegetation"];
    assert_eq!(low["support"], 1811);
    assert_eq!(low["iou"], 0.0);
    assert_eq!(low["recall"], 0.0);
    assert_eq!(low["f1"], 0.0);
    assert!(low["precision"].is_null(), "never predicted: {low}");
    // Medium vegetation: TP 2184, FP 1811, FN 0.
    let med = &v["per_class"]["medium_vegetation"];
    assert!(close(&med["iou"], 2184.0 / 3995.0));
    assert!(close(&med["precision"], 2184.0 / 3995.0));
    assert_eq!(med["recall"], 1.0);
    assert!(close(&med["f1"], 4368.0 / 6179.0));
    assert_eq!(med["support"], 2184);
    assert_eq!(v["per_class"]["ground"]["iou"], 1.0);
    // mIoU: four perfect classes, 0 and 2184/3995, over the six classes with support.
    assert!(
        close(&v["miou"], (4.0 + 2184.0 / 3995.0) / 6.0),
        "{}",
        v["miou"]
    );
    assert_eq!(
        v["confusion"]["matrix"][2],
        serde_json::json!([0, 0, 0, 1811, 0, 0])
    );

    // Merging 3 into 4 in both files makes the copy perfect again, over five classes.
    let v = eval_json(&pred, &tile(), &["--map", "3=4"]);
    assert_eq!(
        (v["miou"].as_f64(), v["oa"].as_f64()),
        (Some(1.0), Some(1.0))
    );
    assert_eq!(v["per_class"]["medium_vegetation"]["support"], 2184 + 1811);
    assert!(v["per_class"].get("low_vegetation").is_none());

    // Ignoring truth code 3 leaves the other 57,795 points, all right.
    let v = eval_json(&pred, &tile(), &["--ignore", "3"]);
    assert_eq!(
        (v["miou"].as_f64(), v["oa"].as_f64()),
        (Some(1.0), Some(1.0))
    );
    let total: u64 = v["per_class"]
        .as_object()
        .unwrap()
        .values()
        .map(|c| c["support"].as_u64().unwrap())
        .sum();
    assert_eq!(total, N - 1811);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_ply_prediction_scores_against_the_laz_truth() {
    let dir = scratch("ply");
    let mut cloud = randla_io::read(tile()).unwrap();
    // Every 4th point predicted as building (6).
    let labels = cloud.labels.as_mut().unwrap();
    let truth = labels.clone();
    for l in labels.iter_mut().step_by(4) {
        *l = 6;
    }
    let changed = truth.iter().step_by(4).filter(|&&t| t != 6).count() as f64;
    let pred = dir.join("pred.ply");
    randla_io::write_ply(&pred, &cloud, &Default::default()).unwrap();
    let v = eval_json(&pred, &tile(), &[]);
    assert!(
        close(&v["oa"], (N as f64 - changed) / N as f64),
        "{}",
        v["oa"]
    );
    // Building is never missed, so its recall is 1; ASPRS names come from the LAZ truth.
    assert_eq!(v["per_class"]["building"]["recall"], 1.0);
    assert!(v["per_class"]["building"]["precision"].as_f64().unwrap() < 1.0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_table_is_readable() {
    let dir = scratch("table");
    let pred = copy_with_3_as_4(&dir);
    let out = eval(&[pred.as_os_str(), tile().as_os_str()]);
    assert!(out.status.success());
    let s = String::from_utf8(out.stdout).unwrap();
    for want in [
        "mIoU",
        "OA",
        "low_vegetation",
        "57,795 of 59,606 points correct",
        "rows = truth, columns = predicted",
        "1,811",
        // Every 3 was predicted as 4: a class the prediction never uses is pointed out.
        "truth code(s) 3 never predicted",
    ] {
        assert!(s.contains(want), "{want:?} missing from\n{s}");
    }
    let same = eval(&[tile().as_os_str(), tile().as_os_str()]);
    let same = String::from_utf8(same.stdout).unwrap();
    assert!(!same.contains("never predicted"), "{same}");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn fails_with(args: &[&std::ffi::OsStr], wants: &[&str]) {
    let out = eval(args);
    assert!(!out.status.success(), "succeeded: {args:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    for w in wants {
        assert!(err.contains(w), "{w:?} missing from: {err}");
    }
}

#[test]
fn bad_input_gives_clear_errors() {
    let dir = scratch("errors");
    let (t, o) = (tile(), other_tile());
    // Different point counts: both files and both counts named.
    fails_with(
        &[t.as_os_str(), o.as_os_str()],
        &[
            "point counts differ",
            "77060_627760",
            "59606",
            "77055_627760",
            "60653",
        ],
    );
    // A file that does not exist.
    let missing = dir.join("missing.laz");
    fails_with(
        &[missing.as_os_str(), t.as_os_str()],
        &["missing.laz", "PRED"],
    );
    // A file without labels.
    let mut cloud = randla_io::read(&t).unwrap();
    cloud.labels = None;
    let unlabelled = dir.join("unlabelled.ply");
    randla_io::write_ply(&unlabelled, &cloud, &Default::default()).unwrap();
    fails_with(
        &[t.as_os_str(), unlabelled.as_os_str()],
        &["unlabelled.ply", "has no labels"],
    );
    // Malformed --map and --ignore.
    fails_with(
        &[
            t.as_os_str(),
            t.as_os_str(),
            "--map".as_ref(),
            "3:5".as_ref(),
        ],
        &["--map", "\"3:5\" is not FROM=TO"],
    );
    fails_with(
        &[
            t.as_os_str(),
            t.as_os_str(),
            "--ignore".as_ref(),
            "ground".as_ref(),
        ],
        &["--ignore", "\"ground\""],
    );
    // Everything ignored.
    fails_with(
        &[
            t.as_os_str(),
            t.as_os_str(),
            "--ignore".as_ref(),
            "1,2,3,4,5,6".as_ref(),
        ],
        &["no point left to score"],
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Label files alone score as predictions and as truth: Semantic3D `.labels` (what `randla
/// predict` writes for text inputs) and SemanticKITTI `.label` (the semantic id in the low 16
/// bits), against a CSV with a class column; a bad line is named with its file and line.
#[test]
fn label_files_score_against_a_text_truth() {
    let dir = scratch("labels");
    let truth = dir.join("t.csv");
    std::fs::write(
        &truth,
        "x,y,z,class\n1,2,3,2\n4,5,6,6\n7,8,9,6\n10,11,12,6\n",
    )
    .unwrap();
    let pred = dir.join("p.labels");
    std::fs::write(&pred, "2\n6\n5\n6\n").unwrap();
    let v = eval_json(&pred, &truth, &[]);
    assert!(close(&v["oa"], 0.75), "{v}");
    // Class 2: IoU 1; class 6: 2 of 3 found, none extra: IoU 2/3.
    assert!(close(&v["per_class"]["6"]["iou"], 2.0 / 3.0), "{v}");

    let kitti = dir.join("p.label");
    let words: Vec<u8> = [2u32, 6 | (7 << 16), 5, 6]
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .collect();
    std::fs::write(&kitti, words).unwrap();
    assert_eq!(eval_json(&kitti, &truth, &[]), v);
    // The label file as truth, too.
    assert!(close(&eval_json(&truth, &pred, &[])["oa"], 0.75));

    let bad = dir.join("bad.labels");
    std::fs::write(&bad, "2\nsix\n5\n6\n").unwrap();
    fails_with(
        &[bad.as_os_str(), truth.as_os_str()],
        &["bad.labels", "line 2", "six"],
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `randla predict DIR -o OUT` then `randla eval OUT DIR`: folders are paired file by file (by
/// name, or by name before the extension) and every pair is scored in one confusion matrix, the
/// sum of the pairs' own; truth files without a prediction are named and left out.
#[test]
fn folders_are_scored_pair_by_pair_together() {
    let dir = scratch("folders");
    let (preds, truths) = (dir.join("pred"), dir.join("truth"));
    std::fs::create_dir_all(&preds).unwrap();
    std::fs::create_dir_all(&truths).unwrap();
    let altered = copy_with_3_as_4(&dir);
    std::fs::copy(&altered, preds.join("a.las")).unwrap();
    std::fs::copy(tile(), preds.join("b.laz")).unwrap();
    std::fs::copy(tile(), truths.join("a.las")).unwrap();
    std::fs::copy(tile(), truths.join("b.laz")).unwrap();
    std::fs::copy(other_tile(), truths.join("c.laz")).unwrap();
    // A labels file predicts a text cloud of the same stem.
    std::fs::write(preds.join("d.labels"), "2\n6\n6\n").unwrap();
    std::fs::write(
        truths.join("d.xyz"),
        "x y z label\n0 0 0 2\n1 0 0 6\n2 0 0 2\n",
    )
    .unwrap();
    let out = eval(&[preds.as_os_str(), truths.as_os_str(), "--json".as_ref()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("1 truth file(s) without a prediction") && stderr.contains("c.laz"),
        "{stderr}"
    );
    let all: Value = serde_json::from_slice(&out.stdout).unwrap();
    // The sum of the pairs scored one by one.
    let parts = [
        eval_json(&preds.join("a.las"), &truths.join("a.las"), &[]),
        eval_json(&preds.join("b.laz"), &truths.join("b.laz"), &[]),
        eval_json(&preds.join("d.labels"), &truths.join("d.xyz"), &[]),
    ];
    let codes_of = |v: &Value| -> Vec<u64> {
        v["confusion"]["codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_u64().unwrap())
            .collect()
    };
    let codes = codes_of(&all);
    let cell = |v: &Value, t: u64, p: u64| -> u64 {
        let cs = codes_of(v);
        match (
            cs.iter().position(|&c| c == t),
            cs.iter().position(|&c| c == p),
        ) {
            (Some(i), Some(j)) => v["confusion"]["matrix"][i][j].as_u64().unwrap(),
            _ => 0,
        }
    };
    for (i, &t) in codes.iter().enumerate() {
        for (j, &p) in codes.iter().enumerate() {
            let sum: u64 = parts.iter().map(|v| cell(v, t, p)).sum();
            assert_eq!(
                all["confusion"]["matrix"][i][j].as_u64().unwrap(),
                sum,
                "{t}→{p}"
            );
        }
    }
    // 2 × 59,606 + 3 points, 1,811 + 1 wrong.
    assert!(
        close(&all["oa"], (2 * N + 3 - 1812) as f64 / (2 * N + 3) as f64),
        "{all}"
    );
    let text = eval(&[preds.as_os_str(), truths.as_os_str()]);
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.contains("files    3 pairs"), "{text}");
    // A folder against a file, and a prediction without its truth: refused, naming them.
    fails_with(
        &[preds.as_os_str(), tile().as_os_str()],
        &["PRED is a folder", "TRUTH must be one too"],
    );
    std::fs::remove_file(truths.join("d.xyz")).unwrap();
    fails_with(
        &[preds.as_os_str(), truths.as_os_str()],
        &["d.labels", "no truth for this prediction"],
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
