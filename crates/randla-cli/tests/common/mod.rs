//! Helpers shared by the CLI's integration tests: the shipped sample tile and running the binary.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::{Command, Output};

/// The shipped sample tile 77060_627760: 59,606 points,
/// 1:3195 2:21975 3:1811 4:2184 5:12582 6:17859 (data/ign-lidar-hd/README.md).
pub fn tile() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../data/ign-lidar-hd/test_data_77060_627760_LA93_IGN69.laz")
}

/// Runs the `randla` binary built for these tests with `args`.
pub fn randla(args: &[&OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_randla"))
        .args(args)
        .output()
        .unwrap()
}

/// Runs the `randla` binary with `args`, which must fail; its stderr.
#[allow(dead_code)] // not every test file uses it
pub fn randla_err(args: &[&OsStr]) -> String {
    let run = randla(args);
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    assert!(!run.status.success(), "{:?} succeeded: {stderr}", args);
    stderr
}

/// A command-line argument from a string.
pub fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}
