//! Fuzz the XYZ/CSV reader; the first byte picks a column spec.
#![no_main]

use libfuzzer_sys::fuzz_target;
use randla_io::XyzOptions;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let opts = match pick % 3 {
        0 => XyzOptions::default(),
        1 => XyzOptions::with_spec("x,y,z,_,intensity,label"),
        _ => XyzOptions { columns: None, delimiter: Some(';') },
    };
    let _ = randla_io::formats::xyz::read_xyz_from(rest, Path::new("fuzz.xyz"), &opts);
});
