//! Our pyramid, built from the crop Open3D-ML fed its RandLANet, equals the index tensors Open3D-ML
//! built itself (fixtures/parity, made by Open3D-ML's own `transform`): the same prefix rule, the
//! same neighbour sets, the same upsampling sources.

use safetensors::SafeTensors;

use randla_geom::{Pyramid, PyramidConfig};

fn load() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/parity/o3d_kitti_small.io.safetensors"
    ))
    .expect("fixtures/parity/o3d_kitti_small.io.safetensors")
}

fn f32s(t: &SafeTensors, name: &str) -> Vec<f32> {
    let v = t.tensor(name).unwrap();
    v.data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

fn i64s(t: &SafeTensors, name: &str) -> Vec<u32> {
    let v = t.tensor(name).unwrap();
    v.data()
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes(b.try_into().unwrap()) as u32)
        .collect()
}

#[test]
fn pyramid_equals_the_reference_indices() {
    let bytes = load();
    let t = SafeTensors::deserialize(&bytes).unwrap();
    let xyz: Vec<[f32; 3]> = f32s(&t, "coords.0")
        .chunks_exact(3)
        .map(|c| [c[0], c[1], c[2]])
        .collect();
    let cfg = PyramidConfig {
        k: 16,
        ratios: vec![4, 4, 4, 4],
    };
    let p = Pyramid::build(&xyz, &cfg).unwrap();
    let k = cfg.k;
    let mut rows = 0usize;
    let mut same_set = 0usize;
    let mut same_order = 0usize;
    for l in 0..4 {
        let n = p.level_sizes()[l];
        let coords: Vec<[f32; 3]> = f32s(&t, &format!("coords.{l}"))
            .chunks_exact(3)
            .map(|c| [c[0], c[1], c[2]])
            .collect();
        assert_eq!(
            coords,
            p.coords(l),
            "level {l} is the prefix of the crop in the reference too"
        );
        let theirs = i64s(&t, &format!("neighbor_indices.{l}"));
        assert_eq!(theirs.len(), n * k);
        for i in 0..n {
            let (a, b) = (
                &p.neighbors(l)[i * k..(i + 1) * k],
                &theirs[i * k..(i + 1) * k],
            );
            rows += 1;
            same_order += (a == b) as usize;
            let (mut a, mut b) = (a.to_vec(), b.to_vec());
            a.sort_unstable();
            b.sort_unstable();
            same_set += (a == b) as usize;
        }
        assert_eq!(
            i64s(&t, &format!("sub_idx.{l}")),
            p.sub_idx(l),
            "sub_idx.{l} is the prefix of neighbour rows"
        );
        let up = i64s(&t, &format!("interp_idx.{l}"));
        assert_eq!(up, p.interp_idx(l), "interp_idx.{l}");
    }
    // Every neighbour set is the reference's. The order within a row may differ only where two
    // distances tie to the last bit in one of the two distance codes (2 rows of 5,440 here).
    assert_eq!(same_set, rows, "{same_set} of {rows} neighbour sets equal");
    assert!(
        same_order * 100 >= rows * 99,
        "{same_order} of {rows} neighbour rows in the same order"
    );
    eprintln!("neighbour rows: {rows}, equal sets: {same_set}, equal order: {same_order}");
}
