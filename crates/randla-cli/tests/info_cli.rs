//! `randla info` on a real IGN tile: the JSON shape other tools rely on, and the table.

use std::path::PathBuf;
use std::process::Command;

fn tile() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../data/ign-lidar-hd/test_data_77060_627755_LA93_IGN69.laz")
}

#[test]
fn info_json_has_the_agreed_keys_and_values() {
    let out = Command::new(env!("CARGO_BIN_EXE_randla"))
        .args(["info", "--json"])
        .arg(tile())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let obj = v.as_object().unwrap();
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["attributes", "bounds", "classes", "points"]);
    assert_eq!(v["points"], 83_518);
    let b = &v["bounds"];
    assert_eq!(b.as_object().unwrap().len(), 2);
    let (min, max) = (b["min"].as_array().unwrap(), b["max"].as_array().unwrap());
    assert_eq!((min.len(), max.len()), (3, 3));
    assert!(min[0].as_f64().unwrap() >= 770_600.0 && max[0].as_f64().unwrap() <= 770_650.0);
    assert!(min[1].as_f64().unwrap() >= 6_277_500.0 && max[1].as_f64().unwrap() <= 6_277_550.0);
    let classes = v["classes"].as_object().unwrap();
    let want = [
        ("1", 4436),
        ("2", 32663),
        ("3", 2347),
        ("4", 3335),
        ("5", 19871),
        ("6", 20839),
        ("64", 27),
    ];
    assert_eq!(classes.len(), want.len());
    for (code, count) in want {
        assert_eq!(classes[code], count, "class {code}");
    }
    let attrs: Vec<&str> = v["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    for a in [
        "x",
        "y",
        "z",
        "intensity",
        "classification",
        "gps_time",
        "nir",
    ] {
        assert!(attrs.contains(&a), "{a} missing from {attrs:?}");
    }
}

#[test]
fn info_table_and_errors() {
    let out = Command::new(env!("CARGO_BIN_EXE_randla"))
        .arg("info")
        .arg(tile())
        .output()
        .unwrap();
    assert!(out.status.success());
    let s = String::from_utf8(out.stdout).unwrap();
    assert!(
        s.contains("83,518") && s.contains("classes") && s.contains("32,663"),
        "{s}"
    );
    let dir = std::env::temp_dir().join(format!("randla-info-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("scan.e57");
    std::fs::write(&bad, b"x").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_randla"))
        .arg("info")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("scan.e57") && err.contains("unknown point-cloud format"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_closed_pipe_ends_the_output_without_a_panic() {
    // `randla info … | head -0`: the reader is gone before anything is printed.
    let mut child = Command::new(env!("CARGO_BIN_EXE_randla"))
        .args(["info"])
        .arg(tile())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// A folder of tiles: each file summed up in turn, then a total; JSON is an array of the file
/// objects, each with its "file"; a note beside the tiles is passed over, and a file that
/// cannot be read is named while the others are still shown.
#[test]
fn a_folder_is_summed_up_file_by_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = tile().parent().unwrap().to_path_buf();
    for name in [
        "test_data_77060_627760_LA93_IGN69.laz",
        "test_data_77055_627760_LA93_IGN69.laz",
    ] {
        std::fs::copy(data.join(name), dir.path().join(name)).unwrap();
    }
    std::fs::write(dir.path().join("README.txt"), "Two tiles.\n").unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_randla"))
            .arg("info")
            .arg(dir.path())
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let files = v.as_array().unwrap();
    assert_eq!(files.len(), 2);
    let points: Vec<u64> = files
        .iter()
        .map(|f| f["points"].as_u64().unwrap())
        .collect();
    assert_eq!(points, [60_653, 59_606]);
    assert!(
        files[1]["file"]
            .as_str()
            .unwrap()
            .ends_with("77060_627760_LA93_IGN69.laz")
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("README.txt: passed over"));
    let out = run(&[]);
    let s = String::from_utf8(out.stdout).unwrap();
    assert!(s.contains("total       2 files, 120,259 points"), "{s}");
    // A broken tile among them.
    std::fs::write(dir.path().join("broken.laz"), b"LASF").unwrap();
    let out = run(&[]);
    let s = String::from_utf8(out.stdout).unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(s.contains("total       2 files"), "{s}");
    assert!(
        err.contains("broken.laz") && err.contains("1 of 3 files could not be read"),
        "{err}"
    );
}
