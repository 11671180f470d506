//! A model that reads coordinates only (an imported Open3D-ML SemanticKITTI checkpoint has
//! `in_channels = 3`) must classify from the cloud's real geometry: its predictions equal those of
//! the same network given one attribute more with all-zero weights on it.

use randla_model::StateDict;
use randla_model::model_dir::{InputSpec, ModelDir};
use randla_model::weights::Param;
use randla_predict::{PredictOptions, Predictor};

#[test]
fn a_coordinates_only_model_predicts_like_one_whose_attribute_weights_are_zero() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let shipped = ModelDir::load(format!("{root}/models/default")).unwrap();
    let cloud = randla_io::read(format!(
        "{root}/data/ign-lidar-hd/test_data_77060_627760_LA93_IGN69.laz"
    ))
    .unwrap();

    // One attribute more, with random weights except zeros on it in the first layer.
    let mut with_cfg = shipped.config.clone();
    with_cfg.in_channels = 4;
    let mut with_w = StateDict::random(&with_cfg, 3);
    let fc0 = with_w.get("fc0.weight").unwrap().clone();
    let f = fc0.shape[0];
    let mut zeroed = fc0.data.clone();
    let mut xyz = Vec::with_capacity(f * 3);
    for o in 0..f {
        zeroed[o * 4 + 3] = 0.0;
        xyz.extend_from_slice(&fc0.data[o * 4..o * 4 + 3]);
    }
    with_w.insert("fc0.weight", Param::new(vec![f, 4], zeroed));
    let mut xyz_w = with_w.clone();
    xyz_w.insert("fc0.weight", Param::new(vec![f, 3], xyz));
    let mut xyz_cfg = shipped.config.clone();
    xyz_cfg.in_channels = 3;

    let intensity = InputSpec {
        features: vec!["intensity".into()],
        scale: vec![1000.0],
    };
    let with = ModelDir::new(with_cfg, with_w, Some(intensity), shipped.classes.clone()).unwrap();
    let xyz_only = ModelDir::new(
        xyz_cfg,
        xyz_w,
        Some(InputSpec::xyz_only()),
        shipped.classes.clone(),
    )
    .unwrap();
    let none = &|_: usize, _: usize| {};
    let opts = PredictOptions::default();
    let a = Predictor::new(&with)
        .unwrap()
        .predict(&cloud, "tile", &opts, none)
        .unwrap();
    let b = Predictor::new(&xyz_only)
        .unwrap()
        .predict(&cloud, "tile", &opts, none)
        .unwrap();

    let mut seen = [false; 4];
    a.class.iter().for_each(|&c| seen[c as usize] = true);
    assert!(
        seen.iter().filter(|&&s| s).count() >= 2,
        "the random network should not give one class to every point"
    );
    assert_eq!(a.class.len(), b.class.len());
    let same = a.class.iter().zip(&b.class).filter(|(x, y)| x == y).count();
    assert!(
        same as f64 >= 0.999 * a.class.len() as f64,
        "{same} of {} points agree",
        a.class.len()
    );
    let worst = a
        .confidence
        .iter()
        .zip(&b.confidence)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(worst < 1e-4, "confidence differs by {worst}");
}
