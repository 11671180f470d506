//! `randla bench predict`, the like-for-like timing against Open3D-ML's `run_inference`: its
//! JSON report has the agreed keys, covers every point, and its predictions are the ones
//! `randla predict` writes with the same options (same class counts), round after round.

use std::path::Path;
use std::process::Output;

use serde_json::Value;

mod common;
use common::{os, randla, tile};

fn json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn classes_of(path: &Path) -> Value {
    json(&randla(&[os("info"), path.as_os_str(), os("--json")]))["classes"].clone()
}

#[test]
fn bench_predict_times_the_predictions_predict_writes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pred.laz");
    let tile = tile();
    for votes in ["1", "2"] {
        let report = json(&randla(&[
            os("bench"),
            os("predict"),
            tile.as_os_str(),
            os("--votes"),
            os(votes),
            os("--repeat"),
            os("2"),
            os("--json"),
        ]));
        assert_eq!(report["files"], 1);
        assert_eq!(report["points"], 59606);
        assert_eq!(report["votes"], votes.parse::<u64>().unwrap());
        let per_file = report["per_file_s"].as_array().unwrap();
        assert_eq!(per_file.len(), 1);
        assert_eq!(report["rounds_s"].as_array().unwrap().len(), 2);
        let s = report["inference_s"].as_f64().unwrap();
        assert!(s > 0.0 && per_file[0].as_f64() == Some(s), "{report}");
        assert!(report["median_s"].as_f64().unwrap() > 0.0);
        assert!(report["peak_rss_mb"].as_f64().unwrap() > 0.0);
        let counted: u64 = report["classes"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        assert_eq!(counted, 59606);

        let run = randla(&[
            os("predict"),
            tile.as_os_str(),
            os("-o"),
            out.as_os_str(),
            os("--votes"),
            os(votes),
            os("--force"),
        ]);
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        assert_eq!(report["classes"], classes_of(&out), "{votes} vote(s)");
    }
}

#[test]
fn bench_predict_refuses_bad_options() {
    let tile = tile();
    for (flag, value) in [("--votes", "0"), ("--repeat", "0"), ("--threads", "0")] {
        let out = randla(&[
            os("bench"),
            os("predict"),
            tile.as_os_str(),
            os(flag),
            os(value),
        ]);
        assert!(!out.status.success(), "{flag} {value} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(flag), "{flag}: {err}");
    }
    let missing = tile.with_file_name("no_such_tile.laz");
    let out = randla(&[os("bench"), os("predict"), missing.as_os_str()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no_such_tile.laz"));
}
