//! Fuzz the PLY reader (ascii and binary).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let _ = randla_io::formats::ply::read_ply_bytes(data, Path::new("fuzz.ply"), &Default::default());
});
