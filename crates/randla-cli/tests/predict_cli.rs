//! `randla predict`, the main job, as a user runs it: the shipped sample tile with the built-in
//! model, written back as LAZ (every point, every attribute kept, codes of the model's classes)
//! and as PLY, scored against the tile's own classification with `randla eval`; tiled runs; and
//! the refusals (existing output, bad options) that must leave nothing behind.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

mod common;
use common::{os, randla, randla_err, tile};

fn info(path: &Path) -> Value {
    let out = randla(&[os("info"), path.as_os_str(), os("--json")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `randla eval PRED TRUTH --map 3=5,4=5 --json` (the model has one vegetation class, code 5).
fn eval(pred: &Path, truth: &Path) -> Value {
    let out = randla(&[
        os("eval"),
        pred.as_os_str(),
        truth.as_os_str(),
        os("--map"),
        os("3=5,4=5"),
        os("--json"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The sample tile and its model attributes: intensity, return number, number of returns.
fn tile_and_inputs() -> (randla_io::PointCloud, [Vec<f32>; 3]) {
    let cloud = randla_io::read(tile()).unwrap();
    let col = |name: &str| cloud.feature(name).unwrap().to_vec();
    let cols = [
        col("intensity"),
        col("return_number"),
        col("number_of_returns"),
    ];
    (cloud, cols)
}

/// The arguments of `randla predict INPUT -o OUTPUT EXTRA…`.
fn predict_args<'a>(input: &'a Path, output: &'a Path, extra: &[&'a str]) -> Vec<&'a OsStr> {
    let mut args = vec![
        os("predict"),
        input.as_os_str(),
        os("-o"),
        output.as_os_str(),
    ];
    args.extend(extra.iter().map(|a| os(a)));
    args
}

/// `randla predict INPUT -o OUTPUT EXTRA…`, which must succeed; its stderr.
fn predict_ok(input: &Path, output: &Path, extra: &[&str]) -> String {
    let run = randla(&predict_args(input, output, extra));
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    assert!(run.status.success(), "{stderr}");
    stderr
}

/// `randla predict INPUT -o OUTPUT EXTRA…`, which must fail; its stderr.
fn predict_err(input: &Path, output: &Path, extra: &[&str]) -> String {
    randla_err(&predict_args(input, output, extra))
}

#[test]
fn the_shipped_tile_is_classified_and_written_back_intact() {
    let dir = tempfile::tempdir().unwrap();
    // In folders that do not exist yet: they are made, as `mkdir -p`.
    let out = dir.path().join("results").join("run1").join("pred.laz");
    let run = randla(&[os("predict"), tile().as_os_str(), os("-o"), out.as_os_str()]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(stderr.contains("59606 points"), "{stderr}");

    let (before, after) = (info(&tile()), info(&out));
    assert_eq!(after["points"], 59_606);
    assert_eq!(after["attributes"], before["attributes"]);
    assert_eq!(after["bounds"], before["bounds"]);
    // Every field but the classification is the input's, bit for bit.
    let records = |p: &Path| {
        let mut r = randla_io::LasReader::open(p).unwrap();
        let len = usize::from(r.header().record_length);
        let (mut all, mut buf) = (Vec::new(), Vec::new());
        while r.read_raw(10_000, &mut buf).unwrap() > 0 {
            all.extend_from_slice(&buf);
        }
        (all, len)
    };
    let ((a, len), (b, _)) = (records(&tile()), records(&out));
    assert_eq!(a.len(), b.len());
    for (i, (ra, rb)) in a.chunks_exact(len).zip(b.chunks_exact(len)).enumerate() {
        assert!(ra[..16] == rb[..16] && ra[17..] == rb[17..], "point {i}");
    }
    let classes: Vec<&String> = after["classes"].as_object().unwrap().keys().collect();
    assert!(
        classes
            .iter()
            .all(|c| ["1", "2", "5", "6"].contains(&c.as_str())),
        "{classes:?}"
    );

    // The shipped model is good on this held-out tile (measured: OA 0.92, ground IoU 0.96,
    // vegetation 0.78; a random-weight model scores far lower).
    let scores = eval(&out, &tile());
    assert!(scores["oa"].as_f64().unwrap() > 0.85, "{scores}");
    assert!(
        scores["per_class"]["ground"]["iou"].as_f64().unwrap() > 0.85,
        "{scores}"
    );
    assert!(
        scores["per_class"]["high_vegetation"]["iou"]
            .as_f64()
            .unwrap()
            > 0.7,
        "{scores}"
    );

    // A second run refuses to overwrite without --force and leaves the file as it was.
    let bytes = std::fs::read(&out).unwrap();
    let again = randla(&[os("predict"), tile().as_os_str(), os("-o"), out.as_os_str()]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("pred.laz"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(std::fs::read(&out).unwrap(), bytes);
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no temporary file left behind"
    );
}

/// `--grid-size` replaces the model's subsampling grid for one run: the built-in model runs on
/// 0.3 m by default (its training grid), and a finer grid leaves more points.
#[test]
fn the_grid_can_be_set_for_a_run() {
    let dir = tempfile::tempdir().unwrap();
    // "59606 points (38586 after 0.3 m grid)" → (38586, "0.3")
    let kept = |stderr: &str| -> (usize, String) {
        let at = stderr.find(" after ").expect(stderr);
        let n = stderr[..at]
            .rsplit('(')
            .next()
            .unwrap()
            .parse()
            .expect(stderr);
        let g = stderr[at + 7..].split(' ').next().unwrap().to_string();
        (n, g)
    };
    let out = |name: &str| dir.path().join(name);
    let default = kept(&predict_ok(&tile(), &out("a.laz"), &[]));
    let fine = kept(&predict_ok(
        &tile(),
        &out("b.laz"),
        &["--grid-size", "0.25"],
    ));
    let coarse = kept(&predict_ok(&tile(), &out("c.laz"), &["--grid-size", "0.5"]));
    assert_eq!(
        [&default.1, &fine.1, &coarse.1],
        ["0.3", "0.25", "0.5"],
        "{default:?} {fine:?} {coarse:?}"
    );
    assert!(
        coarse.0 < default.0 && default.0 < fine.0 && fine.0 < 59_606,
        "{default:?} {fine:?} {coarse:?}"
    );
    // A grid too fine for 64-bit voxel ids is refused naming the file and the step.
    let out = dir.path().join("d.laz");
    let stderr = predict_err(&tile(), &out, &["--grid-size", "0.0000001"]);
    assert!(
        stderr.contains("test_data_77060_627760_LA93_IGN69.laz: grid subsampling")
            && stderr.contains("too fine"),
        "{stderr}"
    );
    assert!(!out.exists());
}

#[test]
fn probabilities_are_added_to_a_laz_output() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pred.laz");
    predict_ok(&tile(), &out, &["--probabilities"]);
    let cloud = randla_io::read_las(&out).unwrap();
    let names: Vec<&str> = cloud.features.iter().map(|f| f.name.as_str()).collect();
    let probs: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| n.starts_with("prob_"))
        .collect();
    assert_eq!(
        probs,
        [
            "prob_ground",
            "prob_vegetation",
            "prob_building",
            "prob_other"
        ],
        "{names:?}"
    );
    let conf = cloud.feature("confidence").unwrap();
    let labels = cloud.labels.as_ref().unwrap();
    let codes = [2u32, 5, 6, 1];
    for i in 0..cloud.len() {
        let p: Vec<f32> = probs.iter().map(|n| cloud.feature(n).unwrap()[i]).collect();
        let (best, max) = p
            .iter()
            .enumerate()
            .fold((0, f32::MIN), |a, (c, &v)| if v > a.1 { (c, v) } else { a });
        assert!(
            (p.iter().sum::<f32>() - 1.0).abs() < 1e-4,
            "point {i}: {p:?}"
        );
        assert_eq!(conf[i], max, "point {i}");
        assert_eq!(labels[i], codes[best], "point {i}");
    }
    // Every field of the input is kept.
    let (before, after) = (info(&tile()), info(&out));
    let orig = before["attributes"].as_array().unwrap();
    let kept = &after["attributes"].as_array().unwrap()[..orig.len()];
    assert_eq!(kept, orig.as_slice());

    // Probabilities again on that output, from another prediction (two votes): the earlier
    // dimensions are refilled in place, none added, each with the values a run on the original
    // file writes; through the full LAZ rewrite and the parallel LAS one.
    let fresh = dir.path().join("fresh.laz");
    let two = |input: &Path, output: &Path| {
        predict_ok(input, output, &["--probabilities", "--votes", "2"]);
        randla_io::read_las(output).unwrap()
    };
    let fresh = two(&tile(), &fresh);
    for name in ["again.laz", "again.las"] {
        let again = two(&out, &dir.path().join(name));
        assert_eq!(again.feature_names(), cloud.feature_names(), "{name}");
        for n in probs.iter().copied().chain(["confidence"]) {
            assert!(again.feature(n) == fresh.feature(n), "{name}: {n}");
        }
        assert_eq!(again.labels, fresh.labels, "{name}");
        assert!(
            again.feature("confidence") != cloud.feature("confidence"),
            "{name}: the one-vote values were copied through"
        );
    }
}

#[test]
fn tiles_and_ply_output_keep_the_attributes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pred.ply");
    let run = randla(&[
        os("predict"),
        tile().as_os_str(),
        os("-o"),
        out.as_os_str(),
        os("--tile-points"),
        os("8000"),
    ]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(
        stderr.contains("tiles with a"),
        "the cloud should have been tiled: {stderr}"
    );
    let after = info(&out);
    assert_eq!(after["points"], 59_606);
    let attrs: Vec<&str> = after["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    // The attributes a point cloud holds (LAS flags and the f64 GPS time are LAS-only: a LAS
    // output, above, keeps them byte for byte).
    for a in [
        "intensity",
        "return_number",
        "number_of_returns",
        "scan_angle",
        "red",
        "nir",
    ] {
        assert!(
            attrs.contains(&a),
            "{a} missing from the PLY output: {attrs:?}"
        );
    }
    let scores = eval(&out, &tile());
    assert!(scores["oa"].as_f64().unwrap() > 0.85, "{scores}");
}

#[test]
fn bad_options_are_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pred.laz");
    let input = tile();
    for (flag, value, says) in [
        ("--tile-points", "0", "--tile-points"),
        ("--margin=-3", "", "--margin"),
        ("--memory-budget", "lots", "lots"),
        ("--votes", "0", "--votes"),
        ("--grid-size", "0", "--grid-size"),
    ] {
        let mut args = vec![
            os("predict"),
            input.as_os_str(),
            os("-o"),
            out.as_os_str(),
            os(flag),
        ];
        if !value.is_empty() {
            args.push(os(value));
        }
        let stderr = randla_err(&args);
        assert!(stderr.contains(says), "{flag} {value}: {stderr}");
    }
    // A folder whose tiles are one level down: the error says sub-folders are not searched.
    let elsewhere = tempfile::tempdir().unwrap();
    let nest = elsewhere.path().join("survey");
    std::fs::create_dir_all(nest.join("2024")).unwrap();
    std::fs::copy(&input, nest.join("2024").join("a.laz")).unwrap();
    let stderr = predict_err(&nest, &out, &[]);
    assert!(
        stderr.contains("holds no point-cloud file")
            && stderr.contains("sub-folders are not searched"),
        "{stderr}"
    );
    // An output the run could not write is refused before the (long) classification, not after.
    let odd = dir.path().join("pred.4.3");
    let stderr = predict_err(&input, &odd, &[]);
    assert!(
        stderr.contains("pred.4.3") && stderr.contains("cannot write predictions in this format"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("model:"),
        "the model was loaded first: {stderr}"
    );
    let missing = dir.path().join("nope.laz");
    let stderr = predict_err(&missing, &out, &[]);
    assert!(stderr.contains("nope.laz"), "{stderr}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing written"
    );
    // An unreadable input with a folder as the output: the error names the file, and the folder
    // the run created is gone again.
    let garbage = dir.path().join("garbage.las");
    std::fs::write(&garbage, b"not a LAS file").unwrap();
    let folder = dir.path().join("preds");
    let stderr = predict_err(&garbage, &folder, &[]);
    assert!(stderr.contains("garbage.las"), "{stderr}");
    assert!(!folder.exists(), "the empty output folder was left behind");
    // The same with a file in folders that do not exist yet: both folders are gone again.
    let nested = dir.path().join("new").join("deeper").join("pred.laz");
    predict_err(&garbage, &nested, &[]);
    assert!(
        !dir.path().join("new").exists(),
        "created folders left behind"
    );
    // Several inputs and an output named like a file: refused, nothing created.
    let stderr = randla_err(&[
        os("predict"),
        input.as_os_str(),
        garbage.as_os_str(),
        os("-o"),
        out.as_os_str(),
    ]);
    assert!(stderr.contains("need an output folder"), "{stderr}");
    assert!(!out.exists());
    // Two inputs of the same name (from two folders) would be written to one output, the
    // second over the first: refused, nothing created.
    let twin = dir.path().join("twin");
    std::fs::create_dir(&twin).unwrap();
    let copy = twin.join(input.file_name().unwrap());
    std::fs::copy(&input, &copy).unwrap();
    let stderr = randla_err(&[
        os("predict"),
        input.as_os_str(),
        copy.as_os_str(),
        os("-o"),
        folder.as_os_str(),
    ]);
    assert!(stderr.contains("would both be written there"), "{stderr}");
    assert!(!folder.exists(), "{stderr}");
    // A folder predicted into itself: refused whatever the flags (with --skip-existing it
    // used to read as "nothing to do"), the input left as it was.
    let before = std::fs::read(&copy).unwrap();
    for flags in [&[][..], &["--force"], &["--skip-existing"]] {
        let mut args = vec![os("predict"), twin.as_os_str(), os("-o"), twin.as_os_str()];
        args.extend(flags.iter().map(|f| os(f)));
        let stderr = randla_err(&args);
        assert!(
            stderr.contains("would overwrite its own input"),
            "{flags:?}: {stderr}"
        );
    }
    assert_eq!(std::fs::read(&copy).unwrap(), before);
    assert_eq!(std::fs::read_dir(&twin).unwrap().count(), 1);
}

#[test]
fn the_built_in_model_travels_with_the_binary() {
    // A copy of the binary in an empty folder, run from there: no checkout to find a model in.
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("randla");
    std::fs::copy(env!("CARGO_BIN_EXE_randla"), &bin).unwrap();
    let out = dir.path().join("pred.laz");
    let run = Command::new(&bin)
        .current_dir(dir.path())
        .env_remove("RANDLA_MODEL")
        .args([os("predict"), tile().as_os_str(), os("-o"), out.as_os_str()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(stderr.contains("built-in model"), "{stderr}");
    assert_eq!(info(&out)["points"], 59_606);

    // A model directory that does not exist, by flag or by RANDLA_MODEL, is named and refused.
    let nowhere = dir.path().join("no-such-model");
    for by_env in [false, true] {
        let out = dir.path().join(format!("other{by_env}.laz"));
        let mut cmd = Command::new(&bin);
        cmd.args([os("predict"), tile().as_os_str(), os("-o"), out.as_os_str()]);
        if by_env {
            cmd.env("RANDLA_MODEL", &nowhere);
        } else {
            cmd.env_remove("RANDLA_MODEL").arg("--model").arg(&nowhere);
        }
        let run = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success(), "by_env {by_env}: accepted");
        assert!(stderr.contains("no-such-model"), "{stderr}");
        assert!(!out.exists());
    }
}

#[test]
fn several_files_each_get_their_own_prediction() {
    // Files are written on a separate thread while the next is classified: every output must
    // still be its own file's prediction, byte for byte what a run on that file alone writes.
    let dir = tempfile::tempdir().unwrap();
    let other = tile().with_file_name("test_data_77060_627755_LA93_IGN69.laz");
    let both = dir.path().join("both");
    let run = randla(&[
        os("predict"),
        tile().as_os_str(),
        other.as_os_str(),
        os("-o"),
        both.as_os_str(),
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    for input in [tile(), other] {
        let alone = dir.path().join("alone.laz");
        let run = randla(&[
            os("predict"),
            input.as_os_str(),
            os("-o"),
            alone.as_os_str(),
            os("--force"),
        ]);
        assert!(run.status.success());
        let name = input.file_name().unwrap();
        assert!(
            std::fs::read(both.join(name)).unwrap() == std::fs::read(&alone).unwrap(),
            "{name:?} differs from its own run"
        );
    }
}

#[test]
fn a_bad_file_among_several_is_named_and_the_others_are_written() {
    // Small files are read ahead (while the file before is classified) or in pairs (classified
    // at once): a file that cannot be read must fail on its own, naming itself and leaving no
    // output, while every other file is still classified and written (one bad tile in a folder
    // used to stop the run there, leaving the tiles after it undone); the run then fails
    // naming the bad file.
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(tile()).unwrap();
    let bad = dir.path().join("bad.laz");
    std::fs::write(&bad, &bytes[..bytes.len() / 2]).unwrap();
    let other = tile().with_file_name("test_data_77060_627755_LA93_IGN69.laz");
    let names = |dir: &Path| -> Vec<std::ffi::OsString> {
        let mut n: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        n.sort();
        n
    };
    for (k, inputs) in [
        [tile(), bad.clone(), other.clone()],
        [bad.clone(), tile(), other.clone()],
        [tile(), other.clone(), bad.clone()],
    ]
    .iter()
    .enumerate()
    {
        let out = dir.path().join(format!("out{k}"));
        let mut args = vec![os("predict")];
        args.extend(inputs.iter().map(|p| p.as_os_str()));
        args.extend([os("-o"), out.as_os_str()]);
        let stderr = randla_err(&args);
        assert!(
            stderr.contains("1 of 3 input files failed") && stderr.contains("bad.laz: "),
            "{stderr}"
        );
        assert!(stderr.contains("done: 2 file(s)"), "{stderr}");
        assert_eq!(
            names(&out),
            [other.file_name().unwrap(), tile().file_name().unwrap()],
            "{stderr}"
        );
        for good in [tile(), other.clone()] {
            let pred = info(&out.join(good.file_name().unwrap()));
            assert_eq!(pred["points"], info(&good)["points"]);
        }
    }
    // The bad file mended, the run resumed with --skip-existing: only it is classified, the
    // outputs already there are left as they were.
    std::fs::copy(tile(), &bad).unwrap();
    let out = dir.path().join("out0");
    let before = std::fs::read(out.join(other.file_name().unwrap())).unwrap();
    let run = randla(&[
        os("predict"),
        tile().as_os_str(),
        bad.as_os_str(),
        other.as_os_str(),
        os("-o"),
        out.as_os_str(),
        os("--skip-existing"),
    ]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(
        stderr.contains("note: 2 input(s) skipped") && stderr.contains("done: 1 file(s)"),
        "{stderr}"
    );
    assert_eq!(names(&out).len(), 3, "{stderr}");
    assert_eq!(
        std::fs::read(out.join(other.file_name().unwrap())).unwrap(),
        before
    );
    // A folder of tiles with a note beside them: the note is passed over, said so, and the
    // tiles are classified.
    let folder = dir.path().join("tiles");
    std::fs::create_dir(&folder).unwrap();
    std::fs::copy(tile(), folder.join("a.laz")).unwrap();
    std::fs::write(folder.join("README.txt"), "Tiles of the survey, 2024.\n").unwrap();
    std::fs::write(folder.join("index.csv"), "name,xmin,ymin\na.laz,0,0\n").unwrap();
    let out = dir.path().join("tiles_out");
    let run = randla(&[os("predict"), folder.as_os_str(), os("-o"), out.as_os_str()]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(
        stderr.contains("README.txt: passed over") && stderr.contains("index.csv: passed over"),
        "{stderr}"
    );
    assert_eq!(names(&out), [std::ffi::OsString::from("a.laz")], "{stderr}");
}

/// Text inputs (`.csv`, `.xyz`, a plain `.txt`) predicted into a folder get one code per line in
/// a `.labels` file beside each other, in the input's point order: the output name once kept the
/// input's extension, which no writer takes, and the run failed.
#[test]
fn text_inputs_get_labels_files_in_an_output_folder() {
    let dir = tempfile::tempdir().unwrap();
    let (cloud, [int, ret, num]) = tile_and_inputs();
    let n = 3000;
    let mut csv = String::from("x,y,z,intensity,return_number,number_of_returns\n");
    let mut txt = String::from("x y z intensity return_number number_of_returns\n");
    for i in 0..n {
        let p = cloud.point_f64(i * 7);
        let row = [
            p[0],
            p[1],
            p[2],
            int[i * 7] as f64,
            ret[i * 7] as f64,
            num[i * 7] as f64,
        ];
        let cells: Vec<String> = row.iter().map(|v| format!("{v:.3}")).collect();
        csv += &(cells.join(",") + "\n");
        txt += &(cells.join(" ") + "\n");
    }
    let inputs = dir.path().join("in");
    std::fs::create_dir_all(&inputs).unwrap();
    std::fs::write(inputs.join("a.csv"), &csv).unwrap();
    std::fs::write(inputs.join("b.txt"), &txt).unwrap();
    let out = dir.path().join("out");
    let run = randla(&[os("predict"), inputs.as_os_str(), os("-o"), out.as_os_str()]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let read = |name: &str| -> Vec<u32> {
        std::fs::read_to_string(out.join(name))
            .unwrap()
            .lines()
            .map(|l| l.trim().parse().unwrap())
            .collect()
    };
    let (a, b) = (read("a.labels"), read("b.labels"));
    assert_eq!(a.len(), n);
    assert!(
        a.iter().all(|c| [1, 2, 5, 6].contains(c)),
        "codes of the model's classes"
    );
    assert_eq!(a, b, "the same points as CSV and as text classify alike");
}

/// A PLY made by another tool (PDAL's lower-cased LAS names `returnnumber`, `numberofreturns`,
/// `classification`; a comment; a face element after the vertices) predicted to PLY: the output
/// is the input with only the classification's values changed (same header, same size, the
/// faces intact), and the classes are those the same points get as LAZ.
#[test]
fn a_ply_from_another_tool_is_classified_in_a_copy_of_itself() {
    let dir = tempfile::tempdir().unwrap();
    let (cloud, [int, ret, num]) = tile_and_inputs();
    let labels = cloud.labels.as_ref().unwrap();
    let n = cloud.len();
    let mut ply = format!(
        "ply\nformat binary_little_endian 1.0\ncomment Generated by PDAL\ncomment crs EPSG:2154\nelement vertex {n}\nproperty double x\nproperty double y\nproperty double z\nproperty ushort intensity\nproperty uchar returnnumber\nproperty uchar numberofreturns\nproperty uchar classification\nelement face 1\nproperty list uchar uint vertex_indices\nend_header\n"
    )
    .into_bytes();
    let head = ply.len();
    for i in 0..n {
        for v in cloud.point_f64(i) {
            ply.extend_from_slice(&v.to_le_bytes());
        }
        ply.extend_from_slice(&(int[i] as u16).to_le_bytes());
        ply.extend_from_slice(&[ret[i] as u8, num[i] as u8, labels[i] as u8]);
    }
    ply.push(3);
    for v in [0u32, 1, 2] {
        ply.extend_from_slice(&v.to_le_bytes());
    }
    let input = dir.path().join("pdal.ply");
    std::fs::write(&input, &ply).unwrap();
    let (out_ply, out_laz) = (dir.path().join("pred.ply"), dir.path().join("pred.laz"));
    for (i, o) in [(&input, &out_ply), (&tile(), &out_laz)] {
        predict_ok(i, o, &[]);
    }
    let written = std::fs::read(&out_ply).unwrap();
    assert_eq!(written.len(), ply.len());
    assert_eq!(written[..head], ply[..head]);
    assert_eq!(written[written.len() - 13..], ply[ply.len() - 13..]);
    // Only classification bytes differ (the last of each 29-byte row).
    let row = 29;
    let changed: Vec<usize> = (head..ply.len())
        .filter(|&k| ply[k] != written[k])
        .collect();
    assert!(!changed.is_empty());
    assert!(
        changed.iter().all(|k| (k - head) % row == row - 1),
        "{:?}",
        &changed[..changed.len().min(5)]
    );
    // The PLY's classes are the LAZ run's, point for point.
    let same = eval(&out_ply, &out_laz);
    assert_eq!(same["oa"], 1.0, "{same}");
    assert_eq!(eval(&out_ply, &input)["oa"], eval(&out_laz, &tile())["oa"]);
}

/// `--memory-budget` sizes the network's passes; the cloud's columns come on top, and a run
/// whose peak RSS went above the budget says so rather than leave the user to think it held.
#[test]
fn a_budget_below_the_peak_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = predict_ok(
        &tile(),
        &dir.path().join("small.laz"),
        &["--memory-budget", "16MiB"],
    );
    assert!(
        stderr.contains("is above the memory budget (16 MiB)")
            && stderr.contains("24 bytes per input point"),
        "{stderr}"
    );
    // Tiles shrank to fit: more than one pass.
    assert!(!stderr.contains("in 1 pass(es)"), "{stderr}");
    let stderr = predict_ok(&tile(), &dir.path().join("big.laz"), &[]);
    assert!(!stderr.contains("above the memory budget"), "{stderr}");
}

/// Ctrl-C during the write: the run ends with status 130 (128 + SIGINT), says so, and leaves
/// neither the output nor its hidden temporary file (as large as the output) behind.
#[cfg(unix)]
#[test]
fn an_interrupted_write_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    // The sample tile 16 times side by side as a binary PLY (954k points), so that the write
    // lasts long enough to be caught.
    let (cloud, [int, ret, num]) = tile_and_inputs();
    let (n, copies) = (cloud.len(), 16);
    let mut ply = format!(
        "ply\nformat binary_little_endian 1.0\nelement vertex {}\nproperty double x\nproperty double y\nproperty double z\nproperty float intensity\nproperty float return_number\nproperty float number_of_returns\nend_header\n",
        n * copies
    )
    .into_bytes();
    for k in 0..copies {
        for i in 0..n {
            let p = cloud.point_f64(i);
            for v in [p[0] + 60.0 * k as f64, p[1], p[2]] {
                ply.extend_from_slice(&v.to_le_bytes());
            }
            for v in [int[i], ret[i], num[i]] {
                ply.extend_from_slice(&v.to_le_bytes());
            }
        }
    }
    let input = dir.path().join("strip.ply");
    std::fs::write(&input, &ply).unwrap();
    let folder = dir.path().join("out");
    std::fs::create_dir(&folder).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_randla"))
        .args([os("predict"), input.as_os_str(), os("-o")])
        .arg(folder.join("strip.ply"))
        .arg("--probabilities")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let temporary = || {
        std::fs::read_dir(&folder)
            .unwrap()
            .any(|e| e.unwrap().file_name().to_string_lossy().ends_with(".tmp"))
    };
    let caught = loop {
        if temporary() {
            // SAFETY: kill with the pid of a child this test started and has not reaped.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
            break true;
        }
        if child.try_wait().unwrap().is_some() {
            break false;
        }
        std::thread::sleep(std::time::Duration::from_micros(500));
    };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(caught, "the write ended before it was seen: {stderr}");
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("interrupted: 1 unfinished output(s) removed"),
        "{stderr}"
    );
    let left: Vec<_> = std::fs::read_dir(&folder).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

/// `--keep CODES`: points whose input class is listed keep it (classes the model lacks, or
/// edited by hand); every other point gets what a run without `--keep` gives it; an input
/// without classes is refused with --keep, naming it.
#[test]
fn kept_classes_stay_as_they_were() {
    let dir = tempfile::tempdir().unwrap();
    let input = randla_io::read(tile()).unwrap();
    let orig = input.labels.as_ref().unwrap();
    let plain = dir.path().join("plain.laz");
    predict_ok(&tile(), &plain, &[]);
    let plain = randla_io::read(&plain).unwrap().labels.unwrap();
    for name in ["kept.laz", "kept.las", "kept.ply"] {
        let out = dir.path().join(name);
        let stderr = predict_ok(&tile(), &out, &["--keep", "3,4,64"]);
        let kept = orig.iter().filter(|c| [3, 4, 64].contains(*c)).count();
        assert!(kept > 0);
        assert!(stderr.contains(&format!("kept: {kept} points")), "{stderr}");
        let got = randla_io::read(&out).unwrap().labels.unwrap();
        for i in 0..orig.len() {
            let want = if [3, 4, 64].contains(&orig[i]) {
                orig[i]
            } else {
                plain[i]
            };
            assert_eq!(got[i], want, "{name}: point {i}");
        }
    }
    let xyz = dir.path().join("plain.xyz");
    std::fs::write(&xyz, "0 0 0\n1 0 0\n0 1 0\n").unwrap();
    let out = dir.path().join("x.labels");
    let stderr = predict_err(&xyz, &out, &["--keep", "7"]);
    assert!(
        stderr.contains("plain.xyz") && stderr.contains("--keep"),
        "{stderr}"
    );
    assert!(!out.exists());
}

#[test]
fn a_survey_of_sub_folders_is_predicted_in_a_tree_of_the_same_shape() {
    // survey/2024/north/a.laz, survey/2025/b.laz, a hidden folder's copy and a README.
    let dir = tempfile::tempdir().unwrap();
    let survey = dir.path().join("survey");
    let other = tile().with_file_name("test_data_77060_627755_LA93_IGN69.laz");
    for (from, to) in [
        (tile(), "2024/north/a.laz"),
        (other.clone(), "2025/b.laz"),
        (other.clone(), ".snapshots/b.laz"),
    ] {
        let to = survey.join(to);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, to).unwrap();
    }
    std::fs::write(survey.join("README.txt"), "survey of 2024-2025\n").unwrap();
    let out = dir.path().join("out");
    // Without --recursive: nothing at the top, and the error says how to go deeper.
    let stderr = predict_err(&survey, &out, &[]);
    assert!(stderr.contains("add --recursive"), "{stderr}");
    assert!(!out.exists());

    let stderr = predict_ok(&survey, &out, &["--recursive"]);
    assert!(stderr.contains("done: 2 file(s)"), "{stderr}");
    let mut written: Vec<String> = walk(&out);
    written.sort();
    assert_eq!(written, ["2024/north/a.laz", "2025/b.laz"], "{stderr}");
    // Each output is its own input's prediction: what a run on that file alone writes.
    for (input, rel) in [(tile(), "2024/north/a.laz"), (other, "2025/b.laz")] {
        let alone = dir.path().join("alone.laz");
        predict_ok(&input, &alone, &["--force"]);
        assert_eq!(
            std::fs::read(out.join(rel)).unwrap(),
            std::fs::read(&alone).unwrap(),
            "{rel}"
        );
    }
    // eval and info follow the tree with --recursive: files paired by their path.
    let run = randla(&[
        os("eval"),
        out.as_os_str(),
        survey.as_os_str(),
        os("--recursive"),
        os("--json"),
    ]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(!stderr.contains("README"), "{stderr}");
    let report: Value = serde_json::from_slice(&run.stdout).unwrap();
    let support: u64 = report["per_class"]
        .as_object()
        .unwrap()
        .values()
        .map(|c| c["support"].as_u64().unwrap())
        .sum();
    let points = |p: &Path| info(p)["points"].as_u64().unwrap();
    assert_eq!(
        support,
        points(&survey.join("2024/north/a.laz")) + points(&survey.join("2025/b.laz"))
    );
    let run = randla(&[os("info"), survey.as_os_str(), os("-r"), os("--json")]);
    let files: Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(files.as_array().unwrap().len(), 2);

    // An output folder inside the survey is not read back as input on the next run.
    let inside = survey.join("pred");
    predict_ok(&survey, &inside, &["-r"]);
    let stderr = predict_ok(&survey, &inside, &["-r", "--force"]);
    assert!(stderr.contains("done: 2 file(s)"), "{stderr}");
    assert!(!inside.join("pred").exists());
}

/// The files below `root`, as paths relative to it with `/` separators.
fn walk(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                let rel = p.strip_prefix(root).unwrap();
                let parts: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                out.push(parts.join("/"));
            }
        }
    }
    out
}

/// A COPC tile (as IGN distributes LiDAR HD) comes back a COPC file whose index points at its
/// own chunks, with or without probabilities; eval reads it as any LAZ.
#[test]
fn a_copc_tile_comes_back_a_valid_copc_file() {
    let input = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/copc/tile_77060_627760.copc.laz");
    let dir = tempfile::tempdir().unwrap();
    for extra in [&[][..], &["--probabilities"]] {
        let out = dir.path().join(format!("out{}", extra.len()));
        predict_ok(&input, &out, extra);
        let written = out.join("tile_77060_627760.copc.laz");
        let run = randla(&[os("info"), written.as_os_str()]);
        let text = String::from_utf8_lossy(&run.stdout);
        assert!(run.status.success());
        assert!(
            text.contains("copc        5 octree nodes, each at its LAZ chunk"),
            "{extra:?}: {text}"
        );
        let report = eval(&written, &input);
        assert!(report["oa"].as_f64().unwrap() > 0.85, "{report}");
    }
}

/// A tile with no points (a valid LAZ a tiling or a filter left behind) in a folder of tiles:
/// `predict` copies it through unchanged and the run succeeds, `eval` scores the folder's other
/// pairs, `info` lists it with 0 points, `render` draws the others. Alone, written to another
/// format, it is refused by name; a file of 0 bytes is not taken for one.
#[test]
fn an_empty_tile_in_a_folder_comes_back_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let empty = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/empty.laz");
    let tiles = dir.path().join("tiles");
    std::fs::create_dir(&tiles).unwrap();
    std::fs::copy(tile(), tiles.join("a.laz")).unwrap();
    std::fs::copy(&empty, tiles.join("b.laz")).unwrap();
    let out = dir.path().join("out");

    let stderr = predict_ok(&tiles, &out, &[]);
    assert!(
        stderr.contains("b.laz: no points, copied unchanged"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(out.join("b.laz")).unwrap(),
        std::fs::read(&empty).unwrap()
    );
    assert_eq!(info(&out.join("a.laz"))["points"], 59_606);

    let scores = eval(&out, &tiles);
    assert!(scores["oa"].as_f64().unwrap() > 0.85, "{scores}");
    let listed = info(&out);
    let points: Vec<&Value> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|f| &f["points"])
        .collect();
    assert_eq!(points, [59_606, 0]);
    let png = dir.path().join("out.png");
    let run = randla(&[os("render"), out.as_os_str(), os("-o"), png.as_os_str()]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );

    let las = dir.path().join("b.las");
    let stderr = predict_err(&empty, &las, &[]);
    assert!(
        stderr.contains("empty.laz: no points to classify") && stderr.contains("b.las"),
        "{stderr}"
    );
    assert!(!las.exists());

    // A file of 0 bytes is broken (a failed download), not empty: it fails, nothing is written.
    let zero = dir.path().join("zero.laz");
    std::fs::write(&zero, b"").unwrap();
    let out = dir.path().join("zero_out.laz");
    let stderr = predict_err(&zero, &out, &[]);
    assert!(
        stderr.contains("zero.laz") && stderr.contains("0 bytes"),
        "{stderr}"
    );
    assert!(!out.exists());
    // `info` says so too, rather than listing it with 0 points.
    let stderr = randla_err(&[os("info"), zero.as_os_str()]);
    assert!(
        stderr.contains("zero.laz") && stderr.contains("0 bytes"),
        "{stderr}"
    );
}
