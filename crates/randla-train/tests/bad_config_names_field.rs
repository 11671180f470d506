//! A bad training configuration gives an error naming the field.

use std::path::Path;

use randla_train::TrainConfig;

mod common;

fn err_of(text: &str) -> String {
    TrainConfig::from_toml_str(text, Path::new("bad.toml"))
        .unwrap_err()
        .to_string()
}

#[test]
fn each_bad_field_is_named() {
    let good = common::tiny_config_text(1, 1, false);
    assert!(TrainConfig::from_toml_str(&good, Path::new("good.toml")).is_ok());
    let cases: [(&str, &str, &str); 8] = [
        ("grid_size = 0.3", "grid_size = -1.0", "data.grid_size"),
        ("batch_size = 2", "batch_size = 0", "train.batch_size"),
        ("scale = [1000.0, 5.0]", "scale = [1000.0]", "input.scale"),
        (
            "codes = [[2], [3, 4, 5], [6]]",
            "codes = [[2], [3, 4, 5]]",
            "classes.codes",
        ),
        (
            "codes = [[2], [3, 4, 5], [6]]",
            "codes = [[2], [3, 4, 2], [6]]",
            "classes.codes[1]",
        ),
        (
            "sub_sampling_ratio = [4, 2]",
            "sub_sampling_ratio = [4]",
            "model.sub_sampling_ratio",
        ),
        ("lr_decay = 0.95", "lr_decay = 1.5", "train.lr_decay"),
        (
            "learning_rate = 0.01",
            "learning_rat = 0.01",
            "learning_rat",
        ),
    ];
    for (from, to, field) in cases {
        assert!(good.contains(from), "{from}");
        let e = err_of(&good.replace(from, to));
        assert!(
            e.contains(field),
            "error for {to:?} does not name {field}: {e}"
        );
        assert!(e.contains("bad.toml"), "{e}");
    }
    // Gradient checkpointing is burn's: refused with the fused engine, accepted with burn.
    let ck = good.replace(
        "batch_size = 2",
        "batch_size = 2\ngradient_checkpointing = true",
    );
    let e = err_of(&ck);
    assert!(
        e.contains("train.gradient_checkpointing") && e.contains("burn"),
        "{e}"
    );
    let burn = ck.replace("batch_size = 2", "batch_size = 2\nengine = \"burn\"");
    assert!(TrainConfig::from_toml_str(&burn, Path::new("ok.toml")).is_ok());
    let e = err_of(&good.replace("batch_size = 2", "batch_size = 2\nengine = \"gpu\""));
    assert!(e.contains("engine") && e.contains("gpu"), "{e}");
    let e = err_of(&good.replace("layout = \"las\"", "layout = \"lidar\""));
    assert!(e.contains("layout") && e.contains("lidar"), "{e}");
}

#[test]
fn missing_data_entries_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::tiny_setup(dir.path(), 1, 1, false);
    let mut c = TrainConfig::load(&cfg).unwrap();
    c.data.train = vec!["nothing_*.ply".into()];
    let e = randla_train::dataset::resolve(
        &c.data.train,
        &c.data_root(),
        c.data.layout,
        "data.train",
        &c.source,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("data.train") && e.contains("nothing_*.ply"),
        "{e}"
    );
    c.data.train = vec!["missing.laz".into()];
    let e = randla_train::dataset::resolve(
        &c.data.train,
        &c.data_root(),
        c.data.layout,
        "data.train",
        &c.source,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("does not exist"), "{e}");
}

/// The generic layout answers to the names a user with plain files may try; an unknown one is
/// refused naming the field's choices.
#[test]
fn the_generic_layout_takes_its_other_names() {
    let good = common::tiny_config_text(1, 1, false);
    let with = |layout: &str| {
        let text = if good.contains("layout = ") {
            good.replace("layout = \"las\"", &format!("layout = \"{layout}\""))
        } else {
            good.replace("[data]", &format!("[data]\nlayout = \"{layout}\""))
        };
        TrainConfig::from_toml_str(&text, Path::new("t.toml"))
    };
    for name in ["las", "files", "ply", "xyz"] {
        let c = with(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(c.data.layout, randla_train::Layout::Las, "{name}");
    }
    let e = with("pcd").unwrap_err().to_string();
    assert!(
        e.contains("t.toml") && e.contains("pcd") && e.contains("toronto3d"),
        "{e}"
    );
}
