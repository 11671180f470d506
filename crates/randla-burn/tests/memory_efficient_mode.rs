//! The memory-efficient mode (chunked local feature aggregation) equals the standard mode.

mod common;

use burn::tensor::Device;
use randla_burn::{BatchTensors, Error, ForwardOptions, RandLaNet};
use randla_geom::MemoryBudget;
use randla_model::StateDict;

#[test]
fn chunked_equals_standard_on_random_configs() {
    let device = Device::flex();
    let cases = [
        // (k, dims, in_channels, classes, batch, points)
        (8, vec![8, 16], 3, 4, 2, 256),
        (5, vec![16, 32, 64], 6, 5, 1, 320),
    ];
    for (seed, (k, dims, c, classes, b, n)) in cases.into_iter().enumerate() {
        let cfg = common::small_config(k, &dims, c, classes);
        let sd = StateDict::random(&cfg, seed as u64);
        let net = RandLaNet::from_state_dict(&cfg, &sd, &device).unwrap();
        let batch = common::random_batch(&cfg, b, n, 10 + seed as u64);
        let input = BatchTensors::from_batch(&batch, &cfg, &device).unwrap();
        let standard = common::values(
            net.forward_with(&input, &ForwardOptions::standard())
                .unwrap(),
        );
        for opts in [
            ForwardOptions::chunked(1),
            ForwardOptions::chunked(37),
            ForwardOptions::memory_efficient(MemoryBudget::bytes(64 << 10)),
            ForwardOptions::memory_efficient(MemoryBudget::bytes(1 << 30)),
        ] {
            let chunked = common::values(net.forward_with(&input, &opts).unwrap());
            let (d, m) = common::max_diff(&chunked, &standard);
            assert!(
                d <= 1e-5 * m,
                "case {seed}, {opts:?}: max |Δ| {d} for max |ref| {m}"
            );
        }
        // The mode switch on the network itself.
        let mut net = net;
        net.enable_memory_efficient_mode();
        let again = common::values(net.forward(&input).unwrap());
        let (d, m) = common::max_diff(&again, &standard);
        assert!(d <= 1e-5 * m);
    }
}

#[test]
fn chunk_size_follows_the_budget() {
    let device = Device::flex();
    let cfg = common::small_config(8, &[8, 16], 3, 4);
    let net = RandLaNet::new(&cfg, 4, &device).unwrap();
    let batch = common::random_batch(&cfg, 2, 256, 3);
    let input = BatchTensors::from_batch(&batch, &cfg, &device).unwrap();
    let per_row = |o: usize| 2 * randla_burn::blocks::dilated_residual::lfa_bytes_per_row(8, o);
    let budget = MemoryBudget::bytes(40 * per_row(8) as u64);
    let plan = net
        .chunk_plan(&input, &ForwardOptions::memory_efficient(budget))
        .unwrap();
    assert_eq!(plan[0], Some(40));
    assert_eq!(plan[1], Some(40 * per_row(8) / per_row(16)));
    // A huge budget: one chunk per level, capped at the level's size.
    let plan = net
        .chunk_plan(
            &input,
            &ForwardOptions::memory_efficient(MemoryBudget::bytes(1 << 40)),
        )
        .unwrap();
    assert_eq!(plan, vec![Some(256), Some(64)]);
    assert_eq!(
        net.chunk_plan(&input, &ForwardOptions::standard()).unwrap(),
        vec![None, None]
    );
    let e = net
        .chunk_plan(&input, &ForwardOptions::chunked(0))
        .unwrap_err();
    assert!(e.to_string().contains("chunk_points"), "{e}");
}

#[test]
fn memory_efficient_training_is_refused() {
    let device = Device::flex().autodiff();
    let cfg = common::small_config(4, &[8], 3, 2);
    let net = RandLaNet::new(&cfg, 2, &device).unwrap();
    let batch = common::random_batch(&cfg, 1, 64, 1);
    let input = BatchTensors::from_batch(&batch, &cfg, &device).unwrap();
    match net.forward_with(&input, &ForwardOptions::chunked(16)) {
        Err(Error::Option { option, .. }) => assert_eq!(option, "memory_efficient"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    // The evaluation snapshot accepts it.
    let eval = net.set_training(false);
    assert!(
        eval.forward_with(&input, &ForwardOptions::chunked(16))
            .is_ok()
    );
}
