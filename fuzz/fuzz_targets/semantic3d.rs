//! Fuzz the Semantic3D point and label parsers and the S3DIS object parser.
#![no_main]

use libfuzzer_sys::fuzz_target;
use randla_io::formats::{s3dis, semantic3d};
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let p = Path::new("fuzz.txt");
    let _ = semantic3d::read_semantic3d_points(data, p);
    let _ = semantic3d::read_labels(data, p);
    let mut cloud = randla_io::PointCloud::default();
    let mut rgb: [Vec<f32>; 3] = Default::default();
    let mut labels = Vec::new();
    let _ = s3dis::read_object(data, p, 1, &mut cloud, &mut rgb, &mut labels);
});
