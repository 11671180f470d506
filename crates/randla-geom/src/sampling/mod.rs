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
pub use stratified::stratified_order;
