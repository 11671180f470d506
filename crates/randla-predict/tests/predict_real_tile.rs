//! Prediction on a real IGN tile with a random-weight model: every point gets a class and a code
//! of the model, in one pass or in voting crops under a small budget; clouds that do not fit the
//! model are refused with the attribute named.

use randla_geom::MemoryBudget;
use randla_model::RandLaNetConfig;
use randla_model::StateDict;
use randla_model::model_dir::{ClassSpec, InputSpec, ModelDir, PredictSpec};
use randla_predict::{PredictOptions, Predictor};

fn tile() -> randla_io::PointCloud {
    randla_io::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../data/ign-lidar-hd/test_data_77060_627760_LA93_IGN69.laz"
    ))
    .unwrap()
}

fn model() -> ModelDir {
    let cfg = RandLaNetConfig {
        in_channels: 6,
        num_classes: 4,
        grid_size: 0.4,
        num_layers: 3,
        dim_output: vec![16, 32, 64],
        sub_sampling_ratio: vec![4, 4, 4],
        ..Default::default()
    };
    let input = InputSpec {
        features: vec![
            "intensity".into(),
            "return_number".into(),
            "number_of_returns".into(),
        ],
        scale: vec![65535.0, 5.0, 5.0],
    };
    let classes = ClassSpec {
        names: vec![
            "ground".into(),
            "vegetation".into(),
            "building".into(),
            "other".into(),
        ],
        codes: vec![vec![2], vec![3, 4, 5], vec![6], vec![1, 64]],
    };
    ModelDir::new(
        cfg.clone(),
        StateDict::random(&cfg, 5),
        Some(input),
        Some(classes),
    )
    .unwrap()
}

#[test]
fn whole_cloud_in_one_pass_and_in_voting_tiles() {
    let cloud = tile();
    let p = Predictor::new(&model()).unwrap();
    let one = p
        .predict(
            &cloud,
            "tile",
            &PredictOptions {
                probabilities: true,
                budget: MemoryBudget::bytes(4 << 30),
                ..Default::default()
            },
            &|_, _| {},
        )
        .unwrap();
    assert_eq!(one.stats.passes, 1);
    assert_eq!(one.class.len(), cloud.len());
    assert!(one.stats.subsampled < cloud.len() && one.stats.subsampled > 1000);
    assert!(one.codes.iter().all(|c| [2, 3, 6, 1].contains(c)));
    let probs = one.probabilities.as_ref().unwrap();
    for (i, row) in probs.chunks(4).enumerate().step_by(997) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-4);
        assert_eq!(one.confidence[i], row[one.class[i] as usize]);
    }
    // Points of one voxel share their prediction (projection by voxel).
    let crops = p
        .predict(
            &cloud,
            "tile",
            &PredictOptions {
                tile_points: Some(3000),
                ..Default::default()
            },
            &|_, _| {},
        )
        .unwrap();
    assert!(crops.stats.passes > 1, "{:?}", crops.stats);
    assert_eq!(crops.class.len(), cloud.len());
    assert!(crops.probabilities.is_none());
    // Deterministic.
    let again = p
        .predict(
            &cloud,
            "tile",
            &PredictOptions {
                tile_points: Some(3000),
                ..Default::default()
            },
            &|_, _| {},
        )
        .unwrap();
    assert_eq!(again.class, crops.class);
}

#[test]
fn clouds_that_do_not_fit_are_refused() {
    let mut cloud = tile();
    cloud.features.retain(|f| f.name != "return_number");
    let p = Predictor::new(&model()).unwrap();
    let e = p
        .predict(&cloud, "my.laz", &PredictOptions::default(), &|_, _| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("my.laz") && e.contains("return_number"), "{e}");
    let e = p
        .predict(
            &randla_io::PointCloud::default(),
            "empty.laz",
            &PredictOptions::default(),
            &|_, _| {},
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("empty.laz"), "{e}");
    let e = p
        .predict(
            &tile(),
            "t",
            &PredictOptions {
                budget: MemoryBudget::bytes(1000),
                ..Default::default()
            },
            &|_, _| {},
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("memory budget"), "{e}");
    // A model that needs features but does not say which.
    let mut m = model();
    m.input = None;
    assert!(
        Predictor::new(&m)
            .unwrap_err()
            .to_string()
            .contains("[input]")
    );
}

#[test]
fn votes_average_the_probabilities_of_several_samplings() {
    let cloud = tile();
    let p = Predictor::new(&model()).unwrap();
    let opts = |votes, seed| PredictOptions {
        probabilities: true,
        votes,
        seed,
        ..Default::default()
    };
    let one = p.predict(&cloud, "tile", &opts(1, 0), &|_, _| {}).unwrap();
    let second = p
        .predict(&cloud, "tile", &opts(1, 1 << 32), &|_, _| {})
        .unwrap();
    let two = p.predict(&cloud, "tile", &opts(2, 0), &|_, _| {}).unwrap();
    assert_eq!(two.stats.passes, 2);
    let (a, b, m) = (
        one.probabilities.unwrap(),
        second.probabilities.unwrap(),
        two.probabilities.unwrap(),
    );
    // The second vote is the one-pass run with the next seed: the mean of the two.
    for i in (0..m.len()).step_by(101) {
        assert!(
            (m[i] - (a[i] + b[i]) / 2.0).abs() < 1e-6,
            "at {i}: {} vs {} and {}",
            m[i],
            a[i],
            b[i]
        );
    }
    assert_ne!(a, b, "two samplings should differ");
}

/// A vote prepared while the one before runs the network (when both fit the memory budget)
/// classifies exactly as votes run one after the other.
#[test]
fn votes_prepared_during_the_previous_vote_equal_votes_one_after_the_other() {
    let cloud = tile();
    let p = Predictor::new(&model()).unwrap();
    let run = |bytes: u64| {
        let opts = PredictOptions {
            probabilities: true,
            votes: 3,
            budget: MemoryBudget { bytes },
            ..Default::default()
        };
        p.predict(&cloud, "tile", &opts, &|_, _| {}).unwrap()
    };
    let pipelined = run(u64::MAX);
    let m = pipelined.stats.subsampled;
    // Room for one pass over the whole tile, not for two.
    let sequential = run(p.pass_bytes(m) as u64 * 21 / 20);
    assert_eq!(pipelined.stats.passes, 3, "{:?}", pipelined.stats);
    assert_eq!(pipelined.stats.pipelined_votes, 2, "{:?}", pipelined.stats);
    assert_eq!(sequential.stats.passes, 3, "{:?}", sequential.stats);
    assert_eq!(
        sequential.stats.pipelined_votes, 0,
        "{:?}",
        sequential.stats
    );
    assert!(pipelined.class == sequential.class);
    assert!(pipelined.probabilities == sequential.probabilities);
}

#[test]
fn the_two_halves_equal_the_whole_prediction() {
    // `subsample` (borrowing) or `subsample_owned` (freeing the cloud's columns), then
    // `predict_subsampled`: the same classes and probabilities as `predict`.
    let cloud = tile();
    let p = Predictor::new(&model()).unwrap();
    let opts = PredictOptions {
        probabilities: true,
        ..Default::default()
    };
    let whole = p.predict(&cloud, "tile", &opts, &|_, _| {}).unwrap();
    let borrowed = p.subsample(&cloud, "tile").unwrap();
    assert_eq!(borrowed.points(), cloud.len());
    let a = p.predict_subsampled(borrowed, &opts, &|_, _| {}).unwrap();
    let owned = p.subsample_owned(cloud, "tile").unwrap();
    let b = p.predict_subsampled(owned, &opts, &|_, _| {}).unwrap();
    for half in [&a, &b] {
        assert_eq!(half.class, whole.class);
        assert_eq!(half.codes, whole.codes);
        assert_eq!(half.probabilities, whole.probabilities);
        assert_eq!(half.stats.subsampled, whole.stats.subsampled);
    }
}

/// A model's `config.toml` may set its tile margin (`[predict] margin_radii`, in radii of the
/// coarsest neighbourhoods; one radius without it): the tiles are the same, their margins scale
/// with it, and the setting survives a save and a load. Values that make no margin are refused.
#[test]
fn a_model_sets_its_tile_margin() {
    let cloud = tile();
    let plain = model();
    let mut half = model();
    half.predict = Some(PredictSpec {
        margin_radii: Some(0.5),
    });
    let (p1, p2) = (
        Predictor::new(&plain).unwrap(),
        Predictor::new(&half).unwrap(),
    );
    assert_eq!((p1.margin_radii(), p2.margin_radii()), (1.0, 0.5));
    let opts = PredictOptions {
        tile_points: Some(6_000),
        ..Default::default()
    };
    let (a, b) = (
        p1.predict(&cloud, "tile", &opts, &|_, _| {}).unwrap(),
        p2.predict(&cloud, "tile", &opts, &|_, _| {}).unwrap(),
    );
    assert!(a.stats.passes > 1, "{:?}", a.stats);
    assert_eq!(a.stats.passes, b.stats.passes);
    assert!(
        (b.stats.margin_m - 0.5 * a.stats.margin_m).abs() < 1e-4 * a.stats.margin_m,
        "{} vs {}",
        b.stats.margin_m,
        a.stats.margin_m
    );
    assert!(b.stats.crop_points < a.stats.crop_points);

    let dir = tempfile::tempdir().unwrap();
    half.save(dir.path(), false).unwrap();
    let text = std::fs::read_to_string(dir.path().join("config.toml")).unwrap();
    assert!(
        text.contains("[predict]") && text.contains("margin_radii = 0.5"),
        "{text}"
    );
    assert_eq!(ModelDir::load(dir.path()).unwrap().predict, half.predict);

    let weights = std::fs::read(dir.path().join("weights.safetensors")).unwrap();
    let with = |line: &str| {
        let t = text.replace("margin_radii = 0.5", line);
        ModelDir::from_parts(dir.path(), &t, &weights)
            .unwrap_err()
            .to_string()
    };
    let e = with("margin_radii = -1.0");
    assert!(
        e.contains("predict.margin_radii") && e.contains("-1"),
        "{e}"
    );
    let e = with("margin_radii = nan");
    assert!(
        e.contains("predict.margin_radii") && e.contains("NaN"),
        "{e}"
    );
    let e = with("margin = 0.5");
    assert!(e.contains("margin"), "{e}");
}
