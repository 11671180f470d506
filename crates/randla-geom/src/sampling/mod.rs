//! Point subsampling.
//!
//! - [`grid`]: voxel-grid subsampling (barycentre, mean features, majority label) with the
//!   back-projection index from every original point to its representative.
//!
//! - [`stratified`]: a shuffled crop reordered so that every prefix is spread evenly over space.
//!
//! RandLA-Net's own "random sampling" inside the network is the prefix of a shuffled crop; it
//! is built by [`crate::neighborhood::Pyramid`].

pub mod grid;
pub mod stratified;

pub use grid::{GridSubsampled, grid_subsample};
pub use stratified::{stratified_order, stratified_order_with_curve};

/// The point a crop is recentred on before the network sees it: its bounding-box centre in x
/// and y, its lowest z. Training and prediction must agree on it (the shipped model learnt its
/// coordinates this way), so both take it from here.
pub fn crop_centre(points: impl Iterator<Item = [f32; 3]>) -> [f32; 3] {
    let (lo, hi) = crate::knn::bounds_of(points);
    [(lo[0] + hi[0]) / 2.0, (lo[1] + hi[1]) / 2.0, lo[2]]
}
