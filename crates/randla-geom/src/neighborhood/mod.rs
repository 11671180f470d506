//! RandLA-Net's neighbourhoods: the per-layer index pyramid and the cache that holds them.

mod cache;
mod pyramid;

pub use cache::{CacheStats, KnnCache, PyramidKey};
pub use pyramid::{Pyramid, PyramidConfig};
