//! Fuzz the SemanticKITTI scan and label decoders and the learning_map yaml parser.
#![no_main]

use libfuzzer_sys::fuzz_target;
use randla_io::formats::kitti;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let p = Path::new("fuzz.bin");
    let map = std::str::from_utf8(data).ok().and_then(|t| kitti::LearningMap::from_yaml(t, p).ok());
    let half = data.len() / 2;
    if let Ok(c) = kitti::read_kitti_scan_bytes(&data[..half], p) {
        let _ = kitti::read_kitti_label_bytes(&data[half..], p, c.len(), map.as_ref());
    }
});
