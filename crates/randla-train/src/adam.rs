//! Adam (PyTorch semantics: bias-corrected moments, ε added to √v̂) over the trainable
//! parameters of a burn module, with its state keyed by parameter path so that it can be saved
//! and restored across processes (burn's own optimiser keys its state by parameter ids, which a
//! network rebuilt from a checkpoint does not keep).

use std::collections::BTreeMap;

use randla_burn::burn::module::{Module, ModuleMapper, Param};
use randla_burn::burn::tensor::{Gradients, Tensor, TensorData};

use crate::error::{Error, Result};

/// Adam's state: step count and per-parameter first and second moments.
#[derive(Debug, Clone, PartialEq)]
pub struct Adam {
    /// β₁.
    pub beta1: f64,
    /// β₂.
    pub beta2: f64,
    /// ε.
    pub epsilon: f64,
    /// Steps taken.
    pub t: u64,
    /// First moments by parameter path.
    pub m: BTreeMap<String, Vec<f32>>,
    /// Second moments by parameter path.
    pub v: BTreeMap<String, Vec<f32>>,
}

impl Default for Adam {
    fn default() -> Self {
        Adam {
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            t: 0,
            m: BTreeMap::new(),
            v: BTreeMap::new(),
        }
    }
}

struct Mapper<'a> {
    adam: &'a mut Adam,
    grads: &'a Gradients,
    lr: f64,
    path: Vec<String>,
    error: Option<String>,
    updated: usize,
}

impl ModuleMapper for Mapper<'_> {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, tensor, mapper) = param.consume();
        if !tensor.is_require_grad() || self.error.is_some() {
            return Param::from_mapped_value(id, tensor, mapper);
        }
        let path = self.path.join(".");
        let Some(grad) = tensor.grad(self.grads) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let (g, w) = match (
            grad.try_into_vec_as::<f32>(),
            tensor.clone().try_into_vec_as::<f32>(),
        ) {
            (Ok(g), Ok(w)) => (g, w),
            _ => {
                self.error = Some(format!("{path}: cannot read the parameter or its gradient"));
                return Param::from_mapped_value(id, tensor, mapper);
            }
        };
        let mut out = w;
        if let Err(e) = self.adam.update(&path, &mut out, &g, self.lr) {
            self.error = Some(e.to_string());
            return Param::from_mapped_value(id, tensor, mapper);
        }
        let shape = tensor.shape();
        let device = tensor.device();
        let strategy = tensor.gradient_checkpointing_strategy();
        let mut t = Tensor::<D>::from_data(TensorData::new(out, shape), &device);
        if let Some(s) = strategy {
            t = t.with_gradient_checkpointing_strategy(s);
        }
        self.updated += 1;
        Param::from_mapped_value(id, t.require_grad(), mapper)
    }
}

impl Adam {
    /// One step: every trainable parameter of `module` moves by its gradient in `grads`.
    pub fn step<M: Module>(&mut self, module: M, grads: &Gradients, lr: f64) -> Result<M> {
        self.begin_step();
        let mut mapper = Mapper {
            adam: self,
            grads,
            lr,
            path: Vec::new(),
            error: None,
            updated: 0,
        };
        let module = module.map(&mut mapper);
        if let Some(e) = mapper.error {
            return Err(Error::Training(e));
        }
        if mapper.updated == 0 {
            return Err(Error::Training("no parameter had a gradient".into()));
        }
        Ok(module)
    }
}

impl Adam {
    /// Starts a step: every [`Adam::update`] until the next call belongs to it.
    pub fn begin_step(&mut self) {
        self.t += 1;
    }

    /// Moves the tensor `name` (values `w`) by its gradient `g` with learning rate `lr`, in the
    /// step begun last; its moments are created at zero on first use.
    pub fn update(&mut self, name: &str, w: &mut [f32], g: &[f32], lr: f64) -> Result<()> {
        let n = w.len();
        let m = self
            .m
            .entry(name.to_string())
            .or_insert_with(|| vec![0.0; n]);
        let v = self
            .v
            .entry(name.to_string())
            .or_insert_with(|| vec![0.0; n]);
        if m.len() != n || v.len() != n || g.len() != n {
            return Err(Error::Training(format!(
                "{name}: Adam's state has {} values and the gradient {}, the tensor {n}",
                m.len(),
                g.len()
            )));
        }
        let (b1, b2) = (self.beta1 as f32, self.beta2 as f32);
        let t = self.t as i32;
        let c1 = 1.0 - self.beta1.powi(t);
        let c2 = 1.0 - self.beta2.powi(t);
        let step = (lr / c1) as f32;
        let c2s = c2.sqrt() as f32;
        let eps = self.epsilon as f32;
        for i in 0..n {
            m[i] = b1 * m[i] + (1.0 - b1) * g[i];
            v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
            w[i] -= step * m[i] / (v[i].sqrt() / c2s + eps);
        }
        Ok(())
    }
}

/// Replaces every trainable parameter by its gradient (zeros where it has none).
struct ToGradients<'a>(&'a Gradients);

impl ModuleMapper for ToGradients<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, tensor, mapper) = param.consume();
        let shape = tensor.shape();
        let g = tensor
            .grad(self.0)
            .and_then(|g| g.try_into_vec_as::<f32>().ok())
            .unwrap_or_else(|| vec![0.0; shape.num_elements()]);
        let t = Tensor::<D>::from_data(TensorData::new(g, shape), &tensor.device());
        Param::from_mapped_value(id, t, mapper)
    }
}

/// The gradients of a backward pass under Open3D-ML's parameter names (the network's weights
/// replaced by their gradients; running statistics are the network's own).
pub fn named_gradients(
    net: randla_burn::RandLaNet,
    grads: &Gradients,
) -> Result<randla_model::StateDict> {
    net.map(&mut ToGradients(grads))
        .to_state_dict()
        .map_err(|e| Error::Training(format!("gradients: {e}")))
}
