//! The network's input: features plus the per-layer index pyramid, for a batch of crops, in
//! Open3D-ML's layout (`features [B, N, C]`, `coords.i [B, N_i, 3]`, `neighbor_indices.i
//! [B, N_i, K]`, `sub_idx.i [B, N_{i+1}, K]`, `interp_idx.i [B, N_i, 1]`).

use std::path::Path;

use randla_geom::Pyramid;

use crate::config::RandLaNetConfig;
use crate::error::{Error, Result};

/// A batch of crops ready for the network. Indices are local to each crop.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Crops in the batch, B.
    pub batch_size: usize,
    /// Input channels per point, C (xyz first).
    pub channels: usize,
    /// Neighbours per point, K.
    pub k: usize,
    /// `N_0 … N_L`: points per crop at every level.
    pub sizes: Vec<usize>,
    /// `[B, N_0, C]` input features.
    pub features: Vec<f32>,
    /// Per layer `l`: `[B, N_l, 3]` coordinates.
    pub coords: Vec<Vec<f32>>,
    /// Per layer `l`: `[B, N_l, K]` neighbour indices into level `l`.
    pub neighbors: Vec<Vec<u32>>,
    /// Per layer `l`: `[B, N_{l+1}, K]` pooling indices into level `l`.
    pub sub_idx: Vec<Vec<u32>>,
    /// Per layer `l`: `[B, N_l]` nearest level-`l + 1` point of every level-`l` point.
    pub interp_idx: Vec<Vec<u32>>,
}

impl Batch {
    /// Number of layers, L.
    pub fn num_layers(&self) -> usize {
        self.neighbors.len()
    }

    /// Points per crop, N_0.
    pub fn num_points(&self) -> usize {
        self.sizes[0]
    }

    /// Assembles a batch from crops: each crop's `[N, C]` features and its pyramid (all crops
    /// must have the same size, channels and pyramid shape).
    pub fn from_crops(crops: &[(&[f32], &Pyramid)], channels: usize) -> Result<Self> {
        let (_, first) = crops
            .first()
            .ok_or_else(|| Error::batch("features", "a batch needs at least one crop"))?;
        let sizes = first.level_sizes().to_vec();
        let layers = first.num_layers();
        let k = first.k();
        let mut b = Batch {
            batch_size: crops.len(),
            channels,
            k,
            sizes: sizes.clone(),
            features: Vec::with_capacity(crops.len() * sizes[0] * channels),
            coords: vec![Vec::new(); layers],
            neighbors: vec![Vec::new(); layers],
            sub_idx: vec![Vec::new(); layers],
            interp_idx: vec![Vec::new(); layers],
        };
        for (i, (feat, p)) in crops.iter().enumerate() {
            if p.level_sizes() != sizes.as_slice() || p.k() != k {
                return Err(Error::batch(
                    "neighbor_indices",
                    format!(
                        "crop {i} has level sizes {:?} and k {}, crop 0 has {sizes:?} and k {k}",
                        p.level_sizes(),
                        p.k()
                    ),
                ));
            }
            if feat.len() != sizes[0] * channels {
                return Err(Error::batch(
                    "features",
                    format!(
                        "crop {i} has {} values, expected {} points × {channels} channels",
                        feat.len(),
                        sizes[0]
                    ),
                ));
            }
            b.features.extend_from_slice(feat);
            for l in 0..layers {
                b.coords[l].extend(p.coords(l).iter().flatten());
                b.neighbors[l].extend_from_slice(p.neighbors(l));
                b.sub_idx[l].extend_from_slice(p.sub_idx(l));
                b.interp_idx[l].extend_from_slice(p.interp_idx(l));
            }
        }
        Ok(b)
    }

    /// Checks every tensor's shape and index range, and the batch against `config`.
    pub fn validate(&self, config: &RandLaNetConfig) -> Result<()> {
        let (b, k) = (self.batch_size, self.k);
        let layers = config.num_layers;
        if self.channels != config.in_channels {
            return Err(Error::batch(
                "features",
                format!(
                    "{} channels per point, the model takes in_channels = {}",
                    self.channels, config.in_channels
                ),
            ));
        }
        if k != config.num_neighbors {
            return Err(Error::batch(
                "neighbor_indices.0",
                format!(
                    "K = {k}, the model has num_neighbors = {}",
                    config.num_neighbors
                ),
            ));
        }
        if self.num_layers() != layers || self.sizes.len() != layers + 1 {
            return Err(Error::batch(
                format!("neighbor_indices.{}", self.num_layers().min(layers)),
                format!(
                    "the batch has {} layers, the model has num_layers = {layers}",
                    self.num_layers()
                ),
            ));
        }
        if b == 0 || self.sizes[0] == 0 {
            return Err(Error::batch("features", "the batch holds no point"));
        }
        let want = |name: String, len: usize, expected: usize| {
            if len == expected {
                Ok(())
            } else {
                Err(Error::batch(
                    name,
                    format!("{len} values, expected {expected}"),
                ))
            }
        };
        want(
            "features".into(),
            self.features.len(),
            b * self.sizes[0] * self.channels,
        )?;
        if let Some(i) = self.features.iter().position(|v| !v.is_finite()) {
            return Err(Error::batch(
                "features",
                format!("non-finite value {} at flat index {i}", self.features[i]),
            ));
        }
        let in_range = |name: String, idx: &[u32], bound: usize| match idx
            .iter()
            .position(|&i| i as usize >= bound)
        {
            Some(p) => Err(Error::batch(
                name,
                format!(
                    "index {} at flat position {p} is out of range for {bound} points",
                    idx[p]
                ),
            )),
            None => Ok(()),
        };
        for l in 0..layers {
            let (n, next) = (self.sizes[l], self.sizes[l + 1]);
            if next == 0 || next > n {
                return Err(Error::batch(
                    format!("sub_idx.{l}"),
                    format!("level {} has {next} points for {n} at level {l}", l + 1),
                ));
            }
            want(format!("coords.{l}"), self.coords[l].len(), b * n * 3)?;
            want(
                format!("neighbor_indices.{l}"),
                self.neighbors[l].len(),
                b * n * k,
            )?;
            want(format!("sub_idx.{l}"), self.sub_idx[l].len(), b * next * k)?;
            want(format!("interp_idx.{l}"), self.interp_idx[l].len(), b * n)?;
            in_range(format!("neighbor_indices.{l}"), &self.neighbors[l], n)?;
            in_range(format!("sub_idx.{l}"), &self.sub_idx[l], n)?;
            in_range(format!("interp_idx.{l}"), &self.interp_idx[l], next)?;
            if let Some(i) = self.coords[l].iter().position(|v| !v.is_finite()) {
                return Err(Error::batch(
                    format!("coords.{l}"),
                    format!("non-finite value {} at flat index {i}", self.coords[l][i]),
                ));
            }
        }
        Ok(())
    }

    /// Reads an Open3D-ML-style batch from safetensors (`features`, and per layer `coords.i`,
    /// `neighbor_indices.i`, `sub_idx.i`, `interp_idx.i`; index tensors int64 or int32).
    pub fn load_safetensors(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| Error::Checkpoint {
            path: path.into(),
            message: e.to_string(),
        })?;
        let get = |name: &str| {
            st.tensor(name)
                .map_err(|_| Error::batch(name, format!("absent from {}", path.display())))
        };
        let f = get("features")?;
        let &[b, n0, c] = f.shape() else {
            return Err(Error::batch(
                "features",
                format!("shape {:?}, expected [B, N, C]", f.shape()),
            ));
        };
        let features = crate::tensor_to_f32(&f).map_err(|m| Error::batch("features", m))?;
        let mut layers = 0;
        while st.tensor(&format!("neighbor_indices.{layers}")).is_ok() {
            layers += 1;
        }
        if layers == 0 {
            return Err(Error::batch(
                "neighbor_indices.0",
                format!("absent from {}", path.display()),
            ));
        }
        let mut batch = Batch {
            batch_size: b,
            channels: c,
            k: 0,
            sizes: vec![n0],
            features,
            coords: Vec::new(),
            neighbors: Vec::new(),
            sub_idx: Vec::new(),
            interp_idx: Vec::new(),
        };
        for l in 0..layers {
            let nb = get(&format!("neighbor_indices.{l}"))?;
            let sub = get(&format!("sub_idx.{l}"))?;
            let (&[_, n, k], &[_, next, _]) = (nb.shape(), sub.shape()) else {
                return Err(Error::batch(
                    format!("neighbor_indices.{l}"),
                    "expected 3-d index tensors [B, N, K]",
                ));
            };
            if l == 0 {
                batch.k = k;
            }
            if n != batch.sizes[l] {
                return Err(Error::batch(
                    format!("neighbor_indices.{l}"),
                    format!("{n} rows, level {l} has {} points", batch.sizes[l]),
                ));
            }
            batch.sizes.push(next);
            batch.coords.push(
                crate::tensor_to_f32(&get(&format!("coords.{l}"))?)
                    .map_err(|m| Error::batch(format!("coords.{l}"), m))?,
            );
            batch.neighbors.push(
                crate::tensor_to_u32(&nb)
                    .map_err(|m| Error::batch(format!("neighbor_indices.{l}"), m))?,
            );
            batch.sub_idx.push(
                crate::tensor_to_u32(&sub).map_err(|m| Error::batch(format!("sub_idx.{l}"), m))?,
            );
            let up = get(&format!("interp_idx.{l}"))?;
            batch.interp_idx.push(
                crate::tensor_to_u32(&up)
                    .map_err(|m| Error::batch(format!("interp_idx.{l}"), m))?,
            );
        }
        Ok(batch)
    }

    /// Writes the batch in the same layout (indices as int64, like Open3D-ML), atomically.
    pub fn save_safetensors(&self, path: impl AsRef<Path>) -> Result<()> {
        let (b, k) = (self.batch_size, self.k);
        let mut tensors: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
        let f32b = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let i64b = |v: &[u32]| {
            v.iter()
                .flat_map(|&x| (x as i64).to_le_bytes())
                .collect::<Vec<u8>>()
        };
        use safetensors::Dtype::{F32, I64};
        tensors.push((
            "features".into(),
            F32,
            vec![b, self.sizes[0], self.channels],
            f32b(&self.features),
        ));
        for l in 0..self.num_layers() {
            let (n, next) = (self.sizes[l], self.sizes[l + 1]);
            tensors.push((
                format!("coords.{l}"),
                F32,
                vec![b, n, 3],
                f32b(&self.coords[l]),
            ));
            tensors.push((
                format!("neighbor_indices.{l}"),
                I64,
                vec![b, n, k],
                i64b(&self.neighbors[l]),
            ));
            tensors.push((
                format!("sub_idx.{l}"),
                I64,
                vec![b, next, k],
                i64b(&self.sub_idx[l]),
            ));
            tensors.push((
                format!("interp_idx.{l}"),
                I64,
                vec![b, n, 1],
                i64b(&self.interp_idx[l]),
            ));
        }
        crate::save_tensors(path.as_ref(), &tensors)
    }
}
