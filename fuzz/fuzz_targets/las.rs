//! Fuzz the LAS/LAZ reader: header, VLRs, chunk table, point decoding and LAZ decompression.
//!
//! Panics raised inside the `laz` crate on corrupt data are caught by `randla-io` (they become
//! `Error::Laz`), so the panic hook lets those unwind instead of aborting; any other panic
//! still aborts and is reported as a crash.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::Cursor;
use std::path::Path;

fuzz_target!(
    init: {
        std::panic::set_hook(Box::new(|info| {
            let in_laz = info.location().is_some_and(|l| l.file().contains("/laz-"));
            if !in_laz {
                eprintln!("{info}");
                std::process::abort();
            }
        }));
    },
    |data: &[u8]| {
        if let Ok(mut r) = randla_io::LasReader::from_reader(Cursor::new(data.to_vec()), Path::new("fuzz.laz")) {
            let _ = r.header().attributes();
            while let Ok(Some(_)) = r.read_chunk(4096) {}
        }
    }
);
