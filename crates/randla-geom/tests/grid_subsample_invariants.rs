//! Grid subsampling invariants on random and real clouds: every point maps to the representative of
//! its own voxel, representatives are the barycentres and the feature means, labels the majority.

mod common;

use std::collections::HashMap;

use randla_geom::sampling::grid::{grid_origin, grid_subsample, voxel_of};

fn check(pts: &[[f32; 3]], labels: &[u32], cell: f32) {
    let channels = 2;
    let feats: Vec<f32> = pts.iter().flat_map(|p| [p[0] * 2.0, 1.0]).collect();
    let out = grid_subsample(pts, &feats, channels, Some(labels), cell).unwrap();
    let origin = grid_origin(pts, cell as f64);
    let mut members: HashMap<u32, Vec<usize>> = HashMap::new();
    for (i, &g) in out.proj.iter().enumerate() {
        members.entry(g).or_default().push(i);
    }
    assert_eq!(members.len(), out.len(), "every representative has members");
    let mut voxel_owner: HashMap<[u64; 3], u32> = HashMap::new();
    for (&g, m) in &members {
        let v = voxel_of(pts[m[0]], origin, cell as f64);
        for &i in m {
            assert_eq!(
                voxel_of(pts[i], origin, cell as f64),
                v,
                "point {i} maps to another voxel"
            );
        }
        assert!(
            voxel_owner.insert(v, g).is_none(),
            "two representatives for one voxel"
        );
        let g = g as usize;
        for d in 0..3 {
            let mean = m.iter().map(|&i| pts[i][d] as f64).sum::<f64>() / m.len() as f64;
            assert!((out.points[g][d] as f64 - mean).abs() <= 1e-4 * mean.abs().max(1.0));
        }
        let fmean = m.iter().map(|&i| feats[i * 2] as f64).sum::<f64>() / m.len() as f64;
        assert!((out.features[g * 2] as f64 - fmean).abs() <= 1e-4 * fmean.abs().max(1.0));
        assert_eq!(out.features[g * 2 + 1], 1.0);
        let mut counts: HashMap<u32, usize> = HashMap::new();
        for &i in m {
            *counts.entry(labels[i]).or_default() += 1;
        }
        let best = counts.values().max().unwrap();
        let want = counts
            .iter()
            .filter(|(_, c)| *c == best)
            .map(|(l, _)| *l)
            .min()
            .unwrap();
        assert_eq!(out.labels.as_ref().unwrap()[g], want);
    }
}

#[test]
fn real_tile_at_several_grid_sizes() {
    let (pts, labels) = common::ign_quarter();
    for cell in [0.1, 0.5, 2.0] {
        check(&pts, &labels, cell);
    }
}

#[test]
fn grids_of_more_than_2_pow_32_voxels() {
    // Clusters 1 km apart on a 1 cm grid: 10^5 voxels a side, 10^15 in all, past the 32-bit
    // voxel ids of the packed sort; the same invariants hold.
    let mut pts = common::uniform(3000, [0.05, 0.05, 0.05], 9);
    for (k, p) in pts.iter_mut().enumerate() {
        let c = (k % 3) as f32 * 1000.0;
        *p = [p[0] + c, p[1] + c / 2.0, p[2] + c / 4.0];
    }
    let labels: Vec<u32> = (0..pts.len() as u32).map(|i| i % 3).collect();
    check(&pts, &labels, 0.01);
}

#[test]
fn random_cloud() {
    let pts = common::uniform(5000, [7.0, 3.0, 1.0], 2);
    let labels: Vec<u32> = (0..pts.len() as u32).map(|i| i % 4).collect();
    check(&pts, &labels, 0.3);
}

#[test]
fn output_is_deterministic() {
    let pts = common::clustered(2000, 1);
    let a = grid_subsample(&pts, &[], 0, None, 0.2).unwrap();
    let b = grid_subsample(&pts, &[], 0, None, 0.2).unwrap();
    assert_eq!(a, b);
}
