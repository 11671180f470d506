//! Batches and weights that do not fit the configuration give errors naming the tensor.

mod common;

use burn::tensor::Device;
use randla_burn::{BatchTensors, RandLaNet};
use randla_model::{Param, StateDict};

#[test]
fn mismatched_batches_are_refused_by_name() {
    let device = Device::flex();
    let cfg = common::small_config(6, &[8, 16], 4, 3);
    let good = common::random_batch(&cfg, 1, 128, 5);
    assert!(BatchTensors::from_batch(&good, &cfg, &device).is_ok());

    let err = |b: &randla_model::Batch| {
        BatchTensors::from_batch(b, &cfg, &device)
            .unwrap_err()
            .to_string()
    };

    let mut b = good.clone();
    b.neighbors[1][7] = 10_000;
    let e = err(&b);
    assert!(
        e.contains("neighbor_indices.1") && e.contains("out of range"),
        "{e}"
    );

    let mut b = good.clone();
    b.sub_idx[0][3] = 128;
    assert!(err(&b).contains("sub_idx.0"), "{}", err(&b));

    let mut b = good.clone();
    b.interp_idx[1].pop();
    assert!(err(&b).contains("interp_idx.1"), "{}", err(&b));

    let mut b = good.clone();
    b.features[5] = f32::NAN;
    assert!(err(&b).contains("features"), "{}", err(&b));

    // Wrong channel count, K and depth for this configuration.
    let other = common::small_config(6, &[8, 16], 3, 3);
    let b = common::random_batch(&other, 1, 128, 5);
    let e = err(&b);
    assert!(
        e.contains("features") && e.contains("in_channels = 4"),
        "{e}"
    );
    let other = common::small_config(5, &[8, 16], 4, 3);
    let e = err(&common::random_batch(&other, 1, 128, 5));
    assert!(
        e.contains("neighbor_indices.0") && e.contains("num_neighbors = 6"),
        "{e}"
    );
    let other = common::small_config(6, &[8, 16, 32], 4, 3);
    let e = err(&common::random_batch(&other, 1, 128, 5));
    assert!(e.contains("layers"), "{e}");

    // A batch built for another network is refused by forward.
    let net = RandLaNet::new(&other, 3, &device).unwrap();
    let input = BatchTensors::from_batch(&good, &cfg, &device).unwrap();
    let e = net.forward(&input).unwrap_err().to_string();
    assert!(
        e.contains("neighbor_indices") && e.contains("num_layers = 3"),
        "{e}"
    );
}

#[test]
fn bad_state_dicts_are_refused_by_name() {
    let device = Device::flex();
    let cfg = common::small_config(6, &[8, 16], 4, 3);
    let sd = StateDict::random(&cfg, 1);
    assert!(RandLaNet::from_state_dict(&cfg, &sd, &device).is_ok());

    let mut missing = sd.clone();
    missing.remove("encoder.1.pool2.score_fn.0.weight");
    let e = RandLaNet::from_state_dict(&cfg, &missing, &device)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("missing parameter encoder.1.pool2.score_fn.0.weight"),
        "{e}"
    );

    let mut extra = sd.clone();
    extra.insert(
        "encoder.0.lse3.mlp.conv.weight",
        Param::new(vec![4, 10, 1, 1], vec![0.0; 40]),
    );
    let e = RandLaNet::from_state_dict(&cfg, &extra, &device)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("unexpected parameter encoder.0.lse3.mlp.conv.weight"),
        "{e}"
    );

    let mut shaped = sd.clone();
    shaped.insert(
        "decoder.0.conv.weight",
        Param::new(vec![16, 48, 1, 1], vec![0.0; 16 * 48]),
    );
    let e = RandLaNet::from_state_dict(&cfg, &shaped, &device)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("decoder.0.conv.weight has shape [16, 48, 1, 1]"),
        "{e}"
    );

    let mut bn = sd.clone();
    bn.insert(
        "fc1.0.batch_norm.running_var",
        Param::new(vec![63], vec![1.0; 63]),
    );
    let e = RandLaNet::from_state_dict(&cfg, &bn, &device)
        .unwrap_err()
        .to_string();
    assert!(e.contains("fc1.0.batch_norm.running_var"), "{e}");

    // A missing batch counter is tolerated, as PyTorch tolerates it.
    let mut no_count = sd.clone();
    no_count.remove("bn0.num_batches_tracked");
    assert!(RandLaNet::from_state_dict(&cfg, &no_count, &device).is_ok());
}
