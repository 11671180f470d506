//! Training readiness: backward through the whole network gives finite gradients for every
//! parameter, batch norms update their running averages with PyTorch momentum, dropout is
//! active only in training, and evaluation snapshots match the plain-device network.

mod common;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Gradients;
use burn::tensor::{Device, Tensor};
use randla_burn::{BatchTensors, RandLaNet};
use randla_model::StateDict;

struct GradCheck<'a> {
    grads: &'a Gradients,
    seen: usize,
    values: usize,
    missing: Vec<String>,
    path: Vec<String>,
}

impl ModuleVisitor for GradCheck<'_> {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let name = self.path.join(".");
        if !param.val().is_require_grad() {
            // Running statistics are module state, not parameters.
            assert!(
                name.contains("running_") || name.contains("num_batches"),
                "{name} does not require a gradient"
            );
            return;
        }
        self.seen += 1;
        self.values += param.val().shape().num_elements();
        match param.val().grad(self.grads) {
            None => self.missing.push(format!("{name}: no gradient")),
            Some(g) => {
                let v = common::values(g);
                if v.iter().any(|x| !x.is_finite()) {
                    self.missing.push(format!("{name}: non-finite gradient"));
                } else if v.iter().all(|&x| x == 0.0) {
                    self.missing.push(format!("{name}: all-zero gradient"));
                }
            }
        }
    }
}

fn setup(device: &Device) -> (randla_model::RandLaNetConfig, RandLaNet, BatchTensors) {
    let cfg = common::small_config(6, &[8, 16], 4, 3);
    let sd = StateDict::random(&cfg, 7);
    let net = RandLaNet::from_state_dict(&cfg, &sd, device).unwrap();
    let batch = common::random_batch(&cfg, 2, 128, 8);
    let input = BatchTensors::from_batch(&batch, &cfg, device).unwrap();
    (cfg, net, input)
}

fn check_backward(device: Device) {
    let (cfg, net, input) = setup(&device);
    assert!(net.is_training());
    let logits = net.forward(&input).unwrap(); // [B, N, classes]
    // A loss that reaches every logit with a different weight.
    let w = Tensor::<3>::random(logits.dims(), burn::tensor::Distribution::Default, &device);
    let loss = (logits * w).sum();
    let grads = loss.backward();
    let mut check = GradCheck {
        grads: &grads,
        seen: 0,
        values: 0,
        missing: Vec::new(),
        path: Vec::new(),
    };
    net.visit(&mut check);
    assert!(check.seen > 50, "visited {} parameters", check.seen);
    assert_eq!(check.values, cfg.num_trainable_parameters());
    assert!(check.missing.is_empty(), "{:#?}", check.missing);
}

#[test]
fn backward_gives_finite_gradients_for_every_parameter() {
    check_backward(Device::flex().autodiff());
}

#[test]
fn backward_under_gradient_checkpointing() {
    check_backward(Device::flex().autodiff().gradient_checkpointing());
}

#[test]
fn train_and_eval_modes() {
    let device = Device::flex().autodiff();
    let (cfg, net, input) = setup(&device);
    let before = net.to_state_dict().unwrap();

    // Training: dropout makes two forwards differ; running averages move by momentum 0.01.
    let a = common::values(net.forward(&input).unwrap());
    let b = common::values(net.forward(&input).unwrap());
    assert!(
        common::max_diff(&a, &b).0 > 0.0,
        "dropout inactive in training"
    );
    let after = net.to_state_dict().unwrap();
    let n = after.get("bn0.num_batches_tracked").unwrap().data[0];
    assert_eq!(n, 2.0);
    let rm0 = &before
        .get("encoder.0.mlp1.batch_norm.running_mean")
        .unwrap()
        .data;
    let rm2 = &after
        .get("encoder.0.mlp1.batch_norm.running_mean")
        .unwrap()
        .data;
    assert!(rm0.iter().zip(rm2).any(|(x, y)| x != y));
    // After two updates from mean 0: 0.99·(0.01·m1) + 0.01·m2, so |running| ≤ 0.02·max|batch mean|.
    let rv = &after
        .get("encoder.0.mlp1.batch_norm.running_var")
        .unwrap()
        .data;
    assert!(rv.iter().all(|v| (*v - 1.0).abs() < 0.05), "{rv:?}");

    // Evaluation snapshot: deterministic and equal to the same weights on a plain device.
    let eval = net.valid();
    assert!(!eval.is_training());
    let plain = RandLaNet::from_state_dict(&cfg, &after, &Device::flex()).unwrap();
    let plain_input = BatchTensors::from_batch(
        &common::random_batch(&cfg, 2, 128, 8),
        &cfg,
        &Device::flex(),
    )
    .unwrap();
    let e1 = common::values(eval.forward(&plain_input).unwrap());
    let e2 = common::values(plain.forward(&plain_input).unwrap());
    let (d, m) = common::max_diff(&e1, &e2);
    assert!(
        d <= 1e-6 * m,
        "eval snapshot differs from the reloaded network: {d}"
    );

    // set_training(false) on the autodiff device: eval behaviour, statistics untouched.
    let frozen = net.set_training(false);
    assert!(!frozen.is_training());
    let f = common::values(frozen.forward(&input).unwrap());
    let (d, _) = common::max_diff(&f, &e2);
    assert!(d <= 1e-6 * m, "set_training(false) differs: {d}");
    assert_eq!(
        frozen
            .to_state_dict()
            .unwrap()
            .get("bn0.num_batches_tracked")
            .unwrap()
            .data[0],
        2.0
    );
}
