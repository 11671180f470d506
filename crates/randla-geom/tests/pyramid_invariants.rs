//! The neighbourhood pyramid follows the reference `tf_map`: shapes, index ranges, the prefix rule,
//! and neighbour / 1-NN sets equal to exhaustive search.

mod common;

use randla_geom::knn::brute;
use randla_geom::{Pyramid, PyramidConfig};

fn check(pts: &[[f32; 3]], cfg: &PyramidConfig) {
    let p = Pyramid::build(pts, cfg).unwrap();
    let sizes = p.level_sizes().to_vec();
    assert_eq!(sizes.len(), cfg.ratios.len() + 1);
    assert_eq!(sizes[0], pts.len());
    for (l, &r) in cfg.ratios.iter().enumerate() {
        assert_eq!(sizes[l + 1], sizes[l] / r, "N_(l+1) = N_l / r_l");
        let (n, k) = (sizes[l], cfg.k);
        // Prefix rule: level l is the first N_l points of the crop, unchanged.
        assert_eq!(p.coords(l), &pts[..n]);
        let nb = p.neighbors(l);
        assert_eq!(nb.len(), n * k);
        assert!(
            nb.iter().all(|&i| (i as usize) < n),
            "neighbour index out of level {l}"
        );
        // Neighbours are exactly the brute-force ones.
        assert_eq!(
            nb,
            &brute::knn(&pts[..n], &pts[..n], k).unwrap().indices[..]
        );
        // Pooling indices are the first N_(l+1) rows of the neighbours.
        assert_eq!(p.sub_idx(l), &nb[..sizes[l + 1] * k]);
        // Upsampling: the nearest point of the next level.
        let up = p.interp_idx(l);
        assert_eq!(up.len(), n);
        assert!(up.iter().all(|&i| (i as usize) < sizes[l + 1]));
        let next = &pts[..sizes[l + 1]];
        assert_eq!(up, &brute::knn(next, &pts[..n], 1).unwrap().indices[..]);
        // Points kept in the next level are their own upsampling source.
        for i in 0..sizes[l + 1] {
            let j = up[i] as usize;
            assert_eq!(next[j], next[i]);
        }
    }
}

#[test]
fn reference_configuration_on_a_real_crop() {
    let (pts, _) = common::ign_quarter();
    let order = common::shuffled(pts.len(), 3);
    let crop: Vec<[f32; 3]> = order[..8192].iter().map(|&i| pts[i]).collect();
    check(&crop, &PyramidConfig::default());
}

#[test]
fn s3dis_like_five_layers_and_odd_ratios() {
    let pts = common::uniform(6000, [10.0, 10.0, 3.0], 8);
    check(
        &pts,
        &PyramidConfig {
            k: 16,
            ratios: vec![4, 4, 4, 4, 2],
        },
    );
    check(
        &pts,
        &PyramidConfig {
            k: 5,
            ratios: vec![3, 7],
        },
    );
    check(
        &common::clustered(3000, 4),
        &PyramidConfig {
            k: 8,
            ratios: vec![2, 2, 2],
        },
    );
}

#[test]
fn a_spatial_order_must_list_every_level_zero_point_once() {
    let pts = common::uniform(2000, [10.0, 10.0, 3.0], 9);
    let p = Pyramid::build(&pts, &PyramidConfig::default()).unwrap();
    assert_eq!(p.spatial_order(), None);
    let mut order: Vec<u32> = (0..2000).rev().collect();
    let with = p.clone().with_spatial_order(order.clone()).unwrap();
    assert_eq!(with.spatial_order(), Some(&order[..]));
    assert_eq!(with.heap_bytes(), p.heap_bytes() + 2000 * 4);
    // A repeat, an index out of range, a missing point: refused, naming the order.
    order[3] = order[4];
    let dup = p.clone().with_spatial_order(order.clone()).unwrap_err();
    assert!(dup.to_string().contains("spatial order"), "{dup}");
    order[3] = 2000;
    assert!(p.clone().with_spatial_order(order).is_err());
    assert!(p.with_spatial_order((0..1999).collect()).is_err());
}
