//! Points whose codes belong to no class are left out of the loss, and the run says how many:
//! the tiny scene's buildings (code 6) with a configuration that has no building class.

use randla_train::{Event, IGNORED, TrainConfig, TrainOptions, train, trainer};

mod common;

#[test]
fn points_of_no_class_are_counted_when_training_starts() {
    let dir = tempfile::tempdir().unwrap();
    let cfg_path = common::tiny_setup(dir.path(), 1, 1, false);
    let text = std::fs::read_to_string(&cfg_path)
        .unwrap()
        .replace(
            r#"names = ["ground", "vegetation", "building"]"#,
            r#"names = ["ground", "vegetation"]"#,
        )
        .replace("codes = [[2], [3, 4, 5], [6]]", "codes = [[2], [3, 4, 5]]");
    std::fs::write(&cfg_path, text).unwrap();
    let config = TrainConfig::load(&cfg_path).unwrap();
    let cache = dir.path().join("cache");
    let clouds = trainer::prepare_train(&config, &cache, &mut |_| {}).unwrap();
    let (all, of_no_class) = clouds.iter().fold((0u64, 0u64), |(a, i), c| {
        let ignored = c.labels.iter().filter(|&&l| l == IGNORED).count() as u64;
        (a + c.labels.len() as u64, i + ignored)
    });
    assert!(of_no_class > 0);
    let mut seen = None;
    train(
        &config,
        &dir.path().join("run"),
        &TrainOptions {
            cache_dir: Some(cache),
            ..Default::default()
        },
        &mut |e| {
            if let Event::Ready {
                class_counts,
                ignored,
                ..
            } = e
            {
                seen = Some((class_counts.iter().sum::<u64>(), *ignored));
            }
        },
    )
    .unwrap();
    assert_eq!(seen, Some((all - of_no_class, of_no_class)));
}
