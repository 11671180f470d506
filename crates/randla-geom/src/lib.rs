//! # randla-geom: the geometry core of randla
//!
//! Everything RandLA-Net needs outside the network, with no deep-learning dependency:
//! - [`knn`]: exact k-nearest-neighbour search ([`knn::KdTree`], and a brute-force oracle);
//! - [`sampling`]: voxel-grid subsampling with back-projection indices, and random decimation;
//! - [`neighborhood`]: the per-layer index pyramid RandLA-Net consumes (`neighbors`, `sub_idx`,
//!   `interp_idx`, exactly as the reference `tf_map` builds them), and [`KnnCache`], which builds
//!   a cloud's search structure once, answers subset queries, and keeps built pyramids under a
//!   memory budget with LRU eviction;
//! - [`budget`]: the memory budget shared by every chunked computation.
//!
//! Coordinates are `f32`, relative to a local origin chosen by the caller (real LiDAR
//! coordinates are ~1e6 m and would lose centimetres in `f32`).
//!
//! ```
//! use randla_geom::neighborhood::{Pyramid, PyramidConfig};
//! let pts: Vec<[f32; 3]> = (0..256).map(|i| [(i % 16) as f32, (i / 16) as f32, 0.0]).collect();
//! let pyramid = Pyramid::build(&pts, &PyramidConfig { k: 8, ratios: vec![4, 4] }).unwrap();
//! assert_eq!(pyramid.level_sizes(), &[256, 64, 16]);
//! assert_eq!(pyramid.neighbors(0).len(), 256 * 8);
//! ```

pub mod budget;
pub mod error;
pub mod hint;
pub mod knn;
pub mod neighborhood;
pub mod sampling;

pub use budget::MemoryBudget;
pub use error::{Error, Result};
pub use knn::{KdTree, Neighbours};
pub use neighborhood::{KnnCache, Pyramid, PyramidConfig};
