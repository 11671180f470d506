//! Random-mutation robustness in the normal test suite (the cargo-fuzz targets in `fuzz/` go
//! further): thousands of corrupted variants of valid files must give `Ok` or `Err`, never a
//! panic, a hang or a giant allocation.

mod common;

use std::io::Cursor;
use std::path::Path;

use randla_io::formats::{kitti, ply, semantic3d, xyz};
use randla_io::{LasReader, PlyOptions, XyzOptions};

/// xorshift64*: a tiny deterministic generator, enough to pick bytes to corrupt.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Flips, overwrites, truncates or duplicates bytes of `seed`.
fn mutate(rng: &mut Rng, seed: &[u8], hot: usize) -> Vec<u8> {
    let mut b = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        // Half of the edits land in the first `hot` bytes (headers), the rest anywhere.
        let limit = if rng.below(2) == 0 {
            hot.min(b.len())
        } else {
            b.len()
        };
        if limit == 0 {
            break;
        }
        let at = rng.below(limit);
        match rng.below(6) {
            0 => b[at] ^= 1 << rng.below(8),
            1 => b[at] = rng.next() as u8,
            2 => b[at] = [0x00, 0xFF, 0x7F, 0x80][rng.below(4)],
            3 => b.truncate(at),
            4 => {
                let v = (rng.next() as u32).to_le_bytes();
                for (k, x) in v.iter().enumerate() {
                    if at + k < b.len() {
                        b[at + k] = *x;
                    }
                }
            }
            _ => {
                let end = (at + rng.below(32)).min(b.len());
                let piece = b[at..end].to_vec();
                b.splice(at..at, piece);
            }
        }
    }
    b
}

fn read_las_bytes(bytes: Vec<u8>) {
    if let Ok(mut r) = LasReader::from_reader(Cursor::new(bytes), Path::new("m.laz")) {
        let _ = r.header().attributes();
        while let Ok(Some(_)) = r.read_chunk(256) {}
    }
}

#[test]
fn mutated_las_and_laz() {
    let d = tempfile::tempdir().unwrap();
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for (name, minor, format) in [
        ("a.laz", 4, 8),
        ("b.laz", 2, 3),
        ("c.las", 4, 7),
        ("d.las", 2, 1),
    ] {
        let p = d.path().join(name);
        common::make_las(&p, minor, format, 120, 2, minor == 4);
        let seed = std::fs::read(&p).unwrap();
        for _ in 0..400 {
            read_las_bytes(mutate(&mut rng, &seed, 400));
        }
    }
}

#[test]
fn mutated_ply() {
    let mut rng = Rng(0x5eed_1234_abcd_0002);
    let head = "ply\nformat binary_little_endian 1.0\nelement face 1\nproperty list uchar int vertex_indices\nelement vertex 4\nproperty double x\nproperty double y\nproperty float z\nproperty ushort intensity\nproperty uchar class\nend_header\n";
    let mut bin = head.as_bytes().to_vec();
    bin.push(3);
    for k in 0..3i32 {
        bin.extend_from_slice(&k.to_le_bytes());
    }
    for i in 0..4 {
        bin.extend_from_slice(&(i as f64).to_le_bytes());
        bin.extend_from_slice(&(770_000.0f64 + i as f64).to_le_bytes());
        bin.extend_from_slice(&(2.5f32).to_le_bytes());
        bin.extend_from_slice(&(100u16 * i).to_le_bytes());
        bin.push(i as u8);
    }
    let ascii = head.replace("binary_little_endian", "ascii")
        + "3 0 1 2\n0 1 2 3 4\n1 2 3 4 5\n2 3 4 5 6\n3 4 5 6 7\n";
    for seed in [bin, ascii.into_bytes()] {
        assert!(ply::read_ply_bytes(&seed, Path::new("m.ply"), &PlyOptions::default()).is_ok());
        for _ in 0..3000 {
            let m = mutate(&mut rng, &seed, head.len());
            let _ = ply::read_ply_bytes(&m, Path::new("m.ply"), &PlyOptions::default());
        }
    }
}

#[test]
fn mutated_text_and_kitti() {
    let mut rng = Rng(0x5eed_1234_abcd_0003);
    let s3d = b"1.5 2.5 3.5 -1200 10 20 30\n4 5 6 7 8 9 10\n".to_vec();
    let csv = b"x,y,z,intensity,label\n1,2,3,40,5\n4,5,6,7,8\n".to_vec();
    let yaml = b"learning_map:\n  0 : 0\n  10: 1\nlearning_map_inv:\n  0: 0\n  1: 10\n".to_vec();
    let mut scan = Vec::new();
    for v in [1f32, 2.0, 3.0, 0.5, -4.0, 5.0, -6.0, 0.25] {
        scan.extend_from_slice(&v.to_le_bytes());
    }
    let labels: Vec<u8> = [10u32, 252 | (3 << 16)]
        .iter()
        .flat_map(|l| l.to_le_bytes())
        .collect();
    let p = Path::new("m.txt");
    for _ in 0..3000 {
        let m = mutate(&mut rng, &s3d, 64);
        let _ = semantic3d::read_semantic3d_points(&m[..], p);
        let _ = semantic3d::read_labels(&m[..], p);
        let m = mutate(&mut rng, &csv, 64);
        let _ = xyz::read_xyz_from(&m[..], p, &XyzOptions::default());
        let m = mutate(&mut rng, &yaml, 64);
        let map = std::str::from_utf8(&m)
            .ok()
            .and_then(|t| kitti::LearningMap::from_yaml(t, p).ok());
        let m = mutate(&mut rng, &scan, 32);
        if let Ok(c) = kitti::read_kitti_scan_bytes(&m, p) {
            let l = mutate(&mut rng, &labels, 8);
            let _ = kitti::read_kitti_label_bytes(&l, p, c.len(), map.as_ref());
        }
    }
}
