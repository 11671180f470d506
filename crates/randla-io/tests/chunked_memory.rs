//! Chunked reading keeps memory O(chunk): with the counting allocator installed (this test
//! binary only), reading a PLY (binary and ascii) and an XYZ file of 400,000 points in chunks
//! of 10,000 keeps the heap peak far below the file size, while the whole-file read needs at
//! least the cloud itself.
//!
//! One test function on purpose: the allocator counts every thread of the binary.

use std::path::Path;

use randla_io::{
    PlyEncoding, PlyWriteOptions, PointCloud, ReadOptions, open_chunks, read_with, write_ply,
};
use randla_memory::{CountingAllocator, heap_bytes, reset_heap_peak};

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator::SYSTEM;

const POINTS: usize = 400_000;
const CHUNK: usize = 10_000;

/// Heap peak above the starting live bytes while `f` runs.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let base = heap_bytes();
    reset_heap_peak();
    let out = f();
    (out, reset_heap_peak().saturating_sub(base))
}

/// Reads `path` in chunks; returns the number of points.
fn read_chunked(path: &Path) -> usize {
    open_chunks(path, CHUNK, &ReadOptions::default())
        .unwrap()
        .map(|c| {
            let c = c.unwrap();
            assert!(c.len() <= CHUNK);
            c.len()
        })
        .sum()
}

#[test]
fn chunked_reads_keep_the_heap_peak_far_below_the_file_size() {
    assert!(randla_memory::counting_installed());
    let d = tempfile::tempdir().unwrap();
    let pts: Vec<[f64; 3]> = (0..POINTS)
        .map(|i| {
            let f = i as f64;
            [
                770_000.0 + f * 1e-3,
                6_277_000.0 + (f * 0.37) % 500.0,
                100.0 + (f * 0.01) % 30.0,
            ]
        })
        .collect();
    let mut c = PointCloud::from_f64(&pts);
    drop(pts);
    for name in ["intensity", "red", "green"] {
        c.set_feature(name, (0..POINTS).map(|i| (i % 1000) as f32).collect());
    }
    c.labels = Some((0..POINTS).map(|i| (i % 7) as u32).collect());
    let bin = d.path().join("big.ply");
    write_ply(&bin, &c, &PlyWriteOptions::default()).unwrap();
    let asc = d.path().join("big_ascii.ply");
    let ascii = PlyWriteOptions {
        encoding: PlyEncoding::Ascii,
        ..Default::default()
    };
    write_ply(&asc, &c, &ascii).unwrap();
    let xyz = d.path().join("big.xyz");
    let mut text = String::from("x y z intensity label\n");
    for i in 0..POINTS {
        let p = c.point_f64(i);
        text += &format!("{} {} {} {} {}\n", p[0], p[1], p[2], i % 1000, i % 7);
    }
    std::fs::write(&xyz, text).unwrap();
    let cloud_bytes = (POINTS * (12 + 3 * 4 + 4)) as u64;
    drop(c);

    for path in [&bin, &asc, &xyz] {
        let size = std::fs::metadata(path).unwrap().len();
        let (n, chunked) = peak_of(|| read_chunked(path));
        assert_eq!(n, POINTS);
        let (whole, whole_peak) = peak_of(|| read_with(path, &ReadOptions::default()).unwrap());
        assert_eq!(whole.len(), POINTS);
        drop(whole);
        eprintln!(
            "{}: {size} bytes, heap peak chunked {chunked} B, whole {whole_peak} B",
            path.display()
        );
        // A chunk of 10,000 points is 280 kB here, plus the 1 MiB read buffer.
        assert!(
            chunked < 4 << 20,
            "{}: chunked peak {chunked} B",
            path.display()
        );
        assert!(
            chunked < size / 8,
            "{}: chunked {chunked} B vs file {size} B",
            path.display()
        );
        assert!(
            whole_peak >= cloud_bytes,
            "{}: whole {whole_peak} B",
            path.display()
        );
    }
}
