//! Fuzz the LAS/LAZ reader: header, VLRs, point decoding and LAZ decompression.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::Cursor;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok(mut r) = randla_io::LasReader::from_reader(Cursor::new(data.to_vec()), Path::new("fuzz.laz")) {
        let _ = r.header().attributes();
        while let Ok(Some(_)) = r.read_chunk(4096) {}
    }
});
