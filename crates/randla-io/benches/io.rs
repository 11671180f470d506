//! Point-cloud I/O throughput in points/s on the largest real IGN LiDAR HD tile
//! (`77060_627755`, 83,518 points, LAS 1.4 point format 8, 38-byte records, LAZ):
//!
//! * `laz_read`: open + decompress + decode into a `PointCloud` (xyz, 8 features, labels);
//! * `laz_rewrite`: copy-through LAZ → LAZ with new classification (decompress, patch,
//!   recompress, atomic rename), and the same adding 4 `f32` extra bytes;
//! * `las_read` / `las_rewrite`: the same on the uncompressed copy of the tile;
//! * `ply_write` / `ply_read`: binary little-endian and ascii PLY of the decoded cloud
//!   (double xyz, 8 float features, uint label);
//! * `read_chunked_10k`: the same PLY files read with `PlyReader` in chunks of 10,000 points
//!   (each chunk dropped after use, as a streaming caller would).
//!
//! Run with: `cargo bench -p randla-io --bench io`

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use randla_io::{
    ChunkRead, ExtraOutputs, LasReader, PlyEncoding, PlyOptions, PlyReader, PlyWriteOptions,
    Probabilities, read_las, read_ply, rewrite_las_classification, write_ply,
};

fn tile() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../data/ign-lidar-hd/test_data_77060_627755_LA93_IGN69.laz")
}

fn io(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let laz = tile();
    let n = LasReader::open(&laz).unwrap().point_count() as usize;
    let classes: Vec<u8> = (0..n).map(|i| (i % 7) as u8).collect();
    let las = dir.path().join("tile.las");
    rewrite_las_classification(&laz, &las, &classes, None, true).unwrap();
    let conf: Vec<f32> = vec![0.5; n];
    let names: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
    let probs: Vec<f32> = vec![0.25; 3 * n];
    let extra = ExtraOutputs {
        confidence: Some(&conf),
        probabilities: Some(Probabilities {
            names: &names,
            values: &probs,
        }),
    };

    let mut g = c.benchmark_group("io_points");
    g.sample_size(10);
    g.throughput(Throughput::Elements(n as u64));
    for (name, input, out_name) in [("laz", &laz, "out.laz"), ("las", &las, "out.las")] {
        g.bench_function(BenchmarkId::new("read", name), |b| {
            b.iter(|| read_las(black_box(input)).unwrap())
        });
        let out = dir.path().join(out_name);
        g.bench_function(BenchmarkId::new("rewrite_classification", name), |b| {
            b.iter(|| rewrite_las_classification(input, &out, &classes, None, true).unwrap())
        });
        g.bench_function(
            BenchmarkId::new("rewrite_classification_extra_bytes", name),
            |b| {
                b.iter(|| {
                    rewrite_las_classification(input, &out, &classes, Some(&extra), true).unwrap()
                })
            },
        );
    }
    let cloud = read_las(&laz).unwrap();
    for enc in [PlyEncoding::BinaryLittleEndian, PlyEncoding::Ascii] {
        let tag = if enc == PlyEncoding::Ascii {
            "ply_ascii"
        } else {
            "ply_binary"
        };
        let out = dir.path().join(format!("{tag}.ply"));
        let opts = PlyWriteOptions {
            encoding: enc,
            overwrite: true,
            ..Default::default()
        };
        g.bench_function(BenchmarkId::new("write", tag), |b| {
            b.iter(|| write_ply(&out, black_box(&cloud), &opts).unwrap())
        });
        g.bench_function(BenchmarkId::new("read", tag), |b| {
            b.iter(|| read_ply(black_box(&out), &PlyOptions::default()).unwrap())
        });
        g.bench_function(BenchmarkId::new("read_chunked_10k", tag), |b| {
            b.iter(|| {
                let r = PlyReader::open(black_box(&out), &PlyOptions::default()).unwrap();
                r.chunks(10_000).map(|c| c.unwrap().len()).sum::<usize>()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, io);
criterion_main!(benches);
