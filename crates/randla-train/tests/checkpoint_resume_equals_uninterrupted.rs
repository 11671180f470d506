//! A run stopped after an epoch and resumed ends with exactly the weights of an uninterrupted
//! run; the run folder holds the metrics log, both checkpoints and a loadable model directory.

use randla_model::StateDict;
use randla_model::model_dir::ModelDir;
use randla_train::{Checkpoint, TrainConfig, TrainOptions, train};

mod common;

fn same(a: &StateDict, b: &StateDict) {
    assert_eq!(a.len(), b.len());
    for (n, p) in a.iter() {
        let q = b.get(n).unwrap();
        assert_eq!(p.shape, q.shape, "{n}");
        assert!(
            p.data
                .iter()
                .zip(&q.data)
                .all(|(x, y)| x.to_bits() == y.to_bits()),
            "{n} differs"
        );
    }
}

#[test]
fn resume_after_a_stop_equals_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let cfg_path = common::tiny_setup(dir.path(), 2, 2, true);
    let config = TrainConfig::load(&cfg_path).unwrap();
    let cache = Some(dir.path().join("cache"));

    let a_dir = dir.path().join("run_a");
    let a = train(
        &config,
        &a_dir,
        &TrainOptions {
            cache_dir: cache.clone(),
            ..Default::default()
        },
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(a.epochs, 2);
    assert_eq!(a.global_step, 4);
    assert!(a.best.is_some() && a.last_val.is_some());

    let b_dir = dir.path().join("run_b");
    let stopped = train(
        &config,
        &b_dir,
        &TrainOptions {
            stop_after_epochs: Some(1),
            cache_dir: cache.clone(),
            ..Default::default()
        },
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(stopped.epochs, 1);
    // Without --resume an existing run is refused.
    let e = train(
        &config,
        &b_dir,
        &TrainOptions {
            cache_dir: cache.clone(),
            ..Default::default()
        },
        &mut |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("--resume"), "{e}");
    let mut resumed_at = None;
    let b = train(
        &config,
        &b_dir,
        &TrainOptions {
            resume: true,
            cache_dir: cache.clone(),
            ..Default::default()
        },
        &mut |e| {
            if let randla_train::Event::Resumed { epoch, .. } = e {
                resumed_at = Some(*epoch);
            }
        },
    )
    .unwrap();
    assert_eq!(resumed_at, Some(1));
    assert_eq!(b.global_step, 4);
    same(&a.weights, &b.weights);
    let (ca, cb) = (
        Checkpoint::load(&a_dir.join("checkpoints/last.safetensors")).unwrap(),
        Checkpoint::load(&b_dir.join("checkpoints/last.safetensors")).unwrap(),
    );
    assert_eq!(ca.adam, cb.adam);
    assert_eq!(ca.possibility, cb.possibility);
    assert_eq!(ca.state.lr, cb.state.lr);

    // The run folder: metrics log with step and epoch lines, a model directory with [input] and [classes].
    let log = std::fs::read_to_string(a_dir.join("metrics.jsonl")).unwrap();
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("\"kind\":\"step\""))
            .count(),
        4
    );
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("\"kind\":\"epoch\""))
            .count(),
        2
    );
    assert!(log.contains("\"miou\""));
    let m = ModelDir::load(a_dir.join("model")).unwrap();
    assert_eq!(
        m.classes.unwrap().names,
        ["ground", "vegetation", "building"]
    );
    assert_eq!(m.input.unwrap().features, ["intensity", "return_number"]);

    // A changed configuration does not resume silently.
    let mut other = config.clone();
    other.train.learning_rate = 0.02;
    let e = train(
        &other,
        &b_dir,
        &TrainOptions {
            resume: true,
            cache_dir: cache,
            ..Default::default()
        },
        &mut |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("another configuration"), "{e}");
}
