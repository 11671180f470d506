//! `randla bench train-step` on a small crop of the shipped tiles: the JSON keys other tools rely
//! on, finite times and losses, the checkpointed mode equal to the standard one, the fused mode's
//! gradients checked against burn's, training that lowers the loss, and the errors bad input must
//! give.

use std::process::{Command, Output};

use serde_json::Value;

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_randla"))
        .args(["bench", "train-step"])
        .args(args)
        .output()
        .unwrap()
}

/// The losses a mode printed on stderr (`1x4096 standard: losses [2.1432, 1.6012]`).
fn losses(stderr: &str, mode: &str) -> Vec<f64> {
    let line = stderr
        .lines()
        .find(|l| l.contains(&format!(" {mode}: losses [")))
        .unwrap_or_else(|| panic!("no losses for {mode} in {stderr}"));
    let list = line.split_once('[').unwrap().1.trim_end_matches(']');
    list.split(',').map(|x| x.trim().parse().unwrap()).collect()
}

#[test]
fn train_step_json_has_the_agreed_keys_and_modes_agree() {
    let out = bench(&[
        "--sizes",
        "1x4096",
        "--repeat",
        "1",
        "--threads",
        "2",
        "--json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 3, "{rows:?}");
    for (row, mode) in rows.iter().zip(["standard", "checkpointed", "fused"]) {
        let mut keys: Vec<&str> = row
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "batch",
                "max_abs_diff",
                "median_s",
                "mode",
                "peak_heap_bytes",
                "peak_rss_bytes",
                "points"
            ]
        );
        assert_eq!(row["batch"], 1);
        assert_eq!(row["points"], 4096);
        assert_eq!(row["mode"], mode);
        let s = row["median_s"].as_f64().unwrap();
        assert!(s.is_finite() && s > 0.0, "{row}");
        assert!(row["peak_heap_bytes"].as_u64().unwrap() > 1 << 20, "{row}");
        assert!(
            row["peak_rss_bytes"].as_u64().is_some_and(|b| b > 1 << 20),
            "{row}"
        );
    }
    assert!(rows[0]["max_abs_diff"].is_null());
    // Same weights, same dropout masks, the same arithmetic recomputed: the same step.
    let d = rows[1]["max_abs_diff"].as_f64().unwrap();
    assert!(
        d.is_finite() && d <= 1e-5,
        "checkpointed differs from standard by {d}"
    );

    // Fused: loss and every gradient of a step (dropout off) against burn's autodiff; the bench
    // itself fails beyond 1e-3 of the largest gradient.
    let d = rows[2]["max_abs_diff"].as_f64().unwrap();
    assert!(d.is_finite() && d <= 1e-3, "fused differs from burn by {d}");
    let f = losses(&stderr, "fused");
    assert_eq!(f.len(), 2, "{f:?}");
    assert!((1.0..4.0).contains(&f[0]) && f[1] < f[0], "{f:?}");

    let (a, b) = (losses(&stderr, "standard"), losses(&stderr, "checkpointed"));
    assert_eq!(a.len(), 2, "warm-up + 1 timed step: {a:?}");
    assert!(a.iter().all(|l| l.is_finite() && *l > 0.0), "{a:?}");
    assert_eq!(a, b);
    // Seven classes, random weights: about ln 7 at first, lower after one Adam step on the crop.
    assert!((1.0..4.0).contains(&a[0]) && a[1] < a[0], "{a:?}");
}

#[test]
fn train_step_bad_input_is_refused_clearly() {
    let out = bench(&["--sizes", "0x10", "--json"]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("\"0x10\"") && err.contains("at least 1"),
        "{err}"
    );

    let out = bench(&["--sizes", "1x4096", "--repeat", "0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--repeat must be at least 1"));

    let out = bench(&["--modes", "gpu"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("gpu") && err.contains("fused") && err.contains("checkpointed"),
        "{err}"
    );
}

#[test]
fn train_step_over_the_memory_budget_is_reported_not_run() {
    let out = bench(&["--sizes", "1x45056", "--memory-budget", "512MiB", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 3, "{rows:?}");
    for row in rows {
        assert_eq!(row["points"], 45056);
        for key in [
            "median_s",
            "peak_heap_bytes",
            "peak_rss_bytes",
            "max_abs_diff",
        ] {
            assert!(row[key].is_null(), "{key} in {row}");
        }
    }
    assert!(
        stderr.contains("over the memory budget") && !stderr.contains("losses"),
        "{stderr}"
    );
}
